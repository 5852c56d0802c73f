import KineCore

/// Executes one write request against a `KeySpace` with etcd 3.5's semantics (`applyTxn`,
/// `Put`, `DeleteRange`), producing the response and the kine rows to insert. Pure: no I/O.
///
/// A request that changes anything gets the next etcd revision; each key it changes gets a row
/// with its own consecutive id, all carrying that revision (docs/design.md, "multi-key writes").
struct TxnExecutor {
    private(set) var space: KeySpace
    private let newRevision: Int64
    private let leaseExists: (Int64) -> Bool
    private(set) var rows: [PendingRow] = []

    private init(space: KeySpace, leaseExists: @escaping (Int64) -> Bool) {
        self.space = space
        self.newRevision = space.currentRevision + 1
        self.leaseExists = leaseExists
    }

    /// Runs `request` on `space`; on success `space` reflects its writes. Errors leave `space`
    /// untouched.
    static func run(_ request: WriteRequest, space: inout KeySpace) throws(EtcdError) -> (response: WriteResponse, rows: [PendingRow]) {
        let leases = space.leases
        var executor = TxnExecutor(space: space, leaseExists: { leases[$0] != nil })
        let response = try executor.execute(request)
        if executor.rows.isEmpty {
            // A revoke of a lease without keys writes no row but still removes the lease.
            if case .revokeLease = request { space = executor.space }
            return (response, [])
        }
        space = executor.space
        space.currentRevision = executor.newRevision
        space.nextRowID += Int64(executor.rows.count)
        return (response, executor.rows)
    }

    private mutating func execute(_ request: WriteRequest) throws(EtcdError) -> WriteResponse {
        let beginRevision = space.currentRevision
        switch request {
        case .put(let put):
            // A plain Put checks the lease before the key (etcd `applierV3backend.Put`).
            if put.lease != 0 && !leaseExists(put.lease) { throw .leaseNotFound }
            if (put.ignoreValue || put.ignoreLease) && space.live(put.key) == nil { throw .keyNotFound }
            var response = applyPut(put)
            response.header = ResponseHeader(revision: newRevision)
            return .put(response)
        case .deleteRange(let delete):
            var response = applyDelete(delete)
            response.header = ResponseHeader(revision: rows.isEmpty ? beginRevision : newRevision)
            return .deleteRange(response)
        case .txn(let txn):
            let path = Self.path(of: txn, in: space)
            try checkRequests(txn, path: path)
            var response = applyTxn(txn, path: path, beginRevision: beginRevision)
            response.header = ResponseHeader(revision: rows.isEmpty ? beginRevision : newRevision)
            return .txn(response)
        case .revokeLease(let id):
            guard space.leases[id] != nil else { throw .leaseNotFound }
            let keys = space.states.values.filter { !$0.deleted && $0.kv.lease == id }.map(\.kv.key)
            for key in keys.sorted(by: KeyRange.less) { _ = applyDelete(DeleteRangeRequest(key: key)) }
            space.leases.removeValue(forKey: id)
            space.revokedLeases.append(id)
            return .leaseRevoked(LeaseRevokeResponse(header: ResponseHeader(revision: rows.isEmpty ? beginRevision : newRevision)))
        case .expireLeases:
            // The Writer expands this into one `.revokeLease` per expired lease.
            return .leasesExpired([])
        }
    }

    // MARK: Txn

    /// Which branch each txn on the executed path takes; every compare, nested ones included, is
    /// judged on the state before the txn (etcd `compareToPath`).
    struct Path {
        var succeeded: Bool
        /// Paths of the nested txns of the chosen branch, in op order.
        var nested: [Path]
    }

    static func path(of txn: TxnRequest, in space: KeySpace) -> Path {
        let succeeded = txn.compare.allSatisfy { compare in
            CompareEvaluation.evaluate(compare, against: space.live(in: KeyRange(key: compare.key, rangeEnd: compare.rangeEnd)))
        }
        var nested: [Path] = []
        for case .txn(let inner) in succeeded ? txn.success : txn.failure {
            nested.append(path(of: inner, in: space))
        }
        return Path(succeeded: succeeded, nested: nested)
    }

