/// The role logic of one node as a pure state machine: each probe round's observation goes in,
/// the actions come out (as swift-nio's state machines return actions). No clock, socket or
/// database inside, so every rule is unit-tested (`HARoleMachineTests`, `HAReunionMachineTests`).
///
/// The rules (docs/ha.md):
/// - The peer is dead after `liveness` of consecutive rounds in which both channels failed. A
///   follower whose leader's kine does not answer but whose database does never promotes.
/// - A leader whose kine reports its own PostgreSQL down for two rounds is replaced at once.
/// - Never promote while the copy is not ready, within `holdDown` of the last leadership
///   change, while paused, or (with a witness) without reaching the witness. Never fail back.
/// - A starting or following node that sees a leader with a newer term follows it; two leaders
///   go through the reunion (`HARoleMachine+Reunion.swift`).
/// - A leader that lost both its peer and the witness stops taking writes.
public struct HARoleMachine: Sendable {
    public let node: String
    public let priority: HAPriority
    public let mode: ReplicationMode
    public let timing: HATiming

    public private(set) var role: HARole = .bootstrap
    public private(set) var term: UInt64
    /// Who this node believes leads ("" unknown).
    public private(set) var leader: String = ""
    /// Whether the leader now waits for the follower on commit.
    public private(set) var synchronous = false
    /// The role persisted by the last run (nil for a fresh node).
    public let lastRole: HARole?

    /// After a split: the node the reunion decided keeps leading, and where the histories forked
    /// (published; cleared once the pair is whole again).
    public internal(set) var reunionWinner = ""
    public internal(set) var reunionForkID: Int64 = 0
    /// With a witness: it was unreachable while the peer was, since the pair was last whole.
    public internal(set) var witnessLost = false
    /// The witness in the last round (nil: none configured).
    public internal(set) var lastWitness: Bool?
    /// A leader that lost both its peer and the witness: fenced, serving nothing.
    public internal(set) var isolated = false
    /// A handover this leader started: the follower asked to take over, and when to give up.
    public internal(set) var handoverTo = ""
    var handoverDeadline: Duration = .zero
    /// A reunion's losing decider: following a winner that has not yet promoted to its term.
    public internal(set) var awaitingLeaderTerm = false

    var lastLeadershipChange: Duration = .zero
    /// The epoch start of the last observation (a reunion winner's revisions must be above
    /// everything the loser served).
    var epochStart: Int64 = 0
    /// When the peer was last heard on either channel (nil: never), and since when it has not been.
    private var lastPeerContact: Duration?
    private var peerFailingSince: Duration?
    private var replicationMissingSince: Duration?
    private var fastPathRounds = 0
    private var nextResyncAt: Duration = .zero
    private var resyncBackoff: Duration = .seconds(1)
    /// Resumes of a stopped copy since it was last seen streaming; a copy that keeps stopping
    /// after `maxResumes` is re-made.
    private var resumes = 0
    static let maxResumes = 3
    private var previous: Snapshot?

    /// What `failed()` restores.
    private struct Snapshot {
        var role: HARole, term: UInt64, leader: String, synchronous: Bool
        var reunionWinner: String, reunionForkID: Int64, isolated: Bool, handoverTo: String, awaitingLeaderTerm: Bool
    }

    /// Whether the node serves clients in its role (an isolated leader, or one handing over, does not).
    public var servesClients: Bool {
        (role.isLeading && !isolated && handoverTo.isEmpty) || (role.isFollowing && !awaitingLeaderTerm)
    }

    /// `lastRole`, `term` and `lastLeader` are what the node persisted before it stopped.
    public init(
        node: String, priority: HAPriority, mode: ReplicationMode, timing: HATiming, lastRole: HARole?, term: UInt64,
        lastLeader: String = ""
    ) {
        self.node = node
        leader = lastLeader
        self.priority = priority
        self.mode = mode
        self.timing = timing
        self.lastRole = lastRole
        self.term = term
    }

