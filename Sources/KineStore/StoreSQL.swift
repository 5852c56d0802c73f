import KineCore
import KineSQL

/// The SQL the store runs, built once per process for the table's `name` column flavour.
///
/// Reads pin a revision: rows with `id <= R` never change once `R` is visible, because every
/// writer commits in id order under one advisory lock (docs/design.md). So the header
/// revision and the rows of one read come from one statement, and follow-up statements (count)
/// reuse the pinned revision.
struct StoreSQL: Sendable {
    /// `name`, or `name COLLATE "C"` for a legacy (pre-v0.13 Go kine) VARCHAR column whose default
    /// collation would not order by bytes.
    let nameExpr: String

    init(legacyCollation: Bool) {
        nameExpr = legacyCollation ? "name COLLATE \"C\"" : "name"
    }

    static let internalCompactName = "compact_rev_key"
    static let lockKey: Int64 = 0x6B69_6E65  // "kine": the one advisory lock every writer takes.

    /// Columns decoded by `StoredRow`, read from a subquery aliased `kv`. For rows Go kine wrote
    /// (no `kv_version`) the version is derived: 1 for a create row, else the number of rows of
    /// the key since its create row.
    static func rowColumns(keysOnly: Bool = false, alias kv: String = "kv") -> String {
        let value = keysOnly ? "CASE WHEN \(kv).name = 'compact_rev_key_apiserver' THEN \(kv).value END" : "\(kv).value"
        return """
            \(kv).id, \(kv).name, \(kv).created, \(kv).deleted, \(kv).create_revision, \(kv).prev_revision, \(value), \
            COALESCE(\(kv).kv_version, CASE WHEN \(kv).deleted <> 0 THEN 0 WHEN \(kv).created <> 0 THEN 1 \
            ELSE (SELECT COUNT(*) FROM kine AS v WHERE v.name = \(kv).name AND v.id >= \(kv).create_revision AND v.id <= \(kv).id) END), \
            COALESCE(\(kv).kv_revision, \(kv).id), COALESCE(\(kv).kv_lease, 0)
            """
    }

    /// Number of columns `rowColumns` yields (where a second row's columns start).
    static let rowColumnCount = 10

    /// Columns of a change row `kv` and of the row it superseded `p` (for `prev_kv`), for watchers.
    static let changeColumns = "\(rowColumns(alias: "kv")), \(rowColumns(alias: "p"))"

    /// Every row after id `$1`, oldest first, with the row each supersedes: the WatchHub's tail.
    static func changes(afterID: Int64, limit: Int64) -> SQLStatement {
        SQLStatement("""
            SELECT \(changeColumns) FROM kine AS kv LEFT JOIN kine AS p ON p.id = kv.prev_revision \
            WHERE kv.id > $1 ORDER BY kv.id LIMIT $2
            """, [.int64(afterID), .int64(limit)], name: "watch_tail")
    }

    /// Changes in a stored-name range with revision in `[fromRevision, …]` and id ≤ `$2`, oldest
    /// first: a watcher catching up from history.
    func changes(in range: KeyRange, fromRevision: Int64, toID: Int64, limit: Int64) -> SQLStatement {
        let (qualified, params, shape) = predicate(range, first: 4, table: "kv")
        return SQLStatement("""
            SELECT \(Self.changeColumns) FROM kine AS kv LEFT JOIN kine AS p ON p.id = kv.prev_revision \
            WHERE kv.id > \(Self.idBound("$1::int8 - 1")) AND kv.id <= $2 AND \(qualified) ORDER BY kv.id LIMIT $3
            """, [.int64(fromRevision), .int64(toID), .int64(limit)] + params, name: "watch_history_\(shape)")
    }

    static let innerColumns = "id, name, created, deleted, create_revision, prev_revision, value, kv_version, kv_revision, kv_lease"

    /// The current etcd revision: the revision of the newest row.
    static let currentRevision = "COALESCE((SELECT COALESCE(kv_revision, id) FROM kine ORDER BY id DESC LIMIT 1), 0)"
    static let compactRevision = "(SELECT COALESCE(MAX(prev_revision), 0) FROM kine WHERE name = 'compact_rev_key')"
    /// The newest row id (0 for an empty table).
    static let newestID = "(SELECT COALESCE(MAX(id), 0) FROM kine)"

