import Foundation
import KineCore
import KineHA
import KineHTTP2
import KinePostgres
import KineProto
import KineSQL
import KineSync
import Logging
import Synchronization

/// Channel A: this node's client of the peer's HA service, reconnecting as needed.
final class PeerRPC: Sendable {
    private let host: String
    private let port: Int
    private let timeout: Duration
    private let tls: GRPCTLSConfiguration?
    private let connection = Mutex<GRPCClientConnection?>(nil)

    init(host: String, port: Int, timeout: Duration, tls: GRPCTLSConfiguration?) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tls = tls
    }


    /// The peer's status, or the error that kept it from answering within the timeout.
    func status(_ request: HAStatusRequest) async -> Result<HAStatus, PeerProbeError> {
        let connection: GRPCClientConnection
        if let open = self.connection.withLock({ $0 }), open.isActive {
            connection = open
        } else {
            do {
                connection = try await GRPCClientConnection.connect(host: host, port: port, connectTimeout: timeout, tls: tls)
            } catch {
                return .failure(PeerProbeError("cannot connect to the peer's HA port \(host):\(port): \(error)"))
            }
            let previous = self.connection.withLock { current in
                defer { current = connection }
                return current
            }
            if let previous { Task { await previous.close() } }
        }
        do {
            let bytes = try await connection.unary(path: PeerService.statusPath, request: ProtoEncode.haStatusRequest(request), timeout: timeout)
            return .success(try ProtoDecode.haStatus(bytes))
        } catch let status as GRPCStatus {
            if status.code == GRPCStatusCode.unavailable.rawValue || status.code == GRPCStatusCode.deadlineExceeded.rawValue {
                drop(connection)
            }
            return .failure(PeerProbeError("peer HA port \(host):\(port): \(status.message) (gRPC code \(status.code))"))
        } catch {
            return .failure(PeerProbeError("peer HA port \(host):\(port) sent a malformed status: \(error)"))
        }
    }

    private func drop(_ failed: GRPCClientConnection) {
        let dropped = connection.withLock { current -> GRPCClientConnection? in
            guard current === failed else { return nil }
            current = nil
            return failed
        }
        if let dropped { Task { await dropped.close() } }
    }

    func close() {
        let current = connection.withLock { current in
            defer { current = nil }
            return current
        }
        if let current { Task { await current.close() } }
    }
}

struct PeerProbeError: Error, CustomStringConvertible, Sendable {
    var description: String
    init(_ description: String) { self.description = description }
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
            lastWriteUnixMilliseconds: lastWriteUnixMilliseconds)
    }
}
