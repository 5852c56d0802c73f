import KineSync

/// Runs `body` with a deadline; nil when it did not finish in time. The body is cancelled then
/// but not waited for: a libpq call on a silently dead connection ignores cancellation until TCP
/// gives up, and the probe round must not wait that long (a task group would).
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    // The first of the body and the timer completes the wait; the other is ignored.
    await Completion<T?>.wait { outcome in
        let work = Task { outcome.complete(await body()) }
        Task {
            try? await Task.sleep(for: timeout)
            outcome.complete(nil)
            work.cancel()
        }
    }
}
