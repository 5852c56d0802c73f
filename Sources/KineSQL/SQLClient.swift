import Synchronization

/// What the store needs from a database: run statements, and hold a session for a transaction.
public protocol SQLClient: Sendable {
    /// Runs the statements as one pipeline on some pooled connection, one round trip, and returns
    /// one result per statement in order. The statements of one call share one implicit
    /// transaction (one pipeline sync) unless they contain BEGIN/COMMIT themselves: if one fails,
    /// the earlier ones are rolled back and the later ones fail as `.pipelineAborted`. Under READ
    /// COMMITTED each statement still takes its own snapshot. Fails with the first error.
    func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult]

    /// Runs `body` with a connection reserved for it, so a transaction may span several
    /// pipelines. If `body` throws while a transaction is open, it is rolled back.
    func withSession<T: Sendable>(
        _ body: (any SQLSession) async throws -> T
    ) async throws -> T
}

/// A connection reserved by `SQLClient.withSession`.
public protocol SQLSession: Sendable {
    func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult]

    /// Queues `statements` behind everything this session queued before and returns at once:
    /// pipelines of one session run in the order they were sent, so a caller can prepare its
    /// next pipeline while the previous one is still on the wire. Results as with `pipeline`.
    func send(_ statements: [SQLStatement]) -> PendingPipeline
}

/// The results of a pipeline sent with `SQLSession.send`, awaited later.
public final class PendingPipeline: Sendable {
    private enum State: Sendable {
        case waiting(CheckedContinuation<Result<[SQLResult], SQLError>, Never>?)
        case done(Result<[SQLResult], SQLError>)
    }

    private let state = Mutex(State.waiting(nil))

    public init() {}

    /// Called once by the session when the pipeline finished.
    public func fulfil(_ result: Result<[SQLResult], SQLError>) {
        let waiter = state.withLock { state -> CheckedContinuation<Result<[SQLResult], SQLError>, Never>? in
            guard case .waiting(let waiter) = state else { return nil }
            state = .done(result)
            return waiter
        }
        waiter?.resume(returning: result)
    }

    /// Waits for the pipeline (one awaiter at most).
    public func result() async throws(SQLError) -> [SQLResult] {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<[SQLResult], SQLError>, Never>) in
            let ready = state.withLock { state -> Result<[SQLResult], SQLError>? in
                switch state {
                case .done(let result): return result
                case .waiting: state = .waiting(continuation)
                }
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }
}

extension SQLClient {
    /// Convenience: one statement.
    public func query(_ sql: String, _ parameters: [SQLValue] = [], name: String? = nil) async throws(SQLError) -> SQLResult {
        let results = try await pipeline([SQLStatement(sql, parameters, name: name)])
        return results[0]
    }
}
