public import KineCore
public import KineSQL
public import Logging
import Synchronization

/// MVCC over the kine table: the etcd KV semantics, backed by any `SQLClient`.
public final class KineStore: Sendable {
    public struct Configuration: Sendable {
        /// Go kine's `KINE_SCHEMA_MIGRATION` level (0 = none).
        public var schemaMigrationLevel: Int = 0
        /// Revisions per compaction transaction (Go kine's `--compact-batch-size`).
        public var compactBatchSize: Int64 = 1000
        /// Most write requests in one group commit.
        public var maxWriteBatch: Int = 1000
        public var maxTxnOps: Int = RequestValidation.defaultMaxTxnOps
        /// Keep the latest state of every key in memory (`KeyValueCache`): reads at the current
        /// revision and the Writer's key lookups are served from it.
        public var readCache = true
        /// Hears every group commit: how many requests it carried and how long it took (metrics).
        public var onGroupCommit: (@Sendable (_ requests: Int, _ duration: Duration) -> Void)?
        /// PostgreSQL ends the Writer's session when it idles this long inside a transaction (a
        /// frozen process must not keep the write lock: `Writer.idleInTransactionTimeout`).
        public var writerIdleInTransactionTimeout: Duration = .seconds(2)
        /// Where watch, lease and compaction figures are counted; pass the same one to every
        /// store of a process so its counters outlive an HA epoch.
        public var statistics = StoreStatistics()
        /// etcd's `--quota-backend-bytes`: past it, NOSPACE is raised for `memberID` and puts,
        /// txns and lease grants are refused (`checkQuota`). Nil: no quota.
        public var quota: Quota?

        public init() {}
    }

    public struct Quota: Sendable {
        public var bytes: Int64
        /// The member the NOSPACE alarm is raised for (this server's id).
        public var memberID: UInt64
        /// How often the database size is sampled for the check.
        public var sampleInterval: Duration

        public init(bytes: Int64, memberID: UInt64, sampleInterval: Duration = .milliseconds(500)) {
            self.bytes = bytes
            self.memberID = memberID
            self.sampleInterval = sampleInterval
        }
    }

    let reader: Reader
    private let writer: Writer
    /// Users, roles and whether auth is on, for this database.
    public let auth: AuthStore
    /// Publishes committed revisions to watchers (this process's and other processes' writes).
    public let watchHub: WatchHub
    private let compactor: Compactor
    let configuration: Configuration
    let client: any SQLClient
    /// The database size the quota check compares with (`sampleDatabaseSize`).
    let sampledDatabaseSize = Mutex<Int64>(0)
    private let logger: Logger
    private let cache: KeyValueCache?
    /// Whether commits must NOTIFY: only while other kine processes listen (`CommitNotices`).
    let notices: CommitNoticeBoard
    /// Lease renewals, answered from memory when that is safe (`leaseKeepAlive`).
    let keepAlives: LeaseKeepAlives
    /// Whether linearizable reads may skip the read barrier (`SoleWriter`).
    let soleWriter = SoleWriterBoard()

    /// Prepares the schema (creating or adopting the kine table) and returns a store whose
    /// Writer starts with `run()`.
    public static func open(
        client: any SQLClient, configuration: Configuration = .init(), logger: Logger
    ) async throws -> KineStore {
        let legacy = try await Schema.prepare(client, migrationLevel: configuration.schemaMigrationLevel, logger: logger)
        try await Schema.ensureBookkeepingRows(client)
        return KineStore(client: client, sql: StoreSQL(legacyCollation: legacy), configuration: configuration, logger: logger)
    }

    /// Creates or adopts the kine table and its indexes (DDL only, no rows): an HA follower's
    /// copy needs the tables before its subscription fills them.
    public static func prepareSchema(client: any SQLClient, migrationLevel: Int = 0, logger: Logger) async throws(SQLError) {
        _ = try await Schema.prepare(client, migrationLevel: migrationLevel, logger: logger)
    }

    /// The transaction-scoped advisory lock every writer takes (commit order = id order).
    public static let writeLockKey = StoreSQL.lockKey

