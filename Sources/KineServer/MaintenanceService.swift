import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/etcdserverpb.Maintenance/*`, `/etcdserverpb.Cluster/MemberList` and `grpc.health.v1`:
/// what a single always-leader member answers.
struct MaintenanceService: Sendable {
    let stores: StoreHandle
    /// The current epoch's store (looked up per request, never kept).
    private var store: KineStore { get throws(EtcdError) { try stores.current() } }
    let identity: ServerIdentity
    let gate: AuthGate

    func methods() -> [String: GRPCMethod] {
        [
            "/etcdserverpb.Maintenance/Status": .unary { bytes, _ throws(GRPCStatus) in try await status(bytes) },
            "/etcdserverpb.Maintenance/Alarm": .unary { bytes, context throws(GRPCStatus) in
                try await authorize(context, [])
                return try await alarm(bytes)
            },
            "/etcdserverpb.Maintenance/Defragment": .unary { bytes, context throws(GRPCStatus) in
                try await authorize(context, [.admin])
                return try await defragment(bytes)
            },
            "/etcdserverpb.Maintenance/Hash": .unary { bytes, context throws(GRPCStatus) in
                try await authorize(context, [.admin])
                return try await hash(bytes)
            },
            "/etcdserverpb.Maintenance/HashKV": .unary { bytes, context throws(GRPCStatus) in
                try await authorize(context, [.admin])
                return try await hashKV(bytes)
            },
            "/etcdserverpb.Maintenance/Snapshot": .bidirectional { requests, responses, context throws(GRPCStatus) in
                try await authorize(context, [.admin])
                try await snapshot(requests, responses)
            },
            "/etcdserverpb.Cluster/MemberList": .unary { bytes, context throws(GRPCStatus) in try await memberList(bytes, context) },
            "/grpc.health.v1.Health/Check": .unary { bytes, _ throws(GRPCStatus) in try healthCheck(bytes) },
        ]
    }

    func status(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try StatusMapping.decode(bytes, ProtoDecode.statusRequest)
        let (revision, size, alarms) = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            return (try await store.revisions().current, try await store.databaseSize(), try await store.activeAlarms())
        }
        // etcd lists each active alarm in `errors` as its text form ("memberID:7 alarm:NOSPACE ").
        let response = StatusResponse(
            header: identity.header(revision: revision), version: identity.version, dbSize: size,
            leader: identity.cluster.leaderID, raftIndex: UInt64(max(revision, 0)), raftTerm: identity.raftTerm,
            raftAppliedIndex: UInt64(max(revision, 0)), errors: alarms.map(\.description), dbSizeInUse: size)
        return ProtoEncode.statusResponse(response)
    }

    /// Alarms live in the database (`KineStore.alarm`), shared by every kine process and both HA nodes.
    func alarm(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.alarmRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.alarm(request) }
        response.header = identity.header(revision: response.header.revision)
        return ProtoEncode.alarmResponse(response)
    }

    /// A server-streaming call: the one request, then the snapshot's chunks (`KineStore.snapshot`).
    func snapshot(_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter) async throws(GRPCStatus) {
        var iterator = requests.makeAsyncIterator()
        guard let first = await iterator.next() else { return }
        try StatusMapping.decode(first, ProtoDecode.snapshotRequest)
        try await StatusMapping.run { () async throws(EtcdError) in
            try await store.snapshot { chunk in try await responses.write(ProtoEncode.snapshotResponse(chunk)) }
        }
    }

    func hash(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try StatusMapping.decode(bytes, ProtoDecode.hashRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.hash() }
        response.header = identity.header(revision: response.header.revision)
        return ProtoEncode.hashResponse(response)
    }

    func hashKV(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        let revision = try StatusMapping.decode(bytes, ProtoDecode.hashKVRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.hashKV(revision: revision) }
        response.header = identity.header(revision: response.header.revision)
        return ProtoEncode.hashKVResponse(response)
    }

    /// PostgreSQL's autovacuum does what defragmentation does for bbolt; answer success. etcd's
    /// DefragmentResponse carries no header: the empty message.
    func defragment(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try StatusMapping.decode(bytes, ProtoDecode.defragmentRequest)
        _ = try await currentRevision()
        return []
    }

    /// A single node lists itself alone, advertising the URL the client reached it by (as Go
    /// kine does); an HA node lists both nodes of the pair. As in etcd, the header carries no
    /// revision; the store is still asked for one, so a node without a serving store fails the
    /// call as etcd without a leader does.
    func memberList(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        _ = try StatusMapping.decode(bytes, ProtoDecode.memberListRequest)
        _ = try await currentRevision()
        let url = context.authority.isEmpty ? identity.clientURL : "http://\(context.authority)"
        var members = identity.cluster.members.map { Member(id: $0.id, name: $0.name, peerURLs: $0.peerURLs, clientURLs: $0.clientURLs) }
        if members.isEmpty {
            members = [Member(id: identity.memberID, name: identity.name, peerURLs: [url], clientURLs: [url])]
        }
        return ProtoEncode.memberListResponse(MemberListResponse(header: identity.header(revision: 0), members: members))
    }

    func healthCheck(_ bytes: [UInt8]) throws(GRPCStatus) -> [UInt8] {
        _ = try StatusMapping.decode(bytes, ProtoDecode.healthCheckRequest)
        return ProtoEncode.healthCheckResponse(.serving)
    }

    /// etcd: Defragment, Snapshot, Hash and HashKV need the root role; Alarm (through raft)
    /// checks only the token; Status and MemberList check nothing.
    /// etcd's maintenance server returns the auth package's own errors, not their gRPC forms:
    /// clients see UNKNOWN "auth: permission denied", "auth: user name is empty", ...
    private func authorize(_ context: GRPCCallContext, _ requirements: [AuthRequirement]) async throws(GRPCStatus) {
        try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            do throws(EtcdError) {
                try await gate.authorize(context, requirements, store: store)
            } catch {
                guard requirements.contains(.admin) else { throw error }
                throw error.unconvertedAuthError
            }
        }
    }

    private func currentRevision() async throws(GRPCStatus) -> Int64 {
        try await StatusMapping.run { () async throws(EtcdError) in try await store.revisions().current }
    }
}
