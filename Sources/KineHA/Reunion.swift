/// `--ha-reunion`: how two leaders that meet again (after a network split) pick the one that
/// keeps leading, after the rules that need no policy.
public enum ReunionPolicy: String, Sendable, Hashable, CaseIterable {
    /// The node with the most recent write of its own (the seed's "most recent state change");
    /// within the clock-skew bound the next rule decides.
    case newest
    /// The node that led before the split.
    case incumbent
    /// The node promoted during the split (the higher term).
    case promoted
}

/// One side of a reunion, as both nodes compute it from both databases.
public struct ReunionCandidate: Sendable, Equatable {
    public var node: String
    public var term: UInt64
    public var priority: HAPriority
    /// Rows this node wrote itself after the fork (0: it was down, or only followed).
    public var writesSinceFork: Int64
    /// Commit time of its newest write after the fork, in Unix milliseconds (0: none or unknown).
    public var lastWriteUnixMilliseconds: Int64
    /// With a witness configured, whether this node reached it throughout the split (nil: no witness).
    public var reachedWitness: Bool?

    public init(
        node: String, term: UInt64, priority: HAPriority, writesSinceFork: Int64, lastWriteUnixMilliseconds: Int64 = 0,
        reachedWitness: Bool? = nil
    ) {
        self.node = node
        self.term = term
        self.priority = priority
        self.writesSinceFork = writesSinceFork
        self.lastWriteUnixMilliseconds = lastWriteUnixMilliseconds
        self.reachedWitness = reachedWitness
    }
}

public struct ReunionDecision: Sendable, Equatable {
    /// Which rule decided (docs/ha.md, "Reunion").
    public enum Rule: String, Sendable, Hashable {
        case onlyOneWrote = "only one side wrote since the fork"
        case witness = "only one side reached the witness"
        case newest = "newest write"
        case incumbent = "led before the split"
        case promoted = "promoted during the split"
        case priority = "priority"
        case name = "node name"
    }

    public var winner: String
    public var loser: String
    public var rule: Rule

    public init(winner: String, loser: String, rule: Rule) {
        self.winner = winner
        self.loser = loser
        self.rule = rule
    }
}

/// The reunion rule of HA.md as a pure function of both sides: both nodes compute it from the
/// same inputs and reach the same answer, whichever side asks (`decide(a, b) == decide(b, a)`).
public enum Reunion {
    public static func decide(
        _ first: ReunionCandidate, _ second: ReunionCandidate, policy: ReunionPolicy, maxClockSkew: Duration = .seconds(2)
    ) -> ReunionDecision {
        func win(_ winner: ReunionCandidate, _ rule: ReunionDecision.Rule) -> ReunionDecision {
            ReunionDecision(winner: winner.node, loser: winner.node == first.node ? second.node : first.node, rule: rule)
        }
        // 1. A side with nothing of its own since the fork loses: nothing of it is lost.
        if (first.writesSinceFork == 0) != (second.writesSinceFork == 0) {
            return win(first.writesSinceFork > 0 ? first : second, .onlyOneWrote)
        }
        // 2. A side that lost the witness was the isolated one.
        if let a = first.reachedWitness, let b = second.reachedWitness, a != b {
            return win(a ? first : second, .witness)
        }
        // 3. The policy.
        switch policy {
        case .newest:
            let skew = Int64(maxClockSkew.components.seconds) * 1000 + maxClockSkew.components.attoseconds / 1_000_000_000_000_000
            let difference = first.lastWriteUnixMilliseconds - second.lastWriteUnixMilliseconds
            if abs(difference) > skew { return win(difference > 0 ? first : second, .newest) }
        case .incumbent:
            if first.term != second.term { return win(first.term < second.term ? first : second, .incumbent) }
        case .promoted:
            if first.term != second.term { return win(first.term > second.term ? first : second, .promoted) }
        }
        // 4. Priority, then the name.
        if first.priority != second.priority { return win(first.priority == .primary ? first : second, .priority) }
        return win(first.node < second.node ? first : second, .name)
    }
}

extension Reunion {
    /// Where the two histories forked: the fork the higher term's promotion recorded (on a tie
    /// of terms, the later of the two). Both nodes read the same two epochs.
    public static func fork(local: HAEpoch, peer: HAEpoch) -> Int64 {
        if local.term == peer.term { return max(local.forkID, peer.forkID) }
        return local.term > peer.term ? local.forkID : peer.forkID
    }
}

extension ReunionCandidate {
    /// One side as the decider sees it: its newest write counts only when it wrote since the
    /// fork, and the witness only when one is configured.
    public init(
        node: String, term: UInt64, priority: HAPriority, writesSinceFork: Int64, newestWriteUnixMilliseconds: Int64,
        witnessConfigured: Bool, lostWitness: Bool
    ) {
        self.init(
            node: node, term: term, priority: priority, writesSinceFork: writesSinceFork,
            lastWriteUnixMilliseconds: writesSinceFork > 0 ? newestWriteUnixMilliseconds : 0,
            reachedWitness: witnessConfigured ? !lostWitness : nil)
    }
}
