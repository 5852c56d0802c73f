import Dispatch
import Foundation
import KineSQL
import KineSync
import Logging
import Synchronization

/// The pool behind `PostgresClient`: shared state under one lock, and one dedicated thread per
/// connection. libpq calls happen only on those threads, never on the Swift cooperative pool
/// or a NIO event loop.
final class PoolCore: Sendable {
    let state: Mutex<PoolState>
    let options: PostgresClient.Options
    let logger: Logger
    /// One counting semaphore per worker. A worker only blocks on its own semaphore after
    /// registering as waiting under the lock, so no wake-up is lost; extra signals only cause a
    /// spurious loop iteration.
    private let wakers: [DispatchSemaphore]
    /// One per worker: runs Swift tasks that prefer that worker's thread.
    let executors: [WorkerExecutor]
    private let exited = DispatchGroup()

    init(configuration: PostgresConfiguration, options: PostgresClient.Options, logger: Logger) {
        self.state = Mutex(PoolState(configuration: configuration))
        self.options = options
        self.logger = logger
        let wakers = (0..<max(1, options.poolSize)).map { _ in DispatchSemaphore(value: 0) }
        self.wakers = wakers
        self.executors = wakers.map { WorkerExecutor(inbox: WorkerInbox(), waker: $0) }
    }

    func start() {
        for index in wakers.indices {
            exited.enter()
            let thread = Thread { [self] in
                self.workerMain(index)
                self.exited.leave()
            }
            thread.name = "kine-pg-\(index)"
            thread.start()
        }
    }

    func wake(_ worker: Int?) {
        if let worker { wakers[worker].signal() }
    }

    // MARK: - Submitting work

    /// Runs `statements` on a pooled connection (or the session's). On cancellation a job still
    /// queued is removed; with `abandonOnCancel` the caller also stops waiting for a job a worker
    /// already runs: the job finishes on its thread and its outcome is dropped (a probe must not
    /// wait for a call on a silently dead connection, which ignores cancellation until TCP gives up).
    func submit(
        _ statements: [SQLStatement], session: UInt64?, queueTimeout: Duration? = nil, abandonOnCancel: Bool = false
    ) async -> JobOutcome {
        let timeout = queueTimeout ?? options.queueTimeout
        let (id, deadline) = state.withLock { ($0.makeID(), ContinuousClock.now + timeout) }
        let abandonable = abandonOnCancel ? AbandonableWait() : nil
        return await withTaskCancellationHandler {
            await Completion<JobOutcome>.wait { completion in
                abandonable?.register(completion)
                let job = PipelineJob(id: id, statements: statements, deadline: deadline, completion: completion)
                let (worker, rejected) = state.withLock { state in
                    if let session {
                        state.enqueue(.pipeline(job), session: session)
                    } else {
                        state.enqueue(.pipeline(job))
                    }
                }
                if rejected {
                    let message = session == nil ? "client is shut down" : "session is closed"
                    job.completion.complete(.failure(SQLError(kind: .cancelled, message: message)))
                }
                wake(worker)
                if Task.isCancelled { cancelQueued(id: id) }
            }
        } onCancel: {
            cancelQueued(id: id)
            abandonable?.abandon()
        }
    }

    /// The executor of the worker a session runs on.
    func executor(forSession id: UInt64) -> WorkerExecutor? {
        state.withLock { $0.sessions[id]?.worker }.map { executors[$0] }
    }

    /// Cancellation: a job still in the shared queue is removed and fails with `.cancelled`; a
    /// job already taken by a worker runs to completion (its effects are reported).
    private func cancelQueued(id: UInt64) {
        let removed = state.withLock { $0.takeQueued(id: id) }
        removed?.fail(SQLError(kind: .cancelled, message: "cancelled while waiting for a connection"))
    }

