import NIOCore

/// Runs a task's jobs on one NIO event loop. A unary handler started with this preference
/// resumes on its connection's loop after every suspension (the Writer's answer, a read
/// barrier), so its response is written where it is ready, without a hop to the task pool and
/// another back to the loop.
final class EventLoopTaskExecutor: TaskExecutor {
    private let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
