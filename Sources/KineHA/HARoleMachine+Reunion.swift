/// Two leaders meeting (after a split) and the planned handover: the transitions that end with
/// one leader, both driven by what the peer publishes in its status.
///
/// A reunion is decided by one node only, the one with the higher term (the smaller name on a
/// tie), from both databases at one moment, so the two nodes can never reach different
/// verdicts while both still take writes. The decider publishes the winner; then:
/// - the decider won: if its revisions are not already above everything the loser served it
///   promotes again (a bump, term + 1); the loser, seeing the verdict and the newer term, steps
///   down and follows;
/// - the decider lost: it steps down at once and follows the winner at `max(terms) + 1`; the
///   winner, seeing its peer follow it at a term above its own, promotes to that term (the bump,
///   with the fork the decider published); the loser then resyncs, saving its split writes on
///   the winner.
extension HARoleMachine {
    /// This node leads and so does the peer.
    mutating func meetLeader(_ peer: PeerStatus, now: Duration) -> [HAAction] {
        if !handoverTo.isEmpty && peer.node == handoverTo && peer.term > term {
            return follow(peer, now: now, reason: "handover: \(peer.node) took over at term \(peer.term)")
        }
        let decides = term > peer.term || (term == peer.term && node < peer.node)
        if decides {
            // Decided already: the loser follows once it has read the verdict.
            if reunionWinner == node { return [] }
            return [.decideReunion(peer: peer)]
        }
        if peer.reunionWinner == peer.node && peer.term > term {
            return [.stepDown(reason: "reunion: \(peer.node) keeps leading")]
                + follow(peer, now: now, reason: "reunion: \(peer.node) won and leads at term \(peer.term)")
        }
        // The peer decides: its verdict, or its following this node, comes in a later round.
        // Meanwhile only one node takes writes while the link is up (R4): this one stops now; a
        // win promotes it (which opens it again), a loss makes it follow.
        guard !isolated else { return [] }
        isolated = true
        return [.stepDown(reason: "peer \(peer.node) leads at term \(peer.term): waiting for its reunion verdict")]
    }

    /// The controller computed the reunion this node decides (`.decideReunion`).
    public mutating func reunionDecided(_ decision: ReunionDecision, forkID: Int64, peer: PeerStatus, now: Duration) -> [HAAction] {
        reunionForkID = forkID
        reunionWinner = decision.winner
        let peerServed = max(peer.maxRevision, peer.highestServed)
        let why = "\(decision.rule.rawValue); fork at id \(forkID)"
        if decision.winner == node {
            // The loser's clients saw up to `peerServed`: this node's revisions must start above it.
            if term == peer.term || epochStart <= peerServed {
                return promote(
                    now: now, term: max(term, peer.term) + 1, peerMaxRevision: peerServed, forkID: forkID,
                    reason: "reunion won over \(peer.node) (\(why)); moving revisions above what it served")
            }
            return [.persist(reason: "reunion won over \(peer.node) (\(why)); it follows this node")]
        }
        // Routed to the winner only once it has promoted above this node's revisions (R2): until
        // then this node serves nothing.
        _ = follow(leader: peer.node, term: max(term, peer.term) + 1, now: now, reason: "")
        awaitingLeaderTerm = true
        return [.stepDown(reason: "reunion lost to \(peer.node) (\(why))"),
                .persist(reason: "reunion lost to \(peer.node): following it once it leads at term \(term)")]
    }

    /// A losing decider's winner reached the term it follows at: serve routed to it now.
    mutating func winnerReachedTerm(_ peer: PeerStatus, now: Duration) -> [HAAction] {
        awaitingLeaderTerm = false
        return follow(peer, now: now, reason: "reunion: \(peer.node) leads at term \(peer.term)")
    }

    /// `kine ha handover`: only a leader whose follower is attached and caught up hands over.
    /// The leader stops taking writes; the follower promotes once its copy holds the leader's
    /// newest id; the leader gives up and leads again after `timeout`.
    public mutating func requestHandover(now: Duration, timeout: Duration) throws(HandoverRefused) -> [HAAction] {
        guard role == .leader, !isolated else {
            throw HandoverRefused("this node is \(role.rawValue)\(isolated ? " (isolated)" : ""); only a leader with a caught-up follower hands over")
        }
        guard handoverTo.isEmpty else { throw HandoverRefused("a handover to \(handoverTo) is already in progress") }
        guard let peer = lastPeer, !peerDead(at: now), peer.leader == node, peer.copy == .ready else {
            throw HandoverRefused("the follower is not attached with a ready copy")
        }
        handoverTo = peer.node
        handoverDeadline = now + timeout
        return [.stepDown(reason: "handover to \(peer.node): no more writes here until it has taken over")]
    }

    /// A leader handing over whose follower has not taken over yet.
    mutating func handingOver(now: Duration) -> [HAAction] {
        guard now >= handoverDeadline else { return [] }
        let target = handoverTo
        handoverTo = ""
        return lead(now: now, reason: "handover to \(target) did not complete in time: leading again")
    }
}
