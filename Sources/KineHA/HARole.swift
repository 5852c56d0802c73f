/// The roles of a node in a two-node pair (docs/ha.md). Persisted (as the raw value) before the
/// node acts on them.
public enum HARole: String, Sendable, Hashable, CaseIterable {
    /// Just started: serves nothing until it knows who leads.
    case bootstrap
    /// Leads, with a follower attached (synchronous when configured).
    case leader
    /// Leads without a follower: the peer is dead, absent or still catching up.
    case leaderAlone = "leader-alone"
    /// Routes every request to the leader's database; its own copy is still being made.
    case followerSyncing = "follower-syncing"
    /// Routes to the leader; its own copy is complete and streaming: it may take over.
    case follower
    /// Taking over (revision bump, re-point); serves nothing until done.
    case promoting
    /// Re-making its copy after a conflict, a lost slot or a reunion; routes meanwhile.
    case resyncing

    public var isLeading: Bool { self == .leader || self == .leaderAlone }
    public var isFollowing: Bool { self == .follower || self == .followerSyncing || self == .resyncing }
}

/// `--ha-priority`: who leads when both start empty, and the last tie-break.
public enum HAPriority: String, Sendable, Hashable {
    case primary, secondary
}

/// `--ha-replication`.
public enum ReplicationMode: String, Sendable, Hashable {
    /// An acknowledged write is on both nodes (while the follower is attached and caught up).
    case sync
    /// The follower may lag; a leader crash loses at most the lag.
    case async
}

/// The state of this node's own copy of the leader's tables (its logical-replication subscription).
public enum CopyState: String, Sendable, Hashable {
    /// No subscription (a leader, or a follower before its first copy).
    case none
    /// Initial copy or catch-up of some table still running.
    case syncing
    /// Every table copied and streaming.
    case ready
    /// Stopped by an error: PostgreSQL's `disable_on_error` also stops it when the connection to
    /// the leader breaks, so it is resumed first, and re-made if it keeps stopping (a conflict).
    case disabled
}

/// Probe timing (`--ha-liveness`, `--ha-probe-interval`, `--ha-probe-timeout`, `--ha-hold-down`,
/// `--ha-startup-grace`), injectable so tests run in seconds.
public struct HATiming: Sendable, Equatable {
    public var liveness: Duration
    public var probeInterval: Duration
    public var probeTimeout: Duration
    public var holdDown: Duration
    public var startupGrace: Duration

    public init(
        liveness: Duration = .seconds(5), probeInterval: Duration = .seconds(1), probeTimeout: Duration = .milliseconds(800),
        holdDown: Duration = .seconds(30), startupGrace: Duration = .seconds(10)
    ) {
        self.liveness = liveness
        self.probeInterval = probeInterval
        self.probeTimeout = probeTimeout
        self.holdDown = holdDown
        self.startupGrace = startupGrace
    }
}
