/// What etcd does to the keys of a range after reading them (`applierV3backend.Range`):
/// min/max revision filters, sorting, `limit` with `more`, `keys_only`, `count_only`.
public enum RangeSelection {
    /// True when etcd must read the whole range before it can answer (sorting or filters),
    /// so a `LIMIT` cannot be pushed down to the database.
    public static func needsFullRange(_ request: RangeRequest) -> Bool {
        request.sortOrder != .none || request.minModRevision != 0 || request.maxModRevision != 0
            || request.minCreateRevision != 0 || request.maxCreateRevision != 0
    }

    /// The sort etcd really applies: a non-KEY target defaults to ascending, KEY+ASCEND is the
    /// natural order.
    public static func effectiveSortOrder(_ request: RangeRequest) -> RangeRequest.SortOrder {
        if request.sortTarget != .key && request.sortOrder == .none { return .ascend }
        if request.sortTarget == .key && request.sortOrder == .ascend { return .none }
        return request.sortOrder
    }

    /// Builds the response from `kvs` (live keys of the range in key order, at least `limit + 1`
    /// of them when there are that many, or all of them when `needsFullRange`) and `count`
    /// (all live keys in the range).
    public static func apply(_ request: RangeRequest, kvs input: [KeyValue], count: Int64, header: ResponseHeader) -> RangeResponse {
        var response = RangeResponse(header: header, kvs: [], more: false, count: count)
        if request.countOnly { return response }
        var kvs = input
        if request.maxModRevision != 0 { kvs.removeAll { $0.modRevision > request.maxModRevision } }
        if request.minModRevision != 0 { kvs.removeAll { $0.modRevision < request.minModRevision } }
        if request.maxCreateRevision != 0 { kvs.removeAll { $0.createRevision > request.maxCreateRevision } }
        if request.minCreateRevision != 0 { kvs.removeAll { $0.createRevision < request.minCreateRevision } }

        let order = effectiveSortOrder(request)
        if order != .none {
            let ascending = sortPredicate(request.sortTarget)
            // Stable, so ties keep key order whichever direction is asked for.
            kvs = stableSorted(kvs) { order == .ascend ? ascending($0, $1) : ascending($1, $0) }
        }
        if request.limit > 0 && kvs.count > Int(request.limit) {
            kvs.removeSubrange(Int(request.limit)...)
            response.more = true
        }
        if request.keysOnly {
            for index in kvs.indices { kvs[index].value = [] }
        }
        response.kvs = kvs
        return response
    }

    private static func sortPredicate(_ target: RangeRequest.SortTarget) -> (KeyValue, KeyValue) -> Bool {
        switch target {
        case .key: return { KeyRange.less($0.key, $1.key) }
        case .version: return { $0.version < $1.version }
        case .create: return { $0.createRevision < $1.createRevision }
        case .mod: return { $0.modRevision < $1.modRevision }
        case .value: return { KeyRange.less($0.value, $1.value) }
        }
    }

    private static func stableSorted(_ kvs: [KeyValue], by less: (KeyValue, KeyValue) -> Bool) -> [KeyValue] {
        kvs.enumerated().sorted { lhs, rhs in
            if less(lhs.element, rhs.element) { return true }
            if less(rhs.element, lhs.element) { return false }
            return lhs.offset < rhs.offset
        }.map(\.element)
    }
}
