import KineCore
import KineHTTP2
import KineStore

/// etcd's client-side concurrency recipes (`clientv3/concurrency`: sessions, mutexes,
/// elections), run inside the server for the Lock and Election services as etcd runs them:
/// plain KV calls made on the caller's behalf, each checked with the caller's permissions.
struct KeyRecipes: Sendable {
    let stores: StoreHandle
    let gate: AuthGate
    let context: GRPCCallContext

    /// A session's default TTL: a lock or campaign without a lease gets a new lease of this many
    /// seconds, which nothing keeps alive (etcd orphans the session at once).
    static let sessionTTL: Int64 = 60

    var store: KineStore { get throws(EtcdError) { try stores.current() } }

    /// The lease to hold the key with: `lease`, or a new one when it is 0.
    func sessionLease(_ lease: Int64) async throws(EtcdError) -> Int64 {
        guard lease == 0 else { return lease }
        let store = try self.store
        try await gate.authorize(context, [], store: store)
        return try await store.leaseGrant(LeaseGrantRequest(ttl: Self.sessionTTL)).id
    }

    func txn(_ request: TxnRequest) async throws(EtcdError) -> TxnResponse {
        let store = try self.store
        return try await store.txn(request, authorize: gate.check(context, AuthRequirement.of(request), auth: store.auth))
    }

    func range(_ request: RangeRequest) async throws(EtcdError) -> RangeResponse {
        let store = try self.store
        return try await store.range(request, authorize: gate.check(context, AuthRequirement.of(request), auth: store.auth))
    }

    func delete(_ key: Bytes) async throws(EtcdError) -> DeleteRangeResponse {
        let store = try self.store
        let request = DeleteRangeRequest(key: key)
        return try await store.deleteRange(request, authorize: gate.check(context, AuthRequirement.of(request), auth: store.auth))
    }

    /// `prefix`'s key owned by `lease`: the prefix and the lease id in hex.
    static func ownKey(_ prefix: Bytes, lease: Int64) -> Bytes {
        prefix + Array(String(UInt64(bitPattern: lease), radix: 16).utf8)
    }

    /// The oldest key under `prefix` (the owner / leader), with the read's header.
    func firstCreated(_ prefix: Bytes) async throws(EtcdError) -> RangeResponse {
        try await range(
            RangeRequest(key: prefix, rangeEnd: KeyRange.prefixEnd(prefix), limit: 1, sortOrder: .ascend, sortTarget: .create))
    }

    /// Waits until no key under `prefix` was created at or before `maxCreateRevision` (every
    /// earlier waiter gave up its key), and returns the header of the read that saw it.
    func waitDeletes(_ prefix: Bytes, maxCreateRevision: Int64) async throws(EtcdError) -> ResponseHeader {
        let request = RangeRequest(
            key: prefix, rangeEnd: KeyRange.prefixEnd(prefix), limit: 1, sortOrder: .descend, sortTarget: .create,
            maxCreateRevision: maxCreateRevision)
        var header = ResponseHeader()
        try await waitUntil { () async throws(EtcdError) -> Bool in
            let response = try await range(request)
            header = response.header
            return response.kvs.isEmpty
        }
        return header
    }

    /// Re-evaluates `done` after every revision the store publishes (and at least every second,
    /// so a store replaced under HA is looked up again) until it holds. Throws when the call is
    /// cancelled (the client went away).
    func waitUntil(_ done: () async throws(EtcdError) -> Bool) async throws(EtcdError) {
        let (wakes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let hub = try store.watchHub
        let token = hub.subscribe { _ in continuation.yield() }
        defer {
            hub.unsubscribe(token)
            continuation.finish()
        }
        let outcome = await withTaskGroup(of: Void.self) { group -> Result<Void, EtcdError> in
            group.addTask {
                while !Task.isCancelled {
                    // try?: cancellation ends the ticker; the loop checks it.
                    try? await Task.sleep(for: .seconds(1))
                    continuation.yield()
                }
            }
            defer { group.cancelAll() }
            var iterator = wakes.makeAsyncIterator()
            while true {
                do throws(EtcdError) {
                    if try await done() { return .success(()) }
                } catch {
                    return .failure(error)
                }
                if Task.isCancelled { return .failure(Self.cancelled) }
                _ = await iterator.next()
            }
        }
        try outcome.get()
    }

    static let cancelled = EtcdError(.cancelled, "context canceled")
}
