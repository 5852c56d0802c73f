import KineCore
import KineSQL

/// What a batch evaluated on the read cache assumes about the table: its newest id, and, when it
/// was queued behind another such batch on the same connection, that that batch committed.
struct CacheGuard: Sendable {
    var newestID: Int64
    /// The token the batch ahead leaves in the session when it commits (nil: none ahead).
    var tokenAhead: String?

    var parameters: [SQLValue] { [.int64(newestID), tokenAhead.map { .text($0) } ?? .null] }
}

/// How a batch sent from the cache ended.
enum CachedOutcome: Sendable {
    /// Written and answered.
    case committed
    /// Answered with the database's error; nothing written.
    case failed
    /// The guard did not hold: nothing written, nothing answered; the batch is still to be done.
    case stale
}

/// A batch evaluated on the read cache whose pipeline has been sent but not yet answered.
struct CachedBatch: Sendable {
    var batch: [Writer.Pending]
    var outcomes: [Result<WriteResponse, EtcdError>]
    var rows: [PendingRow]
    var pending: PendingPipeline
    /// Index of the result whose first column says whether the guard held.
    var guardResult: Int
    var guardCondition: CacheGuard
    /// The state after this batch, as later batches must see it: the newest id and revision,
    /// every key it read or wrote, and the token later batches check (this batch's own if it
    /// writes, else the one it checked).
    var lastID: Int64
    var revision: Int64
    var states: [Bytes: KeyState]
    var token: String?
}

extension Writer {
    /// Evaluates `batch` on the read cache (and on the batch `after` still on the wire, if any) and
    /// sends it: `BEGIN`, the lock, the guarded insert and `COMMIT`, or, if it writes nothing, the
    /// guard alone. Nil, having sent nothing, when the cache cannot serve it: leases or history,
    /// the cache not loaded or not at the position this Writer (or `after`) expects.
    func startFromCache(_ batch: [Pending], after: CachedBatch?, session: any SQLSession) -> CachedBatch? {
        guard let cache else { return nil }
        let plan = PrefetchPlan(batch.map(\.request))
        guard plan.servableFromCache, !batch.contains(where: { $0.request.isBulkDelete }),
            let snapshot = cache.snapshot(keys: plan.keys, ranges: plan.ranges)
        else { return nil }
        if let after {
            // The cache holds everything before `after` and nothing after: `after`'s states complete it.
            guard snapshot.lastID == after.guardCondition.newestID else { return nil }
        } else {
            guard snapshot.lastID >= state.withLock({ $0.lastCommittedID }) else { return nil }
        }
        // No txn in the batch reads history, so the compacted revision is never consulted.
        var space = KeySpace(
            currentRevision: after?.revision ?? snapshot.revision, compactRevision: 0,
            nextRowID: (after?.lastID ?? snapshot.lastID) + 1)
        space.states = snapshot.states
        if let after { space.states.merge(after.states) { _, ahead in ahead } }
        let (outcomes, rows) = evaluate(batch, space: &space, expired: [])

        let condition = CacheGuard(newestID: after?.lastID ?? snapshot.lastID, tokenAhead: after?.token)
        let token = rows.isEmpty ? after?.token : nextToken()
        let statements: [SQLStatement]
        if let token, !rows.isEmpty {
            statements = [
                StoreSQL.begin, StoreSQL.lock,
                guardedInsertStatement(rows, guardCondition: condition, sequence: space.nextRowID - 1, revision: space.currentRevision, token: token),
                StoreSQL.commit,
            ]
        } else {
            statements = [StoreSQL.cacheGuardHolds(condition)]
        }
        return CachedBatch(
            batch: batch, outcomes: outcomes, rows: rows, pending: session.send(statements), guardResult: rows.isEmpty ? 0 : 2,
            guardCondition: condition, lastID: space.nextRowID - 1, revision: space.currentRevision, states: space.states, token: token)
    }

    /// Waits for a sent batch and answers it, unless its guard did not hold. Throws only when the
    /// session is broken.
    func complete(_ cached: CachedBatch, session: any SQLSession) async throws(SQLError) -> CachedOutcome {
        let held: Bool
        do {
            held = try await cached.pending.result()[cached.guardResult].rows.first?.bool(0) ?? false
        } catch {
            try await abort(cached.batch, error: error, session: session)
            return .failed
        }
        guard held else { return .stale }
        finish(cached.batch, outcomes: cached.outcomes, rows: cached.rows, lastID: cached.lastID)
        return .committed
    }

    /// Waits for a batch that was queued behind one that did not commit: its guard cannot hold,
    /// so it wrote nothing; it only has to leave the connection outside any transaction.
    func discard(_ cached: CachedBatch, session: any SQLSession) async {
        do {
            _ = try await cached.pending.result()
        } catch {
            _ = try? await session.pipeline([StoreSQL.rollback])
        }
    }

    /// A token no earlier batch of this process used.
    private func nextToken() -> String {
        state.withLock { state in
            state.batchCounter += 1
            return "\(state.processToken)-\(state.batchCounter)"
        }
    }
}
