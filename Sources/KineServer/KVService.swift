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
    /// etcd's `--max-request-bytes`: larger write requests fail with "request is too large".
    let maxRequestBytes: Int

    func methods() -> [String: GRPCMethod] {
        [
            "/etcdserverpb.KV/Range": .unary { bytes, _ throws(GRPCStatus) in try await range(bytes) },
            "/etcdserverpb.KV/Put": .unary { bytes, _ throws(GRPCStatus) in try await put(bytes) },
            "/etcdserverpb.KV/DeleteRange": .unary { bytes, _ throws(GRPCStatus) in try await deleteRange(bytes) },
            "/etcdserverpb.KV/Txn": .unary { bytes, _ throws(GRPCStatus) in try await txn(bytes) },
            "/etcdserverpb.KV/Compact": .unary { bytes, _ throws(GRPCStatus) in try await compact(bytes) },
        ]
    }

    func range(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.rangeRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.range(request) }
        identity.fill(&response.header)
        return ProtoEncode.rangeResponse(response)
    }

    func put(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try checkSize(bytes)
        let request = try StatusMapping.decode(bytes, ProtoDecode.putRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.put(request) }
        identity.fill(&response.header)
        return ProtoEncode.putResponse(response)
    }

    func deleteRange(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try checkSize(bytes)
        let request = try StatusMapping.decode(bytes, ProtoDecode.deleteRangeRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.deleteRange(request) }
        identity.fill(&response.header)
        return ProtoEncode.deleteRangeResponse(response)
    }

    func txn(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        try checkSize(bytes)
        let request = try StatusMapping.decode(bytes, ProtoDecode.txnRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.txn(request) }
        identity.fill(&response.header)
        return ProtoEncode.txnResponse(response)
    }

    func compact(_ bytes: [UInt8]) async throws(GRPCStatus) -> [UInt8] {
        let request = try StatusMapping.decode(bytes, ProtoDecode.compactionRequest)
        var response = try await StatusMapping.run { () async throws(EtcdError) in try await store.compact(request) }
        identity.fill(&response.header)
        return ProtoEncode.compactionResponse(response)
    }

    private func checkSize(_ bytes: [UInt8]) throws(GRPCStatus) {
        if bytes.count > maxRequestBytes { throw StatusMapping.status(.requestTooLarge) }
    }
}
