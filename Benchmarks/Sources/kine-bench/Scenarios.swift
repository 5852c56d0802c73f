import KineCore
import KineHTTP2
import KineProto
import Synchronization

/// How client `client` picks keys: sequential (op modulo key space) or random.
struct KeyPicker {
    let sequential: Bool
    let space: Int
    var rng: SplitMix64

    init(options: CommonOptions, client: Int) {
        sequential = options.sequentialKeys
        space = options.keySpaceSize
        rng = SplitMix64(seed: 0x5EED &+ UInt64(client) &* 7919)
    }

    mutating func index(op: Int) -> Int {
        sequential ? op % space : Int(rng.next() % UInt64(space))
    }
}

// MARK: put

struct PutScenario: Scenario {
    let name = "put"
    let options: CommonOptions
    let keys: KeyFactory
    let value: Bytes

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let scenario: PutScenario
        var picker: KeyPicker

        mutating func perform(op: Int) async throws -> Duration? {
            let key = scenario.keys.key(picker.index(op: op))
            _ = try await etcd.put(client, PutRequest(key: key, value: scenario.value))
            return nil
        }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        Worker(etcd: etcd, client: index, scenario: self, picker: KeyPicker(options: options, client: index))
    }
}

// MARK: range

struct RangeScenario: Scenario {
    let name: String
    let key: Bytes
    let rangeEnd: Bytes
    let limit: Int64
    let serializable: Bool
    let value: Bytes

    func setup(_ client: EtcdClient) async throws -> [String: Int] {
        // Make sure the key exists so the read returns one KV of --val-size bytes.
        if rangeEnd.isEmpty { _ = try await client.put(0, PutRequest(key: key, value: value)) }
        return [:]
    }

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let request: RangeRequest

        mutating func perform(op: Int) async throws -> Duration? {
            _ = try await etcd.range(client, request)
            return nil
        }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        Worker(
            etcd: etcd, client: index,
            request: RangeRequest(key: key, rangeEnd: rangeEnd, limit: limit, serializable: serializable))
    }
}

// MARK: txn-put

struct TxnPutScenario: Scenario {
    let name = "txn-put"
    let options: CommonOptions
    let keys: KeyFactory
    let value: Bytes
    let txnOps: Int

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let scenario: TxnPutScenario
        var picker: KeyPicker

        mutating func perform(op: Int) async throws -> Duration? {
            var ops: [RequestOp] = []
            for index in 0..<scenario.txnOps {
                let key = scenario.keys.key(picker.index(op: op * scenario.txnOps + index))
                ops.append(.put(PutRequest(key: key, value: scenario.value)))
            }
            let response = try await etcd.txn(client, TxnRequest(success: ops))
            guard response.succeeded else { throw RequestFailure(description: "txn-put: not succeeded") }
            return nil
        }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        Worker(etcd: etcd, client: index, scenario: self, picker: KeyPicker(options: options, client: index))
    }
}

// MARK: txn-mixed

/// etcd's `txn-mixed`: each request is a Txn holding either one Range (over the scenario's
/// prefix, `--limit`) or one Put, in the ratio `--rw-ratio` reads per write.
struct TxnMixedScenario: Scenario {
    let name = "txn-mixed"
    let options: CommonOptions
    let keys: KeyFactory
    let value: Bytes
    let readRatio: Double
    let limit: Int64
    let serializable: Bool
    let prepopulate: Int

    func setup(_ client: EtcdClient) async throws -> [String: Int] {
        let count = min(prepopulate, options.keySpaceSize)
        _ = try await client.populate(
            keys: (0..<count).map(keys.key), value: value, parallelism: options.clients)
        return ["prepopulated_keys": count]
    }

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let scenario: TxnMixedScenario
        var picker: KeyPicker
        var reads = 0
        var writes = 0

        mutating func perform(op: Int) async throws -> Duration? {
            let draw = Double(picker.rng.next() % 1_000_000) / 1_000_000
            if draw < scenario.readRatio {
                let range = RangeRequest(
                    key: scenario.keys.prefix, rangeEnd: scenario.keys.prefixEnd, limit: scenario.limit,
                    serializable: scenario.serializable)
                _ = try await etcd.txn(client, TxnRequest(success: [.range(range)]))
                reads += 1
            } else {
                let key = scenario.keys.key(picker.index(op: op))
                _ = try await etcd.txn(client, TxnRequest(success: [.put(PutRequest(key: key, value: scenario.value))]))
                writes += 1
            }
            return nil
        }

