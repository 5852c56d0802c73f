import KineSQL
import KineSync
import Testing

@testable import KinePostgres

/// The pool's shared state as a value: every transition, without threads or a database.
@Suite("PoolState: queueing, batching, sessions, expiry, shutdown")
struct PoolStateTests {
    private let configuration = PostgresConfiguration(host: "/tmp", port: 5432, user: "kine", database: "kine")
    private let farFuture = ContinuousClock.now + .seconds(3600)

    /// A job whose completion nobody awaits; tests only look at where it goes.
    private func job(_ id: UInt64, _ sql: String = "SELECT 1", deadline: ContinuousClock.Instant? = nil) -> PipelineJob {
        PipelineJob(id: id, statements: [SQLStatement(sql)], deadline: deadline ?? farFuture, completion: Completion<JobOutcome>.detached())
    }

    @Test("An idle worker is woken by the next request, and takes queued jobs as one batch")
    func batching() {
        var state = PoolState(configuration: configuration)
        guard case .refresh = state.nextAction(worker: 0, connectionGeneration: nil, maxBatch: 8) else {
            Issue.record("a worker without a connection must open one first")
            return
        }
        guard case .wait = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 8) else {
            Issue.record("nothing queued: the worker waits")
            return
        }
        #expect(state.idleWorkers == [0])
        #expect(state.enqueue(.pipeline(job(1))) == (wake: 0, rejected: false))
        #expect(state.enqueue(.pipeline(job(2))) == (wake: nil, rejected: false))
        #expect(state.enqueue(.pipeline(job(3))) == (wake: nil, rejected: false))
        guard case .run(let jobs) = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 2) else {
            Issue.record("queued jobs must run")
            return
        }
        #expect(jobs.map(\.id) == [1, 2])
        #expect(state.queue.map(\.id) == [3])
    }

    @Test("A job that may open a transaction ends its batch")
    func transactionEndsBatch() {
        var state = PoolState(configuration: configuration)
        _ = state.enqueue(.pipeline(job(1)))
        _ = state.enqueue(.pipeline(job(2, " BEGIN")))
        _ = state.enqueue(.pipeline(job(3)))
        guard case .run(let jobs) = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("queued jobs must run")
            return
        }
        #expect(jobs.map(\.id) == [1, 2])
        #expect(jobs.map(\.mayOpenTransaction) == [false, true])
    }

    @Test("A session binds a worker; its requests go to that worker only; ending it hands back what was queued")
    func sessions() {
        var state = PoolState(configuration: configuration)
        let open = SessionOpenJob(id: 10, deadline: farFuture, completion: Completion<Result<UInt64, SQLError>>.detached())
        _ = state.enqueue(.openSession(open))
        _ = state.enqueue(.pipeline(job(11)))
        guard case .openSession(_, let session) = state.nextAction(worker: 1, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("the session request comes first")
            return
        }
        #expect(session == 10)
        // The bound worker waits on its session, not on the shared queue.
        guard case .wait = state.nextAction(worker: 1, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("an empty session waits")
            return
        }
        #expect(state.queue.map(\.id) == [11])
        #expect(state.enqueue(.pipeline(job(12)), session: 10) == (wake: 1, rejected: false))
        #expect(state.enqueue(.pipeline(job(13)), session: 10) == (wake: nil, rejected: false))
        guard case .runSession(let jobs, 10) = state.nextAction(worker: 1, connectionGeneration: 0, maxBatch: 1) else {
            Issue.record("session jobs run on the session")
            return
        }
        #expect(jobs.map(\.id) == [12])
        let orphans = state.endSession(10)
        #expect(orphans.count == 1)
        #expect(state.sessions.isEmpty && state.workerSession.isEmpty)
        #expect(state.enqueue(.pipeline(job(14)), session: 10).rejected)
        guard case .run(let shared) = state.nextAction(worker: 1, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("a released worker serves the shared queue again")
            return
        }
        #expect(shared.map(\.id) == [11])
    }

    @Test("A close request ends the session's turn before any job queued after it")
    func closeFirst() {
        var state = PoolState(configuration: configuration)
        _ = state.enqueue(
            .openSession(SessionOpenJob(id: 1, deadline: farFuture, completion: Completion<Result<UInt64, SQLError>>.detached())))
        _ = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 10)
        _ = state.enqueue(.close(Completion<Void>.detached()), session: 1)
        guard case .closeSession(_, 1) = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("close is served")
            return
        }
    }

    @Test("Re-pointing (a new generation) makes a worker refresh before it takes work")
    func generation() {
        var state = PoolState(configuration: configuration)
        _ = state.enqueue(.pipeline(job(1)))
        state.generation += 1
        guard case .refresh = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("old connection must be refreshed")
            return
        }
        #expect(state.queue.count == 1)
    }

    @Test("Expired and cancelled requests leave the queue; shutdown rejects new work and tells workers to exit")
    func expiryCancelShutdown() {
        var state = PoolState(configuration: configuration)
        let past = ContinuousClock.now - .seconds(1)
        _ = state.enqueue(.pipeline(job(1, deadline: past)))
        _ = state.enqueue(.pipeline(job(2)))
        _ = state.enqueue(.pipeline(job(3)))
        #expect(state.takeExpired(now: .now).map(\.id) == [1])
        #expect(state.takeExpired(now: .now).isEmpty)
        #expect(state.takeQueued(id: 3)?.id == 3)
        #expect(state.takeQueued(id: 3) == nil)
        #expect(state.queue.map(\.id) == [2])
        state.isShutdown = true
        #expect(state.enqueue(.pipeline(job(4))).rejected)
        guard case .exit = state.nextAction(worker: 0, connectionGeneration: 0, maxBatch: 10) else {
            Issue.record("workers exit after shutdown")
            return
        }
    }

    @Test("Ids are unique and increasing")
    func ids() {
        var state = PoolState(configuration: configuration)
        let ids = (0..<5).map { _ in state.makeID() }
        #expect(ids == [1, 2, 3, 4, 5])
    }
}

extension Completion {
    /// A completion no task waits on: these tests only route jobs.
    static func detached() -> Completion<Value> { Completion { _ in } }
}
