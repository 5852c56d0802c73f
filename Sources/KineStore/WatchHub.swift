public import KineCore
import KineSQL
import KineSync
import Logging
import Synchronization

/// One per process: follows the kine table in id order and publishes every committed revision.
///
/// Because all writers commit in id order (one advisory lock), the tail never waits on holes:
/// every row up to the highest visible id is there. It is woken by this process's commits, by
/// `NOTIFY kine` from other processes, and by a slow poll as a safety net. Recent revisions stay in
/// a bounded ring so live watchers are served from memory; watchers further behind read history
/// from the table (`history`).
public final class WatchHub: Sendable {
    private struct State: Sendable {
        var ring = RevisionRing()
        var lastID: Int64 = 0
        var revision: Int64 = 0
        var started = false
        var stopped = false
        var poked = false
        /// The tail loop, parked until a poke.
        var pokeWaiter: Completion<Void>?
        /// `sync` callers, each parked until the published position reaches its id.
        var syncWaiters: [(id: Int64, completion: Completion<Void>)] = []
        var subscribers: [UInt64: @Sendable (Publication) -> Void] = [:]
        var nextSubscriber: UInt64 = 0
        /// The highest compacted revision this process has seen (its own compactions and every
        /// read of the compact mark): events sent after it lose a `prev_kv` etcd no longer has.
        var compactedRevision: Int64 = 0
    }

    private let client: any SQLClient
    private let sql: StoreSQL
    private let logger: Logger
    private let pollInterval: Duration
    private let state: Mutex<State>
    private let batchRows: Int64 = 1000
    /// The latest state of every key, advanced with each published revision; nil when disabled.
    private let cache: KeyValueCache?
    /// The read barrier: the newest id, read by a query that started after the request (etcd's
    /// ReadIndex), one query for every request waiting.
    private let barrier: Coalescer<Void, BarrierReading>
    /// Where the sessions following this hub count streams, watchers and events.
    let statistics: StoreStatistics
    /// Told of every notification this process did not cause (`CommitNotices`).
    let notices: CommitNoticeBoard

    init(
        client: any SQLClient, sql: StoreSQL, logger: Logger, cache: KeyValueCache? = nil, statistics: StoreStatistics = StoreStatistics(),
        ringCapacity: Int = 8192, pollInterval: Duration = .seconds(1), notices: CommitNoticeBoard = CommitNoticeBoard()
    ) {
        self.notices = notices
        self.client = client
        self.statistics = statistics
        self.sql = sql
        self.logger = logger
        self.cache = cache
        self.pollInterval = pollInterval
        state = Mutex(State(ring: RevisionRing(capacity: ringCapacity)))
        barrier = Coalescer { (requests: [Void]) async throws(SQLError) -> [BarrierReading] in
            let reading = try await client.run(StoreSQL.barrierQuery)
            return requests.map { _ in reading }
        }
    }

    /// The newest revision published to watchers.
    public var revision: Int64 { state.withLock { $0.revision } }

    /// Follows the table until `stop()`.
    /// `ownListener` is the backend pid of this process's listening session (its hello is not
    /// news).
    func run(notifications: AsyncStream<String>?, ownListener: @escaping @Sendable () -> Int32? = { nil }) async {
        await withTaskGroup(of: Void.self) { group in
            if let notifications {
                group.addTask { [self] in
                    for await payload in notifications {
                        // This process's own commits are published before their NOTIFY arrives,
                        // and need no read of the table.
                        let notice = CommitNoticePayload(parsing: payload)
                        if let notice, notice.revision <= revision { continue }
                        // A revision this process has not published, or another process's hello.
                        if payload != CommitNotices.hello(from: ownListener()) { notices.heard() }
                        // The commit's events when they came along and follow what is published;
                        // otherwise the tail reads the table.
                        if let rows = notice?.rows, publishNotified(rows) { continue }
                        poke()
                    }
                }
            }
            group.addTask { [self] in
                while !isStopped && !Task.isCancelled {
                    // try?: a cancelled sleep means the hub is stopping; the loop condition ends it.
                    try? await Task.sleep(for: pollInterval)
                    poke()
                }
            }
            group.addTask { [barrier] in await barrier.run() }
            await tail()
            barrier.finish()
            group.cancelAll()
        }
    }