    /// The id of the last row of revision `parameter` or before: reads at a revision read rows up
    /// to this id. Served by `kine_revision_id_index`.
    static func idBound(_ parameter: String) -> String {
        "COALESCE((SELECT id FROM kine WHERE COALESCE(kv_revision, id) <= \(parameter) ORDER BY COALESCE(kv_revision, id) DESC, id DESC LIMIT 1), 0)"
    }

    /// Header of a read at revision `$1` (0 = current): current revision, compacted revision and
    /// the id bound of the read, from one snapshot.
    static let headerCTE = """
        WITH cur AS (SELECT \(currentRevision) AS rev, \(newestID) AS maxid), \
        hdr AS (SELECT cur.rev AS cur, \(compactRevision) AS compact, \
        CASE WHEN $1::int8 > 0 THEN \(idBound("$1::int8")) ELSE cur.maxid END AS bound FROM cur)
        """

    static let header = "SELECT \(currentRevision), \(compactRevision), \(newestID)"

    /// The name predicate for a stored-name range and its parameters, numbered from `first`.
    func predicate(_ range: KeyRange, first: Int, table: String? = nil) -> (sql: String, parameters: [SQLValue], shape: String) {
        let nameExpr = table.map { "\($0).\(self.nameExpr)" } ?? self.nameExpr
        switch range {
        case .single(let name):
            return ("\(table.map { "\($0)." } ?? "")name = $\(first)", [.text(String(decoding: name, as: UTF8.self))], "s")
        case .interval(let start, let end?):
            return (
                "\(nameExpr) >= $\(first) AND \(nameExpr) < $\(first + 1)",
                [.text(String(decoding: start, as: UTF8.self)), .text(String(decoding: end, as: UTF8.self))], "b"
            )
        case .interval(let start, nil):
            return ("\(nameExpr) >= $\(first)", [.text(String(decoding: start, as: UTF8.self))], "u")
        }
    }

    /// Latest version of every key in `range` at `revision` (id bound expression `bound`), live
    /// keys only unless `includeDeleted`, in key order.
    func latestRows(_ predicate: String, bound: String, keysOnly: Bool, includeDeleted: Bool, single: Bool) -> String {
        let liveFilter = includeDeleted ? "true" : "kv.deleted = 0"
        if single {
            return """
                SELECT \(Self.rowColumns(keysOnly: keysOnly)) FROM (SELECT \(Self.innerColumns) FROM kine \
                WHERE \(predicate) AND id <= \(bound) ORDER BY id DESC LIMIT 1) AS kv WHERE \(liveFilter)
                """
        }
        return """
            SELECT \(Self.rowColumns(keysOnly: keysOnly)) FROM (SELECT DISTINCT ON (\(nameExpr)) \(Self.innerColumns) \
            FROM kine WHERE \(predicate) AND id <= \(bound) ORDER BY \(nameExpr), id DESC) AS kv \
            WHERE \(liveFilter) AND kv.name <> 'compact_rev_key' ORDER BY kv.\(nameExpr)
            """
    }

    /// Range read with its header in one statement: `hdr.cur, hdr.compact, hdr.bound, row columns...`,
    /// one row with NULL row columns when nothing matched.
    func range(_ range: KeyRange, revision: Int64, limit: Int64?, keysOnly: Bool) -> SQLStatement {
        let (pred, params, shape) = predicate(range, first: 3)
        let single = shape == "s"
        let rows = latestRows(pred, bound: "hdr.bound", keysOnly: keysOnly, includeDeleted: false, single: single)
        let sql = "\(Self.headerCTE) SELECT hdr.cur, hdr.compact, hdr.bound, r.* FROM hdr LEFT JOIN LATERAL (\(rows) LIMIT $2::int8) AS r ON true"
        return SQLStatement(sql, [.int64(revision), limit.map { .int64($0) } ?? .null] + params, name: "range_\(shape)_\(keysOnly ? "k" : "v")")
    }

    /// The newest row id: what a linearizable read must have seen (the read barrier, `WatchHub.sync`).
    static let newestIDStatement = SQLStatement("SELECT \(newestID)", name: "newest_id")

    /// The read cache's starting point from one snapshot: `cur, maxid`, then the columns of the
    /// latest row of every name up to `maxid`, tombstones included (`KeyValueCache.load`).
    var latestOfAllNames: SQLStatement {
        let rows = latestRows("true", bound: "hdr.maxid", keysOnly: false, includeDeleted: true, single: false)
        return SQLStatement("""
            WITH hdr AS (SELECT \(Self.currentRevision) AS cur, \(Self.newestID) AS maxid) \
            SELECT hdr.cur, hdr.maxid, r.* FROM hdr LEFT JOIN LATERAL (\(rows)) AS r ON true
            """, name: "cache_load")
    }

