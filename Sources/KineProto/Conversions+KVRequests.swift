internal import CEtcdProto
internal import CProtobufC
internal import KineCore

// etcdserverpb KV requests (Range, Put, DeleteRange, Txn, Compact) <-> KineCore.

extension RangeRequest {
    init(_ c: Etcdserverpb__RangeRequest) throws(ProtoError) {
        self.init(
            key: CValues.bytes(c.key), rangeEnd: CValues.bytes(c.range_end), limit: c.limit, revision: c.revision,
            sortOrder: try CValues.closedEnum(c.sort_order.rawValue, "RangeRequest.sort_order"),
            sortTarget: try CValues.closedEnum(c.sort_target.rawValue, "RangeRequest.sort_target"),
            serializable: CValues.bool(c.serializable), keysOnly: CValues.bool(c.keys_only),
            countOnly: CValues.bool(c.count_only), minModRevision: c.min_mod_revision,
            maxModRevision: c.max_mod_revision, minCreateRevision: c.min_create_revision,
            maxCreateRevision: c.max_create_revision
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__RangeRequest> {
        let c = arena.message(etcdserverpb__range_request__init)
        c.pointee.key = arena.binary(key)
        c.pointee.range_end = arena.binary(rangeEnd)
        c.pointee.limit = limit
        c.pointee.revision = revision
        c.pointee.sort_order = Etcdserverpb__RangeRequest__SortOrder(rawValue: CValues.cRaw(sortOrder.rawValue))
        c.pointee.sort_target = Etcdserverpb__RangeRequest__SortTarget(rawValue: CValues.cRaw(sortTarget.rawValue))
        c.pointee.serializable = CValues.cBool(serializable)
        c.pointee.keys_only = CValues.cBool(keysOnly)
        c.pointee.count_only = CValues.cBool(countOnly)
        c.pointee.min_mod_revision = minModRevision
        c.pointee.max_mod_revision = maxModRevision
        c.pointee.min_create_revision = minCreateRevision
        c.pointee.max_create_revision = maxCreateRevision
        return c
    }
}

extension PutRequest {
    init(_ c: Etcdserverpb__PutRequest) {
        self.init(
            key: CValues.bytes(c.key), value: CValues.bytes(c.value), lease: c.lease,
            prevKV: CValues.bool(c.prev_kv), ignoreValue: CValues.bool(c.ignore_value),
            ignoreLease: CValues.bool(c.ignore_lease)
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__PutRequest> {
        let c = arena.message(etcdserverpb__put_request__init)
        c.pointee.key = arena.binary(key)
        c.pointee.value = arena.binary(value)
        c.pointee.lease = lease
        c.pointee.prev_kv = CValues.cBool(prevKV)
        c.pointee.ignore_value = CValues.cBool(ignoreValue)
        c.pointee.ignore_lease = CValues.cBool(ignoreLease)
        return c
    }
}

extension DeleteRangeRequest {
    init(_ c: Etcdserverpb__DeleteRangeRequest) {
        self.init(key: CValues.bytes(c.key), rangeEnd: CValues.bytes(c.range_end), prevKV: CValues.bool(c.prev_kv))
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__DeleteRangeRequest> {
        let c = arena.message(etcdserverpb__delete_range_request__init)
        c.pointee.key = arena.binary(key)
        c.pointee.range_end = arena.binary(rangeEnd)
        c.pointee.prev_kv = CValues.cBool(prevKV)
        return c
    }
}

extension Compare {
    /// An unset `target_union` stays `nil`; a present zero (e.g. `mod_revision: 0`, the
    /// "key must not exist" guard) is kept as `.modRevision(0)`.
    init(_ c: Etcdserverpb__Compare) throws(ProtoError) {
        let operand: Operand? =
            switch c.target_union_case {
            case ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION: .version(c.version)
            case ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION: .createRevision(c.create_revision)
            case ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION: .modRevision(c.mod_revision)
            case ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE: .value(CValues.bytes(c.value))
            case ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE: .lease(c.lease)
            default: nil
            }
        self.init(
            result: try CValues.closedEnum(c.result.rawValue, "Compare.result"),
            target: try CValues.closedEnum(c.target.rawValue, "Compare.target"),
            key: CValues.bytes(c.key), rangeEnd: CValues.bytes(c.range_end), operand: operand
        )
    }

    func fill(_ c: UnsafeMutablePointer<Etcdserverpb__Compare>, _ arena: inout Arena) {
        c.pointee.result = Etcdserverpb__Compare__CompareResult(rawValue: CValues.cRaw(result.rawValue))
        c.pointee.target = Etcdserverpb__Compare__CompareTarget(rawValue: CValues.cRaw(target.rawValue))
        c.pointee.key = arena.binary(key)
        c.pointee.range_end = arena.binary(rangeEnd)
        switch operand {
        case .version(let value):
            c.pointee.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION
            c.pointee.version = value
        case .createRevision(let value):
            c.pointee.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION
            c.pointee.create_revision = value
        case .modRevision(let value):
            c.pointee.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION
            c.pointee.mod_revision = value
        case .value(let value):
            c.pointee.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE
            c.pointee.value = arena.binary(value)
        case .lease(let value):
            c.pointee.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE
            c.pointee.lease = value
        case nil:
            c.pointee.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION__NOT_SET
        }
    }
}

extension RequestOp {
    /// A `RequestOp` with no member of the `request` oneof set decodes as `.empty`.
    init(_ c: Etcdserverpb__RequestOp) throws(ProtoError) {
        switch c.request_case {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
            self = .range(try c.request_range.map { (p) throws(ProtoError) in try RangeRequest(p.pointee) } ?? RangeRequest())
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            self = .put(c.request_put.map { PutRequest($0.pointee) } ?? PutRequest())
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            self = .deleteRange(c.request_delete_range.map { DeleteRangeRequest($0.pointee) } ?? DeleteRangeRequest())
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            self = .txn(try c.request_txn.map { (p) throws(ProtoError) in try TxnRequest(p.pointee) } ?? TxnRequest())
        default:
            self = .empty
        }
    }

    func fill(_ c: UnsafeMutablePointer<Etcdserverpb__RequestOp>, _ arena: inout Arena) {
        switch self {
        case .range(let request):
            c.pointee.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE
            c.pointee.request_range = request.toC(&arena)
        case .put(let request):
            c.pointee.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT
            c.pointee.request_put = request.toC(&arena)
        case .deleteRange(let request):
            c.pointee.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE
            c.pointee.request_delete_range = request.toC(&arena)
        case .txn(let request):
            c.pointee.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN
            c.pointee.request_txn = request.toC(&arena)
        case .empty:
            c.pointee.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST__NOT_SET
        }
    }
}

extension [RequestOp] {
    func toC(_ arena: inout Arena) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Etcdserverpb__RequestOp>?>?) {
        guard let (structs, pointers) = arena.messages(count, etcdserverpb__request_op__init) else { return (0, nil) }
        for (index, op) in enumerated() {
            op.fill(structs + index, &arena)
        }
        return (count, pointers)
    }
}

extension TxnRequest {
    /// Recurses through nested txns; depth is bounded by `TxnNestingGuard` before parsing.
    init(_ c: Etcdserverpb__TxnRequest) throws(ProtoError) {
        self.init(
            compare: try CValues.list(c.n_compare, c.compare) { (x) throws(ProtoError) in try Compare(x) },
            success: try CValues.list(c.n_success, c.success) { (x) throws(ProtoError) in try RequestOp(x) },
            failure: try CValues.list(c.n_failure, c.failure) { (x) throws(ProtoError) in try RequestOp(x) }
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__TxnRequest> {
        let c = arena.message(etcdserverpb__txn_request__init)
        if let (structs, pointers) = arena.messages(compare.count, etcdserverpb__compare__init) {
            for (index, comparison) in compare.enumerated() {
                comparison.fill(structs + index, &arena)
            }
            c.pointee.n_compare = compare.count
            c.pointee.compare = pointers
        }
        (c.pointee.n_success, c.pointee.success) = success.toC(&arena)
        (c.pointee.n_failure, c.pointee.failure) = failure.toC(&arena)
        return c
    }
}

extension CompactionRequest {
    init(_ c: Etcdserverpb__CompactionRequest) {
        self.init(revision: c.revision, physical: CValues.bool(c.physical))
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__CompactionRequest> {
        let c = arena.message(etcdserverpb__compaction_request__init)
        c.pointee.revision = revision
        c.pointee.physical = CValues.cBool(physical)
        return c
    }
}
