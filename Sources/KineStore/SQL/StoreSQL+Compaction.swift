import KineSQL

/// Physical compaction (`Compactor`).
extension StoreSQL {
    /// Deletes, for the rows of revisions `(low, high]`, every row they supersede and every
    /// tombstone (Go kine's compaction SQL with a lower bound); answers how many rows went. The
    /// newest row always stays, even a tombstone: `MAX(id)` is the current revision and must
    /// never go backwards.
    static func compactBatch(low: Int64, high: Int64) -> SQLQuery<Int> {
        .affectedRows(
            SQLStatement(
                """
                WITH b AS (SELECT \(idBound("$1::int8")) AS low, \(idBound("$2::int8")) AS high, \
                (SELECT MAX(id) FROM kine) AS newest) \
                DELETE FROM kine AS kv USING (SELECT kp.prev_revision AS id FROM kine AS kp, b WHERE kp.name != 'compact_rev_key' \
                AND kp.prev_revision != 0 AND kp.id > b.low AND kp.id <= b.high UNION SELECT kd.id AS id FROM kine AS kd, b \
                WHERE kd.deleted != 0 AND kd.id > b.low AND kd.id <= b.high AND kd.id < b.newest) AS ks WHERE kv.id = ks.id
                """, [.int64(low), .int64(high)], name: "c_delete"))
    }

    /// Moves the compaction mark (the `prev_revision` of `compact_rev_key`) from `low` to `high`;
    /// answers false when the mark was not at `low` (another process moved it).
    static func moveCompactMark(from low: Int64, to high: Int64) -> SQLQuery<Bool> {
        SQLQuery(
            SQLStatement(
                "UPDATE kine SET prev_revision = $2 WHERE name = 'compact_rev_key' AND prev_revision = $1",
                [.int64(low), .int64(high)], name: "c_mark")
        ) { $0.affectedRows > 0 }
    }
}
