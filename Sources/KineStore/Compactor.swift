import KineCore
import KineSQL
import Logging

/// Physical compaction in batches of revisions, each its own short transaction, so writers are
/// never held up for long. The compacted revision is recorded where Go kine keeps it: the
/// `prev_revision` of the `compact_rev_key` row, advanced with every batch (the SQL is in
/// `StoreSQL+Compaction.swift`).
struct Compactor: Sendable {
    let client: any SQLClient
    let batchSize: Int64
    let logger: Logger

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
            var pipeline = SQLPipeline([StoreSQL.begin])
            let deletedRows = pipeline.add(StoreSQL.compactBatch(low: low, high: high))
            let moved = pipeline.add(StoreSQL.moveCompactMark(from: low, to: high))
            pipeline.add(StoreSQL.commit)
            let results = try await client.withSessionPipeline(pipeline)
            deleted += results[deletedRows]
            if !results[moved] {
                logger.info("compaction mark moved by another process; stopping", metadata: ["kine.compact.revision": "\(low)"])
                return Outcome(deletedRows: deleted, completed: false)
            }
            low = high
        }
        logger.info(
            "compacted",
            metadata: [
                "kine.compact.from": "\(from)", "kine.compact.to": "\(target)", "kine.compact.deletedRows": "\(deleted)",
                "kine.compact.duration": "\(ContinuousClock.now - started)",
            ])
        return Outcome(deletedRows: deleted, completed: true)
    }
}
