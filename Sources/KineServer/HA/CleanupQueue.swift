/// Work a component hands off without waiting for it (closing a store or a connection that may
/// hang on a dead peer), run by the task that owns the queue: `run()` executes every job as a
/// child task and returns, once `finish()` was called, after the last job has ended. Nothing
/// handed here outlives its owner.
final class CleanupQueue: Sendable {
    typealias Job = @Sendable () async -> Void
    private let jobs: AsyncStream<Job>
    private let continuation: AsyncStream<Job>.Continuation

    init() {
        (jobs, continuation) = AsyncStream.makeStream(of: Job.self)
    }

    /// Queues `job`; after `finish()` it runs at once in the caller's task instead (never dropped).
    func submit(_ job: @escaping Job) async {
        if case .terminated = continuation.yield(job) { await job() }
    }

    /// No more jobs: `run()` returns once the queued ones have ended.
    func finish() {
        continuation.finish()
    }

    func run() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs { group.addTask { await job() } }
        }
    }
}
