import KineCore
import KineSQL
import Logging
import Synchronization

/// The one Writer of this process: group commit under one database-wide advisory lock.
///
/// Each round takes every write waiting, and in one transaction: takes the lock, reads the current
/// revision and every key the batch touches (one round trip), evaluates the requests in order in
/// Swift, inserts all rows with consecutive explicit ids (one revision per request, one row per
/// changed key), advances `kine_id_seq`, notifies and
/// commits (second round trip). Because every writer, in any process, holds the same lock until
/// commit, ids become visible in order: readers never see a hole that fills later.
final class Writer: Sendable {
    struct Pending: Sendable {
        var request: WriteRequest
        var continuation: CheckedContinuation<Result<WriteResponse, EtcdError>, Never>
    }

    struct State: Sendable {
        var queue: [Pending] = []
        var waiter: CheckedContinuation<Void, Never>?
        var stopped = false
        /// The id of the last row this Writer committed: the cache is only worth trying once it has it.
        var lastCommittedID: Int64 = 0
        /// Batch tokens (`CachedBatch.token`): this process's random prefix and a counter.
        let processToken = UInt64.random(in: 1...UInt64.max)
        var batchCounter: UInt64 = 0
    }

    private let client: any SQLClient
    private let sql: StoreSQL
    private let logger: Logger
    private let maxBatch: Int
    let state = Mutex(State())
    /// Called after each commit with the rows written, in id order (the WatchHub publishes them).
    private let onCommit: @Sendable ([PendingRow]) -> Void
    /// When set, batches are evaluated against it and written in one round trip (`processFromCache`).
    let cache: KeyValueCache?

    init(
        client: any SQLClient, sql: StoreSQL, logger: Logger, maxBatch: Int = 1000, cache: KeyValueCache? = nil,
        onCommit: @escaping @Sendable ([PendingRow]) -> Void
    ) {
        self.client = client
        self.sql = sql
        self.logger = logger
        self.maxBatch = maxBatch
        self.cache = cache
        self.onCommit = onCommit
    }

