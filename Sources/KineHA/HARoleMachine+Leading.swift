/// A leading node: attaches and detaches its follower (synchronous replication with it in sync
/// mode), fences itself when it loses both its peer and the witness, and meets a second leader.
extension HARoleMachine {
    mutating func leading(_ current: HARoleState.Leading, _ observation: HAObservation) -> [HAAction] {
        var leading = current
        let now = observation.now
        if let peer = observation.peer.status {
            if peer.role.isLeading { return meetLeader(peer, leading, now: now) }
            let followsThisNode = peer.role.isFollowing && peer.leader == node
            if followsThisNode && peer.term > leading.term {
                return promote(
                    now: now, term: peer.term, peerMaxRevision: peer.servedRevision, forkID: peer.reunionForkID,
                    reason: "reunion: peer \(peer.node) lost and follows this node at term \(peer.term)")
            }
            if followsThisNode && peer.term == leading.term && peer.copy == .ready {
                pairWhole()
                leading.verdict = nil
            }
        }
        switch leading.service {
        case .handingOver(let target, let deadline):
            state = .leading(leading)
            guard now >= deadline else { return [] }
            return lead(now: now, reason: "handover to \(target) did not complete in time: leading again")
        case .fenced:
            state = .leading(leading)
            guard observation.local.witness == true || observation.peer.status != nil else { return [] }
            return lead(now: now, reason: observation.peer.status != nil ? "peer reachable again" : "witness reachable again")
        case .open:
            break
        }
        let peerDead = self.peerDead(at: now)
        if observation.local.witness == false && peerDead {
            // Acknowledging writes now could only lose them: the peer may have promoted.
            leading.service = .fenced(.lostPeerAndWitness)
            state = .leading(leading)
            return [.stepDown(reason: "peer unreachable for \(timing.liveness) and the witness unreachable: not taking writes")]
        }
        if observation.local.followerStreaming {
            leading.replicationMissingSince = nil
        } else if leading.replicationMissingSince == nil {
            leading.replicationMissingSince = now
        }
        let missingTooLong = leading.replicationMissingSince.map { now - $0 >= timing.liveness } ?? false
        let peerReady = observation.peer.status.map { $0.copy == .ready && $0.leader == node } ?? false
        var actions: [HAAction] = []
        switch leading.follower {
        case .attached where peerDead || missingTooLong:
            leading.follower = .absent
            let why = peerDead ? "follower unreachable for \(timing.liveness)" : "follower not replicating for \(timing.liveness)"
            if mode == .sync { actions.append(.setSynchronous(false, reason: why)) }
            actions.append(.persist(reason: why))
        case .absent where observation.local.followerStreaming && peerReady && !peerDead:
            leading.follower = .attached
            if mode == .sync { actions.append(.setSynchronous(true, reason: "follower caught up")) }
            actions.append(.persist(reason: "follower caught up"))
        default:
            break
        }
        state = .leading(leading)
        return actions
    }
}