    private init(client: any SQLClient, sql: StoreSQL, configuration: Configuration, logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
        reader = Reader(client: client, sql: sql)
        let auth = AuthStore(client: client)
        self.auth = auth
        cache = configuration.readCache ? KeyValueCache() : nil
        let notices = CommitNoticeBoard()
        self.notices = notices
        let hub = WatchHub(client: client, sql: sql, logger: logger, cache: cache, statistics: configuration.statistics, notices: notices)
        watchHub = hub
        writer = Writer(
            client: client, sql: sql, logger: logger, maxBatch: configuration.maxWriteBatch, cache: cache,
            idleInTransactionTimeout: configuration.writerIdleInTransactionTimeout, onGroupCommit: configuration.onGroupCommit,
            onAuthGeneration: { auth.noteGeneration($0) }, notices: notices, soleWriter: soleWriter
        ) { rows in
            hub.publishLocal(rows)
        }
        compactor = Compactor(client: client, batchSize: configuration.compactBatchSize, logger: logger)
        keepAlives = LeaseKeepAlives(client: client, statistics: configuration.statistics, logger: logger) { hub.revision }
    }

    /// Runs the Writer and the WatchHub until `stop()`. `notifications` are the payloads of
    /// `NOTIFY kine` (other processes' commits), if the database client can listen.
    /// `listenerBackendPID` is the backend pid of the session `notifications` come from, while
    /// it listens (nil while it connects, or without notifications): with it, a process alone on
    /// its database leaves NOTIFY out of its commits (`CommitNotices`).
    public func run(notifications: AsyncStream<String>? = nil, listenerBackendPID: @escaping @Sendable () -> Int32? = { nil }) async {
        if notifications != nil { soleWriter.setListener(listenerBackendPID) }
        let (writer, soleWriter) = (self.writer, self.soleWriter)
        // Only a holder has to act on another process's notification (release before its next
        // batch); anyone else would wake its Writer for nothing on every foreign commit.
        notices.whenHeard { if soleWriter.isHeld { writer.poke() } }
        async let writing: Void = writer.run()
        async let watching: Void = watchHub.run(notifications: notifications, ownListener: listenerBackendPID)
        async let expiring: Void = expireLeasesPeriodically()
        async let sampling: Void = sampleForQuota()
        async let renewing: Void = keepAlives.run()
        async let looking: Void = lookForListeners(listenerBackendPID, enabled: notifications != nil)
        async let tending: Void = pokeWriterForSoleWriter()
        _ = await (writing, watching, expiring, sampling, renewing, looking, tending)
    }

    /// "Now" for a linearizable read or a watch created from now, without a read barrier, while
    /// this process holds the sole-writer lock (`SoleWriter`): no other process can commit, so
    /// every write acknowledged so far is at or below the newest id when the lock was taken or
    /// this process's own last commit. Nil otherwise: the caller makes a read barrier.
    public func localNow() async throws(EtcdError) -> Int64? {
        guard let through = soleWriter.memoryReadsThrough(othersListen: notices.othersListen) else { return nil }
        return try await watchHub.published(throughID: max(through, writer.lastCommittedID))
    }

    /// How often the store looks whether the Writer should take, confirm or release the
    /// sole-writer lock (it is also woken at once when a notification shows another process).
    static let soleWriterLookInterval = Duration.milliseconds(250)

    private func pokeWriterForSoleWriter() async {
        while !writer.isStopped && !Task.isCancelled {
            if soleWriter.step(othersListen: notices.othersListen, cacheLoaded: cache?.isLoaded ?? false) != .none { writer.poke() }
            // try?: cancellation ends the loop; the loop checks it.
            try? await Task.sleep(for: Self.soleWriterLookInterval)
        }
    }

    /// How often the store counts the other processes listening on its database.
    static let listenerLookInterval = Duration.seconds(2)

    /// Says hello once this process's listener is active (again after it reconnects), then
    /// counts the other listeners every `listenerLookInterval` (`CommitNotices`).
    private func lookForListeners(_ listenerBackendPID: @Sendable () -> Int32?, enabled: Bool) async {
        guard enabled else { return }
        var greeted: Int32?
        while !writer.isStopped && !Task.isCancelled {
            if let pid = listenerBackendPID() {
                do {
                    if greeted != pid {
                        _ = try await client.run(SQLPipeline([StoreSQL.hello(from: pid)]))
                        greeted = pid
                    }
                    let checkpoint = notices.checkpoint
                    let look = try await client.run(StoreSQL.otherListeners(than: pid))
                    notices.observed(othersListening: look.others > 0, since: checkpoint)
                    if notices.queueUsage(look.queueUsage) {
                        if look.queueUsage >= CommitNotices.crowdedQueueUsage {
                            logger.warning(
                                "PostgreSQL's notification queue is filling up: a session listening on kine is not reading (a frozen kine process?); commits announce their revision only",
                                metadata: ["kine.store.notifyQueueUsage": "\(look.queueUsage)"])
                        } else {
                            logger.info(
                                "PostgreSQL's notification queue has room again; commits announce their events",
                                metadata: ["kine.store.notifyQueueUsage": "\(look.queueUsage)"])
                        }
                    }
                } catch {
                    notices.unknown()
                }
            } else {
                notices.unknown()
                greeted = nil
            }
            // try?: cancellation ends the loop; the loop checks it.
            try? await Task.sleep(for: greeted == nil ? .milliseconds(100) : Self.listenerLookInterval)
        }
    }

