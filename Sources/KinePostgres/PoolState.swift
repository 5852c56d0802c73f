import KineSQL
import KineSync

/// The pool's shared state, always accessed under `PoolCore.state`'s lock. Transitions return
/// what the caller must do after unlocking (wake a worker, complete jobs).
struct PoolState {
    struct Session {
        var worker: Int
        var queue: [SessionRequest] = []
        /// The worker is blocked waiting for this session's next request.
        var waiting = false
    }

    /// What a worker does next.
    enum WorkerAction {
        case exit
        case wait
        /// The worker's connection is for an older target: replace it before taking work.
        case refresh
        case run([PipelineJob])
        case openSession(SessionOpenJob, UInt64)
        case runSession([PipelineJob], UInt64)
        case closeSession(Completion<Void>, UInt64)
    }

    var configuration: PostgresConfiguration
    /// Incremented by `repoint`; connections opened for an older generation are replaced.
    var generation = 0
    var isShutdown = false
    var queue: [PoolRequest] = []
    var idleWorkers: [Int] = []
    var sessions: [UInt64: Session] = [:]
    var workerSession: [Int: UInt64] = [:]
    var nextID: UInt64 = 1

    init(configuration: PostgresConfiguration) {
        self.configuration = configuration
    }

    mutating func makeID() -> UInt64 {
        defer { nextID &+= 1 }
        return nextID
    }

    /// Queues a request; returns the idle worker to wake, if any. Fails (returns the request)
    /// after shutdown.
    mutating func enqueue(_ request: PoolRequest) -> (wake: Int?, rejected: Bool) {
        guard !isShutdown else { return (nil, true) }
        queue.append(request)
        return (idleWorkers.popLast(), false)
    }

    /// Queues a request on a session; returns the worker to wake if it is waiting.
    mutating func enqueue(_ request: SessionRequest, session id: UInt64) -> (wake: Int?, rejected: Bool) {
        guard !isShutdown, var session = sessions[id] else { return (nil, true) }
        session.queue.append(request)
        let wake = session.waiting ? session.worker : nil
        session.waiting = false
        sessions[id] = session
        return (wake, false)
    }

    /// Removes a still-queued request (cancellation) and returns it, for the caller to fail.
    mutating func takeQueued(id: UInt64) -> PoolRequest? {
        guard let index = queue.firstIndex(where: { $0.id == id }) else { return nil }
        return queue.remove(at: index)
    }

    /// Removes and returns queued requests whose deadline has passed.
    mutating func takeExpired(now: ContinuousClock.Instant) -> [PoolRequest] {
        guard queue.contains(where: { $0.deadline <= now }) else { return [] }
        let expired = queue.filter { $0.deadline <= now }
        queue.removeAll { $0.deadline <= now }
        return expired
    }

    mutating func nextAction(worker: Int, connectionGeneration: Int?, maxBatch: Int) -> WorkerAction {
        if isShutdown { return .exit }
        if let id = workerSession[worker], var session = sessions[id] {
            defer { sessions[id] = session }
            guard let first = session.queue.first else {
                session.waiting = true
                return .wait
            }
            if case .close(let completion) = first {
                session.queue.removeFirst()
                return .closeSession(completion, id)
            }
            var jobs: [PipelineJob] = []
            while jobs.count < maxBatch, let next = session.queue.first, case .pipeline(let job) = next {
                session.queue.removeFirst()
                jobs.append(job)
            }
            return .runSession(jobs, id)
        }
        // Checked under the lock, so no job taken after a `repoint` goes to the old target.
        if connectionGeneration != generation { return .refresh }
        guard let first = queue.first else {
            if !idleWorkers.contains(worker) { idleWorkers.append(worker) }
            return .wait
        }
        if case .openSession(let job) = first {
            queue.removeFirst()
            let id = job.id
            sessions[id] = Session(worker: worker)
            workerSession[worker] = id
            return .openSession(job, id)
        }
        var jobs: [PipelineJob] = []
        var taken = 0
        for request in queue {
            guard jobs.count < maxBatch, case .pipeline(let job) = request else { break }
            jobs.append(job)
            taken += 1
            if job.mayOpenTransaction { break }
        }
        queue.removeFirst(taken)
        return .run(jobs)
    }

    /// Forgets a session; returns what was still queued on it, for the caller to fail after
    /// unlocking (completing under the pool's lock would resume tasks while holding it).
    mutating func endSession(_ id: UInt64) -> [SessionRequest] {
        guard let session = sessions.removeValue(forKey: id) else { return [] }
        workerSession[session.worker] = nil
        return session.queue
    }
}
