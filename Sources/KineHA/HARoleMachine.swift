/// The role logic of one node as a pure state machine: each probe round's observation goes in,
/// the actions come out (as swift-nio's state machines return actions). No clock, socket or
/// database inside, so every rule is unit-tested (`HARoleMachineTests`, `HAReunionMachineTests`).
///
/// The node's role and everything that belongs to it is one value, `state` (`HARoleState`);
/// besides it the machine keeps only what it learns from the rounds themselves (when the peer
/// was last heard, the witness, the resync back-off). A round whose actions fail is undone by
/// restoring the state the round started from.
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
    /// The role persisted by the last run (nil for a fresh node).
    public let lastRole: HARole?

    public internal(set) var state: HARoleState
    /// The state the current round started from: what `failed()` restores.
    private var roundStart: HARoleState?

    /// With a witness: it was unreachable while the peer was, since the pair was last whole.
    public internal(set) var witnessLost = false
    /// The witness in the last round (nil: none configured).
    public private(set) var lastWitness: Bool?
    /// The peer's last status (a handover checks the follower it names).
    public private(set) var lastPeer: PeerStatus?
    /// The revision the node's current epoch started at, from the last observation (a reunion
    /// winner's revisions must be above everything the loser served).
    var epochStart: Int64 = 0
    /// When the peer was last heard on either channel (nil: never), and since when it has not been.
    private var lastPeerContact: Duration?
    private var peerFailingSince: Duration?
    private var nextResyncAt: Duration = .zero
    private var resyncBackoff: Duration = .seconds(1)
    /// A copy that keeps stopping after this many resumes is re-made.
    static let maxResumes = 3

    /// `lastRole`, `term` and `lastLeader` are what the node persisted before it stopped.
    public init(
        node: String, priority: HAPriority, mode: ReplicationMode, timing: HATiming, lastRole: HARole?, term: UInt64,
        lastLeader: String? = nil
    ) {
        self.node = node
        self.priority = priority
        self.mode = mode
        self.timing = timing
        self.lastRole = lastRole
        state = .starting(.init(term: term, lastLeader: lastLeader.flatMap { $0.isEmpty ? nil : $0 }))
    }

    // MARK: Views of the state

    public var role: HARole { state.role }
    public var term: UInt64 { state.term }
    public var verdict: ReunionVerdict? { state.verdict }

    /// Who this node believes leads (nil: unknown).
    public var leader: String? {
        switch state {
        case .starting(let starting): starting.lastLeader
        case .leading: node
        case .following(let following): following.leader
        }
    }

    /// Whether the leader now waits for the follower on every commit.
    public var synchronous: Bool {
        guard case .leading(let leading) = state else { return false }
        return leading.follower == .attached && mode == .sync
    }

    /// The follower a handover in progress waits for (nil: none).
    public var handingOverTo: String? {
        guard case .leading(let leading) = state, case .handingOver(let target, _) = leading.service else { return nil }
        return target
    }

    /// Why a leader is fenced (nil: not leading, or taking writes).
    public var fence: HARoleState.Leading.FenceReason? {
        guard case .leading(let leading) = state, case .fenced(let reason) = leading.service else { return nil }
        return reason
    }

    /// Where clients are served from in this state (nil: nowhere, they get `Unavailable`).
    public var servingSource: ServingSource? {
        switch state {
        case .starting: nil
        case .leading(let leading): leading.service == .open ? .localDatabase : nil
        case .following(let following): following.stage == .awaitingLeaderTerm ? nil : .leadersDatabase
        }
    }

    public var servesClients: Bool { servingSource != nil }

    /// Whether both channels have failed for `liveness`.
    public func peerDead(at now: Duration) -> Bool {
        guard let since = peerFailingSince else { return false }
        return now - since >= timing.liveness
    }

    // MARK: Rounds

    /// One probe round. The returned actions are carried out in order; if one fails the
    /// controller calls `failed()` and the next round decides again.
    public mutating func step(_ observation: HAObservation) -> [HAAction] {
        track(observation)
        roundStart = state
        switch state {
        case .starting(let starting): return self.starting(starting, observation)
        case .leading(let leading): return self.leading(leading, observation)
        case .following(let following): return self.following(following, observation)
        }
    }

    /// The last round's actions did not all succeed: back to the state the round started from;
    /// a failed resync waits longer before the next try.
    public mutating func failed(now: Duration) {
        if let roundStart { state = roundStart }
        nextResyncAt = now + resyncBackoff
        resyncBackoff = min(resyncBackoff * 2, .seconds(60))
    }

    /// A resync finished: the copy is being made.
    public mutating func resyncStarted() {
        resyncBackoff = .seconds(1)
    }

    /// Whether a broken copy may be re-made now (the back-off after a failed resync has passed).
    func mayResync(at now: Duration) -> Bool { now >= nextResyncAt }

    private mutating func track(_ observation: HAObservation) {
        epochStart = observation.local.epochStart
        lastWitness = observation.local.witness
        if observation.local.witness == false && observation.peer.status == nil { witnessLost = true }
        if let status = observation.peer.status { lastPeer = status }
        if observation.peer.heard {
            lastPeerContact = observation.now
            peerFailingSince = nil
        } else if peerFailingSince == nil {
            // Silent since the last round that heard it, not since the first that did not: the
            // verdict comes `liveness` after the peer was last known alive.
            peerFailingSince = lastPeerContact ?? observation.now
        }
    }

    /// Promotion needs the witness (when one is configured) and no maintenance pause.
    func mayPromote(_ observation: HAObservation) -> Bool {
        observation.local.witness != false && !observation.local.paused
    }

    /// The highest revision the peer's clients can have seen.
    var peerServedRevision: Int64 { lastPeer?.servedRevision ?? 0 }

    // MARK: Transitions into a role

    /// Serve as leader from the local database without a revision bump.
    mutating func lead(now: Duration, reason: String) -> [HAAction] {
        let term = max(state.term, 1)
        state = .leading(.init(term: term, follower: .absent, service: .open, since: now, verdict: state.verdict))
        return [.lead(term: term, reason: reason)]
    }

    /// Take over with a revision bump, at `newTerm` (default: the next term).
    mutating func promote(
        now: Duration, term newTerm: UInt64? = nil, peerMaxRevision: Int64, forkID: Int64? = nil, reason: String
    ) -> [HAAction] {
        let term = newTerm ?? state.term + 1
        state = .leading(.init(term: term, follower: .absent, service: .open, since: now, verdict: state.verdict))
        return [.promote(term: term, peerMaxRevision: peerMaxRevision, forkID: forkID, reason: reason)]
    }

    /// Route to `peer`, which leads, and make a copy of its database.
    mutating func follow(_ peer: PeerStatus, now: Duration, reason: String) -> [HAAction] {
        enterFollowing(leader: peer.node, term: peer.term, stage: .copying, now: now, verdict: state.verdict)
        return [.follow(leader: peer.node, term: peer.term, reason: reason)]
    }

    /// The state change of every transition into following; the caller returns the actions.
    mutating func enterFollowing(leader: String, term: UInt64, stage: HARoleState.Following.Stage, now: Duration, verdict: ReunionVerdict?)
    {
        state = .following(.init(term: term, leader: leader, stage: stage, since: now, verdict: verdict))
        nextResyncAt = .zero
    }

    /// Both nodes serve in agreement again: the split's bookkeeping ends (the caller also
    /// withdraws the verdict its state publishes).
    mutating func pairWhole() {
        witnessLost = false
    }
}

/// Where a serving node answers clients from.
public enum ServingSource: Sendable, Equatable {
    /// Its own database (a leader).
    case localDatabase
    /// The leader's database, as a second kine process there (a follower).
    case leadersDatabase
}
