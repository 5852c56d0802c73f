public import KineSQL
public import Logging
import Synchronization

/// A pool of libpq connections implementing `SQLClient`.
///
/// Each connection is driven by its own dedicated thread. Jobs (one `pipeline` call each) wait in
/// one shared queue; a worker takes every job waiting (up to `Options.maxBatchSize`) and sends
/// them in one pipelined round trip, one sync point per job, so a failing job never aborts
/// another. Statements with a `name` are prepared once per connection. Parameters and results
/// use PostgreSQL's binary format.
///
/// Statements of one `pipeline` call share one sync point: unless they contain their own
/// BEGIN/COMMIT they run in one implicit transaction, so an error rolls back the earlier
/// statements of the same call, and the statements after it fail with `.pipelineAborted`.
///
/// Broken connections are re-opened with exponential backoff; jobs in flight fail with
/// `.connection`, queued jobs wait for a connection up to `Options.queueTimeout`.
/// Call `shutdown()` before releasing the client.
public final class PostgresClient: SQLClient, Sendable {
    /// Pool tuning.
    public struct Options: Sendable {
        /// Connections (and threads) in the pool. Each `withSession` reserves one while it runs.
        public var poolSize: Int
        /// Most jobs sent in one round trip.
        public var maxBatchSize: Int
        /// How long a queued job waits for a working connection before failing with `.connection`.
        public var queueTimeout: Duration
        /// First delay between reconnect attempts; doubles up to `reconnectBackoffMax`.
        public var reconnectBackoffInitial: Duration
        public var reconnectBackoffMax: Duration
        /// Hears every statement's outcome and the round trip's time (metrics; nil: none).
        public var observer: (any SQLObserver)?

        public init(
            poolSize: Int = 4,
            maxBatchSize: Int = 256,
            queueTimeout: Duration = .seconds(30),
            reconnectBackoffInitial: Duration = .milliseconds(50),
            reconnectBackoffMax: Duration = .seconds(2)
        ) {
            self.poolSize = max(1, poolSize)
            self.maxBatchSize = max(1, maxBatchSize)
            self.queueTimeout = queueTimeout
            self.reconnectBackoffInitial = reconnectBackoffInitial
            self.reconnectBackoffMax = reconnectBackoffMax
        }
    }

    let core: PoolCore
    private let listener: PostgresListener

    /// Starts the pool's threads; connections are opened in the background. Prefer
    /// `connect(configuration:options:logger:timeout:)`, which waits until the server answers.
    public init(configuration: PostgresConfiguration, options: Options = Options(), logger: Logger) {
        core = PoolCore(configuration: configuration, options: options, logger: logger)
        listener = PostgresListener(configuration: configuration, options: options, logger: logger)
        core.start()
    }

    deinit {
        // Safety net if `shutdown()` was not called: stop the threads (they exit on their own).
        _ = core.beginShutdown()
        listener.shutdown()
    }

    /// Starts a pool and waits until the server answers `SELECT 1`, retrying once a second
    /// (Go kine pings up to 300 times, 1 s apart) until `timeout`.
    public static func connect(
        configuration: PostgresConfiguration,
        options: Options = Options(),
        logger: Logger,
        timeout: Duration = .seconds(300)
    ) async throws(SQLError) -> PostgresClient {
        let client = PostgresClient(configuration: configuration, options: options, logger: logger)
        let deadline = ContinuousClock.now + timeout
        var attempt = 0
        while true {
            attempt += 1
            let outcome = await client.core.submit([SQLStatement("SELECT 1")], session: nil, queueTimeout: .seconds(1))
            let error: SQLError
            switch outcome {
            case .success(let results):
                if case .failure(let statementError) = results.first {
                    error = statementError
                } else {
                    return client
                }
            case .failure(let jobError):
                error = jobError
            }
            if ContinuousClock.now >= deadline || error.kind == .cancelled || Task.isCancelled {
                await client.shutdown()
                throw error
            }
            logger.info(
                "waiting for database",
                metadata: .init([.target: "\(configuration)", .error: "\(error.message)"])
            )
            // try?: cancellation ends the wait for the database; the loop checks it.
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// The target the pool currently connects to.
    public var configuration: PostgresConfiguration {
        core.state.withLock { $0.configuration }
    }

    public func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult] {
        try Self.firstError(await core.observedSubmit(statements, session: nil))
    }

    public func abandonablePipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult] {
        try Self.firstError(await core.submit(statements, session: nil, abandonOnCancel: true))
    }

