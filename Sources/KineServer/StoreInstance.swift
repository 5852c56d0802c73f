import Foundation
import KinePostgres
import KineStore
import Logging

/// One database and the store running on it: the pool, the store (Writer, WatchHub, lease
/// expiry) and the task that runs them. A single node has one for its whole life; an HA node
/// opens a new one whenever it changes the database it serves from.
final class StoreInstance: Sendable {
    let client: PostgresClient
    let store: KineStore
    let database: PostgresConfiguration
    private let runner: Task<Void, Never>

    private init(client: PostgresClient, store: KineStore, database: PostgresConfiguration) {
        self.client = client
        self.store = store
        self.database = database
        let notifications = client.notifications(channel: "kine")
        runner = Task { await store.run(notifications: notifications) { client.listenerBackendPID } }
    }

    /// Connects to `endpoint` (waiting up to `connectTimeout` for it to answer), prepares the
    /// schema and starts the store.
    static func open(
        _ endpoint: PostgresConfiguration, configuration: KineConfiguration, logger: Logger,
        connectTimeout: Duration = .seconds(300)
    ) async throws -> StoreInstance {
        let database = tuned(endpoint)
        _ = await PostgresClient.ensureDatabaseExists(database, logger: logger)
        var options = PostgresClient.Options()
        options.poolSize = configuration.readConnections + 1
        options.observer = configuration.sqlObserver
        let client = try await PostgresClient.connect(configuration: database, options: options, logger: logger, timeout: connectTimeout)
        var storeConfiguration = KineStore.Configuration()
        storeConfiguration.schemaMigrationLevel = configuration.schemaMigrationLevel
        storeConfiguration.compactBatchSize = configuration.compactBatchSize
        storeConfiguration.readCache = configuration.readCache
        storeConfiguration.onGroupCommit = configuration.groupCommitObserver
        storeConfiguration.statistics = configuration.storeStatistics
        if configuration.quotaBackendBytes > 0 {
            storeConfiguration.quota = KineStore.Quota(bytes: configuration.quotaBackendBytes, memberID: configuration.quotaMemberID)
        }
        do {
            let store = try await KineStore.open(client: client, configuration: storeConfiguration, logger: logger)
            return StoreInstance(client: client, store: store, database: database)
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Every kine query is a key or key-range lookup with an index made for it. On a new or
    /// fast-growing table the planner's statistics lag (autovacuum analyzes minutes later) and
    /// cached generic plans keep sequential scans: measured 680 vs 11 000 puts/s
    /// (docs/benchmarks.md). Tell the planner not to pick them. And no JIT: with sequential
    /// scans costed as disabled, plans of a grown table cross `jit_above_cost`, and PostgreSQL
    /// compiled short statements with LLVM on every execution (27 % of all CPU during cas-64,
    /// which fell from 17k to 9k writes/s as the table grew; docs/benchmarks.md).
    static func tuned(_ endpoint: PostgresConfiguration) -> PostgresConfiguration {
        var database = endpoint
        let planner = "-c enable_seqscan=off -c jit=off"
        database.parameters["options"] = database.parameters["options"].map { "\($0) \(planner)" } ?? planner
        return database
    }

    /// Stops the store (queued writes fail with "server stopped"), waits for it, closes the pool.
    func shutdown() async {
        store.stop()
        await runner.value
        await client.shutdown()
    }
}
