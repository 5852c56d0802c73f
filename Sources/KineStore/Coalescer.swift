import KineSQL
import KineSync
import Synchronization

/// Runs concurrent requests of one kind as rounds: each round takes every request waiting, runs
/// them with one database round trip, and answers them all. A request always waits for a round
/// that starts after it arrived (what the read barrier needs), and under load the database sees
/// one statement per round instead of one per request.
///
/// The first caller runs a round itself (no task hop at low load); callers arriving meanwhile are
/// served by the next rounds, which `run()` drives in its owner's task until nobody waits.
final class Coalescer<Request: Sendable, Response: Sendable>: Sendable {
    private typealias Waiter = Completion<Result<Response, SQLError>>

    private struct State: Sendable {
        var running = false
        var waiting: [(request: Request, waiter: Waiter)] = []
    }

    private let state = Mutex(State())
    /// Answers a round's requests, one response per request in order.
    private let round: @Sendable ([Request]) async throws(SQLError) -> [Response]
    /// Tells `run()` that it owns the rounds now (a caller handed them over).
    private let handOffs: AsyncStream<Void>
    private let handOff: AsyncStream<Void>.Continuation

    init(round: @escaping @Sendable ([Request]) async throws(SQLError) -> [Response]) {
        self.round = round
        (handOffs, handOff) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
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
            let startRounds = state.withLock { state in
                state.waiting.append((request, waiter))
                if state.running { return false }
                state.running = true
                return true
            }
            if startRounds { signal() }
        }
        return try result.get()
    }

    /// Serves the callers handed over by `submit`, until `finish()` or cancellation; run by the
    /// task that owns the component (the store, the watch hub). Callers still waiting then fail.
    func run() async {
        for await _ in handOffs { await drain() }
        handOff.finish()
        failWaiting()
    }

    /// Ends `run()`; later callers are still served by rounds they run themselves or fail.
    func finish() {
        handOff.finish()
    }

    private func run(_ requests: [Request]) async -> [Result<Response, SQLError>] {
        do {
            let responses = try await round(requests)
            return responses.map { .success($0) }
        } catch {
            return requests.map { _ in .failure(error) }
        }
    }

    /// After a round: hand whoever came meanwhile to `run()`, or stop running.
    private func handOver() {
        let more = state.withLock { state in
            if state.waiting.isEmpty { state.running = false }
            return !state.waiting.isEmpty
        }
        if more { signal() }
    }

    private func signal() {
        if case .terminated = handOff.yield() { failWaiting() }
    }

    private func failWaiting() {
        let waiting = state.withLock { state in
            defer {
                state.waiting = []
                state.running = false
            }
            return state.waiting
        }
        let stopped = SQLError(kind: .cancelled, message: "stopped")
        for item in waiting { item.waiter.complete(.failure(stopped)) }
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