    /// One query whose caller stops waiting when its task is cancelled (`abandonablePipeline`).
    public func probe<Output>(_ query: SQLQuery<Output>) async throws(SQLError) -> Output {
        query.decode(try await abandonablePipeline([query.statement])[0])
    }

    /// Like `pipeline`, but reports every statement's outcome: after a failed statement the
    /// following ones fail with `.pipelineAborted`. Throws only if the whole job failed
    /// (connection, cancellation).
    public func pipelineResults(_ statements: [SQLStatement]) async throws(SQLError) -> [Result<SQLResult, SQLError>] {
        try await core.observedSubmit(statements, session: nil).get()
    }

    public func withSession<T: Sendable>(_ body: (any SQLSession) async throws -> T) async throws -> T {
        let id = try await core.openSession().get()
        let session = PostgresSession(core: core, id: id)
        do {
            let result = try await body(session)
            await core.closeSession(id)
            return result
        } catch {
            await core.closeSession(id)
            throw error
        }
    }

    /// Points the pool at another database at run time (HA fail-over). Idle connections are
    /// closed and re-opened to the new target; busy ones finish their current round trip
    /// first; queued and later jobs go to the new target. Sessions reserved at that moment lose
    /// their connection: their next pipelines fail with `.connection`. Listening connections
    /// re-LISTEN on the new target.
    public func repoint(to configuration: PostgresConfiguration) {
        core.repoint(to: configuration)
        listener.repoint(to: configuration)
    }

    /// Stops every thread and closes every connection (PQfinish). Queued jobs fail with
    /// `.cancelled`; jobs already sent finish first. Returns when all threads have exited.
    public func shutdown() async {
        _ = core.beginShutdown()
        listener.shutdown()
        await core.waitForWorkers()
        await listener.waitForExit()
    }

    /// Notifications (`NOTIFY channel, payload`) on `channel`, as payloads, from a dedicated
    /// listening connection that re-LISTENs after reconnecting. The LISTEN is issued in the
    /// background; use `listen(channel:)` to wait until it is active. Notifications sent while
    /// the listening connection is down are lost. The stream ends at `shutdown()`.
    public func notifications(channel: String) -> AsyncStream<String> {
        listener.subscribe(channel: channel, whenActive: nil)
    }

    /// The backend pid of the listening session while it listens to every subscribed channel
    /// (nil while it connects): a process tells its own listener from other processes' by it.
    public var listenerBackendPID: Int32? { listener.listeningBackendPID }

    /// Like `notifications(channel:)`, but returns once the LISTEN is active on the server.
    public func listen(channel: String) async throws(SQLError) -> AsyncStream<String> {
        try await listener.subscribeWhenActive(channel: channel)
    }

    static func firstError(_ outcome: JobOutcome) throws(SQLError) -> [SQLResult] {
        let outcomes = try outcome.get()
        var results: [SQLResult] = []
        results.reserveCapacity(outcomes.count)
        for item in outcomes { results.append(try item.get()) }
        return results
    }
}

/// A connection reserved by `PostgresClient.withSession`. Valid only inside the body.
public struct PostgresSession: SQLSession {
    let core: PoolCore
    let id: UInt64

    public func pipeline(_ statements: [SQLStatement]) async throws(SQLError) -> [SQLResult] {
        try PostgresClient.firstError(await core.observedSubmit(statements, session: id))
    }

    /// Every statement's outcome; see `PostgresClient.pipelineResults`.
    public func pipelineResults(_ statements: [SQLStatement]) async throws(SQLError) -> [Result<SQLResult, SQLError>] {
        try await core.observedSubmit(statements, session: id).get()
    }

    /// The thread of the connection this session holds (`WorkerExecutor`).
    public var preferredExecutor: (any TaskExecutor)? { core.executor(forSession: id) }
}
