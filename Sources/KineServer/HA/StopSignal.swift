import KineSync
import Synchronization

/// A one-way "stop now" that any number of tasks can wait for; a waiting task that is cancelled
/// stops waiting (so it can race a timer in a task group, which cancels the loser).
final class StopSignal: Sendable {
    private struct State {
        var stopped = false
        var nextID: UInt64 = 0
        var waiters: [UInt64: Completion<Void>] = [:]
    }

    private let state = Mutex(State())

    var isStopped: Bool { state.withLock { $0.stopped } }

    func stop() {
        let waiters = state.withLock { state in
            state.stopped = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.complete(()) }
    }

    /// Returns once `stop()` was called, or when the task is cancelled.
    func wait() async {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await Completion<Void>.wait { waiter in
                let done = state.withLock { state in
                    if state.stopped || Task.isCancelled { return true }
                    state.waiters[id] = waiter
                    return false
                }
                if done { waiter.complete(()) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.complete(())
        }
    }
}
