import KineCore
import KineSQL
import Logging

/// Physical compaction in batches of revisions, each its own short transaction, so writers are
/// never held up for long. The compacted revision is recorded where Go kine keeps it: the
/// `prev_revision` of the `compact_rev_key` row, advanced with every batch.
struct Compactor: Sendable {
    let client: any SQLClient
    let batchSize: Int64
    let logger: Logger

    /// Deletes, for the rows of revisions `(low, high]`, every row they supersede and every tombstone,
    /// then moves the mark from `low` to `high` (Go kine's compaction SQL with a lower bound).
    /// The newest row always stays, even a tombstone: `MAX(id)` is the current revision and must
    /// never go backwards.
    static let deleteBatch = """
        WITH b AS (SELECT \(StoreSQL.idBound("$1::int8")) AS low, \(StoreSQL.idBound("$2::int8")) AS high, \
        (SELECT MAX(id) FROM kine) AS newest) \
        DELETE FROM kine AS kv USING (SELECT kp.prev_revision AS id FROM kine AS kp, b WHERE kp.name != 'compact_rev_key' \
        AND kp.prev_revision != 0 AND kp.id > b.low AND kp.id <= b.high UNION SELECT kd.id AS id FROM kine AS kd, b \
        WHERE kd.deleted != 0 AND kd.id > b.low AND kd.id <= b.high AND kd.id < b.newest) AS ks WHERE kv.id = ks.id
        """
    static let moveMark = "UPDATE kine SET prev_revision = $2 WHERE name = 'compact_rev_key' AND prev_revision = $1"

    struct Outcome: Sendable, Equatable {
        var deletedRows: Int
        /// False when another process moved the mark first and this one stopped.
        var completed: Bool
    }

    /// Compacts from `from` (the current mark) up to `target`. Stops early, without error, if
    /// another process moved the mark meanwhile.
    func compact(from: Int64, to target: Int64) async throws(SQLError) -> Outcome {
        var low = from
        var deleted = 0
        let started = ContinuousClock.now
        while low < target {
            let high = min(low + batchSize, target)
            let results = try await client.withSessionPipeline([
                StoreSQL.begin,
                SQLStatement(Self.deleteBatch, [.int64(low), .int64(high)], name: "c_delete"),
                SQLStatement(Self.moveMark, [.int64(low), .int64(high)], name: "c_mark"),
                StoreSQL.commit,
            ])
            deleted += results[1].affectedRows
            if results[2].affectedRows == 0 {
                logger.info("compaction mark moved by another process; stopping", metadata: ["kine.compact.revision": "\(low)"])
                return Outcome(deletedRows: deleted, completed: false)
            }
            low = high
        }
        logger.info("compacted", metadata: [
            "kine.compact.from": "\(from)", "kine.compact.to": "\(target)", "kine.compact.deletedRows": "\(deleted)",
            "kine.compact.duration": "\(ContinuousClock.now - started)",
        ])
        return Outcome(deletedRows: deleted, completed: true)
    }
}
