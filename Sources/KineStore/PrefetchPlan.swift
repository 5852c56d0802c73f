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

    /// The statements that load the plan, after `BEGIN`, the lock and the header.
    var loadsLeases: Bool { !leases.isEmpty || expiredLeases }

    /// Whether the read cache has all the batch needs: keys and ranges at the current revision,
    /// no leases (they live in `kine_leases`, not in the cache) and no history.
    var servableFromCache: Bool { !loadsLeases && !readsHistory }

    func statements(_ sql: StoreSQL) -> (statements: [SQLStatement], ranges: [KeyRange], historic: [HistoricRange]) {
        var statements: [SQLStatement] = []
        if loadsLeases {
            statements.append(StoreSQL.leases(Array(leases), includeExpired: expiredLeases))
            statements.append(StoreSQL.leasedKeys(Array(leases), includeExpired: expiredLeases))
        }
        if !keys.isEmpty { statements.append(sql.latestOfNames(keys.map(KeyMapping.name(forKey:)))) }
        let ranges = Array(ranges)
        for range in ranges { statements.append(sql.liveRows(KeyMapping.nameRange(range), revision: 0)) }
        let historic = Array(historic)
        for item in historic { statements.append(sql.liveRows(KeyMapping.nameRange(item.range), revision: item.revision)) }
        return (statements, ranges, historic)
    }

    /// Builds the KeySpace from the header and the results of `statements(_:)`, and lists the
    /// loaded leases that have expired.
    func keySpace(header: SQLResult, loads: ArraySlice<SQLResult>, ranges: [KeyRange], historic: [HistoricRange]) -> (KeySpace, [Int64]) {
        let row = header.rows.first
        var space = KeySpace(currentRevision: row?.int64(0) ?? 0, compactRevision: row?.int64(1) ?? 0, nextRowID: (row?.int64(2) ?? 0) + 1)
        var results = loads.makeIterator()
        var expired: [Int64] = []
        func rows() -> [StoredRow] { results.next()?.rows.compactMap { StoredRow($0) } ?? [] }
        if loadsLeases {
            for lease in results.next()?.rows ?? [] {
                space.leases[lease.int64(0)] = lease.int64(1)
                if lease.bool(2) { expired.append(lease.int64(0)) }
            }
            for stored in rows() { space.states[stored.keyValue.key] = KeyState(kv: stored.keyValue, rowID: stored.id, deleted: false) }
        }
        if !keys.isEmpty {
            for stored in rows() { space.states[stored.keyValue.key] = KeyState(kv: stored.keyValue, rowID: stored.id, deleted: stored.deleted) }
        }
        for _ in ranges {
            for stored in rows() where space.states[stored.keyValue.key] == nil {
                space.states[stored.keyValue.key] = KeyState(kv: stored.keyValue, rowID: stored.id, deleted: false)
            }
        }
        for item in historic { space.historic[item] = rows().map(\.keyValue) }
        return (space, expired)
    }
}
