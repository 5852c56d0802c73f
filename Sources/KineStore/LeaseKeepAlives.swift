import KineCore
import KineSQL
import Logging
import Synchronization

/// Lease renewals (LeaseKeepAlive). A lease this process renewed or granted recently is renewed
/// in memory and answered at once (`LeaseDeadlines` says when that is safe); `run()` writes those
/// renewals to `kine_leases` in the background, one statement for all that are due. Any other
/// renewal goes to the database, and renewals waiting together share one UPDATE (`Coalescer`).
final class LeaseKeepAlives: Sendable {
    /// How often `run()` looks for renewals to write; `LeaseDeadlines.headroom` exceeds it.
    static let writePeriod = Duration.milliseconds(250)

    private let deadlines = Mutex(LeaseDeadlines())
    private let rounds: Coalescer<Int64, LeaseKeepAliveResponse>
    private let client: any SQLClient
    /// The revision a renewal answered from memory reports (etcd reports its current one).
    private let revision: @Sendable () -> Int64
    private let statistics: StoreStatistics
    private let logger: Logger
    private let stopped = Mutex(false)

    init(client: any SQLClient, statistics: StoreStatistics, logger: Logger, revision: @escaping @Sendable () -> Int64) {
        self.client = client
        self.statistics = statistics
        self.logger = logger
        self.revision = revision
        rounds = Coalescer { (ids: [Int64]) async throws(SQLError) -> [LeaseKeepAliveResponse] in
            let responses = try await Self.renewInDatabase(ids, client: client)
            statistics.count { $0.leasesRenewed += responses.count { $0.ttl > 0 } }
            return responses
        }
    }

    /// Renews the lease to its full TTL; an unknown or expired lease answers TTL 0.
    func renew(_ id: Int64) async throws(SQLError) -> LeaseKeepAliveResponse {
        let renewal = deadlines.withLock { $0.renew(id, now: .now) }
        guard case .answered(let ttl) = renewal else {
            // The round that renews it starts after this instant, so the deadline it sets is
            // not earlier than this instant + TTL.
            let asked = ContinuousClock.now
            let response = try await rounds.submit(id)
            deadlines.withLock { deadlines in
                if response.ttl > 0 {
                    deadlines.stored(id, ttl: response.ttl, sentAt: asked)
                } else {
                    deadlines.forget([id], now: .now)
                }
            }
            return response
        }
        statistics.count { $0.leasesRenewed += 1 }
        return LeaseKeepAliveResponse(header: ResponseHeader(revision: revision()), id: id, ttl: ttl)
    }

    /// A lease this process granted: its first renewals can be answered from memory.
    func granted(_ id: Int64, ttl: Int64, sentAt: ContinuousClock.Instant) {
        deadlines.withLock { $0.stored(id, ttl: ttl, sentAt: sentAt) }
    }

    /// Leases this process revoked or expired.
    func forget(_ ids: [Int64]) {
        deadlines.withLock { $0.forget(ids, now: .now) }
    }

    /// Writes the renewals answered from memory as they fall due, until `finish()`; then writes
    /// every one still unwritten (a clean stop loses none).
    func run() async {
        async let serving: Void = rounds.run()
        while !stopped.withLock({ $0 }) && !Task.isCancelled {
            // try?: cancellation ends the loop; the loop checks it.
            try? await Task.sleep(for: Self.writePeriod)
            await writeRenewals(all: false)
            deadlines.withLock { $0.sweep(now: .now) }
        }
        await writeRenewals(all: true)
        await serving
    }

    func finish() {
        stopped.withLock { $0 = true }
        rounds.finish()
    }

    /// Writes renewals answered from memory: those due or, with `all`, every one (before a
    /// TimeToLive reads the deadline, and at stop).
    func writeRenewals(all: Bool) async {
        let sentAt = ContinuousClock.now
        let writes = deadlines.withLock { $0.dueWrites(now: sentAt, all: all) }
        if writes.isEmpty { return }
        var pipeline = SQLPipeline(StoreSQL.beginRenewals)
        let stored = pipeline.add(StoreSQL.storeLeaseDeadlines(writes.map { ($0.id, $0.remaining) }))
        pipeline.add(StoreSQL.commitRenewals)
        do {
            let renewed = try await client.run(pipeline)[stored]
            deadlines.withLock { $0.wrote(writes, renewed: renewed, sentAt: sentAt) }
        } catch {
            // The leases keep their stored deadlines; `LeaseDeadlines` stops answering from
            // memory before those come close, so the next renewals wait for the database.
            logger.warning("writing lease renewals failed", metadata: ["kine.lease.count": "\(writes.count)", "error": "\(error)"])
        }
    }

    /// Renews `ids` to their full TTL in the database. A renewal is not worth an fsync: it commits
    /// with `synchronous_commit = off`. A crash can lose the renewals of the final few hundred
    /// milliseconds; clients renew every TTL/3, so a live client's lease survives that.
    private static func renewInDatabase(_ ids: [Int64], client: any SQLClient) async throws(SQLError) -> [LeaseKeepAliveResponse] {
        var pipeline = SQLPipeline(StoreSQL.beginRenewals)
        let headerSlot = pipeline.add(StoreSQL.header)
        let renewed = pipeline.add(StoreSQL.renewLeases(ids))
        pipeline.add(StoreSQL.commitRenewals)
        let results = try await client.run(pipeline)
        let header = ResponseHeader(revision: results[headerSlot].currentRevision)
        let ttls = results[renewed]
        return ids.map { LeaseKeepAliveResponse(header: header, id: $0, ttl: ttls[$0] ?? 0) }
    }
}