        mutating func finish() async -> [String: Int] { ["reads": reads, "writes": writes] }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        Worker(etcd: etcd, client: index, scenario: self, picker: KeyPicker(options: options, client: index))
    }
}

// MARK: list

/// kube-apiserver's paginated LIST: Range(prefix, limit = page) and then, while `more`, the next
/// page from the last key + "\0" at the first page's revision. One operation = one page; each
/// client walks the whole prefix again and again.
struct ListScenario: Scenario {
    let name = "list"
    let options: CommonOptions
    let prefix: Bytes
    let keyCount: Int
    let pageSize: Int64
    let value: Bytes

    var keys: KeyFactory { KeyFactory(prefix: String(decoding: prefix, as: UTF8.self), keySize: 0, keySpaceSize: keyCount) }

    func setup(_ client: EtcdClient) async throws -> [String: Int] {
        let existing = try await client.range(0, RangeRequest(key: prefix, rangeEnd: KeyRange.prefixEnd(prefix), countOnly: true))
        if existing.count != Int64(keyCount) {
            _ = try await client.populate(keys: (0..<keyCount).map(keys.key), value: value, parallelism: max(options.clients, 16))
        }
        return ["list_keys": keyCount, "page_size": Int(pageSize)]
    }

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let scenario: ListScenario
        var start: Bytes
        var revision: Int64 = 0
        var keysRead = 0
        var fullLists = 0

        mutating func perform(op: Int) async throws -> Duration? {
            let request = RangeRequest(
                key: start, rangeEnd: KeyRange.prefixEnd(scenario.prefix), limit: scenario.pageSize, revision: revision)
            let response = try await etcd.range(client, request)
            keysRead += response.kvs.count
            if response.more, let last = response.kvs.last {
                start = last.key + [0]
                if revision == 0 { revision = response.header.revision }
            } else {
                start = scenario.prefix
                revision = 0
                fullLists += 1
            }
            return nil
        }

        mutating func finish() async -> [String: Int] { ["keys_read": keysRead, "full_lists": fullLists] }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        Worker(etcd: etcd, client: index, scenario: self, start: prefix)
    }
}

// MARK: cas

/// kube-apiserver's GuaranteedUpdate: Txn(MOD(key) == known revision → Put, else → Range(key)).
/// Each client updates its own keys (key i belongs to client i % clients), so conflicts are rare
/// and every failure is a real stale read answered by the Range.
struct CASScenario: Scenario {
    let name = "cas"
    let options: CommonOptions
    let keys: KeyFactory
    let value: Bytes
    let keyCount: Int
    let revisions: Revisions

    final class Revisions: Sendable {
        let values: Mutex<[Int64]>
        init() { values = Mutex([]) }
    }

    func setup(_ client: EtcdClient) async throws -> [String: Int] {
        let revs = try await client.populate(
            keys: (0..<keyCount).map(keys.key), value: value, parallelism: options.clients)
        revisions.values.withLock { $0 = revs }
        return ["cas_keys": keyCount]
    }

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let scenario: CASScenario
        var owned: [(key: Bytes, revision: Int64)]
        var next = 0
        var failures = 0

        mutating func perform(op: Int) async throws -> Duration? {
            let slot = next % owned.count
            next += 1
            let key = owned[slot].key
            let request = TxnRequest(
                compare: [Compare(result: .equal, target: .mod, key: key, operand: .modRevision(owned[slot].revision))],
                success: [.put(PutRequest(key: key, value: scenario.value))],
                failure: [.range(RangeRequest(key: key))])
            let response = try await etcd.txn(client, request)
            if response.succeeded {
                owned[slot].revision = response.header.revision
            } else {
                failures += 1
                if case .range(let range)? = response.responses.first, let kv = range.kvs.first {
                    owned[slot].revision = kv.modRevision
                }
            }
            return nil
        }

        mutating func finish() async -> [String: Int] { ["cas_failures": failures] }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        let all = revisions.values.withLock { $0 }
        var owned: [(key: Bytes, revision: Int64)] = []
        var index2 = index % max(keyCount, 1)
        while index2 < keyCount {
            owned.append((keys.key(index2), all[index2]))
            index2 += options.clients
        }
        if owned.isEmpty { owned = [(keys.key(index % keyCount), all[index % keyCount])] }
        return Worker(etcd: etcd, client: index, scenario: self, owned: owned)
    }
}

// MARK: watch-latency

