import KineCore
import KineSQL

/// The Writer's statements: its transaction and lock, the reads a batch is evaluated against,
/// and the inserts.
extension StoreSQL {
    static let begin = SQLStatement("BEGIN", name: "w_begin")
    static let commit = SQLStatement("COMMIT", name: "w_commit")
    static let rollback = SQLStatement("ROLLBACK")
    static let lock = SQLStatement("SELECT pg_advisory_xact_lock($1)", [.int64(lockKey)], name: "w_lock")

    /// For this session: PostgreSQL ends it when it idles inside a transaction for longer (SET
    /// takes no parameters; the value is a whole number of milliseconds).
    static func idleInTransactionTimeout(_ timeout: Duration) -> SQLStatement {
        SQLStatement("SET idle_in_transaction_session_timeout = \(max(1, timeout.wholeMilliseconds))", name: nil)
    }

    /// For this session: never ended for idling (PostgreSQL 14's `idle_session_timeout`, if a
    /// database sets it), since it may hold the sole-writer lock between batches (`SoleWriter`).
    static let noIdleSessionTimeout = SQLStatement(
        "SELECT set_config('idle_session_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 140000", name: nil)

    /// Latest row (tombstones included) of each named key: one backward probe of
    /// `kine_name_id_index` per name, however many versions a key has.
    func latestOfNames(_ names: [Bytes]) -> SQLQuery<[StoredRow]> {
        let sql = """
            SELECT \(Self.rowColumns()) FROM unnest($1::text[]) AS n(name) CROSS JOIN LATERAL \
            (SELECT \(Self.innerColumns) FROM kine WHERE kine.name = n.name ORDER BY id DESC LIMIT 1) AS kv
            """
        return Self.storedRows(SQLStatement(sql, [.textArray(names.map { String(decoding: $0, as: UTF8.self) })], name: "w_names"))
    }

    /// Live keys of a stored-name range, latest (revision 0) or at a revision.
    func liveRows(_ range: KeyRange, revision: Int64) -> SQLQuery<[StoredRow]> {
        let (pred, params, shape) = predicate(range, first: 2)
        let bound = "(CASE WHEN $1::int8 > 0 THEN \(Self.idBound("$1::int8")) ELSE 9223372036854775807 END)"
        let rows = latestRows(pred, bound: bound, keysOnly: false, includeDeleted: false, single: shape == "s")
        return Self.storedRows(SQLStatement(rows, [.int64(revision)] + params, name: "w_live_\(shape)"))
    }

    /// New rows. `lease` gets the lease's TTL, as Go kine stores it, so Go kine would still expire
    /// the key; `kv_lease` holds the real lease id. `old_value` stays NULL: kine reads the previous
    /// value from the superseded row (`prev_revision`), and copying it into every row doubled the
    /// table and its WAL (cas-64 11-14k → 17-19k writes/s; docs/benchmarks.md).
    private static let insertRows = """
        INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, kv_version, kv_revision, kv_lease) \
        SELECT t.i, t.n, t.c::integer, t.d::integer, t.cr, t.pr, LEAST(t.ttl, 2147483647)::integer, t.v, t.ver, NULLIF(t.rev, t.i), NULLIF(t.l, 0) \
        FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::bytea[], $8::int8[], $9::int8[], \
        $10::int8[], $11::int8[]) AS t(i, n, c, d, cr, pr, v, ver, rev, l, ttl)
        """

    static func insert(_ rows: [PendingRow]) -> SQLStatement {
        SQLStatement(insertRows, insertParameters(rows), name: "w_insert")
    }

    /// `insertRows` guarded by "the newest id is `expectedNewestID` and no alarm is active" (and
    /// the transaction admitted by the sole-writer lock), with the sequence moved to
    /// `sequence` and, unless `notify` is nil, `NOTIFY kine` with that payload, all or nothing; answers whether it wrote. In
    /// a transaction after the lock: `g` reads the table as the lock left it, so a true guard
    /// means no row came after the state the rows were computed from.
    static func guardedInsert(
        _ rows: [PendingRow], expectedNewestID: Int64, sequence: Int64, notify payload: String?, authGeneration: UInt64?
    ) -> SQLQuery<GuardedInsertOutcome> {
        let authGuard = authGeneration == nil ? "" : " AND \(Self.authGeneration) = $15::int8"
        // `a` calls a volatile function, so PostgreSQL evaluates it once, before the guard reads it.
        let sql = """
            WITH a AS (SELECT \(sharedSoleWriterCall) AS admitted), \
            g AS (SELECT (SELECT admitted FROM a) AND \(newestID) = $12::int8 AND \(noAlarms)\(authGuard) AS ok), \
            ins AS (\(insertRows) WHERE (SELECT ok FROM g)) \
            SELECT g.ok, CASE WHEN g.ok THEN setval('kine_id_seq', $13::int8) END, CASE WHEN g.ok AND $14::text IS NOT NULL THEN pg_notify('kine', $14::text) END, \
            (SELECT admitted FROM a) FROM g
            """
        var parameters = insertParameters(rows) + [.int64(expectedNewestID), .int64(sequence), payload.map { .text($0) } ?? .null]
        if let authGeneration { parameters.append(.int64(Int64(bitPattern: authGeneration))) }
        let name = authGeneration == nil ? "w_guarded_insert" : "w_guarded_insert_auth"
        return .firstRow(SQLStatement(sql, parameters, name: name)) {
            GuardedInsertOutcome(wrote: $0?.bool(0) ?? false, admitted: $0?.bool(3) ?? false)
        }
    }

