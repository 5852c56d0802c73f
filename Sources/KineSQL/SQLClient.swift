/// Something that runs statements as one pipeline: a client (any pooled connection) or a
/// session (one reserved connection). `run` on either reads results by slot (`SQLPipeline`).
public protocol SQLPipelineRunner: Sendable {
    func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult]
}

/// What the store needs from a database: run statements, and hold a session for a transaction.
public protocol SQLClient: SQLPipelineRunner {
    /// Runs the statements as one pipeline on some pooled connection, one round trip, and returns
    /// one result per statement in order. The statements of one call share one implicit
    /// transaction (one pipeline sync) unless they contain BEGIN/COMMIT themselves: if one fails,
    /// the earlier ones are rolled back and the later ones fail as `.pipelineAborted`. Under READ
    /// COMMITTED each statement still takes its own snapshot. Fails with the first error.
    func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult]

    /// Like `pipeline`, but a cancelled caller stops waiting even for statements already sent
    /// (they finish on their connection and their results are dropped): for callers that race
    /// a deadline, such as a metrics scrape or a probe.
    func abandonablePipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult]

    /// Runs `body` with a connection reserved for it, so a transaction may span several
    /// pipelines. If `body` throws while a transaction is open, it is rolled back.
    func withSession<T: Sendable>(
        _ body: (any SQLSession) async throws -> T
    ) async throws -> T
}

/// A connection reserved by `SQLClient.withSession`.
public protocol SQLSession: SQLPipelineRunner {
    func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult]

    /// Where a task that mostly talks to this session runs best (the connection's own thread),
    /// if the implementation has such a place.
    var preferredExecutor: (any TaskExecutor)? { get }
}

extension SQLSession {
    public var preferredExecutor: (any TaskExecutor)? { nil }
}

extension SQLClient {
    /// Default: an implementation whose waits always end with their statements.
    public func abandonablePipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult] {
        try await pipeline(statements)
    }

    /// Convenience: one statement.
    public func query(_ sql: String, _ parameters: [SQLValue] = [], name: String? = nil) async throws(SQLError) -> SQLResult {
        let results = try await pipeline([SQLStatement(sql, parameters, name: name)])
        return results[0]
    }
}