/// One Watch stream and watcher per client on its own key; each operation Puts that key and
/// records the time from sending the Put to receiving the event. With `putClient` the Puts go
/// through other connections (another server) than the watches.
struct WatchLatencyScenario: Scenario {
    let name = "watch-latency"
    let keys: KeyFactory
    let value: Bytes
    let putClient: EtcdClient?

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let key: Bytes
        let value: Bytes
        /// Where the Puts go.
        let writer: EtcdClient
        let call: GRPCClientBidirectionalCall
        var iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
        var events = 0
        /// Where the time goes: Put round trips, and when the event came relative to the Put's response.
        var putMicros = 0
        var eventAfterAckMicros = 0
        var eventsBeforeAck = 0

        static func timedPut(_ etcd: EtcdClient, _ client: Int, _ request: PutRequest) async throws -> ContinuousClock.Instant {
            _ = try await etcd.put(client, request)
            return .now
        }

        mutating func perform(op: Int) async throws -> Duration? {
            let begin = ContinuousClock.now
            let etcd = self.writer
            let client = self.client
            let request = PutRequest(key: key, value: value)
            async let put = Self.timedPut(etcd, client, request)
            var received: ContinuousClock.Instant?
            while received == nil {
                guard let bytes = try await iterator.next() else {
                    throw RequestFailure(description: "watch stream ended")
                }
                let response = try ProtoDecode.watchResponse(bytes)
                if response.canceled { throw RequestFailure(description: "watch canceled: \(response.cancelReason)") }
                if !response.events.isEmpty {
                    received = .now
                    events += response.events.count
                }
            }
            let acked = try await put
            guard let received else { return nil }
            putMicros += Int(microseconds(acked - begin))
            eventAfterAckMicros += Int(microseconds(received - acked))
            if received < acked { eventsBeforeAck += 1 }
            return received - begin
        }

        mutating func finish() async -> [String: Int] {
            call.cancel()
            return [
                "events": events, "put_us_sum": putMicros, "event_after_ack_us_sum": eventAfterAckMicros,
                "events_before_ack": eventsBeforeAck,
            ]
        }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        let key = keys.key(index)
        let call = etcd.connection(for: index).openBidirectional(path: EtcdPath.watch)
        try await call.send(ProtoEncode.watchRequest(.create(WatchCreateRequest(key: key))))
        var iterator = call.responses.makeAsyncIterator()
        do {
            guard let first = try await iterator.next() else {
                throw RequestFailure(description: "watch stream ended before created")
            }
            let response = try ProtoDecode.watchResponse(first)
            guard response.created else { throw RequestFailure(description: "first watch response is not 'created'") }
        } catch let status as GRPCStatus where status.code == GRPCStatus.Code.unimplemented.rawValue {
            throw ServiceNotAvailable(path: EtcdPath.watch, message: status.message)
        }
        return Worker(
            etcd: etcd, client: index, key: key, value: value, writer: putClient ?? etcd, call: call, iterator: iterator)
    }
}

// MARK: lease-keepalive

/// Each client grants a lease (TTL 100 s) and keeps it alive over one LeaseKeepAlive stream: one
/// operation = one keep-alive request and its response. (etcd's tool opens a stream per
/// keep-alive; a long-lived stream is what clients really do.)
struct LeaseKeepAliveScenario: Scenario {
    let name = "lease-keepalive"

    struct Worker: ScenarioWorker {
        let etcd: EtcdClient
        let client: Int
        let lease: Int64
        let call: GRPCClientBidirectionalCall
        var iterator: AsyncThrowingStream<[UInt8], any Error>.AsyncIterator

        mutating func perform(op: Int) async throws -> Duration? {
            try await call.send(ProtoEncode.leaseKeepAliveRequest(LeaseKeepAliveRequest(id: lease)))
            guard let bytes = try await iterator.next() else { throw RequestFailure(description: "keep-alive stream ended") }
            let response = try ProtoDecode.leaseKeepAliveResponse(bytes)
            guard response.ttl > 0 else { throw RequestFailure(description: "lease \(lease) expired") }
            return nil
        }

        mutating func finish() async -> [String: Int] {
            call.finish()
            call.cancel()
            try? await etcd.leaseRevoke(client, id: lease)
            return [:]
        }
    }

    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker {
        let grant = try await etcd.leaseGrant(index, ttl: 100)
        let call = etcd.connection(for: index).openBidirectional(path: EtcdPath.leaseKeepAlive)
        return Worker(
            etcd: etcd, client: index, lease: grant.id, call: call, iterator: call.responses.makeAsyncIterator())
    }
}
