import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/etcdserverpb.KV/*` on top of the store.
struct KVService: Sendable {
    let stores: StoreHandle
    /// The current epoch's store (looked up per request, never kept).
    private var store: KineStore { get throws(EtcdError) { try stores.current() } }
    let identity: ServerIdentity
    let gate: AuthGate
    /// etcd's `--max-request-bytes`: larger write requests fail with "request is too large".
    let maxRequestBytes: Int

    func methods() -> [String: GRPCMethod] {
        [
            "/etcdserverpb.KV/Range": .unary { bytes, context throws(GRPCStatus) in try await range(bytes, context) },
            "/etcdserverpb.KV/Put": .unary { bytes, context throws(GRPCStatus) in try await put(bytes, context) },
            "/etcdserverpb.KV/DeleteRange": .unary { bytes, context throws(GRPCStatus) in try await deleteRange(bytes, context) },
            "/etcdserverpb.KV/Txn": .unary { bytes, context throws(GRPCStatus) in try await txn(bytes, context) },
            "/etcdserverpb.KV/Compact": .unary { bytes, context throws(GRPCStatus) in try await compact(bytes, context) },
        ]
    }

    func range(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.rangeRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            return try await store.range(request, authorize: gate.check(context, AuthRequirement.of(request), auth: store.auth))
        }
        identity.fill(&response.header)
        return ProtoEncode.rangeResponse(response)
    }

    func put(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        try checkSize(bytes)
        let request = try StatusMapping.decode(bytes, ProtoDecode.putRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            let needs = AuthRequirement.of(request) + (try await gate.leaseKeyRequirements(request.lease, context: context, store: store))
            return try await store.put(request, authorize: gate.check(context, needs, auth: store.auth))
        }
        identity.fill(&response.header)
        return ProtoEncode.putResponse(response)
    }

    func deleteRange(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        try checkSize(bytes)
        let request = try StatusMapping.decode(bytes, ProtoDecode.deleteRangeRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            return try await store.deleteRange(request, authorize: gate.check(context, AuthRequirement.of(request), auth: store.auth))
        }
        identity.fill(&response.header)
        return ProtoEncode.deleteRangeResponse(response)
    }

    func txn(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        try checkSize(bytes)
        let request = try StatusMapping.decode(bytes, ProtoDecode.txnRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            return try await store.txn(request, authorize: gate.check(context, AuthRequirement.of(request), auth: store.auth))
        }
        identity.fill(&response.header)
        return ProtoEncode.txnResponse(response)
    }

    /// etcd 3.5 checks no permission for Compact, only the token (it goes through raft).
    func compact(_ bytes: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.compactionRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in
            let store = try self.store
            try await gate.authorize(context, [], store: store)
            return try await store.compact(request)
        }
        identity.fill(&response.header)
        return ProtoEncode.compactionResponse(response)
    }

    private func checkSize(_ bytes: [UInt8]) throws(GRPCStatus) {
        if bytes.count > maxRequestBytes { throw StatusMapping.status(.requestTooLarge) }
    }
}
