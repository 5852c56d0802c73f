import KineCore
import KineSQL
import KineSync
import Logging
import Synchronization

/// The one Writer of this process: group commit under one database-wide advisory lock.
///
/// Each round takes every write waiting (a bulk delete alone) and commits it in one of three ways:
/// - **From the read cache** (`processFromCache`), when the cache holds everything the batch
///   reads (no leases, no history): evaluate in Swift against the cache, then lock, insert guarded
///   by "the newest id is still the cache's", and commit, in one round trip. A failed guard
///   (another process wrote meanwhile) falls through to the next path, having changed nothing.
/// - **Two round trips** (`process`): in one transaction, take the lock and read the header and
///   every key, range, lease and historic range the batch touches (`PrefetchPlan`); evaluate the
///   requests in order in Swift; insert all rows with consecutive explicit ids (one revision per
///   request, one row per changed key), advance `kine_id_seq`, notify and commit.
/// - **Bulk delete** (`bulkDelete`): a DeleteRange over a range runs alone, and PostgreSQL
///   computes and inserts the tombstones itself (`StoreSQL.bulkDelete`), so deleting a huge
///   prefix never ships its rows.
///
/// Because every writer, in any process, holds the same lock until commit, ids become visible in
/// order: readers never see a hole that fills later.
final class Writer: Sendable {
    private struct Pending: Sendable {
        var request: WriteRequest
        /// The auth revision the request's permission check used; the write commits only if the
        /// table still has it (nil: not checked, an internal write).
        var authGeneration: UInt64?
        var completion: Completion<Result<WriteResponse, EtcdError>>
    }

    private struct State: Sendable {
        var queue: [Pending] = []
        /// The batch loop, parked until a write arrives or the Writer stops.
        var waiter: Completion<Void>?
        var stopped = false
        /// The id of the last row this Writer committed: the cache is only worth trying once it has it.
        var lastCommittedID: Int64 = 0
        /// Set by `poke()`: the batch loop wakes without work to tend the sole-writer lock.
        var poked = false
    }

    private let client: any SQLClient
    private let sql: StoreSQL
    private let logger: Logger
    private let maxBatch: Int
    private let state = Mutex(State())
    /// Called after each commit with the rows written, in id order (the WatchHub publishes them).
    private let onCommit: @Sendable ([PendingRow]) -> Void
    /// Hears the auth generation a batch found in the table (the auth cache reloads when it is newer).
    private let onAuthGeneration: @Sendable (UInt64) -> Void
    /// Whether commits must NOTIFY other kine processes (`CommitNotices`).
    private let notices: CommitNoticeBoard
    /// When set, batches are evaluated against it and written in one round trip (`processFromCache`).
    private let cache: KeyValueCache?
    /// The sole-writer lock this Writer takes, confirms and releases between batches (`SoleWriter`).
    private let soleWriter: SoleWriterBoard

    /// Metrics of each group commit (requests, time), when kine's metrics are on.
    private let onGroupCommit: (@Sendable (Int, Duration) -> Void)?
    /// How long PostgreSQL lets the writer session sit idle inside a transaction before ending it.
    /// Some batches hold the write lock across two round trips; a kine process frozen between
    /// them (SIGSTOP, a stalled VM) would otherwise block every other writer of the database (the
    /// HA peer's routed writes, other kine processes) for as long as it stays frozen.
    private let idleInTransactionTimeout: Duration

    init(
        client: any SQLClient, sql: StoreSQL, logger: Logger, maxBatch: Int = 1000, cache: KeyValueCache? = nil,
        idleInTransactionTimeout: Duration = .seconds(2),
        onGroupCommit: (@Sendable (Int, Duration) -> Void)? = nil, onAuthGeneration: @escaping @Sendable (UInt64) -> Void = { _ in },
        notices: CommitNoticeBoard = CommitNoticeBoard(), soleWriter: SoleWriterBoard = SoleWriterBoard(),
        onCommit: @escaping @Sendable ([PendingRow]) -> Void
    ) {
        self.notices = notices
        self.soleWriter = soleWriter
        self.onAuthGeneration = onAuthGeneration
        self.idleInTransactionTimeout = idleInTransactionTimeout
        self.onGroupCommit = onGroupCommit
        self.client = client
        self.sql = sql
        self.logger = logger
        self.maxBatch = maxBatch
        self.cache = cache
        self.onCommit = onCommit
    }