    /// Whether both channels have failed for `liveness`.
    public func peerDead(at now: Duration) -> Bool {
        guard let since = peerFailingSince else { return false }
        return now - since >= timing.liveness
    }

    /// One probe round. The returned actions are carried out in order; if one fails the
    /// controller calls `failed()` and the next round decides again.
    public mutating func step(_ observation: HAObservation) -> [HAAction] {
        trackPeer(observation)
        previous = Snapshot(
            role: role, term: term, leader: leader, synchronous: synchronous, reunionWinner: reunionWinner,
            reunionForkID: reunionForkID, isolated: isolated, handoverTo: handoverTo, awaitingLeaderTerm: awaitingLeaderTerm)
        switch role {
        case .bootstrap: return bootstrap(observation)
        case .leader, .leaderAlone: return leading(observation)
        case .follower, .followerSyncing, .resyncing: return following(observation)
        case .promoting:
            return []
        }
    }

    /// The last step's actions did not all succeed: back to the role before them; a failed
    /// resync waits longer before the next try.
    public mutating func failed(now: Duration) {
        if let previous {
            role = previous.role
            term = previous.term
            leader = previous.leader
            synchronous = previous.synchronous
            reunionWinner = previous.reunionWinner
            reunionForkID = previous.reunionForkID
            isolated = previous.isolated
            handoverTo = previous.handoverTo
            awaitingLeaderTerm = previous.awaitingLeaderTerm
        }
        nextResyncAt = now + resyncBackoff
        resyncBackoff = min(resyncBackoff * 2, .seconds(60))
    }

    /// A resync finished: the copy is being made.
    public mutating func resyncStarted() {
        resyncBackoff = .seconds(1)
    }

    // MARK: Roles

