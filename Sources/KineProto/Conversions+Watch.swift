internal import CEtcdProto
internal import CProtobufC
internal import KineCore

// etcdserverpb Watch messages <-> KineCore.

extension WatchCreateRequest {
    /// Filter numbers are copied raw (KineCore keeps unknown ones for validation).
    init(_ c: Etcdserverpb__WatchCreateRequest) {
        var filters: [Int32] = []
        if c.n_filters > 0, let cFilters = c.filters {
            filters = (0..<c.n_filters).map { CValues.raw(cFilters[$0].rawValue) }
        }
        self.init(
            key: CValues.bytes(c.key), rangeEnd: CValues.bytes(c.range_end), startRevision: c.start_revision,
            progressNotify: CValues.bool(c.progress_notify), filters: filters, prevKV: CValues.bool(c.prev_kv),
            watchID: c.watch_id, fragment: CValues.bool(c.fragment)
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__WatchCreateRequest> {
        let c = arena.message(etcdserverpb__watch_create_request__init)
        c.pointee.key = arena.binary(key)
        c.pointee.range_end = arena.binary(rangeEnd)
        c.pointee.start_revision = startRevision
        c.pointee.progress_notify = CValues.cBool(progressNotify)
        if !filters.isEmpty {
            let cFilters = arena.allocate(Etcdserverpb__WatchCreateRequest__FilterType.self, count: filters.count)
            for (index, filter) in filters.enumerated() {
                (cFilters + index).initialize(to: .init(rawValue: CValues.cRaw(filter)))
            }
            c.pointee.n_filters = filters.count
            c.pointee.filters = cFilters
        }
        c.pointee.prev_kv = CValues.cBool(prevKV)
        c.pointee.watch_id = watchID
        c.pointee.fragment = CValues.cBool(fragment)
        return c
    }
}

extension WatchRequest {
    /// No member of `request_union` set decodes as `.empty`.
    init(_ c: Etcdserverpb__WatchRequest) {
        switch c.request_union_case {
        case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
            self = .create(c.create_request.map { WatchCreateRequest($0.pointee) } ?? WatchCreateRequest())
        case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
            self = .cancel(watchID: c.cancel_request?.pointee.watch_id ?? 0)
        case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
            self = .progress
        default:
            self = .empty
        }
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__WatchRequest> {
        let c = arena.message(etcdserverpb__watch_request__init)
        switch self {
        case .create(let request):
            c.pointee.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST
            c.pointee.create_request = request.toC(&arena)
        case .cancel(let watchID):
            let cancel = arena.message(etcdserverpb__watch_cancel_request__init)
            cancel.pointee.watch_id = watchID
            c.pointee.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST
            c.pointee.cancel_request = cancel
        case .progress:
            c.pointee.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST
            c.pointee.progress_request = arena.message(etcdserverpb__watch_progress_request__init)
        case .empty:
            c.pointee.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION__NOT_SET
        }
        return c
    }
}

extension WatchResponse {
    init(_ c: Etcdserverpb__WatchResponse) throws(ProtoError) {
        self.init(
            header: CValues.header(c.header), watchID: c.watch_id, created: CValues.bool(c.created),
            canceled: CValues.bool(c.canceled), compactRevision: c.compact_revision,
            cancelReason: CValues.string(c.cancel_reason), fragment: CValues.bool(c.fragment),
            events: try CValues.list(c.n_events, c.events) { (x) throws(ProtoError) in try Event(x) }
        )
    }

    func toC(_ arena: inout Arena) -> UnsafeMutablePointer<Etcdserverpb__WatchResponse> {
        let c = arena.message(etcdserverpb__watch_response__init)
        c.pointee.header = CValues.cHeader(header, &arena)
        c.pointee.watch_id = watchID
        c.pointee.created = CValues.cBool(created)
        c.pointee.canceled = CValues.cBool(canceled)
        c.pointee.compact_revision = compactRevision
        if let reason = arena.cString(cancelReason) { c.pointee.cancel_reason = reason }
        c.pointee.fragment = CValues.cBool(fragment)
        if let (structs, pointers) = arena.messages(events.count, mvccpb__event__init) {
            for (index, event) in events.enumerated() {
                event.fill(structs + index, &arena)
            }
            c.pointee.n_events = events.count
            c.pointee.events = pointers
        }
        return c
    }

    var arenaEstimate: Int { events.reduce(256 + cancelReason.utf8.count) { $0 + $1.arenaEstimate } }
}