    /// `$1…$11` of `insertRows`.
    private static func insertParameters(_ rows: [PendingRow]) -> [SQLValue] {
        [
            .int64Array(rows.map(\.id)),
            .textArray(rows.map { String(decoding: $0.name, as: UTF8.self) }),
            .int64Array(rows.map { $0.created ? 1 : 0 }),
            .int64Array(rows.map { $0.deleted ? 1 : 0 }),
            .int64Array(rows.map(\.createRevision)),
            .int64Array(rows.map(\.prevRevision)),
            .bytesArray(rows.map(\.value)),
            .int64Array(rows.map(\.version)),
            .int64Array(rows.map(\.revision)),
            .int64Array(rows.map(\.lease)),
            .int64Array(rows.map(\.leaseTTL)),
        ]
    }

    /// Tombstones for every live key of a stored-name range, ids `maxID + 1…` in key order, all
    /// at `revision`, computed and inserted by PostgreSQL (`WriteRequest.isBulkDelete`); answers
    /// how many.
    func bulkDelete(_ range: KeyRange, maxID: Int64, revision: Int64) -> SQLQuery<Int> {
        let (pred, params, shape) = predicate(range, first: 3)
        // The latest row of each name straight from the index scan (already in name order), with
        // the few columns a tombstone needs: no second lookup of every victim by id.
        return .affectedRows(
            SQLStatement(
                """
                INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, kv_version, kv_revision) \
                SELECT $1::int8 + v.n, v.name, 0, 1, v.created_at, v.id, 0, NULL, 0, NULLIF($2::int8, $1::int8 + v.n) \
                FROM (SELECT row_number() OVER (ORDER BY d.name COLLATE "C") AS n, d.id, d.name, \
                CASE WHEN d.created <> 0 AND d.create_revision = 0 THEN COALESCE(d.kv_revision, d.id) ELSE d.create_revision END AS created_at \
                FROM (SELECT DISTINCT ON (\(nameExpr)) id, name, created, deleted, create_revision, kv_revision FROM kine \
                WHERE \(pred) ORDER BY \(nameExpr), id DESC) AS d WHERE d.deleted = 0 AND d.name <> 'compact_rev_key') AS v
                """, [.int64(maxID), .int64(revision)] + params, name: "w_bulk_delete_\(shape)"))
    }

    /// The newest row id, or -1 while an alarm is active (the cache path then steps aside for the
    /// path that reads the alarms under the lock).
    /// The newest id, or -1 when an alarm is active or the auth generation is not `authGeneration`.
    static func newestIDWithoutAlarms(authGeneration: UInt64?) -> SQLQuery<Int64> {
        guard let authGeneration else {
            return .scalar(SQLStatement("SELECT CASE WHEN \(noAlarms) THEN \(newestID) ELSE -1 END", name: "w_newest_no_alarms"))
        }
        return .scalar(
            SQLStatement(
                "SELECT CASE WHEN \(noAlarms) AND \(Self.authGeneration) = $1 THEN \(newestID) ELSE -1 END",
                [.int64(Int64(bitPattern: authGeneration))], name: "w_newest_no_alarms_auth"))
    }

    static func setSequence(_ id: Int64) -> SQLStatement {
        SQLStatement("SELECT setval('kine_id_seq', $1)", [.int64(id)], name: "w_setval")
    }

    /// The sequence moved to the newest id (after rows PostgreSQL numbered itself, or on start).
    static let sequenceToNewestID = SQLStatement(
        "SELECT setval('kine_id_seq', GREATEST((SELECT MAX(id) FROM kine), 1))", name: "w_setval_max")

    /// `NOTIFY kine` with a `CommitNoticePayload`.
    static func notify(_ payload: String) -> SQLStatement {
        SQLStatement("SELECT pg_notify('kine', $1)", [.text(payload)], name: "w_notify")
    }
}
