/// What the controller must do; each one changes the database the node serves from or its
/// replication, and the controller persists role and term before it serves in the new role.
public enum HAAction: Sendable, Equatable {
    /// Serve as leader from the local database at `term` (no revision bump: nobody else led since).
    case lead(term: UInt64, reason: String)
    /// Take over: detach the copy, bump revisions above everything seen (`peerMaxRevision`
    /// included), open the local database for writes, serve at `term`. `forkID` is where the
    /// histories forked when it is not the local newest id (a reunion's winner).
    case promote(term: UInt64, peerMaxRevision: Int64, forkID: Int64? = nil, reason: String)
    /// Stop taking writes at once: fence the local database, end the store's sessions, serve
    /// nothing (clients get `Unavailable`) until the next action serves again.
    case stepDown(reason: String)
    /// Both nodes lead (after a split) and this node decides: compute the reunion from both
    /// databases and hand the decision to `reunionDecided`.
    case decideReunion(peer: PeerStatus)
    /// Route every request to `leader`'s database and follow it at `term`.
    case follow(leader: String, term: UInt64, reason: String)
    /// Re-make the local copy from the leader (save what only this node has, empty, subscribe).
    case resync(reason: String)
    /// Re-enable a copy that stopped (after a lost connection it simply continues).
    case resumeCopy(reason: String)
    /// Add to the copy the tables the leader's publication gained since it was made, copying
    /// their rows (the rest of the copy streams on untouched).
    case refreshCopy(reason: String)
    /// As leader: wait for the follower on every commit (true) or not.
    case setSynchronous(Bool, reason: String)
    /// The role changed without any I/O (e.g. the copy became ready): persist it.
    case persist(reason: String)
}

extension HAAction: CustomStringConvertible {
    /// The action as the controller logs it.
    public var description: String {
        switch self {
        case .lead(let term, let reason): "leading at term \(term): \(reason)"
        case .promote(let term, _, _, let reason): "promoting to term \(term): \(reason)"
        case .stepDown(let reason): "stepping down: \(reason)"
        case .decideReunion(let peer): "both nodes lead (peer \(peer.node) at term \(peer.term)): deciding the reunion"
        case .follow(let leader, let term, let reason): "following \(leader) at term \(term): \(reason)"
        case .resync(let reason): "resyncing the local copy: \(reason)"
        case .resumeCopy(let reason): "resuming the local copy: \(reason)"
        case .refreshCopy(let reason): "adding the leader's new tables to the local copy: \(reason)"
        case .setSynchronous(let on, let reason): "synchronous replication \(on ? "on" : "off"): \(reason)"
        case .persist(let reason): "role change: \(reason)"
        }
    }
}
