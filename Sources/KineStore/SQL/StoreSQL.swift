import KineCore
import KineSQL

/// The SQL the store runs, built once per process for the table's `name` column flavour. Every
/// statement kine runs against the kine tables lives in this folder, one file per thing queried
/// (reads, watch, writes, leases, compaction, schema, figures), each with the named type its
/// result decodes into (`StoreResults.swift`); this file holds the fragments they share.
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

    /// Current revision, compacted revision and newest id, from one snapshot (`StoreHeader`).
    static let header = SQLQuery.firstRow(SQLStatement("SELECT \(currentRevision), \(compactRevision), \(newestID)", name: "header")) {
        StoreHeader(row: $0)
    }

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

    /// Rows of `StoreSQL.rowColumns`, decoded.
    static func storedRows(_ statement: SQLStatement) -> SQLQuery<[StoredRow]> {
        SQLQuery(statement) { $0.rows.compactMap { StoredRow($0) } }
    }
}
