/// Request checks etcd makes before anything executes (etcd v3rpc `check*Request` and
/// `checkIntervals`), with the same order and the same errors.
public enum RequestValidation {
    /// etcd's `--max-txn-ops` default.
    public static let defaultMaxTxnOps = 128

    public static func validate(_ request: RangeRequest) throws(EtcdError) {
        if request.key.isEmpty { throw .emptyKey }
    }

    public static func validate(_ request: PutRequest) throws(EtcdError) {
        if request.key.isEmpty { throw .emptyKey }
        if request.ignoreValue && !request.value.isEmpty { throw .valueProvided }
        if request.ignoreLease && request.lease != 0 { throw .leaseProvided }
    }

    public static func validate(_ request: DeleteRangeRequest) throws(EtcdError) {
        if request.key.isEmpty { throw .emptyKey }
    }

    /// Op-count limit, per-op checks (nested txns against the remaining budget), then the
    /// duplicate-key rule for the success and the failure list separately.
    public static func validate(_ request: TxnRequest, maxOps: Int = defaultMaxTxnOps) throws(EtcdError) {
        try checkTxn(request, maxOps: maxOps)
        _ = try checkIntervals(request.success)
        _ = try checkIntervals(request.failure)
    }

    private static func checkTxn(_ request: TxnRequest, maxOps: Int) throws(EtcdError) {
        let opCount = max(request.compare.count, request.success.count, request.failure.count)
        if opCount > maxOps { throw .tooManyOps }
        for compare in request.compare where compare.key.isEmpty { throw .emptyKey }
        for op in request.success { try checkOp(op, maxOps: maxOps - opCount) }
        for op in request.failure { try checkOp(op, maxOps: maxOps - opCount) }
    }

    private static func checkOp(_ op: RequestOp, maxOps: Int) throws(EtcdError) {
        switch op {
        case .range(let range): try validate(range)
        case .put(let put): try validate(put)
        case .deleteRange(let delete): try validate(delete)
        case .txn(let txn): try checkTxn(txn, maxOps: maxOps)
        case .empty: throw .keyNotFound
        }
    }

    /// A delete interval as etcd's interval tree sees it: `[key, rangeEnd)` compared as raw
    /// strings, or the point `key` when `rangeEnd` is empty. (So a from-key delete, whose
    /// `rangeEnd` is "\0", is an empty interval here, exactly as in etcd.)
    struct DeleteInterval {
        var start: Bytes
        var end: Bytes

        func contains(_ key: Bytes) -> Bool {
            if end.isEmpty { return key == start }
            return !KeyRange.less(key, start) && KeyRange.less(key, end)
        }
    }

    /// etcd's `checkIntervals`: returns the puts and deletes of this level and below.
    static func checkIntervals(_ ops: [RequestOp]) throws(EtcdError) -> (puts: Set<Bytes>, deletes: [DeleteInterval]) {
        var deletes: [DeleteInterval] = []
        for case .deleteRange(let delete) in ops {
            deletes.append(DeleteInterval(start: delete.key, end: delete.rangeEnd))
        }
        func deleted(_ key: Bytes) -> Bool { deletes.contains { $0.contains(key) } }

        var puts = Set<Bytes>()
        for case .txn(let txn) in ops {
            let thenBranch = try checkIntervals(txn.success)
            let elseBranch = try checkIntervals(txn.failure)
            for key in thenBranch.puts {
                if puts.contains(key) || deleted(key) { throw .duplicateKey }
                puts.insert(key)
            }
            for key in elseBranch.puts {
                // A key put in both branches of one nested txn is fine: they are exclusive.
                if puts.contains(key) && !thenBranch.puts.contains(key) { throw .duplicateKey }
                if deleted(key) { throw .duplicateKey }
                puts.insert(key)
            }
            deletes.append(contentsOf: thenBranch.deletes)
            deletes.append(contentsOf: elseBranch.deletes)
        }
        for case .put(let put) in ops {
            if puts.contains(put.key) || deleted(put.key) { throw .duplicateKey }
            puts.insert(put.key)
        }
        return (puts, deletes)
    }
}
