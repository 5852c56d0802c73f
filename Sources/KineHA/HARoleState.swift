/// Where a node stands in its pair: one case per role, each carrying what only that role has.
/// The published role (`HARole`, persisted and reported) is derived from it, so no flag can
/// contradict the case it belongs to.
public enum HARoleState: Sendable, Equatable {
    /// Just started: serves nothing until it knows who leads.
    case starting(Starting)
    /// Leads from its own database (or is fenced while it does, see `Leading.Service`).
    case leading(Leading)
    /// Routes every request to the leader's database and keeps a copy of it.
    case following(Following)

    /// What the last run persisted, the start-up tie-break's input.
    public struct Starting: Sendable, Equatable {
        public var term: UInt64
        /// The node the last run led or followed (nil: a fresh node).
        public var lastLeader: String?
    }

    public struct Leading: Sendable, Equatable {
        public var term: UInt64
        /// Whether a follower is attached and caught up (`leader`) or not (`leader-alone`); in
        /// sync mode an attached follower is the synchronous standby.
        public var follower: FollowerLink
        public var service: Service
        /// When this leadership began (the hold-down counts from here).
        public var since: Duration
        /// After a split: the reunion verdict this node published, until the pair is whole.
        public var verdict: ReunionVerdict?
        /// Since when the follower's replication connection has not been streaming (nil: it is).
        var replicationMissingSince: Duration?

        public enum FollowerLink: Sendable, Equatable {
            case absent
            case attached
        }

        public enum Service: Sendable, Equatable {
            /// Taking writes.
            case open
            /// Fenced: the database takes no writes and clients get `Unavailable`.
            case fenced(FenceReason)
            /// `kine ha handover`: fenced until `target` has taken over, or `deadline` passes.
            case handingOver(to: String, deadline: Duration)
        }

        public enum FenceReason: Sendable, Equatable {
            /// Neither the peer nor the witness answered for liveness: the peer may have promoted.
            case lostPeerAndWitness
            /// The peer leads too and decides the reunion (it has the higher term or the smaller
            /// name): only one node takes writes while the link is up.
            case awaitingVerdict(from: String)
        }
    }

    public struct Following: Sendable, Equatable {
        public var term: UInt64
        public var leader: String
        public var stage: Stage
        /// When this node started following `leader` (the hold-down counts from here).
        public var since: Duration
        /// After a split: the reunion verdict this node published, until the pair is whole.
        public var verdict: ReunionVerdict?
        /// Consecutive rounds in which the leader reported its own PostgreSQL down.
        var leaderPostgresDownRounds = 0
        /// Resumes of a stopped copy since it was last seen ready.
        var resumes = 0

        public enum Stage: Sendable, Equatable {
            /// A reunion's losing decider: routed to the winner only once it leads at `term`
            /// (its revisions are then above everything this node served); serves nothing until then.
            case awaitingLeaderTerm
            /// Routed; the local copy is still being made or catching up.
            case copying
            /// Routed; the local copy is complete and streaming: this node may take over.
            case copyReady
            /// Re-making the local copy (after a conflict, a lost slot or a reunion); routed meanwhile.
            case resyncing
        }
    }

    /// The role this state publishes and persists.
    public var role: HARole {
        switch self {
        case .starting: .bootstrap
        case .leading(let leading): leading.follower == .attached ? .leader : .leaderAlone
        case .following(let following):
            switch following.stage {
            case .awaitingLeaderTerm, .copying: .followerSyncing
            case .copyReady: .follower
            case .resyncing: .resyncing
            }
        }
    }

    public var term: UInt64 {
        switch self {
        case .starting(let starting): starting.term
        case .leading(let leading): leading.term
        case .following(let following): following.term
        }
    }

    public var verdict: ReunionVerdict? {
        switch self {
        case .starting: nil
        case .leading(let leading): leading.verdict
        case .following(let following): following.verdict
        }
    }
}

/// A reunion's outcome as the deciding node publishes it: who keeps leading, and where the two
/// histories forked.
public struct ReunionVerdict: Sendable, Equatable {
    public var winner: String
    public var forkID: Int64

    public init(winner: String, forkID: Int64) {
        self.winner = winner
        self.forkID = forkID
    }
}