    func submit(_ request: WriteRequest) async throws(EtcdError) -> WriteResponse {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<WriteResponse, EtcdError>, Never>) in
            let (waiter, stopped): (CheckedContinuation<Void, Never>?, Bool) = state.withLock { state in
                if state.stopped { return (nil, true) }
                state.queue.append(Pending(request: request, continuation: continuation))
                defer { state.waiter = nil }
                return (state.waiter, false)
            }
            if stopped { continuation.resume(returning: .failure(.serverStopped)) }
            waiter?.resume()
        }
        return try result.get()
    }

    /// Processes batches until `stop()`; reconnects with backoff when the session breaks.
    func run() async {
        var backoff: Duration = .milliseconds(50)
        while !isStopped && !Task.isCancelled {
            do {
                try await client.withSession { session in
                    backoff = .milliseconds(50)
                    try await self.processBatches(session: session)
                }
                return
            } catch {
                logger.warning("writer session failed, reconnecting", metadata: ["kine.error": "\(error)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(2))
            }
        }
    }

    /// Fails everything queued and makes `run()` return.
    func stop() {
        let (pending, waiter) = state.withLock { state in
            state.stopped = true
            defer {
                state.queue = []
                state.waiter = nil
            }
            return (state.queue, state.waiter)
        }
        for item in pending { item.continuation.resume(returning: .failure(.serverStopped)) }
        waiter?.resume()
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// The session's loop. A batch the read cache can serve is sent without waiting for its
    /// answer; while it is on the wire the next batch is evaluated on top of it and queued behind
    /// it on the same connection (`CachedBatch`), so PostgreSQL goes from one commit to the next
    /// without waiting for kine. Everything else is processed one batch at a time.
    private func processBatches(session: any SQLSession) async throws(SQLError) {
        var inFlight: CachedBatch?
        while true {
            guard let flight = inFlight else {
                guard let batch = await nextBatch() else { return }
                inFlight = startFromCache(batch, after: nil, session: session)
                if inFlight == nil { try await process(batch, session: session) }
                continue
            }
            let batch = takeBatch().flatMap { $0.isEmpty ? nil : $0 }
            let next = batch.flatMap { startFromCache($0, after: flight, session: session) }
            let outcome: CachedOutcome
            do {
                outcome = try await complete(flight, session: session)
            } catch {
                // The session broke: whatever was queued behind is lost with it.
                if let batch { fail(batch, error: error) }
                throw error
            }
            inFlight = nil
            if outcome == .committed, let next {
                inFlight = next
                continue
            }
            // `next` was built on `flight`, which did not commit: its guard fails, so it wrote nothing.
            if let next { await discard(next, session: session) }
            if outcome == .stale { try await process(flight.batch, session: session, fromCache: false) }
            if let batch { try await process(batch, session: session, fromCache: next == nil) }
        }
    }

    /// Waits for work; nil once stopped.
    private func nextBatch() async -> [Pending]? {
        while true {
            if let batch = takeBatch() { return batch.isEmpty ? nil : batch }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.stopped || !state.queue.isEmpty { return true }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// The next batch if work is queued (empty once stopped), without waiting.
    private func takeBatch() -> [Pending]? {
            state.withLock { state in
                if state.stopped { return [] }
                guard !state.queue.isEmpty else { return nil }
                // A bulk delete runs alone; a batch stops before one.
                var count = min(state.queue.count, maxBatch)
                if state.queue[0].request.isBulkDelete {
                    count = 1
                } else if let bulk = state.queue.prefix(count).firstIndex(where: { $0.request.isBulkDelete }) {
                    count = bulk
                }
                defer { state.queue.removeFirst(count) }
                return Array(state.queue.prefix(count))
            }
    }

    /// One group commit. Throws only when the session is broken (after failing the batch).
    private func process(_ batch: [Pending], session: any SQLSession, fromCache: Bool = true) async throws(SQLError) {
        if batch.count == 1, case .deleteRange(let delete) = batch[0].request, batch[0].request.isBulkDelete {
            try await bulkDelete(delete, batch[0], session: session)
            return
        }
        if fromCache, let started = startFromCache(batch, after: nil, session: session),
            try await complete(started, session: session) != .stale
        {
            return
        }
        let plan = PrefetchPlan(batch.map(\.request))
        let (loads, ranges, historic) = plan.statements(sql)
        let loaded: [SQLResult]
        do {
            loaded = try await session.pipeline([StoreSQL.begin, StoreSQL.lock, StoreSQL.headerStatement] + loads)
        } catch {
            try await abort(batch, error: error, session: session)
            return
        }

        var (space, expired) = plan.keySpace(header: loaded[2], loads: loaded[3...], ranges: ranges, historic: historic)
        let (outcomes, rows) = evaluate(batch, space: &space, expired: expired)
        do {
            var statements: [SQLStatement] = []
            if !rows.isEmpty {
                statements += [
                    insertStatement(rows), StoreSQL.setSequence(space.nextRowID - 1), StoreSQL.notify(space.currentRevision),
                ]
            }
            if !space.revokedLeases.isEmpty { statements.append(StoreSQL.deleteLeases(space.revokedLeases)) }
            _ = try await session.pipeline(statements + [StoreSQL.commit])
        } catch {
            try await abort(batch, error: error, session: session)
            return
        }
        finish(batch, outcomes: outcomes, rows: rows, lastID: space.nextRowID - 1)
    }

    /// Executes the batch's requests in order on `space` (each sees the ones before it).
    func evaluate(_ batch: [Pending], space: inout KeySpace, expired: [Int64]) -> (outcomes: [Result<WriteResponse, EtcdError>], rows: [PendingRow]) {
        var outcomes: [Result<WriteResponse, EtcdError>] = []
        outcomes.reserveCapacity(batch.count)
        var rows: [PendingRow] = []
        for item in batch {
            do {
                if case .expireLeases = item.request {
                    // Each expired lease is revoked in its own revision, as etcd's lessor does.
                    var revoked: [Int64] = []
                    for id in expired.sorted() where space.leases[id] != nil {
                        let (_, newRows) = try TxnExecutor.run(.revokeLease(id), space: &space)
                        rows.append(contentsOf: newRows)
                        revoked.append(id)
                    }
                    outcomes.append(.success(.leasesExpired(revoked)))
                    continue
                }
                let (response, newRows) = try TxnExecutor.run(item.request, space: &space)
                rows.append(contentsOf: newRows)
                outcomes.append(.success(response))
            } catch {
                outcomes.append(.failure(error))
            }
        }
        return (outcomes, rows)
    }

    /// After the commit: publish, then answer.
    func finish(_ batch: [Pending], outcomes: [Result<WriteResponse, EtcdError>], rows: [PendingRow], lastID: Int64) {
        state.withLock { $0.lastCommittedID = max($0.lastCommittedID, lastID) }
        // Published first, so a client that reads after its response sees its write in the cache
        // and watchers get the event no later than the writer gets its answer.
        if !rows.isEmpty { onCommit(rows) }
        for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(returning: outcome) }
    }

    /// One DeleteRange done by PostgreSQL: lock, read the header, insert the tombstones with
    /// `INSERT … SELECT`, commit. The WatchHub reads the events from the table.
    private func bulkDelete(_ request: DeleteRangeRequest, _ item: Pending, session: any SQLSession) async throws(SQLError) {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        do {
            let header = try await session.pipeline([StoreSQL.begin, StoreSQL.lock, StoreSQL.headerStatement])[2].rows.first
            let (current, maxID) = (header?.int64(0) ?? 0, header?.int64(2) ?? 0)
            var deleted = 0
            if !range.isEmpty {
                let results = try await session.pipeline([
                    sql.bulkDelete(KeyMapping.nameRange(range), maxID: maxID, revision: current + 1),
                    SQLStatement("SELECT setval('kine_id_seq', GREATEST((SELECT MAX(id) FROM kine), 1))", name: "w_setval_max"),
                    StoreSQL.notify(current + 1),
                ])
                deleted = results[0].affectedRows
            }
            _ = try await session.pipeline([StoreSQL.commit])
            let revision = deleted > 0 ? current + 1 : current
            state.withLock { $0.lastCommittedID = max($0.lastCommittedID, maxID + Int64(deleted)) }
            item.continuation.resume(returning: .success(.deleteRange(
                DeleteRangeResponse(header: ResponseHeader(revision: revision), deleted: Int64(deleted)))))
            if deleted > 0 { onCommit([]) }
        } catch {
            try await abort([item], error: error, session: session)
        }
    }

    /// Answers every request of `batch` with `error` (nothing of it was written).
    func fail(_ batch: [Pending], error: SQLError) {
        let etcdError = StoreError.etcdError(for: error)
        for item in batch { item.continuation.resume(returning: .failure(etcdError)) }
    }

    /// Fails the batch, rolls back, and rethrows if the connection itself is gone.
    func abort(_ batch: [Pending], error: SQLError, session: any SQLSession) async throws(SQLError) {
        logger.warning("write batch failed", metadata: ["kine.error": "\(error)", "kine.batch": "\(batch.count)"])
        fail(batch, error: error)
        if error.kind == .connection { throw error }
        _ = try? await session.pipeline([StoreSQL.rollback])
    }

    private func insertStatement(_ rows: [PendingRow]) -> SQLStatement {
        SQLStatement(StoreSQL.insertRows, insertParameters(rows), name: "w_insert")
    }

    /// The insert, the sequence, the notification and the session's batch token as one statement
    /// that does nothing unless `guardCondition` holds; its one row says whether it wrote.
    func guardedInsertStatement(_ rows: [PendingRow], guardCondition: CacheGuard, sequence: Int64, revision: Int64, token: String) -> SQLStatement {
        SQLStatement(
            StoreSQL.guardedInsertRows,
            insertParameters(rows) + guardCondition.parameters + [.int64(sequence), .text(String(revision)), .text(token)],
            name: "w_guarded_insert")
    }

    /// `$1…$12` of `StoreSQL.insertRows`.
    private func insertParameters(_ rows: [PendingRow]) -> [SQLValue] {
            [
                .int64Array(rows.map(\.id)),
                .textArray(rows.map { String(decoding: $0.name, as: UTF8.self) }),
                .int64Array(rows.map { $0.created ? 1 : 0 }),
                .int64Array(rows.map { $0.deleted ? 1 : 0 }),
                .int64Array(rows.map(\.createRevision)),
                .int64Array(rows.map(\.prevRevision)),
                .bytesArray(rows.map(\.value)),
                .bytesArray(rows.map(\.oldValue)),
                .int64Array(rows.map(\.version)),
                .int64Array(rows.map(\.revision)),
                .int64Array(rows.map(\.lease)),
                .int64Array(rows.map(\.leaseTTL)),
            ]
    }
}
