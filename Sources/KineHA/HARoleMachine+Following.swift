/// A following node: routes to its leader, keeps its copy of the leader's database streaming
/// (resume, refresh, re-make), and takes over when the leader is gone.
extension HARoleMachine {
    mutating func following(_ current: HARoleState.Following, _ observation: HAObservation) -> [HAAction] {
        var following = current
        let now = observation.now
        let local = observation.local
        let peer = observation.peer.status
        if let peer, peer.role.isLeading, peer.node != following.leader || peer.term > following.term, peer.term >= following.term {
            return follow(peer, now: now, reason: "peer \(peer.node) leads at term \(peer.term)")
        }
        // A reunion winner that has not reached this node's term yet: its copy is not the one to make.
        if let peer, peer.role.isLeading, peer.term < following.term { return [] }
        if following.stage == .awaitingLeaderTerm {
            guard let peer, peer.role.isLeading, peer.node == following.leader, peer.term == following.term else { return [] }
            return follow(peer, now: now, reason: "reunion: \(peer.node) leads at term \(peer.term)")
        }
        if let peer, peer.role.isLeading, !peer.postgresUp {
            following.leaderPostgresDownRounds += 1
        } else if peer != nil {
            following.leaderPostgresDownRounds = 0
        }
        state = .following(following)

        let copyReady = local.postgresUp && local.copyComplete && local.subscribedTerm == following.term && !observation.peer.slotLost
        if let peer, peer.role.isLeading, peer.handoverTo == node, peer.node == following.leader, peer.term == following.term {
            guard copyReady && local.copy == .ready && local.maxID >= peer.maxID else { return [] }
            return promote(
                now: now, peerMaxRevision: peer.servedRevision,
                reason: "handover from \(peer.node): the copy reached its newest id \(peer.maxID)")
        }
        let leaderReportsPostgresDown = following.leaderPostgresDownRounds >= 2
        let leaderGone = peerDead(at: now) || leaderReportsPostgresDown
        if leaderGone && following.stage == .copyReady && copyReady && now - following.since >= timing.holdDown && mayPromote(observation) {
            let why =
                leaderReportsPostgresDown
                ? "leader \(following.leader) reports its PostgreSQL down"
                : "leader \(following.leader) unreachable on both channels for \(timing.liveness)"
            return promote(now: now, peerMaxRevision: peerServedRevision, reason: why)
        }
        // Never touch the copy while the leader is gone: it is what a promotion needs.
        if leaderGone || !local.postgresUp || !observation.peer.sqlOK { return [] }
        return tendCopy(following, observation, copyReady: copyReady)
    }

    /// The copy while the leader is there: re-make it when it cannot go on, resume it when it
    /// stopped, add the tables the leader publishes since, and record when it becomes ready.
    private mutating func tendCopy(_ current: HARoleState.Following, _ observation: HAObservation, copyReady: Bool) -> [HAAction] {
        var following = current
        let local = observation.local
        defer { state = .following(following) }
        if local.copy == .ready { following.resumes = 0 }
        if let problem = CopyProblem(local, slotLost: observation.peer.slotLost, leaderTerm: following.term, resumes: following.resumes) {
            guard mayResync(at: observation.now) else { return [] }
            following.stage = .resyncing
            following.resumes = 0
            return [.resync(reason: problem.description)]
        }
        if local.copy == .disabled {
            following.resumes += 1
            return [.resumeCopy(reason: "the local copy stopped (attempt \(following.resumes) of \(Self.maxResumes))")]
        }
        if local.copy == .ready && local.copyLacksTables {
            return [.refreshCopy(reason: "the leader publishes tables the local copy does not subscribe to")]
        }
        let settled: HARoleState.Following.Stage = copyReady && local.copy == .ready ? .copyReady : .copying
        if settled == .copyReady {
            pairWhole()
            following.verdict = nil
        }
        guard following.stage != settled else { return [] }
        following.stage = settled
        return [.persist(reason: settled == .copyReady ? "local copy ready" : "local copy catching up")]
    }
}

/// Why a follower's copy must be re-made from the leader (nil: it can go on).
enum CopyProblem: Equatable, CustomStringConvertible {
    case noCopy
    case slotLost
    case otherTerm(copy: UInt64, leader: UInt64)
    case keepsStopping(resumes: Int)

    init?(_ local: HAObservation.Local, slotLost: Bool, leaderTerm: UInt64, resumes: Int) {
        if local.copy == .none {
            self = .noCopy
        } else if slotLost {
            self = .slotLost
        } else if local.subscribedTerm != leaderTerm {
            self = .otherTerm(copy: local.subscribedTerm, leader: leaderTerm)
        } else if local.copy == .disabled && resumes >= HARoleMachine.maxResumes {
            self = .keepsStopping(resumes: resumes)
        } else {
            return nil
        }
    }

    var description: String {
        switch self {
        case .noCopy: "no local copy"
        case .slotLost: "this node's replication slot on the leader is lost"
        case .otherTerm(let copy, let leader): "the local copy is from term \(copy), the leader's is \(leader)"
        case .keepsStopping(let resumes): "the local copy stopped \(resumes) times after resuming (a conflict)"
        }
    }
}
