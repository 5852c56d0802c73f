/// What the controller saw in one probe round: the input of `HARoleMachine.step`.
public struct HAObservation: Sendable {
    /// Time since the controller started (monotonic; tests pass any clock).
    public var now: Duration
    public var local: Local
    public var peer: Peer

    public init(now: Duration, local: Local, peer: Peer) {
        self.now = now
        self.local = local
        self.peer = peer
    }

    /// This node's own PostgreSQL.
    public struct Local: Sendable {
        public var postgresUp: Bool
        public var copy: CopyState
        /// Every table of the copy finished its initial sync (`r`), whether or not the
        /// subscription is enabled now: a subscription stopped by a lost connection still holds
        /// a complete copy up to what it applied.
        public var copyComplete: Bool
        /// The leader term the local copy was made from (0: none).
        public var subscribedTerm: UInt64
        /// As leader: the follower's replication connection streams and is caught up.
        public var followerStreaming: Bool
        /// The local table holds rows beyond kine's two bookkeeping rows.
        public var hasData: Bool
        /// The newest row id of the local table (a handover waits for the copy to reach the leader's).
        public var maxID: Int64
        /// The revision the node's current epoch started at (a leader's promotion bump).
        public var epochStart: Int64
        /// `--ha-witness`: whether this round's TCP connect reached it (nil: no witness configured).
        public var witness: Bool?
        /// A maintenance pause is in force (`kine ha pause`): no automatic promotion.
        public var paused: Bool
        /// As follower: the leader publishes a table the copy does not subscribe to yet (an
        /// upgraded kine published one its older version did not have).
        public var copyLacksTables: Bool

        public init(
            postgresUp: Bool = true, copy: CopyState = .none, copyComplete: Bool? = nil, subscribedTerm: UInt64 = 0,
            followerStreaming: Bool = false, hasData: Bool = false, maxID: Int64 = 0, epochStart: Int64 = 0, witness: Bool? = nil,
            paused: Bool = false, copyLacksTables: Bool = false
        ) {
            self.copyLacksTables = copyLacksTables
            self.hasData = hasData
            self.maxID = maxID
            self.epochStart = epochStart
            self.witness = witness
            self.paused = paused
            self.postgresUp = postgresUp
            self.copy = copy
            self.copyComplete = copyComplete ?? (copy == .ready)
            self.subscribedTerm = subscribedTerm
            self.followerStreaming = followerStreaming
        }
    }

    /// The peer, through channel A (its HA service) and channel B (a SQL round trip to its
    /// PostgreSQL).
    public struct Peer: Sendable {
        public var answer: Answer
        public var sqlOK: Bool
        /// As follower: whether this node's replication slot on the leader is gone or invalidated.
        public var slotLost: Bool

        /// Channel A's outcome.
        public enum Answer: Sendable, Equatable {
            /// No answer in time.
            case silent
            /// It answered, but nothing it says is acted on (another HA schema version, this
            /// node's own name, a role this version does not know): alive, not a partner.
            case refused(PeerRefusal)
            case status(PeerStatus)
        }

        public init(answer: Answer, sqlOK: Bool, slotLost: Bool = false) {
            self.answer = answer
            self.sqlOK = sqlOK
            self.slotLost = slotLost
        }

        /// A peer that answered with `status`, or (nil) did not answer on channel A.
        public init(status: PeerStatus? = nil, sqlOK: Bool = false, slotLost: Bool = false) {
            self.init(answer: status.map { .status($0) } ?? .silent, sqlOK: sqlOK, slotLost: slotLost)
        }

        /// The status the decisions may use (nil: silent or refused).
        public var status: PeerStatus? {
            guard case .status(let status) = answer else { return nil }
            return status
        }

        /// Heard on either channel this round (a refused peer is alive).
        public var heard: Bool { answer != .silent || sqlOK }
    }
}

/// The parts of the peer's status the decisions use (`kine.ha.v1.StatusResponse`).
public struct PeerStatus: Sendable, Equatable {
    public var node: String
    public var role: HARole
    public var term: UInt64
    public var leader: String
    public var postgresUp: Bool
    public var hasData: Bool
    public var copy: CopyState
    public var maxRevision: Int64
    public var highestServed: Int64
    public var priority: HAPriority
    public var schemaVersion: UInt32
    /// The newest row id of the peer's own table.
    public var maxID: Int64
    /// The reunion verdict the peer published, and the fork id with it.
    public var reunionWinner: String
    public var reunionForkID: Int64
    /// With a witness: the peer could not reach it while this node was unreachable.
    public var witnessLost: Bool
    /// A handover in progress on the peer (its leader): the node asked to take over.
    public var handoverTo: String
    /// The peer's newest write of its own as leader, by its clock (Unix ms; the reunion's `newest`).
    public var lastWriteUnixMilliseconds: Int64
    /// The maintenance pause the peer holds (the newer setting of the two nodes wins).
    public var pause: HAPause

    /// The highest revision the peer's clients can have seen.
    public var servedRevision: Int64 { max(maxRevision, highestServed) }

    public init(
        node: String, role: HARole, term: UInt64, leader: String = "", postgresUp: Bool = true, hasData: Bool = false,
        copy: CopyState = .none, maxRevision: Int64 = 0, highestServed: Int64 = 0, priority: HAPriority = .secondary,
        schemaVersion: UInt32 = HASchema.version, maxID: Int64 = 0, reunionWinner: String = "", reunionForkID: Int64 = 0,
        witnessLost: Bool = false, handoverTo: String = "", lastWriteUnixMilliseconds: Int64 = 0, pause: HAPause = HAPause()
    ) {
        self.pause = pause
        self.lastWriteUnixMilliseconds = lastWriteUnixMilliseconds
        self.maxID = maxID
        self.reunionWinner = reunionWinner
        self.reunionForkID = reunionForkID
        self.witnessLost = witnessLost
        self.handoverTo = handoverTo
        self.node = node
        self.role = role
        self.term = term
        self.leader = leader
        self.postgresUp = postgresUp
        self.hasData = hasData
        self.copy = copy
        self.maxRevision = maxRevision
        self.highestServed = highestServed
        self.priority = priority
        self.schemaVersion = schemaVersion
    }
}

/// The version of kine's HA tables and peer protocol; a peer with another version is refused.
/// 2: split writes saved on the winner in the replicated `kine_ha_split_writes`; reunion,
/// witness, pause and handover fields in the status.
public enum HASchema {
    public static let version: UInt32 = 2
}