    func openSession() async -> Result<UInt64, SQLError> {
        let (id, deadline) = state.withLock { ($0.makeID(), ContinuousClock.now + options.queueTimeout) }
        return await withTaskCancellationHandler {
            await Completion<Result<UInt64, SQLError>>.wait { completion in
                let job = SessionOpenJob(id: id, deadline: deadline, completion: completion)
                let (worker, rejected) = state.withLock { $0.enqueue(.openSession(job)) }
                if rejected { job.completion.complete(.failure(SQLError(kind: .cancelled, message: "client is shut down"))) }
                wake(worker)
                if Task.isCancelled { cancelQueued(id: id) }
            }
        } onCancel: {
            cancelQueued(id: id)
        }
    }

    func closeSession(_ id: UInt64) async {
        await Completion<Void>.wait { completion in
            let (worker, rejected) = state.withLock { $0.enqueue(.close(completion), session: id) }
            if rejected { completion.complete(()) }
            wake(worker)
        }
    }

    // MARK: - Control

    func repoint(to configuration: PostgresConfiguration) {
        let workers: [Int] = state.withLock { state in
            state.configuration = configuration
            state.generation += 1
            let idle = state.idleWorkers
            state.idleWorkers.removeAll()
            var waiting: [Int] = []
            for (id, session) in state.sessions where session.waiting {
                state.sessions[id]?.waiting = false
                waiting.append(session.worker)
            }
            return idle + waiting
        }
        logger.info("re-pointing pool", metadata: .init([.target: "\(configuration)"]))
        for worker in workers { wake(worker) }
    }

    func beginShutdown() -> [PoolRequest] {
        let (pending, sessionPending): ([PoolRequest], [SessionRequest]) = state.withLock { state in
            guard !state.isShutdown else { return ([], []) }
            state.isShutdown = true
            defer {
                state.queue.removeAll()
                for id in state.sessions.keys { state.sessions[id]?.queue.removeAll() }
            }
            return (state.queue, state.sessions.values.flatMap(\.queue))
        }
        let error = SQLError(kind: .cancelled, message: "client is shut down")
        for request in pending { request.fail(error) }
        for request in sessionPending { request.fail(error) }
        for waker in wakers { waker.signal() }
        return pending
    }

    func waitForWorkers() async {
        await Completion<Void>.wait { done in
            exited.notify(queue: .global()) { done.complete() }
        }
    }

    // MARK: - Worker thread

