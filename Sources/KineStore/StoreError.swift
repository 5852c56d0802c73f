import KineCore
import KineSQL

/// How database failures reach etcd clients.
enum StoreError {
    /// A broken connection may or may not have applied the request: etcd's answer for that is
    /// "request timed out" (Unavailable). So is a session the server ended (an operator, or an HA
    /// node stepping down: SQLSTATE class 57) and a write refused by a read-only database (an HA
    /// node fenced while it stops being the leader, 25006): etcd answers a member that cannot
    /// reach its leader with Unavailable, and clients retry elsewhere. Any other statement the
    /// server rejected is reported as Unknown with PostgreSQL's text, as Go kine does.
    static func etcdError(for error: SQLError) -> EtcdError {
        switch error.kind {
        case .connection, .cancelled: return .requestTimedOut
        case .server, .pipelineAborted:
            if let state = error.sqlState, state.hasPrefix("57") || state == "25006" { return .requestTimedOut }
            return EtcdError(.unknown, error.message)
        }
    }
}
