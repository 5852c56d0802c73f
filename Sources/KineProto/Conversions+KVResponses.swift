internal import CEtcdProto
internal import CProtobufC
internal import KineCore

// etcdserverpb KV responses (Range, Put, DeleteRange, Txn, Compact) <-> KineCore.

extension RangeResponse {
    init(_ c: Etcdserverpb__RangeResponse) throws(ProtoError) {
        self.init(
            header: CValues.header(c.header),
            kvs: try CValues.list(c.n_kvs, c.kvs) { KeyValue($0) },
            more: CValues.bool(c.more), count: c.count
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__RangeResponse> {
        let c = arena.message(etcdserverpb__range_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        (c.pointee.n_kvs, c.pointee.kvs) = kvs.toC(&arena)
        c.pointee.more = CValues.cBool(more)
        c.pointee.count = count
        return c
    }

    var arenaEstimate: Int { 256 + kvs.arenaEstimate }
}

extension PutResponse {
    init(_ c: Etcdserverpb__PutResponse) {
        self.init(header: CValues.header(c.header), prevKV: c.prev_kv.map { KeyValue($0.pointee) })
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__PutResponse> {
        let c = arena.message(etcdserverpb__put_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        if let prevKV { c.pointee.prev_kv = prevKV.toC(&arena) }
        return c
    }

    var arenaEstimate: Int { 256 + (prevKV?.arenaEstimate ?? 0) }
}

extension DeleteRangeResponse {
    init(_ c: Etcdserverpb__DeleteRangeResponse) throws(ProtoError) {
        self.init(
            header: CValues.header(c.header), deleted: c.deleted,
            prevKVs: try CValues.list(c.n_prev_kvs, c.prev_kvs) { KeyValue($0) }
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__DeleteRangeResponse> {
        let c = arena.message(etcdserverpb__delete_range_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.deleted = deleted
        (c.pointee.n_prev_kvs, c.pointee.prev_kvs) = prevKVs.toC(&arena)
        return c
    }

    var arenaEstimate: Int { 256 + prevKVs.arenaEstimate }
}

extension ResponseOp {
    /// KineCore has no "empty" response op (etcd never sends one), so an unset oneof is refused.
    init(_ c: Etcdserverpb__ResponseOp) throws(ProtoError) {
        switch c.response_case {
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
            self = .range(try c.response_range.map { (p) throws(ProtoError) in try RangeResponse(p.pointee) } ?? RangeResponse())
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
            self = .put(c.response_put.map { PutResponse($0.pointee) } ?? PutResponse())
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
            self = .deleteRange(
                try c.response_delete_range.map { (p) throws(ProtoError) in try DeleteRangeResponse(p.pointee) }
                    ?? DeleteRangeResponse())
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN:
            self = .txn(try c.response_txn.map { (p) throws(ProtoError) in try TxnResponse(p.pointee) } ?? TxnResponse())
        default:
            throw .malformed(message: "ResponseOp (no response set)")
        }
    }

    func fill(_ c: UnsafeMutablePointer<Etcdserverpb__ResponseOp>, _ arena: inout Arena) {
        switch self {
        case .range(let response):
            c.pointee.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE
            c.pointee.response_range = response.toC(&arena)
        case .put(let response):
            c.pointee.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT
            c.pointee.response_put = response.toC(&arena)
        case .deleteRange(let response):
            c.pointee.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE
            c.pointee.response_delete_range = response.toC(&arena)
        case .txn(let response):
            c.pointee.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN
            c.pointee.response_txn = response.toC(&arena)
        }
    }

    var arenaEstimate: Int {
        let own = MemoryLayout<Etcdserverpb__ResponseOp>.stride + MemoryLayout<UnsafeMutableRawPointer>.stride
        return switch self {
        case .range(let response): own + response.arenaEstimate
        case .put(let response): own + response.arenaEstimate
        case .deleteRange(let response): own + response.arenaEstimate
        case .txn(let response): own + response.arenaEstimate
        }
    }
}

extension TxnResponse {
    init(_ c: Etcdserverpb__TxnResponse) throws(ProtoError) {
        self.init(
            header: CValues.header(c.header), succeeded: CValues.bool(c.succeeded),
            responses: try CValues.list(c.n_responses, c.responses) { (x) throws(ProtoError) in try ResponseOp(x) }
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__TxnResponse> {
        let c = arena.message(etcdserverpb__txn_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.succeeded = CValues.cBool(succeeded)
        if let (structs, pointers) = arena.messages(responses.count, etcdserverpb__response_op__init) {
            for (index, response) in responses.enumerated() {
                response.fill(structs + index, &arena)
            }
            c.pointee.n_responses = responses.count
            c.pointee.responses = pointers
        }
        return c
    }

    var arenaEstimate: Int { responses.reduce(256) { $0 + $1.arenaEstimate } }
}

extension CompactionResponse {
    init(_ c: Etcdserverpb__CompactionResponse) {
        self.init(header: CValues.header(c.header))
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__CompactionResponse> {
        let c = arena.message(etcdserverpb__compaction_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        return c
    }
}