    /// The newest row id this Writer committed (its acknowledged writes are at or below it).
    var lastCommittedID: Int64 { state.withLock { $0.lastCommittedID } }

    func submit(_ request: WriteRequest, authGeneration: UInt64? = nil) async throws(EtcdError) -> WriteResponse {
        let result = await Completion<Result<WriteResponse, EtcdError>>.wait { completion in
            let (waiter, stopped): (Completion<Void>?, Bool) = state.withLock { state in
                if state.stopped { return (nil, true) }
                state.queue.append(Pending(request: request, authGeneration: authGeneration, completion: completion))
                defer { state.waiter = nil }
                return (state.waiter, false)
            }
            if stopped { completion.complete(.failure(.serverStopped)) }
            waiter?.complete()
        }
        return try result.get()
    }

    /// Wakes the batch loop to tend the sole-writer lock (`SoleWriter.step`) even without work.
    func poke() {
        let waiter = state.withLock { state in
            state.poked = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.complete()
    }

    /// Processes batches until `stop()`; reconnects with backoff when the session breaks.
    func run() async {
        var backoff: Duration = .milliseconds(50)
        while !isStopped && !Task.isCancelled {
            do {
                try await client.withSession { session in
                    backoff = .milliseconds(50)
                    // A new session holds no lock.
                    self.soleWriter.update { $0.released() }
                    _ = try await session.pipeline([
                        StoreSQL.idleInTransactionTimeout(self.idleInTransactionTimeout), StoreSQL.noIdleSessionTimeout,
                    ])
                    // On the session's connection thread: no hop between the Writer and PostgreSQL.
                    try await withTaskExecutorPreference(session.preferredExecutor) {
                        while let batch = await self.nextBatch() {
                            try await self.tendSoleWriter(session: session)
                            if batch.isEmpty { continue }
                            if let observe = self.onGroupCommit {
                                let start = ContinuousClock.now
                                try await self.processAdmitted(batch, session: session)
                                observe(batch.count, .now - start)
                            } else {
                                try await self.processAdmitted(batch, session: session)
                            }
                        }
                    }
                }
                return
            } catch {
                soleWriter.update { $0.released() }
                logger.warning("writer session failed, reconnecting", metadata: ["error": "\(error)"])
                // try?: cancellation means the Writer is stopping; the loop checks it.
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
        for item in pending { item.completion.complete(.failure(.serverStopped)) }
        waiter?.complete()
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Waits for work; nil once stopped, empty when poked without work.
    private func nextBatch() async -> [Pending]? {
        while true {
            let batch: [Pending]?? = state.withLock { state in
                if state.stopped { return .some(nil) }
                guard !state.queue.isEmpty else {
                    if state.poked {
                        state.poked = false
                        return .some([])
                    }
                    return nil
                }
                state.poked = false
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
            if let batch { return batch }
            await Completion<Void>.wait { completion in
                let resumeNow = state.withLock { state in
                    if state.stopped || !state.queue.isEmpty || state.poked { return true }
                    state.waiter = completion
                    return false
                }
                if resumeNow { completion.complete() }
            }
        }
    }

    /// One group commit, retried while the sole-writer lock refuses it (`RefusedWrites`: say
    /// hello, wait, and in the end end the holder's session). Throws only when the session is
    /// broken (after failing the batch).
    private func processAdmitted(_ batch: [Pending], session: any SQLSession) async throws(SQLError) {
        var refusals = RefusedWrites()
        while try await !process(batch, session: session) {
            switch refusals.refused(now: .now) {
            case .greet(let delay):
                _ = try await session.pipeline([StoreSQL.hello(from: 0)])
                // try?: cancellation means the Writer is stopping; checked below.
                try? await Task.sleep(for: delay)
            case .endHolder:
                let ended = try await session.run(StoreSQL.endSoleWriterHolder)
                logger.warning(
                    "ended the session of another kine process that held the sole-writer lock and did not let go",
                    metadata: ["kine.writer.endedSessions": "\(ended)"])
            }
            if isStopped || Task.isCancelled {
                for item in batch { item.completion.complete(.failure(.serverStopped)) }
                return
            }
        }
    }

    /// Between batches: takes, confirms or releases the sole-writer lock (`SoleWriter.step`).
    private func tendSoleWriter(session: any SQLSession) async throws(SQLError) {
        let sent = ContinuousClock.now
        switch soleWriter.step(othersListen: notices.othersListen, cacheLoaded: cache?.isLoaded ?? false) {
        case .none:
            return
        case .acquire(let listener):
            soleWriter.update { $0.attempted(at: sent) }
            var pipeline = SQLPipeline()
            let took = pipeline.add(StoreSQL.trySoleWriter)
            let newest = pipeline.add(StoreSQL.newestIDNow)
            let results = try await session.run(pipeline)
            guard results[took] else { return }
            soleWriter.update { $0.acquired(listener: listener, throughID: results[newest], sentAt: sent) }
            logger.debug("alone on the database: linearizable reads from memory", metadata: ["kine.store.newestID": "\(results[newest])"])
        case .release:
            // Readers stop first; the lock goes after.
            soleWriter.update { $0.released() }
            _ = try await session.pipeline([StoreSQL.releaseSoleWriter])
            logger.debug("another kine process is on the database: linearizable reads make a read barrier")
        case .confirm:
            _ = try await session.pipeline([StoreSQL.confirmSoleWriter])
            soleWriter.update { $0.confirmed(sentAt: sent) }
        }
    }

    /// One group commit: true when done (committed or failed), false when the sole-writer lock
    /// refused it (nothing written). Throws only when the session is broken (after failing the batch).
    private func process(_ batch: [Pending], session: any SQLSession) async throws(SQLError) -> Bool {
        if batch.count == 1, case .deleteRange(let delete) = batch[0].request, batch[0].request.isBulkDelete {
            return try await bulkDelete(delete, batch[0], session: session)
        }
        let plan = PrefetchPlan(batch.map(\.request))
        if let cache, plan.servableFromCache {
            switch try await processFromCache(batch, plan: plan, cache: cache, session: session) {
            case .done: return true
            case .refused: return false
            case .stale: break
            }
        }
        let sent = ContinuousClock.now
        var pipeline = SQLPipeline([StoreSQL.begin, StoreSQL.lock])
        let admitted = pipeline.add(StoreSQL.admitWrite)
        let header = pipeline.add(StoreSQL.header)
        let alarms = pipeline.add(StoreSQL.alarmState)
        let auth = pipeline.add(StoreSQL.authGenerationQuery)
        let slots = plan.load(into: &pipeline, sql: sql)
        let loaded: SQLPipelineResults
        do {
            loaded = try await session.run(pipeline)
        } catch {
            try await abort(batch, error: error, session: session)
            return true
        }
        guard loaded[admitted] else {
            _ = try await session.pipeline([StoreSQL.rollback])
            return false
        }

        var (space, expired) = plan.keySpace(header: loaded[header], results: loaded, slots: slots)
        let authGeneration = UInt64(bitPattern: loaded[auth])
        onAuthGeneration(authGeneration)
        let (outcomes, rows) = evaluate(batch, space: &space, expired: expired, alarms: loaded[alarms], authGeneration: authGeneration)
        do {
            var statements: [SQLStatement] = []
            if !rows.isEmpty {
                statements += [StoreSQL.insert(rows), StoreSQL.setSequence(space.nextRowID - 1)]
                if let payload = notices.payload(revision: space.currentRevision, rows: rows) {
                    statements.append(StoreSQL.notify(payload))
                }
            }
            if !space.revokedLeases.isEmpty { statements.append(StoreSQL.deleteLeases(space.revokedLeases)) }
            _ = try await session.pipeline(statements + [StoreSQL.commit])
        } catch {
            try await abort(batch, error: error, session: session)
            return true
        }
        soleWriter.update { $0.confirmed(sentAt: sent) }
        finish(batch, outcomes: outcomes, rows: rows, lastID: space.nextRowID - 1)
        return true
    }

    /// How a batch tried on the read cache ended.
    private enum CacheOutcome {
        /// Committed (or failed and answered).
        case done
        /// Another process wrote meanwhile: nothing changed; take the two-round-trip path.
        case stale
        /// The sole-writer lock refused the transaction: nothing changed; retry.
        case refused
    }

    /// The one-round-trip path: evaluates the batch against the read cache, then sends the lock,
    /// the rows and the commit together, the insert guarded by "the newest id is still the one the
    /// cache is at" (the guard runs under the lock, so no other writer can slip in after it). A
    /// batch that writes nothing only checks the guard, so its reads are current. Answers `.stale`,
    /// having changed nothing, when the guard fails (another process wrote meanwhile): the caller
    /// then takes the two-round-trip path.
    private func processFromCache(
        _ batch: [Pending], plan: PrefetchPlan, cache: KeyValueCache, session: any SQLSession
    ) async throws(SQLError) -> CacheOutcome {
        let lastCommitted = state.withLock { $0.lastCommittedID }
        // Every checked request must have used the same auth generation, which the guard compares.
        let authGenerations = Set(batch.compactMap(\.authGeneration))
        guard authGenerations.count <= 1 else { return .stale }
        let expectedAuth = authGenerations.first
        guard let snapshot = cache.snapshot(keys: plan.keys, ranges: plan.ranges), snapshot.lastID >= lastCommitted else { return .stale }
        // No txn in the batch reads history, so the compacted revision is never consulted.
        var space = KeySpace(currentRevision: snapshot.revision, compactRevision: 0, nextRowID: snapshot.lastID + 1)
        space.states = snapshot.states
        let (outcomes, rows) = evaluate(batch, space: &space, expired: [], alarms: AlarmState(), authGeneration: nil)
        let current: Bool
        let sent = ContinuousClock.now
        do {
            if rows.isEmpty {
                // Requests that wrote nothing were still refused had an alarm been active.
                current = try await session.run(StoreSQL.newestIDWithoutAlarms(authGeneration: expectedAuth)) == snapshot.lastID
            } else {
                // No BEGIN or COMMIT: the statements of one pipeline run as one implicit
                // transaction that commits at its sync point (or rolls back on an error). Each
                // statement still reads with its own snapshot, so the guard reads after the lock.
                var pipeline = SQLPipeline([StoreSQL.lock])
                let insert = pipeline.add(
                    StoreSQL.guardedInsert(
                        rows, expectedNewestID: snapshot.lastID, sequence: space.nextRowID - 1,
                        notify: notices.payload(revision: space.currentRevision, rows: rows),
                        authGeneration: expectedAuth))
                let outcome = try await session.run(pipeline)[insert]
                if !outcome.admitted { return .refused }
                current = outcome.wrote
            }
        } catch {
            try await abort(batch, error: error, session: session)
            return .done
        }
        soleWriter.update { $0.confirmed(sentAt: sent) }
        guard current else { return .stale }
        finish(batch, outcomes: outcomes, rows: rows, lastID: rows.isEmpty ? lastCommitted : space.nextRowID - 1)
        return .done
    }

    /// Executes the batch's requests in order on `space` (each sees the ones before it).
    /// Requests the active alarms refuse fail with etcd's error and change nothing.
    /// Requests checked against another auth generation than `authGeneration` (nil: already
    /// compared) fail with etcd's "revision in header is old" and change nothing.
    private func evaluate(
        _ batch: [Pending], space: inout KeySpace, expired: [Int64], alarms: AlarmState, authGeneration: UInt64?
    ) -> (outcomes: [Result<WriteResponse, EtcdError>], rows: [PendingRow]) {
        var outcomes: [Result<WriteResponse, EtcdError>] = []
        outcomes.reserveCapacity(batch.count)
        var rows: [PendingRow] = []
        for item in batch {
            if let authGeneration, let checked = item.authGeneration, checked != authGeneration {
                outcomes.append(.failure(.authOldRevision))
                continue
            }
            if !alarms.isEmpty, let refusal = alarms.refusal(of: item.request) {
                outcomes.append(.failure(refusal))
                continue
            }
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
    private func finish(_ batch: [Pending], outcomes: [Result<WriteResponse, EtcdError>], rows: [PendingRow], lastID: Int64) {
        state.withLock { $0.lastCommittedID = max($0.lastCommittedID, lastID) }
        // Published first, so a client that reads after its response sees its write in the cache
        // and watchers get the event no later than the writer gets its answer.
        if !rows.isEmpty { onCommit(rows) }
        for (item, outcome) in zip(batch, outcomes) { item.completion.complete(outcome) }
    }

    /// One DeleteRange done by PostgreSQL: lock, read the header, insert the tombstones with
    /// `INSERT … SELECT`, commit. When the read cache was at the header's position it knows every
    /// key deleted and its value, and the events are published from it (no read of the
    /// tombstones and their previous rows back from the table, which for a large prefix cost
    /// more than a gigabyte of memory); otherwise the WatchHub reads them from the table.
    private func bulkDelete(_ request: DeleteRangeRequest, _ item: Pending, session: any SQLSession) async throws(SQLError) -> Bool {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        do {
            var locked = SQLPipeline([StoreSQL.begin, StoreSQL.lock])
            let admitted = locked.add(StoreSQL.admitWrite)
            let headerSlot = locked.add(StoreSQL.header)
            let alarmSlot = locked.add(StoreSQL.alarmState)
            let authSlot = locked.add(StoreSQL.authGenerationQuery)
            let lockedResults = try await session.run(locked)
            guard lockedResults[admitted] else {
                _ = try await session.pipeline([StoreSQL.rollback])
                return false
            }
            let authGeneration = UInt64(bitPattern: lockedResults[authSlot])
            onAuthGeneration(authGeneration)
            if let checked = item.authGeneration, checked != authGeneration {
                _ = try await session.pipeline([StoreSQL.rollback])
                item.completion.complete(.failure(.authOldRevision))
                return true
            }
            if let refusal = lockedResults[alarmSlot].refusal(of: item.request) {
                _ = try await session.pipeline([StoreSQL.rollback])
                item.completion.complete(.failure(refusal))
                return true
            }
            let header = lockedResults[headerSlot]
            let (current, maxID) = (header.currentRevision, header.newestID)
            let nameRange = KeyMapping.nameRange(range)
            let victims = range.isEmpty ? [] : cache?.victims(of: range, nameRange: nameRange, at: maxID)
            var deleted = 0
            if !range.isEmpty {
                var pipeline = SQLPipeline()
                let tombstones = pipeline.add(sql.bulkDelete(nameRange, maxID: maxID, revision: current + 1))
                pipeline.add(StoreSQL.sequenceToNewestID)
                pipeline.add(StoreSQL.notify(String(current + 1)))
                deleted = try await session.run(pipeline)[tombstones]
            }
            _ = try await session.pipeline([StoreSQL.commit])
            let revision = deleted > 0 ? current + 1 : current
            state.withLock { $0.lastCommittedID = max($0.lastCommittedID, maxID + Int64(deleted)) }
            if deleted > 0 {
                // The cache's keys are the deleted ones exactly when there are as many.
                if let victims, victims.count == deleted {
                    onCommit(Self.tombstones(victims, firstID: maxID + 1, revision: revision))
                } else {
                    onCommit([])
                }
            }
            item.completion.complete(
                .success(
                    .deleteRange(
                        DeleteRangeResponse(header: ResponseHeader(revision: revision), deleted: Int64(deleted)))))
        } catch {
            try await abort([item], error: error, session: session)
        }
        return true
    }

    /// The rows `StoreSQL.bulkDelete` inserted for `victims` (ids in stored-name order), as the
    /// table would give them back.
    private static func tombstones(_ victims: [(name: Bytes, entry: KeyValueCache.Entry)], firstID: Int64, revision: Int64) -> [PendingRow]
    {
        victims.enumerated().map { offset, victim in
            let kv = victim.entry.kv
            var row = PendingRow(
                name: victim.name, created: false, deleted: true, createRevision: kv.createRevision, prevRevision: victim.entry.rowID,
                value: nil, version: 0, event: Event(type: .delete, kv: KeyValue(key: kv.key, modRevision: revision), prevKV: kv))
            row.id = firstID + Int64(offset)
            row.revision = revision
            return row
        }
    }

    /// Fails the batch, rolls back, and rethrows if the connection itself is gone.
    private func abort(_ batch: [Pending], error: SQLError, session: any SQLSession) async throws(SQLError) {
        logger.warning("write batch failed", metadata: ["error": "\(error)", "kine.writer.batch": "\(batch.count)"])
        let etcdError = StoreError.etcdError(for: error)
        for item in batch { item.completion.complete(.failure(etcdError)) }
        if error.kind == .connection { throw error }
        // try?: the batch already failed; a rollback that fails too leaves a session the next batch resets.
        _ = try? await session.pipeline([StoreSQL.rollback])
    }
}
