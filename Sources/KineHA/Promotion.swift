/// Where a promoted node's epoch starts, and where its history forked from the old leader's.
public struct Promotion: Sendable, Equatable {
    /// The first revision the new epoch hands out: above every id the local copy holds, every
    /// revision this node served and every revision the peer served, plus `--ha-revision-bump`
    /// for what the old leader may have acknowledged without this node seeing it (async mode).
    public var epochStart: Int64
    /// The newest id both histories share: a reunion's fork, else the local copy's newest id.
    public var forkID: Int64

    public init(localNewestID: Int64, highestServed: Int64, peerMaxRevision: Int64, bump: Int64, forkID: Int64?) {
        epochStart = max(localNewestID, highestServed, peerMaxRevision) + bump
        self.forkID = forkID ?? localNewestID
    }
}

/// `kine_ha`'s replicated epoch: the newest promotion's term and the fork it recorded.
public struct HAEpoch: Sendable, Equatable {
    public var term: Int64
    public var forkID: Int64

    public init(term: Int64, forkID: Int64) {
        self.term = term
        self.forkID = forkID
    }

    /// A resync from a leader at a newer term saves the rows this node wrote above the leader's
    /// fork (its split writes); a copy of the same term has none of its own.
    public func mustSaveSplitWrites(beforeFollowingTerm leaderTerm: UInt64) -> Bool {
        UInt64(max(term, 0)) < leaderTerm
    }
}