    /// etcd `checkRequests`: failures that abort the whole txn before anything is written.
    private func checkRequests(_ txn: TxnRequest, path: Path) throws(EtcdError) {
        var nested = path.nested.makeIterator()
        for op in path.succeeded ? txn.success : txn.failure {
            switch op {
            case .put(let put):
                if (put.ignoreValue || put.ignoreLease) && space.live(put.key) == nil { throw .keyNotFound }
                if put.lease != 0 && !leaseExists(put.lease) { throw .leaseNotFound }
            case .range(let range):
                if range.revision > space.currentRevision { throw .futureRevision }
                if range.revision != 0 && range.revision < space.compactRevision { throw .compacted }
            case .txn(let inner):
                if let innerPath = nested.next() { try checkRequests(inner, path: innerPath) }
            case .deleteRange, .empty:
                break
            }
        }
    }

    private mutating func applyTxn(_ txn: TxnRequest, path: Path, beginRevision: Int64) -> TxnResponse {
        var response = TxnResponse(succeeded: path.succeeded)
        var nested = path.nested.makeIterator()
        for op in path.succeeded ? txn.success : txn.failure {
            switch op {
            case .range(let range):
                var result = applyRange(range)
                result.header = ResponseHeader(revision: rows.isEmpty ? beginRevision : newRevision)
                response.responses.append(.range(result))
            case .put(let put):
                var result = applyPut(put)
                result.header = ResponseHeader(revision: newRevision)
                response.responses.append(.put(result))
            case .deleteRange(let delete):
                var result = applyDelete(delete)
                result.header = ResponseHeader(revision: rows.isEmpty ? beginRevision : newRevision)
                response.responses.append(.deleteRange(result))
            case .txn(let inner):
                guard let innerPath = nested.next() else { continue }
                // etcd leaves nested txn headers empty.
                response.responses.append(.txn(applyTxn(inner, path: innerPath, beginRevision: beginRevision)))
            case .empty:
                continue
            }
        }
        return response
    }

    // MARK: Operations

    private func applyRange(_ request: RangeRequest) -> RangeResponse {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        let kvs: [KeyValue]
        if range.isEmpty {
            kvs = []
        } else if request.revision > 0 {
            kvs = space.historic[HistoricRange(range: range, revision: request.revision)] ?? []
        } else {
            kvs = space.live(in: range)
        }
        return RangeSelection.apply(request, kvs: kvs, count: Int64(kvs.count), header: ResponseHeader())
    }

    private mutating func applyPut(_ request: PutRequest) -> PutResponse {
        let previous = space.states[request.key]
        let live = previous.flatMap { $0.deleted ? nil : $0.kv }
        let kv = KeyValue(
            key: request.key,
            createRevision: live?.createRevision ?? newRevision,
            modRevision: newRevision,
            version: (live?.version ?? 0) + 1,
            value: request.ignoreValue ? (live?.value ?? []) : request.value,
            lease: request.ignoreLease ? (live?.lease ?? 0) : request.lease
        )
        appendRow(
            PendingRow(
                name: KeyMapping.name(forKey: request.key), created: live == nil, deleted: false,
                createRevision: kv.createRevision, prevRevision: previous?.rowID ?? 0,
                value: KeyMapping.storedValue(key: kv.key, value: kv.value, version: kv.version),
                version: kv.version, lease: kv.lease, leaseTTL: space.leases[kv.lease] ?? 0,
                event: Event(type: .put, kv: kv, prevKV: live)),
            state: kv, deleted: false)
        return PutResponse(prevKV: request.prevKV ? live : nil)
    }

    private mutating func applyDelete(_ request: DeleteRangeRequest) -> DeleteRangeResponse {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        let victims = range.isEmpty ? [] : space.live(in: range)
        for kv in victims {
            let tombstone = KeyValue(key: kv.key, modRevision: newRevision)
            appendRow(
                PendingRow(
                    name: KeyMapping.name(forKey: kv.key), created: false, deleted: true,
                    createRevision: kv.createRevision, prevRevision: space.states[kv.key]?.rowID ?? 0,
                    value: nil,
                    version: 0, event: Event(type: .delete, kv: tombstone, prevKV: kv)),
                state: tombstone, deleted: true)
        }
        return DeleteRangeResponse(deleted: Int64(victims.count), prevKVs: request.prevKV ? victims : [])
    }

    private mutating func appendRow(_ row: PendingRow, state: KeyValue, deleted: Bool) {
        var row = row
        row.id = space.nextRowID + Int64(rows.count)
        row.revision = newRevision
        rows.append(row)
        space.states[state.key] = KeyState(kv: state, rowID: row.id, deleted: deleted)
    }
}
