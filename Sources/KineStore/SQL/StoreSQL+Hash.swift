import KineCore
import KineSQL

/// What Hash, HashKV and Snapshot read: the rows up to a revision in id order, and what a compaction at
/// that revision would keep.
extension StoreSQL {
    /// Rows with id above `afterID` and revision at most `revision`, oldest first.
    static func history(afterID: Int64, throughRevision revision: Int64, limit: Int64) -> SQLQuery<[StoredRow]> {
        storedRows(
            SQLStatement(
                """
                SELECT \(rowColumns()) FROM kine AS kv WHERE kv.id > $1 AND kv.id <= \(idBound("$2::int8")) ORDER BY kv.id LIMIT $3
                """, [.int64(afterID), .int64(revision), .int64(limit)], name: "hash_history"))
    }

    /// The keys live at `revision`: the row id of each one's newest row at or below it, and
    /// whether that row is at or below `compactRevision` (what a compaction at `revision` keeps).
    func liveAt(_ revision: Int64, compactRevision: Int64) -> SQLQuery<LiveKeys> {
        SQLQuery(
            SQLStatement(
                """
                SELECT k.id, k.rev <= $2 FROM \
                (SELECT DISTINCT ON (\(nameExpr)) id, deleted, COALESCE(kv_revision, id) AS rev, name FROM kine \
                WHERE id <= \(Self.idBound("$1::int8")) ORDER BY \(nameExpr), id DESC) AS k \
                WHERE k.deleted = 0 AND k.name <> 'compact_rev_key'
                """, [.int64(revision), .int64(compactRevision)], name: "hash_live")
        ) { result in
            LiveKeys(count: Int64(result.rows.count), keptBelowCompaction: Set(result.rows.filter { $0.bool(1) }.map { $0.int64(0) }))
        }
    }

    /// One view of the whole database for a snapshot.
    static let beginSnapshot = SQLStatement("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", name: "snap_begin")

    /// Every lease, by id: `id, ttl` (the Hash of the whole store, a snapshot's lease bucket).
    static let allLeases = SQLQuery(SQLStatement("SELECT id, ttl FROM kine_leases ORDER BY id", name: "hash_leases")) { result in
        result.rows.map { (id: $0.int64(0), ttl: $0.int64(1)) }
    }
}

/// Keys live at a revision (`StoreSQL.liveAt`).
struct LiveKeys: Sendable {
    var count: Int64
    var keptBelowCompaction: Set<Int64>
}
