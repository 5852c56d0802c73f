import Glibc

/// Gives freed heap back to the system every few seconds. glibc keeps freed memory in its arenas
/// (one per thread that allocated), so after a burst (check perf's 280 000 keys written and
/// deleted, a large list) the process kept hundreds of MB it no longer used.
enum MemoryTrimmer {
    /// glibc's `malloc_trim`, looked up at run time (its header is not part of the Glibc module).
    private typealias Trim = @convention(c) (Int) -> Int32
    private static let trim: Trim? = dlsym(nil, "malloc_trim").map { unsafeBitCast($0, to: Trim.self) }

    static func run(every interval: Duration = .seconds(10)) async {
        guard let trim else { return }
        while !Task.isCancelled {
            // try?: cancellation ends the trimmer; the loop checks it.
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            _ = trim(0)
        }
    }
}
