import Synchronization

/// What the store counts for `/metrics`: watch streams and watchers, events sent, catch-ups,
/// leases, compactions. One per process, shared by every store it opens (an HA node opens a new
/// store each epoch), so counters keep counting across epochs. Plain atomics: the hot paths pay
/// one relaxed add, and the exporter reads them when scraped.
public final class StoreStatistics: Sendable {
    /// Watch sessions running their send loop (one per gRPC Watch stream and epoch).
    let watchStreams = Atomic<Int>(0)
    /// Active watchers over every session.
    let watchers = Atomic<Int>(0)
    /// Events sent to watchers.
    let eventsSent = Atomic<Int>(0)
    /// Catch-up rounds of watchers behind the newest revision, by where their events came from.
    let catchUpsFromMemory = Atomic<Int>(0)
    let catchUpsFromDatabase = Atomic<Int>(0)
    /// Watchers cancelled because their start revision was compacted away.
    let compactedCancels = Atomic<Int>(0)

    let leasesGranted = Atomic<Int>(0)
    let leasesRevoked = Atomic<Int>(0)
    let leasesExpired = Atomic<Int>(0)
    /// Leases a keep-alive renewed (an unknown or expired lease is not counted).
    let leasesRenewed = Atomic<Int>(0)

    /// Compactions by result, as Go kine's `kine_compact_total{result}`.
    let compactionsSucceeded = Atomic<Int>(0)
    let compactionsFailed = Atomic<Int>(0)
    /// Compactions that stopped because another process moved the mark.
    let compactionsConflicted = Atomic<Int>(0)
    let compactedRows = Atomic<Int>(0)
    /// Total compaction time, in microseconds.
    let compactionMicroseconds = Atomic<Int>(0)

    public init() {}

    /// The figures as of now (each read on its own: counters of one scrape may be a moment apart).
    public var counters: StoreCounters {
        func read(_ counter: borrowing Atomic<Int>) -> Int { counter.load(ordering: .relaxed) }
        return StoreCounters(
            watchStreams: read(watchStreams), watchers: read(watchers), eventsSent: read(eventsSent),
            catchUpsFromMemory: read(catchUpsFromMemory), catchUpsFromDatabase: read(catchUpsFromDatabase),
            compactedCancels: read(compactedCancels), leasesGranted: read(leasesGranted), leasesRevoked: read(leasesRevoked),
            leasesExpired: read(leasesExpired), leasesRenewed: read(leasesRenewed), compactionsSucceeded: read(compactionsSucceeded),
            compactionsFailed: read(compactionsFailed), compactionsConflicted: read(compactionsConflicted),
            compactedRows: read(compactedRows), compactionMicroseconds: read(compactionMicroseconds))
    }

    static func add(_ counter: borrowing Atomic<Int>, _ amount: Int) {
        counter.wrappingAdd(amount, ordering: .relaxed)
    }
}

/// `StoreStatistics` read at one moment (the fields mean what the counters of the same name do).
public struct StoreCounters: Sendable, Equatable {
    public var watchStreams = 0
    public var watchers = 0
    public var eventsSent = 0
    public var catchUpsFromMemory = 0
    public var catchUpsFromDatabase = 0
    public var compactedCancels = 0
    public var leasesGranted = 0
    public var leasesRevoked = 0
    public var leasesExpired = 0
    public var leasesRenewed = 0
    public var compactionsSucceeded = 0
    public var compactionsFailed = 0
    public var compactionsConflicted = 0
    public var compactedRows = 0
    public var compactionMicroseconds = 0

    public init(
        watchStreams: Int = 0, watchers: Int = 0, eventsSent: Int = 0, catchUpsFromMemory: Int = 0, catchUpsFromDatabase: Int = 0,
        compactedCancels: Int = 0, leasesGranted: Int = 0, leasesRevoked: Int = 0, leasesExpired: Int = 0, leasesRenewed: Int = 0,
        compactionsSucceeded: Int = 0, compactionsFailed: Int = 0, compactionsConflicted: Int = 0, compactedRows: Int = 0,
        compactionMicroseconds: Int = 0
    ) {
        self.watchStreams = watchStreams
        self.watchers = watchers
        self.eventsSent = eventsSent
        self.catchUpsFromMemory = catchUpsFromMemory
        self.catchUpsFromDatabase = catchUpsFromDatabase
        self.compactedCancels = compactedCancels
        self.leasesGranted = leasesGranted
        self.leasesRevoked = leasesRevoked
        self.leasesExpired = leasesExpired
        self.leasesRenewed = leasesRenewed
        self.compactionsSucceeded = compactionsSucceeded
        self.compactionsFailed = compactionsFailed
        self.compactionsConflicted = compactionsConflicted
        self.compactedRows = compactedRows
        self.compactionMicroseconds = compactionMicroseconds
    }
}

/// The read cache's size, for `/metrics`.
public struct ReadCacheFigures: Sendable, Equatable {
    /// Live keys.
    public var keys: Int
    /// Deleted keys whose tombstone is kept until compaction.
    public var tombstones: Int
    /// Bytes of the live keys and values (payload only, not the structures around them).
    public var bytes: Int

    public init(keys: Int, tombstones: Int, bytes: Int) {
        self.keys = keys
        self.tombstones = tombstones
        self.bytes = bytes
    }
}
