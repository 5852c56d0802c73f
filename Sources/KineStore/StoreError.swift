import KineCore
import KineSQL

/// How database failures reach etcd clients.
enum StoreError {
    /// A broken connection may or may not have applied the request: etcd's answer for that is
    /// "request timed out" (Unavailable). A statement the server rejected is reported as Unknown
    /// with PostgreSQL's text, as Go kine does.
    static func etcdError(for error: SQLError) -> EtcdError {
        switch error.kind {
        case .connection, .cancelled: return .requestTimedOut
        case .server, .pipelineAborted: return EtcdError(.unknown, error.message)
        }
    }
}
