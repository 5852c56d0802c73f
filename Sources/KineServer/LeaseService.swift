import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/etcdserverpb.Lease/*`.
struct LeaseService: Sendable {
    let stores: StoreHandle
    /// The current epoch's store (looked up per request, never kept).
    private var store: KineStore { get throws(EtcdError) { try stores.current() } }
    let identity: ServerIdentity
    let gate: AuthGate

    func methods() -> [String: GRPCMethod] {
        [
            "/etcdserverpb.Lease/LeaseGrant": .unary { bytes, context throws(GRPCStatus) in try await grant(bytes, context) },
            "/etcdserverpb.Lease/LeaseRevoke": .unary { bytes, context throws(GRPCStatus) in try await revoke(bytes, context) },
            "/etcdserverpb.Lease/LeaseTimeToLive": .unary { bytes, _ throws(GRPCStatus) in try await timeToLive(bytes) },
            "/etcdserverpb.Lease/LeaseLeases": .unary { bytes, _ throws(GRPCStatus) in try await leases(bytes) },
            "/etcdserverpb.Lease/LeaseKeepAlive": .bidirectional { requests, responses, _ throws(GRPCStatus) in
                try await keepAlive(requests, responses)
            },
        ]
    }

    /// Only the token is checked (etcd puts grants through raft, which checks no permission).
    func grant(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.leaseGrantRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            try await gate.authorize(context, [], store: store)
            return try await store.leaseGrant(request)
        }
        identity.fill(&response.header)
        return ProtoEncode.leaseGrantResponse(response)
    }

    /// The caller must be allowed to write every key attached to the lease.
    func revoke(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.leaseRevokeRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            let needs = try await gate.leaseKeyRequirements(request.id, context: context, store: store)
            return try await store.leaseRevoke(request, authorize: gate.check(context, needs, auth: store.auth))
        }
        identity.fill(&response.header)
        return ProtoEncode.leaseRevokeResponse(response)
    }

    func timeToLive(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.leaseTimeToLiveRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.leaseTimeToLive(request) }
        identity.fill(&response.header)
        return ProtoEncode.leaseTimeToLiveResponse(response)
    }

    func leases(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try StatusMapping.decode(bytes, ProtoDecode.leaseLeasesRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.leaseLeases() }
        identity.fill(&response.header)
        return ProtoEncode.leaseLeasesResponse(response)
    }

    /// One response per request, in order, until the client closes its side.
    func keepAlive(_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter) async throws(GRPCStatus) {
        for await message in requests {
            let request = try StatusMapping.decode(message, ProtoDecode.leaseKeepAliveRequest)
            var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.leaseKeepAlive(request) }
            identity.fill(&response.header)
            do {
                try await responses.write(ProtoEncode.leaseKeepAliveResponse(response))
            } catch {
                return  // the stream is gone
            }
        }
    }
}
