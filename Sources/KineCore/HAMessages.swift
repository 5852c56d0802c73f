/// The messages of kine's own peer service (`kine.ha.v1.Peer`, `Protos/kine/ha/v1/peer.proto`).

public struct HAStatusRequest: Sendable, Equatable {
    /// The asking node ("" for the command line) and its term.
    public var fromNode: String
    public var term: UInt64

    public init(fromNode: String = "", term: UInt64 = 0) {
        self.fromNode = fromNode
        self.term = term
    }
}

/// What a node last learned about its peer from its own probes.
public struct HAPeerView: Sendable, Equatable {
    public var node = ""
    /// Channel A (the peer's HA service) and channel B (a SQL round trip to the peer's PostgreSQL).
    public var rpcOK = false
    public var sqlOK = false
    public var role = ""
    public var term: UInt64 = 0
    /// Consecutive probe rounds in which both channels failed.
    public var failedRounds: UInt32 = 0
    public var lastProbeUnixMilliseconds: Int64 = 0
    public var error = ""

    public init() {}
}

public struct HAStatus: Sendable, Equatable {
    public var node = ""
    public var term: UInt64 = 0
    /// `HARole.rawValue`.
    public var role = ""
    public var leader = ""
    public var paused = false
    /// The etcd revision this node serves now.
    public var maxRevision: Int64 = 0
    /// The highest revision this node ever handed to a client (persisted).
    public var highestServed: Int64 = 0
    /// none (it leads), syncing, ready, disabled.
    public var subscription = ""
    public var lagRevisions: Int64 = 0
    public var postgresUp = false
    public var clockUnixMilliseconds: Int64 = 0
    /// sync or async.
    public var replication = ""
    public var syncActive = false
    public var epochStart: Int64 = 0
    public var hasData = false
    public var priority = ""
    public var schemaVersion: UInt32 = 0
    public var peer: HAPeerView?
    /// The newest row id of the local database.
    public var localMaxID: Int64 = 0
    /// After a split, the node the reunion decided keeps leading ("" none pending).
    public var reunionWinner = ""
    /// With a witness: it was unreachable while the peer was, since the pair was last whole.
    public var witnessLost = false
    /// Whether the node takes client requests now (false for a leader that stepped down, or a
    /// follower waiting for its leader's term).
    public var serving = false
    /// Wall-clock time of this node's newest write of its own as leader (Unix ms).
    public var lastWriteUnixMilliseconds: Int64 = 0
    /// The maintenance pause: until when (Unix ms, 0: none) and when it was set (the newer wins).
    public var pausedUntilUnixMilliseconds: Int64 = 0
    public var pauseSetUnixMilliseconds: Int64 = 0
    /// A handover in progress: the node asked to take over.
    public var handoverTo = ""
    /// "" (no witness configured), reachable, unreachable.
    public var witness = ""
    /// With `reunionWinner`: the id the two histories forked at.
    public var reunionForkID: Int64 = 0

    public init() {}
}

/// `kine ha pause --for` / `kine ha resume` (until 0).
public struct HAPauseRequest: Sendable, Equatable {
    public var untilUnixMilliseconds: Int64

    public init(untilUnixMilliseconds: Int64) {
        self.untilUnixMilliseconds = untilUnixMilliseconds
    }
}

/// `kine ha handover`.
public struct HAHandoverRequest: Sendable, Equatable {
    /// 0: the node's default.
    public var timeoutMilliseconds: Int64

    public init(timeoutMilliseconds: Int64 = 0) {
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}