    /// Number of live keys in `range` among rows up to id `idBound`.
    func count(_ range: KeyRange, idBound: Int64) -> SQLStatement {
        let (pred, params, shape) = predicate(range, first: 2)
        return SQLStatement(countQuery(pred, bound: "$1"), [.int64(idBound)] + params, name: "count_\(shape)")
    }

    /// Live keys matching `predicate` among rows up to id `bound` (an SQL expression).
    private func countQuery(_ predicate: String, bound: String) -> String {
        """
        SELECT COUNT(*) FROM (SELECT DISTINCT ON (\(nameExpr)) name, deleted FROM kine WHERE \(predicate) AND id <= \(bound) \
        ORDER BY \(nameExpr), id DESC) AS kv WHERE kv.deleted = 0 AND kv.name <> 'compact_rev_key'
        """
    }

    /// Count with its header in one statement: `hdr.cur, hdr.compact, count`.
    func countWithHeader(_ range: KeyRange, revision: Int64) -> SQLStatement {
        let (pred, params, shape) = predicate(range, first: 2)
        let sql = "\(Self.headerCTE) SELECT hdr.cur, hdr.compact, (\(countQuery(pred, bound: "hdr.bound"))) FROM hdr"
        return SQLStatement(sql, [.int64(revision)] + params, name: "count_hdr_\(shape)")
    }

    // MARK: Writer

    static let begin = SQLStatement("BEGIN", name: "w_begin")

    /// For this session: PostgreSQL ends it when it idles inside a transaction for longer (SET
    /// takes no parameters; the value is a whole number of milliseconds).
    static func idleInTransactionTimeout(_ timeout: Duration) -> SQLStatement {
        SQLStatement("SET idle_in_transaction_session_timeout = \(max(1, timeout.wholeMilliseconds))", name: nil)
    }
    static let commit = SQLStatement("COMMIT", name: "w_commit")
    static let rollback = SQLStatement("ROLLBACK")
    static let lock = SQLStatement("SELECT pg_advisory_xact_lock($1)", [.int64(lockKey)], name: "w_lock")
    /// Current revision, compacted revision and highest id, in that order.
    static let headerStatement = SQLStatement(header, name: "header")

    /// Latest row (tombstones included) of each named key: one backward probe of
    /// `kine_name_id_index` per name, however many versions a key has.
    func latestOfNames(_ names: [Bytes]) -> SQLStatement {
        let sql = """
            SELECT \(Self.rowColumns()) FROM unnest($1::text[]) AS n(name) CROSS JOIN LATERAL \
            (SELECT \(Self.innerColumns) FROM kine WHERE kine.name = n.name ORDER BY id DESC LIMIT 1) AS kv
            """
        return SQLStatement(sql, [.textArray(names.map { String(decoding: $0, as: UTF8.self) })], name: "w_names")
    }

    /// Live keys of a stored-name range, latest (revision 0) or at a revision.
    func liveRows(_ range: KeyRange, revision: Int64) -> SQLStatement {
        let (pred, params, shape) = predicate(range, first: 2)
        let bound = "(CASE WHEN $1::int8 > 0 THEN \(Self.idBound("$1::int8")) ELSE 9223372036854775807 END)"
        let rows = latestRows(pred, bound: bound, keysOnly: false, includeDeleted: false, single: shape == "s")
        return SQLStatement(rows, [.int64(revision)] + params, name: "w_live_\(shape)")
    }

    /// New rows. `lease` gets the lease's TTL, as Go kine stores it, so Go kine would still expire
    /// the key; `kv_lease` holds the real lease id. `old_value` stays NULL: kine reads the previous
    /// value from the superseded row (`prev_revision`), and copying it into every row doubled the
    /// table and its WAL (cas-64 11-14k → 17-19k writes/s; docs/benchmarks.md).
    static let insertRows = """
        INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, kv_version, kv_revision, kv_lease) \
        SELECT t.i, t.n, t.c::integer, t.d::integer, t.cr, t.pr, LEAST(t.ttl, 2147483647)::integer, t.v, t.ver, NULLIF(t.rev, t.i), NULLIF(t.l, 0) \
        FROM unnest($1::int8[], $2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::bytea[], $8::int8[], $9::int8[], \
        $10::int8[], $11::int8[]) AS t(i, n, c, d, cr, pr, v, ver, rev, l, ttl)
        """

