/// What one probe round brought back, before any rule is applied; `HAProbeReading.init` turns
/// it into the role machine's observation and the problems an operator is told about.
public struct HAProbeRound: Sendable {
    public var now: Duration
    /// The local database's answer (nil: it did not answer within the probe timeout).
    public var local: LocalProbe?
    /// Channel A: the peer's HA service.
    public var peer: PeerAnswer
    /// Channel B: the peer's database (nil: it did not answer within the probe timeout).
    public var peerDatabase: PeerDatabaseProbe?
    /// `--ha-witness`: whether it was reached (nil: none configured).
    public var witness: Bool?
    /// The revision the node's current epoch started at (0: not serving).
    public var epochStart: Int64

    public init(
        now: Duration, local: LocalProbe?, peer: PeerAnswer, peerDatabase: PeerDatabaseProbe?, witness: Bool?, epochStart: Int64
    ) {
        self.now = now
        self.local = local
        self.peer = peer
        self.peerDatabase = peerDatabase
        self.witness = witness
        self.epochStart = epochStart
    }
}

/// One round's view of the local database.
public struct LocalProbe: Sendable, Equatable {
    public var maxID: Int64
    /// The subscription: none, stopped, or enabled with every table ready or not.
    public var copy: CopyState
    /// Every table of the subscription, enabled or not, finished its initial copy.
    public var copyComplete: Bool
    /// As leader: the follower's replication connection streams and is caught up.
    public var followerStreaming: Bool
    /// The term the local copy was made from (0: none recorded).
    public var subscribedTerm: UInt64
    /// The table holds a row other than kine's bookkeeping rows.
    public var hasData: Bool
    /// Tables the subscription holds, in any sync state (0: no subscription).
    public var subscribedTables: Int64

    public init(
        maxID: Int64, copy: CopyState, copyComplete: Bool, followerStreaming: Bool, subscribedTerm: UInt64, hasData: Bool,
        subscribedTables: Int64
    ) {
        self.maxID = maxID
        self.copy = copy
        self.copyComplete = copyComplete
        self.followerStreaming = followerStreaming
        self.subscribedTerm = subscribedTerm
        self.hasData = hasData
        self.subscribedTables = subscribedTables
    }
}

/// Channel B's round trip to the peer's database.
public struct PeerDatabaseProbe: Sendable, Equatable {
    public var maxID: Int64
    /// `pg_replication_slots.wal_status` of this node's slot there (nil: no such slot).
    public var slotWALStatus: String?
    /// Tables the peer's publication has.
    public var publishedTables: Int64

    public init(maxID: Int64, slotWALStatus: String?, publishedTables: Int64) {
        self.maxID = maxID
        self.slotWALStatus = slotWALStatus
        self.publishedTables = publishedTables
    }

    /// The slot is gone, or PostgreSQL invalidated it (`max_slot_wal_keep_size`): the copy that
    /// streams from it cannot go on.
    public var slotLost: Bool { slotWALStatus == nil || slotWALStatus == "lost" }
}

/// Channel A's outcome, as the peer RPC client reports it.
public enum PeerAnswer: Sendable, Equatable {
    case status(PeerStatus)
    /// It answered with a role this version does not know.
    case unknownRole(node: String, role: String)
    case failed(PeerRPCError)
    /// No answer within the probe timeout.
    case timedOut
}

/// Why a peer that answered is not paired with.
public enum PeerRefusal: Sendable, Equatable, CustomStringConvertible {
    case otherSchema(peer: String, peerVersion: UInt32, localVersion: UInt32)
    case sameName(address: String, node: String)
    case unknownRole(peer: String, role: String)

    public var description: String {
        switch self {
        case .otherSchema(let peer, let peerVersion, let localVersion):
            "peer \(peer) runs HA schema version \(peerVersion), this node \(localVersion): not pairing"
        case .sameName(let address, let node):
            "the peer at \(address) has this node's own name \(node): check --ha-peer and --ha-node-name"
        case .unknownRole(let peer, let role):
            "peer \(peer) reports the role \"\(role)\", which this version does not know: not pairing"
        }
    }
}

/// What the controller knows about this node that a reading needs.
public struct HAProbeContext: Sendable {
    public var node: String
    public var schemaVersion: UInt32
    /// `--ha-peer` as HOST:PORT, and the peer's database as it is named in messages.
    public var peerAddress: String
    public var peerDatabase: String
    public var probeTimeout: Duration
    /// The role the machine is in now (a follower checks its slot and its copy's tables).
    public var role: HARole
    /// This node's pause and its wall clock (Unix ms).
    public var pause: HAPause
    public var wallClock: Int64

