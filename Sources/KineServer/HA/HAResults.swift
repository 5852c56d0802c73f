import KineHA
import KineSQL

// What HASQL's reads answer, each decoded from its statement's columns in one place (the columns
// are listed beside each statement in HASQL).

/// `kine_ha_local`: what this node recorded about itself, read once at start.
struct HALocalRecord: Sendable, Equatable {
    var role: HARole?
    var term: UInt64
    var leader: String?
    var highestServed: Int64
    var pause: HAPause
    var lastWriteUnixMilliseconds: Int64

    /// A database that never ran HA has no row: no role, term 0.
    init(row: SQLRow?) {
        role = row.flatMap { HARole(rawValue: $0.text(0)) }
        term = UInt64(max(row?.int64(1) ?? 0, 0))
        leader = row.map { $0.text(2) }.flatMap { $0.isEmpty ? nil : $0 }
        highestServed = row?.int64(3) ?? 0
        pause = HAPause(untilUnixMilliseconds: row?.int64(4) ?? 0, setUnixMilliseconds: row?.int64(5) ?? 0)
        lastWriteUnixMilliseconds = row?.int64(6) ?? 0
    }
}

/// The settings a pair needs of its PostgreSQL.
struct HASetup: Sendable, Equatable {
    var walLevel: String
    var superuser: Bool
    var user: String

    init(row: SQLRow) {
        walLevel = row.text(0)
        superuser = row.bool(1)
        user = row.text(2)
    }
}

extension LocalProbe {
    /// Columns as `HASQL.localProbe` lists them.
    init(row: SQLRow) {
        let subscribed = !row.isNull(1)
        let complete = subscribed && row.bool(2)
        let copy: CopyState
        if !subscribed {
            copy = .none
        } else if !row.bool(1) {
            copy = .disabled
        } else {
            copy = complete ? .ready : .syncing
        }
        self.init(
            maxID: row.int64(0), copy: copy, copyComplete: complete, followerStreaming: row.bool(3),
            subscribedTerm: row.isNull(4) ? 0 : UInt64(max(row.int64(4), 0)), hasData: row.bool(5), subscribedTables: row.int64(6))
    }
}

extension PeerDatabaseProbe {
    /// Columns as `HASQL.peerProbe` lists them ("missing": no slot of this node's there).
    init(row: SQLRow) {
        let slot = row.isNull(1) ? "missing" : row.text(1)
        self.init(maxID: row.int64(0), slotWALStatus: slot == "missing" ? nil : slot, publishedTables: row.int64(2))
    }
}

extension HAEpoch {
    /// No row yet (a pair that never promoted): term 0, fork 0.
    init(row: SQLRow?) {
        self.init(term: row?.int64(0) ?? 0, forkID: row?.int64(1) ?? 0)
    }
}

/// A row of the kine table a node wrote above the leader's fork, as a resync saves it.
struct ForkedRow: Sendable, Equatable {
    var id: Int64
    var name: String
    var created: Int64
    var deleted: Int64
    var createRevision: Int64
    var prevRevision: Int64
    var lease: Int64
    var value: [UInt8]?
    /// The commit time, or -1 when `track_commit_timestamp` is off.
    var committedUnixMilliseconds: Int64
}

/// A saved split write as held in `kine_ha_split_writes`, carried to a new leader whole.
struct HeldSplitWrite: Sendable, Equatable {
    var node: String
    var forkID: Int64
    var leaderTerm: Int64
    var reason: String
    var row: ForkedRow

    init(row cells: SQLRow) {
        node = cells.text(0)
        forkID = cells.int64(2)
        leaderTerm = cells.int64(3)
        reason = cells.text(4)
        row = ForkedRow(
            id: cells.int64(1), name: cells.text(5), created: cells.int64(6), deleted: cells.int64(7), createRevision: cells.int64(8),
            prevRevision: cells.int64(9), lease: cells.int64(10), value: cells.isNull(11) ? nil : cells.bytes(11),
            committedUnixMilliseconds: cells.int64(12))
    }
}

// In an extension, so that the memberwise initializer `HeldSplitWrite` uses is kept.
extension ForkedRow {
    init(row: SQLRow) {
        id = row.int64(0)
        name = row.text(1)
        created = row.int64(2)
        deleted = row.int64(3)
        createRevision = row.int64(4)
        prevRevision = row.int64(5)
        lease = row.int64(6)
        value = row.isNull(7) ? nil : row.bytes(7)
        committedUnixMilliseconds = row.int64(8)
    }
}
