import KineCore
import KineSQL

/// Every key and range a batch of writes may read, so the Writer can load them all in the
/// round trip that also takes the lock.
struct PrefetchPlan {
    /// Client keys whose latest row (tombstones included) is needed.
    var keys = Set<Bytes>()
    /// Client ranges whose live keys are needed.
    var ranges = Set<KeyRange>()
    var historic = Set<HistoricRange>()
    /// Leases named by puts and revokes.
    var leases = Set<Int64>()
    /// Whether expired leases (and their keys) must be loaded.
    var expiredLeases = false
    /// Whether a txn reads at a past revision (it needs the compacted revision and history).
    var readsHistory = false

    init(_ requests: some Sequence<WriteRequest>) {
        for request in requests {
            switch request {
            case .put(let put): add(put)
            case .deleteRange(let delete): add(KeyRange(key: delete.key, rangeEnd: delete.rangeEnd))
            case .txn(let txn): add(txn)
            case .revokeLease(let id): leases.insert(id)
            case .expireLeases: expiredLeases = true
            }
        }
    }

    private mutating func add(_ put: PutRequest) {
        keys.insert(put.key)
        if put.lease != 0 { leases.insert(put.lease) }
    }

    private mutating func add(_ range: KeyRange) {
        guard !range.isEmpty else { return }
        if case .single(let key) = range { keys.insert(key) } else { ranges.insert(range) }
    }

    private mutating func add(_ txn: TxnRequest) {
        for compare in txn.compare { add(KeyRange(key: compare.key, rangeEnd: compare.rangeEnd)) }
        for op in txn.success + txn.failure {
            switch op {
            case .range(let range):
                let keyRange = KeyRange(key: range.key, rangeEnd: range.rangeEnd)
                if range.revision != 0 {
                    readsHistory = true
                }
                if range.revision > 0 {
                    if !keyRange.isEmpty { historic.insert(HistoricRange(range: keyRange, revision: range.revision)) }
                } else {
                    add(keyRange)
                }
            case .put(let put): add(put)
            case .deleteRange(let delete): add(KeyRange(key: delete.key, rangeEnd: delete.rangeEnd))
            case .txn(let inner): add(inner)
            case .empty: break
            }
        }
    }

    /// Whether the batch needs leases (and their keys) from `kine_leases`.
    var loadsLeases: Bool { !leases.isEmpty || expiredLeases }

    /// Whether the read cache has all the batch needs: keys and ranges at the current revision,
    /// no leases (they live in `kine_leases`, not in the cache) and no history.
    var servableFromCache: Bool { !loadsLeases && !readsHistory }

    /// Where `load(into:sql:)` put each of the plan's reads in the pipeline.
    struct Slots {
        var leases: SQLSlot<[LeaseRow]>?
        var leasedKeys: SQLSlot<[StoredRow]>?
        var keys: SQLSlot<[StoredRow]>?
        var ranges: [SQLSlot<[StoredRow]>] = []
        var historic: [(range: HistoricRange, slot: SQLSlot<[StoredRow]>)] = []
    }

    /// Adds the reads the plan needs to `pipeline` (after `BEGIN`, the lock and the header).
    func load(into pipeline: inout SQLPipeline, sql: StoreSQL) -> Slots {
        var slots = Slots()
        if loadsLeases {
            slots.leases = pipeline.add(StoreSQL.leases(Array(leases), includeExpired: expiredLeases))
            slots.leasedKeys = pipeline.add(StoreSQL.leasedKeys(Array(leases), includeExpired: expiredLeases))
        }
        if !keys.isEmpty { slots.keys = pipeline.add(sql.latestOfNames(keys.map(KeyMapping.name(forKey:)))) }
        slots.ranges = ranges.map { pipeline.add(sql.liveRows(KeyMapping.nameRange($0), revision: 0)) }
        slots.historic = historic.map { ($0, pipeline.add(sql.liveRows(KeyMapping.nameRange($0.range), revision: $0.revision))) }
        return slots
    }

    /// Builds the KeySpace from the header and what `load(into:sql:)` read, and lists the loaded
    /// leases that have expired.
    func keySpace(header: StoreHeader, results: SQLPipelineResults, slots: Slots) -> (KeySpace, [Int64]) {
        var space = KeySpace(
            currentRevision: header.currentRevision, compactRevision: header.compactRevision, nextRowID: header.newestID + 1)
        var expired: [Int64] = []
        for lease in slots.leases.map({ results[$0] }) ?? [] {
            space.leases[lease.id] = lease.ttl
            if lease.expired { expired.append(lease.id) }
        }
        for stored in slots.leasedKeys.map({ results[$0] }) ?? [] {
            space.states[stored.keyValue.key] = KeyState(kv: stored.keyValue, rowID: stored.id, deleted: false)
        }
        for stored in slots.keys.map({ results[$0] }) ?? [] {
            space.states[stored.keyValue.key] = KeyState(kv: stored.keyValue, rowID: stored.id, deleted: stored.deleted)
        }
        for slot in slots.ranges {
            for stored in results[slot] where space.states[stored.keyValue.key] == nil {
                space.states[stored.keyValue.key] = KeyState(kv: stored.keyValue, rowID: stored.id, deleted: false)
            }
        }
        for (range, slot) in slots.historic { space.historic[range] = results[slot].map(\.keyValue) }
        return (space, expired)
    }
}
