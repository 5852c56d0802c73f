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

    init(_ requests: some Sequence<WriteRequest>) {
        for request in requests {
            switch request {
            case .put(let put): keys.insert(put.key)
            case .deleteRange(let delete): add(KeyRange(key: delete.key, rangeEnd: delete.rangeEnd))
            case .txn(let txn): add(txn)
            }
        }
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
                if range.revision > 0 {
                    if !keyRange.isEmpty { historic.insert(HistoricRange(range: keyRange, revision: range.revision)) }
                } else {
                    add(keyRange)
                }
            case .put(let put): keys.insert(put.key)
            case .deleteRange(let delete): add(KeyRange(key: delete.key, rangeEnd: delete.rangeEnd))
            case .txn(let inner): add(inner)
            case .empty: break
            }
        }
    }

    /// The statements that load the plan, after `BEGIN`, the lock and the header.
    func statements(_ sql: StoreSQL) -> (statements: [SQLStatement], ranges: [KeyRange], historic: [HistoricRange]) {
        var statements: [SQLStatement] = []
        if !keys.isEmpty { statements.append(sql.latestOfNames(keys.map(KeyMapping.name(forKey:)))) }
        let ranges = Array(ranges)
        for range in ranges { statements.append(sql.liveRows(KeyMapping.nameRange(range), revision: 0)) }
        let historic = Array(historic)
        for item in historic { statements.append(sql.liveRows(KeyMapping.nameRange(item.range), revision: item.revision)) }
        return (statements, ranges, historic)
    }
}
