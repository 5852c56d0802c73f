/// Why the peer's HA port did not give this node its status, in words an operator can act on
/// ("connection refused by 10.77.0.1:2380", not a transport library's error dump).
public enum PeerRPCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection to `address`.
    case connect(address: String, ConnectFailure)
    /// The call was answered with a gRPC error.
    case call(address: String, code: Int, message: String)
    /// The answer could not be decoded.
    case malformed(address: String, detail: String)

    public enum ConnectFailure: Sendable, Equatable {
        /// Nothing listens there (the peer's kine is down, or another port).
        case refused
        /// No answer within the timeout (the host is down, or the network drops packets).
        case timedOut
        /// The network or host is unreachable (no route).
        case unreachable
        /// The TLS handshake failed (certificates, CA or name).
        case tls(String)
        case other(String)
    }

    public var description: String {
        switch self {
        case .connect(let address, .refused): "connection refused by \(address) (is the peer's kine running with this --ha-listen?)"
        case .connect(let address, .timedOut):
            "no connection to \(address) within the probe timeout (peer down or network dropping packets)"
        case .connect(let address, .unreachable): "\(address) is unreachable (no route to the peer)"
        case .connect(let address, .tls(let detail)): "TLS handshake with \(address) failed: \(detail)"
        case .connect(let address, .other(let detail)): "cannot connect to \(address): \(detail)"
        case .call(let address, let code, let message): "peer HA port \(address): \(message) (gRPC code \(code))"
        case .malformed(let address, let detail): "peer HA port \(address) sent a malformed status: \(detail)"
        }
    }
}
