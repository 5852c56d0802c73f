import Dispatch
import Synchronization

/// Swift jobs waiting to run on one pool worker's thread.
final class WorkerInbox: Sendable {
    let jobs = Mutex<[UnownedJob]>([])
}

/// A task executor that runs jobs on a pool worker's thread, between its libpq calls. A task that
/// prefers it (the Writer, on its session's worker) hands its pipelines to the thread it runs on
/// and is resumed there when they finish: no thread wake-up between the task and its
/// connection in either direction.
final class WorkerExecutor: TaskExecutor {
    private let inbox: WorkerInbox
    private let waker: DispatchSemaphore

    init(inbox: WorkerInbox, waker: DispatchSemaphore) {
        self.inbox = inbox
        self.waker = waker
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        inbox.jobs.withLock { $0.append(job) }
        waker.signal()
    }

    /// Runs every queued job (and the ones they queue) on the calling thread, the worker's.
    func runQueued() {
        while true {
            let jobs = inbox.jobs.withLock { jobs in
                defer { jobs = [] }
                return jobs
            }
            if jobs.isEmpty { return }
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        }
    }
}
