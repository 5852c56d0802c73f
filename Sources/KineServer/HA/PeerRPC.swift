import KineCore
import KineHA
import KineHTTP2
import KineProto
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Channel A: this node's client of the peer's HA service, reconnecting as needed. Connections
/// it drops are closed by the controller's cleanup queue, never by a task of their own.
final class PeerRPC: Sendable {
    private let host: String
    private let port: Int
    private let timeout: Duration
    private let tls: GRPCTLSConfiguration?
    private let cleanup: CleanupQueue
    private let connection = Mutex<GRPCClientConnection?>(nil)

    init(host: String, port: Int, timeout: Duration, tls: GRPCTLSConfiguration?, cleanup: CleanupQueue) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
        self.cleanup = cleanup
    }

    private var address: String { "\(host):\(port)" }

    /// The peer's status, or why it did not answer within the timeout.
    func status(_ request: HAStatusRequest) async -> PeerAnswer {
        let connection: GRPCClientConnection
        if let open = self.connection.withLock({ $0 }), open.isActive {
            connection = open
        } else {
            do {
                connection = try await GRPCClientConnection.connect(host: host, port: port, connectTimeout: timeout, tls: tls)
            } catch {
                return .failed(.connect(address: address, PeerRPCError.ConnectFailure(error)))
            }
            let previous = self.connection.withLock { current in
                defer { current = connection }
                return current
            }
            if let previous { await cleanup.submit { await previous.close() } }
        }
        do {
            let bytes = try await connection.unary(
                path: PeerService.statusPath, request: ProtoEncode.haStatusRequest(request), timeout: timeout)
            let status = try ProtoDecode.haStatus(bytes)
            guard let peer = status.peerStatus else { return .unknownRole(node: status.node, role: status.role) }
            return .status(peer)
        } catch let status as GRPCStatus {
            if status.code == GRPCStatusCode.unavailable.rawValue || status.code == GRPCStatusCode.deadlineExceeded.rawValue {
                await drop(connection)
            }
            if status.code == GRPCStatusCode.deadlineExceeded.rawValue { return .timedOut }
            return .failed(.call(address: address, code: Int(status.code), message: status.message))
        } catch {
            return .failed(.malformed(address: address, detail: "\(error)"))
        }
    }

    private func drop(_ failed: GRPCClientConnection) async {
        let dropped = connection.withLock { current -> GRPCClientConnection? in
            guard current === failed else { return nil }
            current = nil
            return failed
        }
        if let dropped { await cleanup.submit { await dropped.close() } }
    }

    func close() async {
        let current = connection.withLock { current in
            defer { current = nil }
            return current
        }
        await current?.close()
    }
}

extension PeerRPCError.ConnectFailure {
    /// What a failed connect means, from the transport's error.
    init(_ error: any Error) {
        if let error = error as? NIOConnectionError {
            // Every address tried failed: one that refused shows the host is up (what the witness
            // check asks), else the first one's reason is the one to show.
            let reasons = error.connectionErrors.map { Self($0.error) }
            self = reasons.contains(.refused) ? .refused : reasons.first ?? .other("no address to connect to for \(error.host)")
        } else if let error = error as? IOError {
            switch error.errnoCode {
            case ECONNREFUSED: self = .refused
            case ETIMEDOUT: self = .timedOut
            case EHOSTUNREACH, ENETUNREACH: self = .unreachable
            default: self = .other("\(error)")
            }
        } else if let error = error as? ChannelError, case .connectTimeout = error {
            self = .timedOut
        } else if error is NIOSSLError || error is BoringSSLError {
            self = .tls("\(error)")
        } else {
            self = .other("\(error)")
        }
    }
}

/// A failed connect to `address` in an operator's words (`kine ha` commands print it).
public func describeConnectFailure(_ error: any Error, address: String) -> String {
    PeerRPCError.connect(address: address, PeerRPCError.ConnectFailure(error)).description
}

extension HAStatus {
    /// The parts the role machine decides on; nil for a status it cannot read (unknown role).
    var peerStatus: PeerStatus? {
        guard let role = HARole(rawValue: role) else { return nil }
        return PeerStatus(
            node: node, role: role, term: term, leader: leader, postgresUp: postgresUp, hasData: hasData,
            copy: CopyState(rawValue: subscription) ?? .none, maxRevision: maxRevision, highestServed: highestServed,
            priority: HAPriority(rawValue: priority) ?? .secondary, schemaVersion: schemaVersion, maxID: localMaxID,
            reunionWinner: reunionWinner, reunionForkID: reunionForkID, witnessLost: witnessLost, handoverTo: handoverTo,
            lastWriteUnixMilliseconds: lastWriteUnixMilliseconds,
            pause: HAPause(untilUnixMilliseconds: pausedUntilUnixMilliseconds, setUnixMilliseconds: pauseSetUnixMilliseconds))
    }
}