    /// `insertRows` guarded by "the newest id is `$12`", with the sequence moved to `$13` and
    /// `NOTIFY kine` with `$14`, all or nothing; yields whether it wrote. In a transaction after
    /// the lock: `g` reads the table as the lock left it, so a true guard means no row came
    /// after the state the rows were computed from.
    static let guardedInsertRows = """
        WITH g AS (SELECT \(newestID) = $12::int8 AS ok), \
        ins AS (\(insertRows) WHERE (SELECT ok FROM g)) \
        SELECT g.ok, CASE WHEN g.ok THEN setval('kine_id_seq', $13::int8) END, CASE WHEN g.ok THEN pg_notify('kine', $14::text) END FROM g
        """

    /// Tombstones for every live key of a stored-name range, ids `$1 + 1…` in key order, all at
    /// revision `$2`, computed and inserted by PostgreSQL (`WriteRequest.isBulkDelete`).
    func bulkDelete(_ range: KeyRange, maxID: Int64, revision: Int64) -> SQLStatement {
        let (pred, params, shape) = predicate(range, first: 3)
        // The latest row of each name straight from the index scan (already in name order), with
        // the few columns a tombstone needs: no second lookup of every victim by id.
        return SQLStatement("""
            INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, kv_version, kv_revision) \
            SELECT $1::int8 + v.n, v.name, 0, 1, v.created_at, v.id, 0, NULL, 0, NULLIF($2::int8, $1::int8 + v.n) \
            FROM (SELECT row_number() OVER (ORDER BY d.name COLLATE "C") AS n, d.id, d.name, \
            CASE WHEN d.created <> 0 AND d.create_revision = 0 THEN COALESCE(d.kv_revision, d.id) ELSE d.create_revision END AS created_at \
            FROM (SELECT DISTINCT ON (\(nameExpr)) id, name, created, deleted, create_revision, kv_revision FROM kine \
            WHERE \(pred) ORDER BY \(nameExpr), id DESC) AS d WHERE d.deleted = 0 AND d.name <> 'compact_rev_key') AS v
            """, [.int64(maxID), .int64(revision)] + params, name: "w_bulk_delete_\(shape)")
    }

    // MARK: Leases

    /// Leases the batch refers to (`$1`) and, if `$2`, every expired lease: `id, ttl, expired`.
    static func leases(_ ids: [Int64], includeExpired: Bool) -> SQLStatement {
        SQLStatement(
            "SELECT id, ttl, expires_at <= now() FROM kine_leases WHERE id = ANY($1::int8[]) OR ($2::bool AND expires_at <= now())",
            [.int64Array(ids), .bool(includeExpired)], name: "w_leases")
    }

    /// Live keys attached to the leases `$1` or, if `$2`, to any expired lease. The lease ids are
    /// computed once (an InitPlan array), so `kine_kv_lease_index` finds the rows.
    static func leasedKeys(_ ids: [Int64], includeExpired: Bool) -> SQLStatement {
        SQLStatement("""
            SELECT \(rowColumns()) FROM (SELECT DISTINCT name FROM kine WHERE kv_lease = ANY(ARRAY( \
            SELECT id FROM kine_leases WHERE id = ANY($1::int8[]) OR ($2::bool AND expires_at <= now())))) AS n \
            CROSS JOIN LATERAL (SELECT \(innerColumns) FROM kine WHERE kine.name = n.name ORDER BY id DESC LIMIT 1) AS kv \
            WHERE kv.deleted = 0 AND kv.kv_lease IS NOT NULL
            """, [.int64Array(ids), .bool(includeExpired)], name: "w_leased_keys")
    }

    static func deleteLeases(_ ids: [Int64]) -> SQLStatement {
        SQLStatement("DELETE FROM kine_leases WHERE id = ANY($1::int8[])", [.int64Array(ids)], name: "w_delete_leases")
    }

    static func setSequence(_ id: Int64) -> SQLStatement {
        SQLStatement("SELECT setval('kine_id_seq', $1)", [.int64(id)], name: "w_setval")
    }

    static func notify(_ revision: Int64) -> SQLStatement {
        SQLStatement("SELECT pg_notify('kine', $1)", [.text(String(revision))], name: "w_notify")
    }
}
