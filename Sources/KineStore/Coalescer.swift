import KineSQL
import KineSync
import Synchronization

/// Runs concurrent requests of one kind as rounds: each round takes every request waiting, runs
/// them with one database round trip, and answers them all. A request always waits for a round
/// that starts after it arrived (what the read barrier needs), and under load the database sees
/// one statement per round instead of one per request.
///
/// The first caller runs a round itself (no task hop at low load); callers arriving meanwhile are
/// served by the next round, run by a task that keeps going until nobody waits.
final class Coalescer<Request: Sendable, Response: Sendable>: Sendable {
    private typealias Waiter = Completion<Result<Response, SQLError>>

    private struct State: Sendable {
        var running = false
        var waiting: [(request: Request, waiter: Waiter)] = []
    }

    private let state = Mutex(State())
    /// Answers a round's requests, one response per request in order.
    private let round: @Sendable ([Request]) async throws(SQLError) -> [Response]

    init(round: @escaping @Sendable ([Request]) async throws(SQLError) -> [Response]) {
        self.round = round
    }

    func submit(_ request: Request) async throws(SQLError) -> Response {
        let lead = state.withLock { state in
            if state.running { return false }
            state.running = true
            return true
        }
        if lead {
            let result = await run([request])[0]
            handOver()
            return try result.get()
        }
        let result = await Waiter.wait { waiter in
            let leadNow = state.withLock { state in
                if state.running {
                    state.waiting.append((request, waiter))
                    return false
                }
                state.running = true
                return true
            }
            if leadNow {
                Task {
                    waiter.complete(await self.run([request])[0])
                    self.handOver()
                }
            }
        }
        return try result.get()
    }

    private func run(_ requests: [Request]) async -> [Result<Response, SQLError>] {
        do {
            let responses = try await round(requests)
            return responses.map { .success($0) }
        } catch {
            return requests.map { _ in .failure(error) }
        }
    }

    /// After a round: serve whoever came meanwhile, or stop running.
    private func handOver() {
        let more = state.withLock { state in
            if state.waiting.isEmpty { state.running = false }
            return !state.waiting.isEmpty
        }
        if more { Task { await self.drain() } }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state in
                defer { state.waiting = [] }
                if state.waiting.isEmpty { state.running = false }
                return state.waiting
            }
            if batch.isEmpty { return }
            let results = await run(batch.map(\.request))
            for (item, result) in zip(batch, results) { item.waiter.complete(result) }
        }
    }
}
