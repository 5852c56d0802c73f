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
    mutating func meetLeader(_ peer: PeerStatus, _ current: HARoleState.Leading, now: Duration) -> [HAAction] {
        var leading = current
        if case .handingOver(let target, _) = leading.service, peer.node == target, peer.term > leading.term {
            return follow(peer, now: now, reason: "handover: \(peer.node) took over at term \(peer.term)")
        }
        // The peer handed over to this node and follows once it sees it lead (a fenced leader
        // until then): no split, nothing to decide.
        if peer.handoverTo == node && peer.term < leading.term { return [] }
        if ReunionDecider.decides(node, term: leading.term, over: peer.node, term: peer.term) {
            // Decided already: the loser follows once it has read the verdict.
            if leading.verdict?.winner == node { return [] }
            return [.decideReunion(peer: peer)]
        }
        if peer.reunionWinner == peer.node && peer.term > leading.term {
            return [.stepDown(reason: "reunion: \(peer.node) keeps leading")]
                + follow(peer, now: now, reason: "reunion: \(peer.node) won and leads at term \(peer.term)")
        }
        // The peer decides: its verdict, or its following this node, comes in a later round.
        // Meanwhile only one node takes writes while the link is up (R4): this one stops now; a
        // win promotes it (which opens it again), a loss makes it follow. A node already fenced
        // (or handing over) has stopped already.
        guard leading.service == .open else { return [] }
        leading.service = .fenced(.awaitingVerdict(from: peer.node))
        state = .leading(leading)
        return [.stepDown(reason: "peer \(peer.node) leads at term \(peer.term): waiting for its reunion verdict")]
    }

    /// The controller computed the reunion this node decides (`.decideReunion`).
    public mutating func reunionDecided(_ decision: ReunionDecision, forkID: Int64, peer: PeerStatus, now: Duration) -> [HAAction] {
        guard case .leading(var leading) = state else { return [] }
        let verdict = ReunionVerdict(winner: decision.winner, forkID: forkID)
        let why = "\(decision.rule.rawValue); fork at id \(forkID)"
        if decision.winner == node {
            leading.verdict = verdict
            state = .leading(leading)
            // The loser's clients saw up to its served revision: this node's must start above it.
            if leading.term == peer.term || epochStart <= peer.servedRevision {
                return promote(
                    now: now, term: max(leading.term, peer.term) + 1, peerMaxRevision: peer.servedRevision, forkID: forkID,
                    reason: "reunion won over \(peer.node) (\(why)); moving revisions above what it served")
            }
            return [.persist(reason: "reunion won over \(peer.node) (\(why)); it follows this node")]
        }
        // Routed to the winner only once it has promoted above this node's revisions (R2): until
        // then this node serves nothing.
        let term = max(leading.term, peer.term) + 1
        enterFollowing(leader: peer.node, term: term, stage: .awaitingLeaderTerm, now: now, verdict: verdict)
        return [
            .stepDown(reason: "reunion lost to \(peer.node) (\(why))"),
            .persist(reason: "reunion lost to \(peer.node): following it once it leads at term \(term)"),
        ]
    }

    /// `kine ha handover`: only a leader whose follower is attached and caught up hands over.
    /// The leader stops taking writes; the follower promotes once its copy holds the leader's
    /// newest id; the leader gives up and leads again after `timeout`.
    public mutating func requestHandover(now: Duration, timeout: Duration) throws(HandoverRefused) -> [HAAction] {
        guard case .leading(var leading) = state else { throw .notLeading(role: role) }
        switch leading.service {
        case .open: break
        case .fenced: throw .fenced
        case .handingOver(let target, _): throw .alreadyInProgress(to: target)
        }
        guard leading.follower == .attached else { throw .notLeading(role: role) }
        guard let peer = lastPeer, !peerDead(at: now), peer.leader == node, peer.copy == .ready else { throw .followerNotReady }
        leading.service = .handingOver(to: peer.node, deadline: now + timeout)
        state = .leading(leading)
        return [.stepDown(reason: "handover to \(peer.node): no more writes here until it has taken over")]
    }
}

/// Which of two leaders decides their reunion: the higher term, the smaller name on a tie.
public enum ReunionDecider {
    public static func decides(_ node: String, term: UInt64, over peer: String, term peerTerm: UInt64) -> Bool {
        term > peerTerm || (term == peerTerm && node < peer)
    }
}
