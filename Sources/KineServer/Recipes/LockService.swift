import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/v3lockpb.Lock/*`: etcd's server-side lock (`v3lock`), a mutex recipe on keys with leases.
///
/// Lock writes `name/<lease in hex>` with the lease (once per lease: locking again with the same
/// lease is the same acquisition), then waits until every key under `name/` created before it
/// is gone; the answer carries that key. Unlock deletes it, as does the lease's expiry.
struct LockService: Sendable {
    let stores: StoreHandle
    let identity: ServerIdentity
    let gate: AuthGate

    func methods() -> [String: GRPCMethod] {
        [
            "/v3lockpb.Lock/Lock": .unary { bytes, context throws(GRPCStatus) in
                let fields = try StatusMapping.decode(bytes) { bytes throws(ProtoError) in
                    try ProtoFields(bytes, message: "v3lockpb.LockRequest")
                }
                return try await StatusMapping.runRecipe { () async throws(EtcdError) in
                    try await lock(name: fields.bytes(1), lease: fields.int64(2), context)
                }
            },
            "/v3lockpb.Lock/Unlock": .unary { bytes, context throws(GRPCStatus) in
                let fields = try StatusMapping.decode(bytes) { bytes throws(ProtoError) in
                    try ProtoFields(bytes, message: "v3lockpb.UnlockRequest")
                }
                return try await StatusMapping.runRecipe { () async throws(EtcdError) in
                    let recipes = KeyRecipes(stores: stores, gate: gate, context: context)
                    var response = ProtoFieldWriter()
                    response.header(1, identity.filled(try await recipes.delete(fields.bytes(1)).header))
                    return response.bytes
                }
            },
        ]
    }

    func lock(name: Bytes, lease requestedLease: Int64, _ context: GRPCCallContext) async throws(EtcdError) -> [UInt8] {
        let recipes = KeyRecipes(stores: stores, gate: gate, context: context)
        let lease = try await recipes.sessionLease(requestedLease)
        let prefix = name + Array("/".utf8)
        let key = KeyRecipes.ownKey(prefix, lease: lease)
        let owner = RequestOp.range(
            RangeRequest(key: prefix, rangeEnd: KeyRange.prefixEnd(prefix), limit: 1, sortOrder: .ascend, sortTarget: .create))
        let attempt = try await recipes.txn(
            TxnRequest(
                compare: [Compare(result: .equal, target: .create, key: key, operand: .createRevision(0))],
                success: [.put(PutRequest(key: key, lease: lease)), owner],
                failure: [.range(RangeRequest(key: key)), owner]))
        var myRevision = attempt.header.revision
        if !attempt.succeeded, case .range(let mine)? = attempt.responses.first, let kv = mine.kvs.first {
            myRevision = kv.createRevision
        }
        var header = attempt.header
        let ownerKV: KeyValue? = {
            guard attempt.responses.count > 1, case .range(let range) = attempt.responses[1] else { return nil }
            return range.kvs.first
        }()
        if let ownerKV, ownerKV.createRevision != myRevision {
            let mine: RangeResponse
            do {
                _ = try await recipes.waitDeletes(prefix, maxCreateRevision: myRevision - 1)
                mine = try await recipes.range(RangeRequest(key: key))
            } catch {
                // As etcd's mutex: a failed or abandoned wait gives the key up.
                // try?: the call already failed; the key still goes with its lease.
                _ = try? await recipes.delete(key)
                throw error
            }
            // The lease expired while waiting: the key is gone.
            if mine.kvs.isEmpty { throw Self.sessionExpired }
            header = mine.header
        }
        var response = ProtoFieldWriter()
        response.header(1, identity.filled(header))
        response.bytes(2, key)
        return response.bytes
    }

    /// etcd's `concurrency.ErrSessionExpired`, which reaches clients as UNKNOWN.
    static let sessionExpired = EtcdError(.unknown, "mutex: session is expired")
}
