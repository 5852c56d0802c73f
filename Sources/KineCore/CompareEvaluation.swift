/// etcd's `applyCompare` / `compareKV`: how one Compare is judged against the keys it names.
public enum CompareEvaluation {
    /// `kvs` are the live keys in the compare's range before the txn.
    public static func evaluate(_ compare: Compare, against kvs: [KeyValue]) -> Bool {
        if kvs.isEmpty {
            // A missing key has no value to compare; every other target compares against zero.
            if compare.target == .value { return false }
            return matches(compare, KeyValue(key: compare.key))
        }
        return kvs.allSatisfy { matches(compare, $0) }
    }

    static func matches(_ compare: Compare, _ kv: KeyValue) -> Bool {
        let order: Int
        // The operand counts only if the oneof case fits the target; otherwise it is zero.
        switch compare.target {
        case .value:
            var operand: Bytes = []
            if case .value(let bytes)? = compare.operand { operand = bytes }
            order = compareBytes(kv.value, operand)
        case .create:
            var operand: Int64 = 0
            if case .createRevision(let value)? = compare.operand { operand = value }
            order = compareInts(kv.createRevision, operand)
        case .mod:
            var operand: Int64 = 0
            if case .modRevision(let value)? = compare.operand { operand = value }
            order = compareInts(kv.modRevision, operand)
        case .version:
            var operand: Int64 = 0
            if case .version(let value)? = compare.operand { operand = value }
            order = compareInts(kv.version, operand)
        case .lease:
            var operand: Int64 = 0
            if case .lease(let value)? = compare.operand { operand = value }
            order = compareInts(kv.lease, operand)
        }
        switch compare.result {
        case .equal: return order == 0
        case .notEqual: return order != 0
        case .greater: return order > 0
        case .less: return order < 0
        }
    }

    private static func compareInts(_ a: Int64, _ b: Int64) -> Int { a < b ? -1 : (a > b ? 1 : 0) }

    private static func compareBytes(_ a: Bytes, _ b: Bytes) -> Int {
        if a == b { return 0 }
        return a.lexicographicallyPrecedes(b) ? -1 : 1
    }
}