    private func sampleForQuota() async {
        guard let quota = configuration.quota, quota.bytes > 0 else { return }
        await sampleDatabaseSize(every: quota.sampleInterval)
    }

    var isStopped: Bool { writer.isStopped }

    /// Whether CORRUPT is active (etcd refuses compaction then).
    private func refuseWhenCorrupt() async throws(EtcdError) {
        if try await activeAlarms().contains(where: { $0.alarm == AlarmType.corrupt.rawValue }) { throw .corrupt }
    }

    /// etcd checks for expired leases about every 500 ms.
    private func expireLeasesPeriodically() async {
        while !writer.isStopped && !Task.isCancelled {
            // try?: cancellation ends the expiry loop; the loop checks it.
            try? await Task.sleep(for: .milliseconds(500))
            if writer.isStopped || Task.isCancelled { return }
            do {
                try await expireLeases()
            } catch {
                logger.warning("lease expiry failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Fails queued writes with "server stopped" and ends `run()`.
    public func stop() {
        writer.stop()
        watchHub.stop()
        keepAlives.finish()
    }

    /// Whether the read cache is loaded and serving reads (false when disabled or still loading).
    public var readCacheLoaded: Bool { cache?.isLoaded ?? false }

    /// The read cache's keys, tombstones and bytes; nil when disabled or not loaded yet.
    public var readCacheFigures: ReadCacheFigures? { cache?.figures }

    var statistics: StoreStatistics { configuration.statistics }

    /// `authorize` checks the caller's permissions against the auth state the read is served
    /// under: for a linearizable read one at least as new as its read barrier.
    public func range(_ request: RangeRequest, authorize: Authorization? = nil) async throws(EtcdError) -> RangeResponse {
        try RequestValidation.validate(request)
        if let cache, cache.isLoaded {
            // Linearizable: first see every write acknowledged before this request (etcd's ReadIndex).
            if !request.serializable {
                let authGeneration = try await linearizableAuthGeneration()
                if let authorize { try authorize(try await authState(atLeast: authGeneration)) }
            } else if let authorize {
                try authorize(try await auth.current())
            }
            if let response = cache.range(request) { return response }
        } else if let authorize {
            try authorize(try await authStateForRead(linearizable: !request.serializable))
        }
        return try await reader.range(request)
    }

    /// Makes a linearizable read current: no query while this process holds the sole-writer lock
    /// (`localNow`; its auth copy is then current too, nil), else the read barrier, whose auth
    /// generation the read's permission check must reach.
    private func linearizableAuthGeneration() async throws(EtcdError) -> UInt64? {
        if try await localNow() != nil { return nil }
        return try await watchHub.syncReading().authGeneration
    }

    /// The auth state at `generation` or newer; this process's copy when nil.
    private func authState(atLeast generation: UInt64?) async throws(EtcdError) -> AuthState {
        guard let generation else { return try await auth.current() }
        return try await auth.state(atLeast: generation)
    }

    /// A permission check: throws etcd's refusal for the state given.
    public typealias Authorization = (AuthState) throws(EtcdError) -> Void

    /// The auth state a read without the read cache is checked against.
    public func authStateForRead(linearizable: Bool) async throws(EtcdError) -> AuthState {
        guard linearizable else { return try await auth.current() }
        return try await auth.state(atLeast: UInt64(bitPattern: try await runSQL(StoreSQL.authGenerationQuery)))
    }

    /// Runs `authorize` against the cached state and returns the revision it used, which the
    /// Writer compares under the write lock.
    private func authorizeWrite(_ authorize: Authorization?) async throws(EtcdError) -> UInt64? {
        guard let authorize else { return nil }
        let state = try await auth.current()
        try authorize(state)
        return state.generation
    }

    func submit(_ request: WriteRequest) async throws(EtcdError) -> WriteResponse {
        try await writer.submit(request)
    }

    func writer(_ request: WriteRequest, authGeneration: UInt64?) async throws(EtcdError) -> WriteResponse {
        try await writer.submit(request, authGeneration: authGeneration)
    }

    /// The keys attached to a lease (what revoking it deletes).
    public func keysOfLease(_ id: Int64) async throws(EtcdError) -> [Bytes] {
        try await runSQL(StoreSQL.keysOfLease(id))
    }

    func runSQL<Output>(_ query: SQLQuery<Output>) async throws(EtcdError) -> Output {
        try await reader.run(query)
    }

    func runSQL(_ pipeline: SQLPipeline) async throws(EtcdError) -> SQLPipelineResults {
        try await reader.run(pipeline)
    }

    public func put(_ request: PutRequest, authorize: Authorization? = nil) async throws(EtcdError) -> PutResponse {
        try RequestValidation.validate(request)
        let authGeneration = try await authorizeWrite(authorize)
        try await checkQuota(cost: Self.quotaCost(request))
        guard case .put(let response) = try await writer.submit(.put(request), authGeneration: authGeneration) else { throw Self.mismatch }
        return response
    }

    public func deleteRange(_ request: DeleteRangeRequest, authorize: Authorization? = nil) async throws(EtcdError) -> DeleteRangeResponse {
        try RequestValidation.validate(request)
        let authGeneration = try await authorizeWrite(authorize)
        guard case .deleteRange(let response) = try await writer.submit(.deleteRange(request), authGeneration: authGeneration) else {
            throw Self.mismatch
        }
        return response
    }

    public func txn(_ request: TxnRequest, authorize: Authorization? = nil) async throws(EtcdError) -> TxnResponse {
        try RequestValidation.validate(request, maxOps: configuration.maxTxnOps)
        try await checkQuota(cost: Self.quotaCost(request))
        if let cache, cache.isLoaded, KeyValueCache.isReadOnly(request) {
            // Reads only: answered from memory after the read barrier, as a linearizable Range.
            let authGeneration = try await linearizableAuthGeneration()
            if let authorize {
                let state = try await authState(atLeast: authGeneration)
                try authorize(state)
                if let response = cache.readOnlyTxn(request) { return response }
                // Not servable from memory: the Writer runs it, checked against the same state.
                guard case .txn(let response) = try await writer.submit(.txn(request), authGeneration: state.generation) else {
                    throw Self.mismatch
                }
                return response
            }
            if let response = cache.readOnlyTxn(request) { return response }
        }
        let authGeneration = try await authorizeWrite(authorize)
        guard case .txn(let response) = try await writer.submit(.txn(request), authGeneration: authGeneration) else { throw Self.mismatch }
        return response
    }

    /// etcd Compact: errors for an already compacted or a future revision, else compacts
    /// physically before answering (whether or not `physical` was asked for).
    public func compact(_ request: CompactionRequest) async throws(EtcdError) -> CompactionResponse {
        let (current, compacted) = try await reader.revisions()
        if request.revision <= compacted { throw .compacted }
        if request.revision > current { throw .futureRevision }
        try await refuseWhenCorrupt()
        let started = ContinuousClock.now
        defer { statistics.count { $0.compactionMicroseconds += Int((ContinuousClock.now - started).wholeMicroseconds) } }
        do {
            let outcome = try await compactor.compact(from: compacted, to: request.revision)
            cache?.compacted(through: request.revision)
            if outcome.completed {
                watchHub.noteCompacted(through: request.revision)
                statistics.count { $0.compactionsSucceeded += 1 }
            } else {
                statistics.count { $0.compactionsConflicted += 1 }
            }
            statistics.count { $0.compactedRows += outcome.deletedRows }
        } catch {
            statistics.count { $0.compactionsFailed += 1 }
            throw StoreError.etcdError(for: error)
        }
        return CompactionResponse(header: ResponseHeader(revision: current))
    }

    public func revisions() async throws(EtcdError) -> (current: Int64, compact: Int64) {
        try await reader.revisions()
    }

    static let mismatch = EtcdError(.internal, "kine: writer answered with the wrong response kind")
}
