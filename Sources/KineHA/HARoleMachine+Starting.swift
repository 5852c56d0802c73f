/// A node that just started: it serves nothing until it knows who leads.
extension HARoleMachine {
    mutating func starting(_ starting: HARoleState.Starting, _ observation: HAObservation) -> [HAAction] {
        let now = observation.now
        if let peer = observation.peer.status {
            switch peer.role {
            case .leader, .leaderAlone:
                if peer.term >= starting.term { return follow(peer, now: now, reason: "peer \(peer.node) leads at term \(peer.term)") }
                return lead(
                    now: now, reason: "peer \(peer.node) leads at the older term \(peer.term); this node's term is \(starting.term)")
            case .follower, .followerSyncing, .resyncing:
                if peer.leader == node { return lead(now: now, reason: "peer \(peer.node) still follows this node") }
                return []
            case .bootstrap:
                guard StartupTieBreak.wins(self.candidate(starting, hasData: observation.local.hasData), over: .init(peer)) else {
                    return []
                }
                let why = "both nodes starting; this node wins (data, term, last leader, priority, name)"
                // A node that followed has only a copy: it may not hand out revisions its leader
                // may have handed out already (async, or a commit in flight), so it takes over
                // with a revision bump, never as a plain lead.
                if lastRole?.isFollowing == true || lastRole == .promoting {
                    guard observation.local.copyComplete && observation.local.postgresUp, mayPromote(observation) else { return [] }
                    return promote(now: now, peerMaxRevision: peer.servedRevision, reason: why)
                }
                return lead(now: now, reason: why)
            case .promoting:
                return []
            }
        }
        // Alone after the grace: with a witness, only if it is reachable (else the peer may lead).
        guard now >= timing.startupGrace, observation.local.witness != false else { return [] }
        switch lastRole {
        case .leader, .leaderAlone:
            return lead(now: now, reason: "peer unreachable after the startup grace; this node led before")
        case nil where priority == .primary:
            return lead(now: now, reason: "peer unreachable after the startup grace; this node is the primary")
        case .follower?, .promoting?:
            let copyReady = observation.local.copyComplete && observation.local.postgresUp
            if copyReady && now >= timing.startupGrace + timing.holdDown && peerDead(at: now) && mayPromote(observation) {
                return promote(now: now, peerMaxRevision: 0, reason: "peer unreachable since start; this node's copy is ready")
            }
            return []
        default:
            return []
        }
    }

    private func candidate(_ starting: HARoleState.Starting, hasData: Bool) -> StartupTieBreak.Candidate {
        .init(node: node, hasData: hasData, term: starting.term, ledLast: starting.lastLeader == node, priority: priority)
    }
}

/// Both nodes starting: which one leads. A node with data beats an empty one, then the higher
/// term, then the node that led last (the other followed it: after a power loss the pair comes
/// back as it was), then the primary, then the smaller name. Both nodes compute it from what
/// each publishes, and exactly one of them wins.
public enum StartupTieBreak {
    public struct Candidate: Sendable, Equatable {
        public var node: String
        public var hasData: Bool
        public var term: UInt64
        /// The node's persisted leader is itself.
        public var ledLast: Bool
        public var priority: HAPriority

        public init(node: String, hasData: Bool, term: UInt64, ledLast: Bool, priority: HAPriority) {
            self.node = node
            self.hasData = hasData
            self.term = term
            self.ledLast = ledLast
            self.priority = priority
        }

        /// The peer as its status shows it while it starts.
        public init(_ peer: PeerStatus) {
            self.init(node: peer.node, hasData: peer.hasData, term: peer.term, ledLast: peer.leader == peer.node, priority: peer.priority)
        }
    }

    public static func wins(_ candidate: Candidate, over other: Candidate) -> Bool {
        if candidate.hasData != other.hasData { return candidate.hasData }
        if candidate.term != other.term { return candidate.term > other.term }
        if candidate.ledLast != other.ledLast { return candidate.ledLast }
        if candidate.priority != other.priority { return candidate.priority == .primary }
        return candidate.node < other.node
    }
}