    private func workerMain(_ index: Int) {
        var logger = self.logger
        logger[metadataKey: PostgresMetadataKey.connection.rawValue] = "\(index)"
        var connection: PGConnection?
        var backoff = options.reconnectBackoffInitial
        var failing = false
        defer {
            connection?.close()
            executors[index].runQueued()
        }

        while true {
            executors[index].runQueued()
            let (generation, configuration, shutdown, session) = state.withLock {
                ($0.generation, $0.configuration, $0.isShutdown, $0.workerSession[index])
            }
            if shutdown { return }

            if session == nil {
                // Outside a session the worker keeps one healthy connection to the current target.
                if let current = connection, current.generation != generation || !current.checkAlive() {
                    current.close()
                    connection = nil
                }
                if connection == nil {
                    switch PGConnection.open(configuration, generation: generation, pipelined: true, logger: logger) {
                    case .success(let opened):
                        connection = opened
                        backoff = options.reconnectBackoffInitial
                        let metadata = Logger.Metadata([.target: "\(configuration)", .backendPID: "\(opened.backendPID)"])
                        if failing { logger.info("reconnected", metadata: metadata) } else { logger.debug("connected", metadata: metadata) }
                        failing = false
                    case .failure(let error):
                        let metadata = Logger.Metadata([
                            .target: "\(configuration)", .error: "\(error.message)", .backoff: "\(backoff.milliseconds)",
                        ])
                        // Once per outage at info, then at debug while it lasts.
                        if failing {
                            logger.debug("connect failed", metadata: metadata)
                        } else {
                            logger.info("connect failed", metadata: metadata)
                        }
                        failing = true
                        let expired = state.withLock { $0.takeExpired(now: .now) }
                        for request in expired {
                            request.fail(SQLError(kind: .connection, message: "no connection to \(configuration): \(error.message)"))
                        }
                        _ = wakers[index].wait(timeout: .now() + .milliseconds(Int(backoff.milliseconds)))
                        backoff = min(backoff * 2, options.reconnectBackoffMax)
                        continue
                    }
                }
            } else if let current = connection, current.generation != generation {
                // Re-pointed while reserved: the session's connection goes to the old target.
                current.close()
                connection = nil
            }

            let connectionGeneration = connection?.generation
            let action = state.withLock {
                $0.nextAction(worker: index, connectionGeneration: connectionGeneration, maxBatch: options.maxBatchSize)
            }
            switch action {
            case .exit:
                return
            case .refresh:
                continue
            case .wait:
                wakers[index].wait()
            case .openSession(let job, let id):
                job.completion.complete(.success(id))
            case .run(let jobs):
                if !run(jobs, on: &connection, logger: logger) { continue }
                // A pipeline must never leave a transaction open on a shared connection.
                if let current = connection, current.transactionState != .idle {
                    let cleaned = current.run([[SQLStatement("ROLLBACK")]]) { _, _ in }
                    if !cleaned || current.transactionState != .idle {
                        current.close()
                        connection = nil
                    }
                }
            case .runSession(let jobs, _):
                guard connection != nil else {
                    for job in jobs {
                        job.completion.complete(.failure(SQLError(kind: .connection, message: "session connection lost")))
                    }
                    continue
                }
                _ = run(jobs, on: &connection, logger: logger)
            case .closeSession(let completion, let id):
                if let current = connection, current.transactionState != .idle {
                    logger.debug("rolling back session", metadata: .init([.session: "\(id)"]))
                    let cleaned = current.run([[SQLStatement("ROLLBACK")]]) { _, _ in }
                    if !cleaned || current.transactionState != .idle {
                        current.close()
                        connection = nil
                    }
                }
                let orphans = state.withLock { $0.endSession(id) }
                let closed = SQLError(kind: .cancelled, message: "session closed")
                for request in orphans { request.fail(closed) }
                completion.complete(())
            }
        }
    }

    /// Runs a batch; false if the connection broke (it is then dropped).
    private func run(_ jobs: [PipelineJob], on connection: inout PGConnection?, logger: Logger) -> Bool {
        guard let current = connection else {
            for job in jobs { job.completion.complete(.failure(SQLError(kind: .connection, message: "no connection"))) }
            return false
        }
        if logger.logLevel <= .trace {
            logger.trace(
                "pipeline", metadata: .init([.jobs: "\(jobs.count)", .statements: "\(jobs.reduce(0) { $0 + $1.statements.count })"]))
        }
        let healthy = current.run(jobs.map(\.statements)) { index, outcome in
            jobs[index].completion.complete(outcome)
        }
        if !healthy { connection = nil }
        return healthy
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

/// The wait of an `abandonOnCancel` submission: cancellation completes it as `.cancelled`
/// whether or not a worker has taken the job (completing is idempotent, so the worker's later
/// outcome is ignored).
final class AbandonableWait: Sendable {
    private let slot = Mutex<(completion: Completion<JobOutcome>?, abandoned: Bool)>((nil, false))

    func register(_ completion: Completion<JobOutcome>) {
        let abandoned = slot.withLock { slot in
            slot.completion = completion
            return slot.abandoned
        }
        if abandoned { completion.complete(.failure(Self.abandoned)) }
    }

    func abandon() {
        let completion = slot.withLock { slot in
            slot.abandoned = true
            return slot.completion
        }
        completion?.complete(.failure(Self.abandoned))
    }

    static let abandoned = SQLError(kind: .cancelled, message: "cancelled; the statement may still run on its connection")
}
