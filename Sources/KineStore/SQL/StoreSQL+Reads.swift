import KineCore
import KineSQL

/// Range and count reads, the read barrier, and the read cache's starting point.
extension StoreSQL {
    /// Header of a read at revision `$1` (0 = current): current revision, compacted revision and
    /// the id bound of the read, from one snapshot (`ReadHeader`).
    static let headerCTE = """
        WITH cur AS (SELECT \(currentRevision) AS rev, \(newestID) AS maxid), \
        hdr AS (SELECT cur.rev AS cur, \(compactRevision) AS compact, \
        CASE WHEN $1::int8 > 0 THEN \(idBound("$1::int8")) ELSE cur.maxid END AS bound FROM cur)
        """

    /// Range read with its header in one statement: `hdr.cur, hdr.compact, hdr.bound, row columns...`,
    /// one row with NULL row columns when nothing matched.
    func range(_ range: KeyRange, revision: Int64, limit: Int64?, keysOnly: Bool) -> SQLQuery<RangeRows> {
        let (pred, params, shape) = predicate(range, first: 3)
        let single = shape == "s"
        let rows = latestRows(pred, bound: "hdr.bound", keysOnly: keysOnly, includeDeleted: false, single: single)
        let sql =
            "\(Self.headerCTE) SELECT hdr.cur, hdr.compact, hdr.bound, r.* FROM hdr LEFT JOIN LATERAL (\(rows) LIMIT $2::int8) AS r ON true"
        let statement = SQLStatement(
            sql, [.int64(revision), limit.map { .int64($0) } ?? .null] + params, name: "range_\(shape)_\(keysOnly ? "k" : "v")")
        return SQLQuery(statement) { result in
            RangeRows(header: ReadHeader(row: result.rows.first), rows: result.rows.compactMap { StoredRow($0, offset: 3) })
        }
    }

    /// The read cache's starting point from one snapshot: the position, then the latest row of
    /// every name up to it, tombstones included (`KeyValueCache.load`).
    var latestOfAllNames: SQLQuery<CacheStart> {
        let rows = latestRows("true", bound: "hdr.maxid", keysOnly: false, includeDeleted: true, single: false)
        let statement = SQLStatement(
            """
            WITH hdr AS (SELECT \(Self.currentRevision) AS cur, \(Self.newestID) AS maxid) \
            SELECT hdr.cur, hdr.maxid, r.* FROM hdr LEFT JOIN LATERAL (\(rows)) AS r ON true
            """, name: "cache_load")
        return SQLQuery(statement) { result in
            let first = result.rows.first
            return CacheStart(
                currentRevision: first?.int64(0) ?? 0, newestID: first?.int64(1) ?? 0,
                rows: result.rows.compactMap { StoredRow($0, offset: 2) })
        }
    }

    /// Number of live keys in `range` among rows up to id `idBound`.
    func count(_ range: KeyRange, idBound: Int64) -> SQLQuery<Int64> {
        let (pred, params, shape) = predicate(range, first: 2)
        return .scalar(SQLStatement(countQuery(pred, bound: "$1"), [.int64(idBound)] + params, name: "count_\(shape)"))
    }

    /// Live keys matching `predicate` among rows up to id `bound` (an SQL expression).
    private func countQuery(_ predicate: String, bound: String) -> String {
        """
        SELECT COUNT(*) FROM (SELECT DISTINCT ON (\(nameExpr)) name, deleted FROM kine WHERE \(predicate) AND id <= \(bound) \
        ORDER BY \(nameExpr), id DESC) AS kv WHERE kv.deleted = 0 AND kv.name <> 'compact_rev_key'
        """
    }

    /// Count with its header in one statement: `hdr.cur, hdr.compact, count`.
    func countWithHeader(_ range: KeyRange, revision: Int64) -> SQLQuery<RangeCount> {
        let (pred, params, shape) = predicate(range, first: 2)
        let sql = "\(Self.headerCTE) SELECT hdr.cur, hdr.compact, (\(countQuery(pred, bound: "hdr.bound"))) FROM hdr"
        return .firstRow(SQLStatement(sql, [.int64(revision)] + params, name: "count_hdr_\(shape)")) { row in
            RangeCount(header: ReadHeader(row: row), count: row?.int64(2) ?? 0)
        }
    }
}