    private mutating func bootstrap(_ observation: HAObservation) -> [HAAction] {
        let now = observation.now
        if let peer = observation.peer.status {
            switch peer.role {
            case .leader, .leaderAlone:
                if peer.term >= term { return follow(peer, now: now, reason: "peer \(peer.node) leads at term \(peer.term)") }
                return lead(now: now, reason: "peer \(peer.node) leads at the older term \(peer.term); this node's term is \(term)")
            case .follower, .followerSyncing, .resyncing:
                if peer.leader == node { return lead(now: now, reason: "peer \(peer.node) still follows this node") }
                return []
            case .bootstrap:
                guard wins(over: peer, hasData: observation.local.hasData) else { return [] }
                let why = "both nodes starting; this node wins (data, term, last leader, priority, name)"
                // A node that followed has only a copy: it may not hand out revisions its leader
                // may have handed out already (async, or a commit in flight), so it takes over
                // with a revision bump, never as a plain lead.
                if lastRole?.isFollowing == true || lastRole == .promoting {
                    guard observation.local.copyComplete && observation.local.postgresUp, mayPromote(observation) else { return [] }
                    return promote(now: now, peerMaxRevision: max(peer.maxRevision, peer.highestServed), reason: why)
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

    private mutating func leading(_ observation: HAObservation) -> [HAAction] {
        let now = observation.now
        if let peer = observation.peer.status {
            if peer.role.isLeading { return meetLeader(peer, now: now) }
            if peer.role.isFollowing && peer.leader == node && peer.term > term {
                return promote(
                    now: now, term: peer.term, peerMaxRevision: max(peer.maxRevision, peer.highestServed), forkID: peer.reunionForkID,
                    reason: "reunion: peer \(peer.node) lost and follows this node at term \(peer.term)")
            }
            if peer.role.isFollowing && peer.leader == node && peer.term == term && peer.copy == .ready { pairWhole() }
        }
        if !handoverTo.isEmpty { return handingOver(now: now) }
        if isolated {
            guard observation.local.witness == true || observation.peer.status != nil else { return [] }
            isolated = false
            return lead(now: now, reason: observation.peer.status != nil ? "peer reachable again" : "witness reachable again")
        }
        if observation.local.witness == false && peerDead(at: now) {
            // Acknowledging writes now could only lose them: the peer may have promoted.
            isolated = true
            return [.stepDown(reason: "peer unreachable for \(timing.liveness) and the witness unreachable: not taking writes")]
        }
        let streaming = observation.local.followerStreaming
        if streaming {
            replicationMissingSince = nil
        } else if replicationMissingSince == nil {
            replicationMissingSince = now
        }
        let missingTooLong = replicationMissingSince.map { now - $0 >= timing.liveness } ?? false
        let peerReady = observation.peer.status.map { $0.copy == .ready && $0.leader == node } ?? false
        switch role {
        case .leader where peerDead(at: now) || missingTooLong:
            role = .leaderAlone
            let why = peerDead(at: now) ? "follower unreachable for \(timing.liveness)" : "follower not replicating for \(timing.liveness)"
            var actions: [HAAction] = [.persist(reason: why)]
            if synchronous {
                synchronous = false
                actions.insert(.setSynchronous(false, reason: why), at: 0)
            }
            return actions
        case .leaderAlone where streaming && peerReady && !peerDead(at: now):
            role = .leader
            var actions: [HAAction] = [.persist(reason: "follower caught up")]
            if mode == .sync && !synchronous {
                synchronous = true
                actions.insert(.setSynchronous(true, reason: "follower caught up"), at: 0)
            }
            return actions
        default:
            return []
        }
    }

    private mutating func following(_ observation: HAObservation) -> [HAAction] {
        let now = observation.now
        let local = observation.local
        let peer = observation.peer.status
        if let peer, peer.role.isLeading, peer.node != leader || peer.term > term, peer.term >= term {
            return follow(peer, now: now, reason: "peer \(peer.node) leads at term \(peer.term)")
        }
        // A reunion winner that has not reached this node's term yet: its copy is not the one to make.
        if let peer, peer.role.isLeading, peer.term < term { return [] }
        if awaitingLeaderTerm, let peer, peer.role.isLeading, peer.node == leader, peer.term == term {
            return winnerReachedTerm(peer, now: now)
        }
        if awaitingLeaderTerm { return [] }
        if let peer, peer.role.isLeading, peer.postgresUp == false { fastPathRounds += 1 } else if peer != nil { fastPathRounds = 0 }

        let copyReady = local.postgresUp && local.copyComplete && local.subscribedTerm == term && !observation.peer.slotLost
        if let peer, peer.role.isLeading, peer.handoverTo == node, peer.node == leader, peer.term == term {
            guard copyReady && local.copy == .ready && local.maxID >= peer.maxID else { return [] }
            return promote(
                now: now, peerMaxRevision: max(peer.maxRevision, peer.highestServed),
                reason: "handover from \(peer.node): the copy reached its newest id \(peer.maxID)")
        }
        let leaderGone = peerDead(at: now) || fastPathRounds >= 2
        if leaderGone && role == .follower && copyReady && now - lastLeadershipChange >= timing.holdDown && mayPromote(observation) {
            let why = fastPathRounds >= 2
                ? "leader \(leader) reports its PostgreSQL down"
                : "leader \(leader) unreachable on both channels for \(timing.liveness)"
            return promote(now: now, peerMaxRevision: peerMaxRevision, reason: why)
        }
        // Never touch the copy while the leader is gone: it is what a promotion needs.
        if leaderGone || !local.postgresUp || !observation.peer.sqlOK { return [] }

        if local.copy == .ready { resumes = 0 }
        let broken = local.copy == .none || local.subscribedTerm != term || observation.peer.slotLost
            || (local.copy == .disabled && resumes >= Self.maxResumes)
        if broken {
            guard now >= nextResyncAt else { return [] }
            let why: String
            if local.copy == .none {
                why = "no local copy"
            } else if observation.peer.slotLost {
                why = "this node's replication slot on the leader is lost"
            } else if local.subscribedTerm != term {
                why = "the local copy is from term \(local.subscribedTerm), the leader's is \(term)"
            } else {
                why = "the local copy stopped \(resumes) times after resuming (a conflict)"
            }
            role = .resyncing
            resumes = 0
            return [.resync(reason: why)]
        }
        if local.copy == .disabled {
            resumes += 1
            return [.resumeCopy(reason: "the local copy stopped (attempt \(resumes) of \(Self.maxResumes))")]
        }
        if local.copy == .ready && local.copyLacksTables {
            return [.refreshCopy(reason: "the leader publishes tables the local copy does not subscribe to")]
        }
        let settled: HARole = copyReady && local.copy == .ready ? .follower : .followerSyncing
        if settled == .follower { pairWhole() }
        if role != settled {
            role = settled
            return [.persist(reason: settled == .follower ? "local copy ready" : "local copy catching up")]
        }
        return []
    }

    // MARK: Transitions

    private var peerMaxRevision: Int64 { lastPeer.map { max($0.maxRevision, $0.highestServed) } ?? 0 }
    var lastPeer: PeerStatus?

    private mutating func trackPeer(_ observation: HAObservation) {
        epochStart = observation.local.epochStart
        lastWitness = observation.local.witness
        if observation.local.witness == false && observation.peer.status == nil { witnessLost = true }
        if let status = observation.peer.status { lastPeer = status }
        if observation.peer.status == nil && !observation.peer.sqlOK {
            // Silent since the last round that heard it, not since the first that did not: the
            // verdict comes `liveness` after the peer was last known alive.
            if peerFailingSince == nil { peerFailingSince = lastPeerContact ?? observation.now }
        } else {
            lastPeerContact = observation.now
            peerFailingSince = nil
        }
    }

    /// Promotion needs the witness (when one is configured) and no maintenance pause.
    private func mayPromote(_ observation: HAObservation) -> Bool {
        observation.local.witness != false && !observation.local.paused
    }

    /// Both nodes serve in agreement again: the split's bookkeeping ends.
    mutating func pairWhole() {
        reunionWinner = ""
        reunionForkID = 0
        witnessLost = false
    }

    mutating func lead(now: Duration, reason: String) -> [HAAction] {
        role = .leaderAlone
        term = max(term, 1)
        leader = node
        synchronous = false
        lastLeadershipChange = now
        replicationMissingSince = nil
        return [.lead(term: term, reason: reason)]
    }

    mutating func promote(now: Duration, term newTerm: UInt64? = nil, peerMaxRevision: Int64, forkID: Int64? = nil, reason: String) -> [HAAction] {
        role = .leaderAlone
        term = newTerm ?? term + 1
        isolated = false
        handoverTo = ""
        leader = node
        synchronous = false
        lastLeadershipChange = now
        replicationMissingSince = nil
        fastPathRounds = 0
        return [.promote(term: term, peerMaxRevision: peerMaxRevision, forkID: forkID, reason: reason)]
    }

    mutating func follow(_ peer: PeerStatus, now: Duration, reason: String) -> [HAAction] {
        follow(leader: peer.node, term: peer.term, now: now, reason: reason)
    }

    mutating func follow(leader newLeader: String, term newTerm: UInt64, now: Duration, reason: String) -> [HAAction] {
        role = .followerSyncing
        term = newTerm
        leader = newLeader
        synchronous = false
        isolated = false
        handoverTo = ""
        awaitingLeaderTerm = false
        lastLeadershipChange = now
        fastPathRounds = 0
        nextResyncAt = .zero
        return [.follow(leader: newLeader, term: newTerm, reason: reason)]
    }

    /// Both starting: a node with data beats an empty one, then the higher term, then the node
    /// that led last (the other followed it: after a power loss the pair comes back as it was),
    /// then the primary, then the smaller name.
    private func wins(over peer: PeerStatus, hasData: Bool) -> Bool {
        if hasData != peer.hasData { return hasData }
        if term != peer.term { return term > peer.term }
        let ledLast = leader == node
        let peerLedLast = peer.leader == peer.node
        if ledLast != peerLedLast { return ledLast }
        if priority != peer.priority { return priority == .primary }
        return node < peer.node
    }
}
