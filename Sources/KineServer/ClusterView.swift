import Synchronization

/// Who leads and which members exist, as etcd's Status and MemberList report them. A single
/// node is its own leader at a fixed term; an HA node's controller updates it on every role change.
public final class ClusterView: Sendable {
    public struct Member: Sendable, Equatable {
        public var id: UInt64
        public var name: String
        public var peerURLs: [String]
        public var clientURLs: [String]

        public init(id: UInt64, name: String, peerURLs: [String], clientURLs: [String]) {
            self.id = id
            self.name = name
            self.peerURLs = peerURLs
            self.clientURLs = clientURLs
        }
    }

    private struct State: Sendable {
        var term: UInt64
        var leaderID: UInt64
        var members: [Member]
    }

    private let state: Mutex<State>

    public init(term: UInt64, leaderID: UInt64, members: [Member] = []) {
        state = Mutex(State(term: term, leaderID: leaderID, members: members))
    }

    public var term: UInt64 { state.withLock { $0.term } }
    /// 0 while no leader is known.
    public var leaderID: UInt64 { state.withLock { $0.leaderID } }
    /// Empty for a single node (MemberList then lists this member alone, with the URL the client used).
    public var members: [Member] { state.withLock { $0.members } }

    public func update(term: UInt64, leaderID: UInt64) {
        state.withLock { state in
            state.term = term
            state.leaderID = leaderID
        }
    }

    public func setMembers(_ members: [Member]) {
        state.withLock { $0.members = members }
    }
}
