/// Runs `body` with a deadline; nil when it did not finish in time. The body is cancelled then
/// and awaited, so it must end promptly on cancellation (SQL through `abandonablePipeline`).
func withDeadline<T: Sendable>(_ timeout: Duration, _ body: @escaping @Sendable () async -> T) async -> T? {
    await withTaskGroup(of: T?.self) { group in
        group.addTask { await body() }
        group.addTask {
            // try?: cancelled when the body finished first, which ends the race as intended.
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