    /// Stops following the table: nothing more is published (a re-pointed HA node freezes the
    /// previous epoch's hub before deciding whether its watches can go on, `WatchContinuity`).
    public func stop() {
        let waiters = state.withLock { state in
            state.stopped = true
            defer {
                state.pokeWaiter = nil
                state.syncWaiters = []
            }
            return (state.pokeWaiter, state.syncWaiters.map(\.completion))
        }
        waiters.0?.complete()
        for waiter in waiters.1 { waiter.complete() }
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    /// Something may have been committed: look at the table soon.
    func poke() {
        let waiter = state.withLock { state in
            state.poked = true
            defer { state.pokeWaiter = nil }
            return state.pokeWaiter
        }
        waiter?.complete()
    }

    /// Waits until every row committed before the call is published, and returns the revision
    /// published then (the current revision for a watch created "from now", a progress report,
    /// or a linearizable read from the cache). Concurrent callers share one query (`barrier`).
    public func sync() async throws(EtcdError) -> Int64 {
        try await syncReading().revision
    }

    /// `sync()`, with the auth generation the barrier saw.
    public func syncReading() async throws(EtcdError) -> (revision: Int64, authGeneration: UInt64) {
        let reading: BarrierReading
        do {
            reading = try await barrier.submit(())
        } catch {
            throw StoreError.etcdError(for: error)
        }
        noteCompacted(through: reading.compactRevision)
        return (try await published(throughID: reading.newestID), reading.authGeneration)
    }

    /// Waits until every row up to `id` is published and returns the revision published then;
    /// no query of its own (for an id known to be committed). Never before the hub has read its
    /// starting point: until then its revision is not the table's.
    func published(throughID id: Int64) async throws(EtcdError) -> Int64 {
        await Completion<Void>.wait { completion in
            let ready = state.withLock { state in
                if state.stopped || (state.started && state.lastID >= id) { return true }
                state.syncWaiters.append((id, completion))
                return false
            }
            if ready { completion.complete() } else { poke() }
        }
        if isStopped { throw .serverStopped }
        return revision
    }

    /// What one publication added: the revisions after `previousRevision` up to `revision`, with
    /// the events of those that have any (`groups`, in revision order).
    public struct Publication: Sendable {
        public var previousRevision: Int64
        public var revision: Int64
        public var groups: [RevisionEvents]
    }

    /// `wake` is called (from any thread, must not block) whenever a revision is published.
    public func subscribe(_ wake: @escaping @Sendable (Publication) -> Void) -> UInt64 {
        state.withLock { state in
            state.nextSubscriber += 1
            state.subscribers[state.nextSubscriber] = wake
            return state.nextSubscriber
        }
    }

    public func unsubscribe(_ token: UInt64) {
        _ = state.withLock { $0.subscribers.removeValue(forKey: token) }
    }

    /// Published revisions newer than `after` and up to `through`, if the ring still has them all.
    func recent(after: Int64, through: Int64) -> [RevisionEvents]? {
        state.withLock { $0.ring.revisions(after: after, through: through) }
    }

    /// History of `range` from `fromRevision` up to the published position: from the table,
    /// at most about `limit` rows per call. `through` is the revision the result is complete up to.
    /// A watcher carried over from the previous HA epoch reads with its `continuity` (history
    /// below the epoch's compaction mark but above the previous one).
    func history(
        _ range: KeyRange, from fromRevision: Int64, limit: Int64 = 2000, continuity: WatchContinuity? = nil
    ) async throws(EtcdError) -> (groups: [RevisionEvents], through: Int64) {
        let (lastID, revision) = state.withLock { ($0.lastID, $0.revision) }
        if fromRevision > revision { return ([], revision) }
        var pipeline = SQLPipeline()
        let header = pipeline.add(StoreSQL.header)
        let changes = pipeline.add(sql.changes(in: KeyMapping.nameRange(range), fromRevision: fromRevision, toID: lastID, limit: limit + 1))
        let results: SQLPipelineResults
        do {
            results = try await client.run(pipeline)
        } catch {
            throw StoreError.etcdError(for: error)
        }
        let compacted = results[header].compactRevision
        if fromRevision < (continuity?.compactedRevision(forCarried: compacted) ?? compacted) { throw .compacted }
        let page = results[changes]
        var groups = page.groups
        if page.rowCount > limit {
            // The last revision may continue past the limit: leave it for the next call, or, if it
            // is the only one, read it again whole (a revision is never delivered in part).
            if groups.count == 1 { return try await history(range, from: fromRevision, limit: limit * 4, continuity: continuity) }
            groups.removeLast()
            return (groups, groups.last?.revision ?? revision)
        }
        return (groups, revision)
    }

    /// The compacted revision now, read from the table (and remembered, `knownCompactedRevision`).
    func compactedRevision() async throws(EtcdError) -> Int64 {
        let compacted: Int64
        do {
            compacted = try await client.run(StoreSQL.header).compactRevision
        } catch {
            throw StoreError.etcdError(for: error)
        }
        noteCompacted(through: compacted)
        return compacted
    }

    /// The highest compacted revision seen so far, without a query: a lower bound of the table's.
    var knownCompactedRevision: Int64 { state.withLock { $0.compactedRevision } }

    /// Records a compaction (this process's, or one read from the table), and lets the read
    /// cache drop the tombstones it removed from the table: whoever compacted, so a process whose
    /// client never wins the compaction race does not keep every deleted key.
    func noteCompacted(through revision: Int64) {
        let advanced = state.withLock { state -> Bool in
            guard revision > state.compactedRevision else { return false }
            state.compactedRevision = revision
            return true
        }
        if advanced { cache?.compacted(through: revision) }
    }

    // MARK: Tail

    /// Takes the table's current position (and, with a cache, its state) as the starting point;
    /// retries until it can read the table.
    private func start() async {
        while !isStopped && !Task.isCancelled {
            do {
                let (revision, maxID) = try await readStartingPoint()
                state.withLock { state in
                    state.ring = RevisionRing(capacity: state.ring.capacity, coversAfter: revision)
                    state.revision = revision
                    state.lastID = maxID
                    state.started = true
                }
                publish([])
                return
            } catch {
                logger.warning("watch hub cannot read the current revision; retrying", metadata: ["error": "\(error)"])
                // try?: cancellation means the hub is stopping; the loop checks it.
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// The current revision and newest id; with a cache, loads it from the same snapshot.
    private func readStartingPoint() async throws(SQLError) -> (revision: Int64, maxID: Int64) {
        guard let cache else {
            let header = try await client.run(StoreSQL.header)
            return (header.currentRevision, header.newestID)
        }
        let start = try await client.run(sql.latestOfAllNames)
        cache.load(rows: start.rows, lastID: start.newestID, revision: start.currentRevision)
        return (start.currentRevision, start.newestID)
    }

    private func tail() async {
        await start()
        var limit = batchRows
        while !isStopped && !Task.isCancelled {
            await waitForPoke()
            if isStopped { return }
            do {
                if try await skipWhenNobodyWatches() { continue }
                var more = true
                while more && !isStopped {
                    let from = state.withLock { $0.lastID }
                    let page = try await client.run(StoreSQL.changes(afterID: from, limit: limit))
                    var groups = page.groups
                    more = page.rowCount >= limit
                    if more {
                        if groups.count > 1 {
                            groups.removeLast()  // possibly cut by the limit: fetch it whole next time
                            limit = batchRows
                        } else {
                            limit *= 4  // one revision larger than the batch
                            continue
                        }
                    }
                    statistics.count { $0.revisionsFromTable += groups.count }
                    publish(groups)
                }
            } catch {
                logger.warning("watch hub cannot read changes; retrying", metadata: ["error": "\(error)"])
                // try?: cancellation means the hub is stopping; the loop checks it.
                try? await Task.sleep(for: .milliseconds(200))
                poke()
            }
        }
    }

    /// With no watch streams, nobody needs the events: move the position to the newest row
    /// without reading the rows (the ring starts afresh; a later watcher from an older revision
    /// reads the table). Returns whether it did.
    private func skipWhenNobodyWatches() async throws(SQLError) -> Bool {
        // The cache needs every row.
        guard cache == nil, state.withLock({ $0.subscribers.isEmpty }) else { return false }
        let header = try await client.run(StoreSQL.header)
        let (revision, maxID) = (header.currentRevision, header.newestID)
        let skipped = state.withLock { state in
            guard state.subscribers.isEmpty, maxID >= state.lastID else { return false }
            state.revision = max(state.revision, revision)
            state.lastID = maxID
            state.ring = RevisionRing(capacity: state.ring.capacity, coversAfter: state.revision)
            return true
        }
        if skipped { publish([]) }
        return skipped
    }

    private func waitForPoke() async {
        await Completion<Void>.wait { completion in
            let now = state.withLock { state in
                if state.poked || state.stopped {
                    state.poked = false
                    return true
                }
                state.pokeWaiter = completion
                return false
            }
            if now { completion.complete() }
        }
        state.withLock { $0.poked = false }
    }

    /// Publishes this process's commit straight from the Writer's rows when it directly follows
    /// what was published (no other process committed in between); otherwise the tail reads it.
    func publishLocal(_ rows: [PendingRow]) {
        // Rows the Writer did not see (a bulk delete made by PostgreSQL): read them from the table.
        guard let first = rows.first else { return poke() }
        var groups: [RevisionEvents] = []
        for row in rows { groups.append(row.event, rowID: row.id, revision: row.revision) }
        let follows = state.withLock { $0.started && $0.lastID == first.id - 1 }
        if follows { publish(groups) } else { poke() }
    }

    /// Publishes another process's commit from the rows its NOTIFY carried
    /// (`CommitNoticePayload`), when they directly follow what is published and the read cache
    /// is at the same position to give each event its previous value (the table's `prev_revision`
    /// row is the key's latest row, which the cache holds). Returns false when it could not: the
    /// tail then reads the table.
    private func publishNotified(_ rows: [CommitNoticePayload.Row]) -> Bool {
        guard let cache, let first = rows.first else { return false }
        let outcome: Outcome? = state.withLock { state in
            guard state.started, !state.stopped, state.lastID == first.id - 1,
                var latest = cache.live(Set(rows.map(\.kv.key)), at: state.lastID)
            else { return nil }
            var groups: [RevisionEvents] = []
            for row in rows {
                let event = Event(type: row.type, kv: row.kv, prevKV: latest[row.kv.key])
                latest[row.kv.key] = row.type == .put ? row.kv : nil
                groups.append(event, rowID: row.id, revision: row.kv.modRevision)
            }
            statistics.count { $0.revisionsFromNotices += groups.count }
            return publish(groups, state: &state)
        }
        guard let outcome else { return false }
        outcome.deliver()
        return true
    }

    /// Publishes whole revisions that follow the published position; revisions already
    /// published (by the other path) are skipped.
    private func publish(_ groups: [RevisionEvents]) {
        state.withLock { publish(groups, state: &$0) }.deliver()
    }

    /// What a publication wakes, once the hub's lock is let go.
    private struct Outcome {
        var wakes: [@Sendable (Publication) -> Void]
        var ready: [Completion<Void>]
        var publication: Publication

        func deliver() {
            for waiter in ready { waiter.complete() }
            for wake in wakes { wake(publication) }
        }
    }

    private func publish(_ groups: [RevisionEvents], state: inout State) -> Outcome {
        var publication = Publication(previousRevision: state.revision, revision: state.revision, groups: [])
        if state.stopped { return Outcome(wakes: [], ready: [], publication: publication) }
        // Under the hub's lock, so the cache sees revisions in the order they are published.
        cache?.apply(groups)
        for group in groups where group.lastID > state.lastID {
            if !group.events.isEmpty {
                state.ring.append(group)
                publication.groups.append(group)
            }
            state.lastID = group.lastID
            state.revision = max(state.revision, group.revision)
        }
        publication.revision = state.revision
        let lastID = state.lastID
        let ready = state.syncWaiters.filter { $0.id <= lastID }.map(\.completion)
        state.syncWaiters.removeAll { $0.id <= lastID }
        return Outcome(wakes: Array(state.subscribers.values), ready: ready, publication: publication)
    }
}

/// The most recent revisions' events, bounded by an event count and by bytes of keys and values.
struct RevisionRing: Sendable {
    private var groups: [RevisionEvents] = []
    private var head = 0
    private var eventCount = 0
    private var byteCount = 0
    private(set) var capacity = 8192
    static let maxBytes = 64 << 20
    /// Every revision after this one is in the ring (revisions without events have none).
    private(set) var coversAfter: Int64 = 0

    init(capacity: Int = 8192, coversAfter: Int64 = 0) {
        self.capacity = capacity
        self.coversAfter = coversAfter
    }

    mutating func append(_ group: RevisionEvents) {
        groups.append(group)
        eventCount += group.events.count
        byteCount += Self.bytes(group)
        // A revision larger than the whole ring (a prefix delete of a big tree) is not kept at
        // all: watchers that need it read it from the table, in pages.
        while eventCount > capacity || byteCount > Self.maxBytes, head < groups.count {
            eventCount -= groups[head].events.count
            byteCount -= Self.bytes(groups[head])
            coversAfter = groups[head].revision
            head += 1
        }
        if head == groups.count {
            groups.removeAll()
            head = 0
        } else if head > 1024 && head * 2 > groups.count {
            groups.removeFirst(head)
            head = 0
        }
    }

    /// Groups with `after < revision <= through`, or nil if some may have been dropped.
    func revisions(after: Int64, through: Int64) -> [RevisionEvents]? {
        guard after >= coversAfter else { return nil }
        var low = head
        var high = groups.count
        while low < high {
            let mid = (low + high) / 2
            if groups[mid].revision <= after { low = mid + 1 } else { high = mid }
        }
        var result: [RevisionEvents] = []
        var index = low
        while index < groups.count, groups[index].revision <= through {
            result.append(groups[index])
            index += 1
        }
        return result
    }

    private static func bytes(_ group: RevisionEvents) -> Int {
        group.events.reduce(0) { total, event in
            total + event.kv.key.count + event.kv.value.count + (event.prevKV.map { $0.key.count + $0.value.count } ?? 0)
        }
    }
}
