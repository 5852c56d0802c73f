import KineSQL
import Synchronization

/// Reads the table's newest row id for linearizable reads, one query for many callers.
///
/// Each caller gets the result of a query that started after it called (so every write
/// acknowledged before the call is covered, etcd's ReadIndex guarantee). The first caller runs a
/// query itself; callers arriving while a query runs share the next one, so under load the
/// database sees one tiny query per round trip, not one per read.
final class ReadBarrier: Sendable {
    private typealias Waiter = CheckedContinuation<Result<Int64, SQLError>, Never>

    private struct State: Sendable {
        var running = false
        var waiting: [Waiter] = []
    }

    private let state = Mutex(State())
    private let query: @Sendable () async throws(SQLError) -> Int64

    init(query: @escaping @Sendable () async throws(SQLError) -> Int64) {
        self.query = query
    }

    /// The newest row id, read by a query that started after this call.
    func newestID() async throws(SQLError) -> Int64 {
        let lead = state.withLock { state in
            if state.running { return false }
            state.running = true
            return true
        }
        if lead {
            let result = await run()
            handOver()
            return try result.get()
        }
        let result = await withCheckedContinuation { (waiter: Waiter) in
            let leadNow = state.withLock { state in
                if state.running {
                    state.waiting.append(waiter)
                    return false
                }
                state.running = true
                return true
            }
            if leadNow {
                Task {
                    waiter.resume(returning: await self.run())
                    self.handOver()
                }
            }
        }
        return try result.get()
    }

    private func run() async -> Result<Int64, SQLError> {
        do {
            return .success(try await query())
        } catch {
            return .failure(error)
        }
    }

    /// After a query: serve whoever came meanwhile with a new query, or stop running.
    private func handOver() {
        let more = state.withLock { state in
            if state.waiting.isEmpty { state.running = false }
            return !state.waiting.isEmpty
        }
        if more { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let batch: [Waiter] = state.withLock { state in
                defer { state.waiting = [] }
                if state.waiting.isEmpty { state.running = false }
                return state.waiting
            }
            if batch.isEmpty { return }
            let result = await run()
            for waiter in batch { waiter.resume(returning: result) }
        }
    }
}
