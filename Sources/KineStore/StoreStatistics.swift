import Synchronization

/// What the store counts for `/metrics`: watch streams and watchers, events sent, catch-ups,
/// leases, compactions. One per process, shared by every store it opens (an HA node opens a new
/// store each epoch), so counters keep counting across epochs. The hot paths take an uncontended
/// lock for one addition; the exporter copies the figures when scraped.
public final class StoreStatistics: Sendable {
    private let figures = Mutex(StoreCounters())

    public init() {}

    /// The figures as of now.
    public var counters: StoreCounters { figures.withLock { $0 } }

    func count(_ change: (inout StoreCounters) -> Void) {
        figures.withLock { change(&$0) }
    }
}

/// The store's figures at one moment.
public struct StoreCounters: Sendable, Equatable {
    /// Watch sessions running their send loop (one per gRPC Watch stream and epoch).
    public var watchStreams = 0
    /// Active watchers over every session.
    public var watchers = 0
    /// Events sent to watchers.
    public var eventsSent = 0
    /// Catch-up rounds of watchers behind the newest revision, by where their events came from.
    public var catchUpsFromMemory = 0
    public var catchUpsFromDatabase = 0
    /// Revisions the watch hub published that its own Writer did not hand it (other processes'
    /// commits, this process's bulk deletes), by where it got their events: the NOTIFY that
    /// announced them (`CommitNoticePayload`) or a read of the table.
    public var revisionsFromNotices = 0
    public var revisionsFromTable = 0
    /// Watchers cancelled because their start revision was compacted away.
    public var compactedCancels = 0
    public var leasesGranted = 0
    public var leasesRevoked = 0
    public var leasesExpired = 0
    /// Leases a keep-alive renewed (an unknown or expired lease is not counted).
    public var leasesRenewed = 0
    /// Compactions by result, as Go kine's `kine_compact_total{result}`.
    public var compactionsSucceeded = 0
    public var compactionsFailed = 0
    /// Compactions that stopped because another process moved the mark.
    public var compactionsConflicted = 0
    public var compactedRows = 0
    /// Total compaction time, in microseconds.
    public var compactionMicroseconds = 0

    public init() {}
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
