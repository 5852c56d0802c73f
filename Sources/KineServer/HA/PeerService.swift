import Foundation
import KineCore
import KineHA
import KineHTTP2
import KineProto
import KineStore
import Synchronization

/// The node's HA status as the controller last recorded it.
final class HAStatusBoard: Sendable {
    private let status = Mutex(HAStatus())
    private let stores: StoreHandle

    init(stores: StoreHandle) {
        self.stores = stores
    }

    @discardableResult
    func update<Result>(_ body: (inout HAStatus) -> Result) -> Result {
        status.withLock { body(&$0) }
    }

    /// The recorded status with this moment's clock and served revision.
    func snapshot() -> HAStatus {
        var snapshot = status.withLock { $0 }
        snapshot.clockUnixMilliseconds = Int64(Date().timeIntervalSince1970 * 1000)
        if let revision = stores.epoch?.store.watchHub.revision { snapshot.maxRevision = revision }
        return snapshot
    }
}

/// `/kine.ha.v1.Peer/*` on the HA port: what the peer's prober and `kine ha status` read, and
/// the operator's pause, resume and handover.
struct PeerService: Sendable {
    let board: HAStatusBoard
    let commands: HACommands
    let defaultHandoverTimeout: Duration

    static let statusPath = "/kine.ha.v1.Peer/Status"
    static let pausePath = "/kine.ha.v1.Peer/Pause"
    static let handoverPath = "/kine.ha.v1.Peer/Handover"

    func methods() -> [String: GRPCMethod] {
        [
            Self.statusPath: .unary { bytes, _ throws(GRPCStatus) in
                _ = try StatusMapping.decode(bytes, ProtoDecode.haStatusRequest)
                return ProtoEncode.haStatus(board.snapshot())
            },
            Self.pausePath: .unary { bytes, _ throws(GRPCStatus) in
                let request = try StatusMapping.decode(bytes, ProtoDecode.haPauseRequest)
                let pause = commands.setPause(
                    untilUnixMilliseconds: max(request.untilUnixMilliseconds, 0), nowUnixMilliseconds: Self.wallClock())
                board.update { status in
                    status.pausedUntilUnixMilliseconds = pause.untilUnixMilliseconds
                    status.pauseSetUnixMilliseconds = pause.setUnixMilliseconds
                    status.paused = pause.inForce(atUnixMilliseconds: Self.wallClock())
                }
                return ProtoEncode.haStatus(board.snapshot())
            },
            Self.handoverPath: .unary { bytes, _ throws(GRPCStatus) in
                let request = try StatusMapping.decode(bytes, ProtoDecode.haHandoverRequest)
                let timeout = request.timeoutMilliseconds > 0 ? Duration.milliseconds(request.timeoutMilliseconds) : defaultHandoverTimeout
                if case .failure(let error) = await commands.requestHandover(timeout: timeout) {
                    throw GRPCStatus(.failedPrecondition, "handover refused: \(error)")
                }
                return ProtoEncode.haStatus(board.snapshot())
            },
        ]
    }

    static func wallClock() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// Member ids and the write lock of a pair.
enum HAIdentity {
    /// A node's etcd member id, the same on both nodes (derived from its name).
    static func memberID(_ node: String) -> UInt64 { ServerIdentity.stableID("kine-ha-member:\(node)") }
    /// The advisory lock every kine writer takes: the promotion's bump takes it too.
    static let writeLockKey = KineStore.writeLockKey
}

extension ServerIdentity {
    /// The identity of one node of a pair: its member id from its name; the controller adds the
    /// peer to the members once it has learned its name.
    func forPair(_ ha: HAConfiguration) -> ServerIdentity {
        let view = ClusterView(term: 0, leaderID: 0, members: [Self.member(ha.nodeName, peerURL: "\(ha.listen)", clientURL: clientURL)])
        return ServerIdentity(
            clusterID: ServerIdentity.stableID("kine-ha-cluster:\(ha.peerEndpoint)|\(ha.nodeName)"),
            memberID: HAIdentity.memberID(ha.nodeName), name: ha.nodeName, version: version, clientURL: clientURL, cluster: view)
    }

    static func member(_ node: String, peerURL: String, clientURL: String?) -> ClusterView.Member {
        ClusterView.Member(id: HAIdentity.memberID(node), name: node, peerURLs: [peerURL], clientURLs: clientURL.map { [$0] } ?? [])
    }
}
