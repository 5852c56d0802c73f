import KineCore
import KineSQL

/// `kine_alarms`: etcd's alarms, one row per (member, type), shared by every kine process on the
/// database and replicated to an HA follower.
extension StoreSQL {
    /// Member ids are etcd's uint64s, stored as their int8 bit pattern.
    static let createAlarms =
        "CREATE TABLE IF NOT EXISTS kine_alarms (member_id BIGINT NOT NULL, alarm INTEGER NOT NULL, PRIMARY KEY (member_id, alarm))"

    /// Every active alarm, in (type, member) order.
    static let alarms = SQLQuery(SQLStatement("SELECT member_id, alarm FROM kine_alarms ORDER BY alarm, member_id", name: "alarms")) {
        result in
        result.rows.map { AlarmMember(memberID: UInt64(bitPattern: $0.int64(0)), alarm: Int32(truncatingIfNeeded: $0.int64(1))) }
    }

    /// What writes must obey, read with the batch under the lock.
    static let alarmState = SQLQuery(SQLStatement("SELECT alarm FROM kine_alarms GROUP BY alarm", name: "alarm_state")) { result in
        AlarmState(types: Set(result.rows.map { Int32(truncatingIfNeeded: $0.int64(0)) }))
    }

    static func activateAlarm(_ member: AlarmMember) -> SQLStatement {
        SQLStatement(
            "INSERT INTO kine_alarms (member_id, alarm) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [.int64(Int64(bitPattern: member.memberID)), .int64(Int64(member.alarm))], name: "alarm_activate")
    }

    /// Answers whether the alarm was active.
    static func deactivateAlarm(_ member: AlarmMember) -> SQLQuery<Bool> {
        SQLQuery(
            SQLStatement(
                "DELETE FROM kine_alarms WHERE member_id = $1 AND alarm = $2",
                [.int64(Int64(bitPattern: member.memberID)), .int64(Int64(member.alarm))], name: "alarm_deactivate")
        ) { $0.affectedRows > 0 }
    }

    /// An SQL condition: no alarm is active (the one-round-trip write path's guard).
    static let noAlarms = "NOT EXISTS (SELECT 1 FROM kine_alarms)"
}

/// The alarm types active on the database, as the Writer and lease grants obey them.
struct AlarmState: Sendable, Equatable {
    var types: Set<Int32> = []

    var noSpace: Bool { types.contains(AlarmType.noSpace.rawValue) }
    var corrupt: Bool { types.contains(AlarmType.corrupt.rawValue) }
    var isEmpty: Bool { types.isEmpty }

    /// What etcd 3.5 answers `request` with while these alarms are active, nil to go ahead.
    /// CORRUPT refuses every write, a txn with a write in any branch at any depth included;
    /// NOSPACE refuses puts and txns with a put at the top level of either branch (etcd counts
    /// only those, so a put in a nested txn gets through, as it does in etcd).
    func refusal(of request: WriteRequest) -> EtcdError? {
        if corrupt {
            switch request {
            case .txn(let txn): if Self.writes(txn) { return .corrupt }
            case .put, .deleteRange, .revokeLease, .expireLeases: return .corrupt
            }
        }
        if noSpace {
            switch request {
            case .put: return .noSpace
            case .txn(let txn):
                if (txn.success + txn.failure).contains(where: { if case .put = $0 { true } else { false } }) { return .noSpace }
            case .deleteRange, .revokeLease, .expireLeases: break
            }
        }
        return nil
    }

    /// Whether a put or delete appears in either branch, at any depth.
    private static func writes(_ txn: TxnRequest) -> Bool {
        (txn.success + txn.failure).contains { op in
            switch op {
            case .range, .empty: return false
            case .txn(let inner): return writes(inner)
            case .put, .deleteRange: return true
            }
        }
    }
}
