import KineCore
import KineSQL

/// Range reads: plain SQL at a pinned revision, outside the Writer.
struct Reader: Sendable {
    let client: any SQLClient
    let sql: StoreSQL

    func range(_ request: RangeRequest) async throws(EtcdError) -> RangeResponse {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        let nameRange = KeyMapping.nameRange(range)
        if range.isEmpty || request.countOnly {
            // `[key, end)` with end <= key selects nothing; the count statement still pins the header.
            let statement = range.isEmpty ? StoreSQL.headerStatement : sql.countWithHeader(nameRange, revision: request.revision)
            let row = try await run([statement])[0].rows.first
            let (current, compact) = (row?.int64(0) ?? 0, row?.int64(1) ?? 0)
            try Self.check(request.revision, current: current, compact: compact)
            let count = range.isEmpty ? 0 : row?.int64(2) ?? 0
            return RangeSelection.apply(request, kvs: [], count: count, header: ResponseHeader(revision: current))
        }

        let fullRange = RangeSelection.needsFullRange(request)
        // One extra row tells whether there are more than `limit`.
        let fetchLimit: Int64? = fullRange || request.limit <= 0 ? nil : request.limit + 1
        let result = try await run([sql.range(nameRange, revision: request.revision, limit: fetchLimit, keysOnly: request.keysOnly)])[0]
        let current = result.rows.first?.int64(0) ?? 0
        let compact = result.rows.first?.int64(1) ?? 0
        let idBound = result.rows.first?.int64(2) ?? 0
        try Self.check(request.revision, current: current, compact: compact)
        let kvs = result.rows.compactMap { StoredRow($0, offset: 3)?.keyValue }

        var count = Int64(kvs.count)
        if let fetchLimit, Int64(kvs.count) >= fetchLimit {
            // More keys than the page: count the whole range over the same rows.
            count = try await run([sql.count(nameRange, idBound: idBound)])[0].rows.first?.int64(0) ?? count
        }
        return RangeSelection.apply(request, kvs: kvs, count: count, header: ResponseHeader(revision: current))
    }

    /// Current and compacted revision.
    func revisions() async throws(EtcdError) -> (current: Int64, compact: Int64) {
        let row = try await run([StoreSQL.headerStatement])[0].rows.first
        return (row?.int64(0) ?? 0, row?.int64(1) ?? 0)
    }

    /// etcd mvcc's rules for a requested revision.
    static func check(_ revision: Int64, current: Int64, compact: Int64) throws(EtcdError) {
        if revision > current { throw .futureRevision }
        if revision > 0 && revision < compact { throw .compacted }
    }

    func run(_ statements: [SQLStatement]) async throws(EtcdError) -> [SQLResult] {
        do {
            return try await client.pipeline(statements)
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }
}
