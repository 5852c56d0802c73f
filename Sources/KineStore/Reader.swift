import KineCore
import KineSQL

/// Range reads: plain SQL at a pinned revision, outside the Writer.
struct Reader: Sendable {
    let client: any SQLClient
    let sql: StoreSQL

    func range(_ request: RangeRequest) async throws(EtcdError) -> RangeResponse {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        let nameRange = KeyMapping.nameRange(range)
        if range.isEmpty {
            // `[key, end)` with end <= key selects nothing; the header still answers.
            let header = try await run(StoreSQL.header)
            try Self.check(request.revision, current: header.currentRevision, compact: header.compactRevision)
            return RangeSelection.apply(request, kvs: [], count: 0, header: ResponseHeader(revision: header.currentRevision))
        }
        if request.countOnly {
            let counted = try await run(sql.countWithHeader(nameRange, revision: request.revision))
            try Self.check(request.revision, current: counted.header.currentRevision, compact: counted.header.compactRevision)
            return RangeSelection.apply(
                request, kvs: [], count: counted.count, header: ResponseHeader(revision: counted.header.currentRevision))
        }

        let fullRange = RangeSelection.needsFullRange(request)
        // One extra row tells whether there are more than `limit`.
        let fetchLimit: Int64? = fullRange || request.limit <= 0 ? nil : request.limit + 1
        let read = try await run(sql.range(nameRange, revision: request.revision, limit: fetchLimit, keysOnly: request.keysOnly))
        try Self.check(request.revision, current: read.header.currentRevision, compact: read.header.compactRevision)
        let kvs = read.rows.map(\.keyValue)

        var count = Int64(kvs.count)
        if let fetchLimit, Int64(kvs.count) >= fetchLimit {
            // More keys than the page: count the whole range over the same rows.
            count = try await run(sql.count(nameRange, idBound: read.header.idBound))
        }
        return RangeSelection.apply(request, kvs: kvs, count: count, header: ResponseHeader(revision: read.header.currentRevision))
    }

    /// Current and compacted revision.
    func revisions() async throws(EtcdError) -> (current: Int64, compact: Int64) {
        let header = try await run(StoreSQL.header)
        return (header.currentRevision, header.compactRevision)
    }

    /// etcd mvcc's rules for a requested revision.
    static func check(_ revision: Int64, current: Int64, compact: Int64) throws(EtcdError) {
        if revision > current { throw .futureRevision }
        if revision > 0 && revision < compact { throw .compacted }
    }

    func run<Output>(_ query: SQLQuery<Output>) async throws(EtcdError) -> Output {
        do {
            return try await client.run(query)
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }

    func run(_ pipeline: SQLPipeline) async throws(EtcdError) -> SQLPipelineResults {
        do {
            return try await client.run(pipeline)
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }

    /// `run`, for a caller racing a deadline: cancelled, it stops waiting even for statements
    /// already sent (`SQLClient.abandonablePipeline`).
    func runAbandonable(_ pipeline: SQLPipeline) async throws(EtcdError) -> SQLPipelineResults {
        do {
            return SQLPipelineResults(try await client.abandonablePipeline(pipeline.statements))
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }
}