    public init(
        node: String, schemaVersion: UInt32, peerAddress: String, peerDatabase: String, probeTimeout: Duration, role: HARole,
        pause: HAPause, wallClock: Int64
    ) {
        self.node = node
        self.schemaVersion = schemaVersion
        self.peerAddress = peerAddress
        self.peerDatabase = peerDatabase
        self.probeTimeout = probeTimeout
        self.role = role
        self.pause = pause
        self.wallClock = wallClock
    }
}

/// A probe round read: the machine's observation, what is wrong with the peer, and what the
/// controller keeps from it.
public struct HAProbeReading: Sendable {
    public var observation: HAObservation
    /// What kept the peer from pairing this round (empty: it answers on both channels).
    public var problems: [HAProbeProblem]
    /// The peer's name, from an answer the node pairs with.
    public var peerName: String?
    /// The peer's pause, when it supersedes this node's.
    public var adoptedPause: HAPause?
    /// As follower: how many ids the local copy is behind the leader's table.
    public var lagRevisions: Int64

    public init(_ round: HAProbeRound, context: HAProbeContext) {
        var local = HAObservation.Local(postgresUp: round.local != nil)
        local.witness = round.witness
        local.epochStart = round.epochStart
        if let probe = round.local {
            local.copy = probe.copy
            local.copyComplete = probe.copyComplete
            local.followerStreaming = probe.followerStreaming
            local.subscribedTerm = probe.subscribedTerm
            local.hasData = probe.hasData
            local.maxID = probe.maxID
        }
        var problems: [HAProbeProblem] = []
        let answer: HAObservation.Peer.Answer
        switch round.peer {
        case .status(let status) where status.schemaVersion != context.schemaVersion:
            answer = .refused(.otherSchema(peer: status.node, peerVersion: status.schemaVersion, localVersion: context.schemaVersion))
        case .status(let status) where status.node == context.node:
            answer = .refused(.sameName(address: context.peerAddress, node: context.node))
        case .status(let status):
            answer = .status(status)
        case .unknownRole(let node, let role):
            answer = .refused(.unknownRole(peer: node, role: role))
        case .failed(let error):
            answer = .silent
            problems.append(.peerRPC(error))
        case .timedOut:
            answer = .silent
            problems.append(.peerSilent(address: context.peerAddress, within: context.probeTimeout))
        }
        if case .refused(let refusal) = answer { problems.append(.refused(refusal)) }
        if round.peerDatabase == nil { problems.append(.peerDatabaseSilent(database: context.peerDatabase, within: context.probeTimeout)) }

        var peer = HAObservation.Peer(answer: answer, sqlOK: round.peerDatabase != nil)
        if context.role.isFollowing, local.copy == .ready || local.copy == .syncing, let leader = round.peerDatabase {
            peer.slotLost = leader.slotLost
            local.copyLacksTables = leader.publishedTables > (round.local?.subscribedTables ?? 0)
        }
        let status = peer.status
        adoptedPause = status.flatMap { context.pause.superseded(by: $0.pause) }
        local.paused = (adoptedPause ?? context.pause).inForce(atUnixMilliseconds: context.wallClock)
        peerName = status?.node
        observation = HAObservation(now: round.now, local: local, peer: peer)
        self.problems = problems
        lagRevisions = context.role.isFollowing ? max((round.peerDatabase?.maxID ?? 0) - local.maxID, 0) : 0
    }

    /// The problems as one line (empty: none).
    public var problem: String { problems.map(\.description).joined(separator: "; ") }
}

/// Something wrong with the peer in one round, in the words the log and `kine ha status` use.
public enum HAProbeProblem: Sendable, Equatable, CustomStringConvertible {
    case refused(PeerRefusal)
    case peerRPC(PeerRPCError)
    case peerSilent(address: String, within: Duration)
    case peerDatabaseSilent(database: String, within: Duration)

    public var description: String {
        switch self {
        case .refused(let refusal): refusal.description
        case .peerRPC(let error): error.description
        case .peerSilent(let address, let timeout): "peer HA port \(address) did not answer within \(timeout)"
        case .peerDatabaseSilent(let database, let timeout): "peer PostgreSQL \(database) did not answer within \(timeout)"
        }
    }
}
