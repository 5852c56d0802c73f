import Foundation
import KineCore
public import KineHTTP2
import KinePostgres
import KineStore
public import Logging
public import ServiceLifecycle

/// The whole server as one `Service`: database pool, store (Writer) and gRPC transport.
public final class KineApplication: Service, Sendable {
    public let configuration: KineConfiguration
    private let logger: Logger

    public init(configuration: KineConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts everything, calls `onListening` with the bound address, and runs until graceful
    /// shutdown (SIGTERM/SIGINT through the ServiceGroup) or cancellation.
    public func run() async throws {
        try await run(onListening: { _ in })
    }

    public func run(onListening: @Sendable (GRPCListenTarget) -> Void) async throws {
        var database = try PostgresConfiguration(endpoint: configuration.endpoint)
        // Every kine query is a key or key-range lookup with an index made for it. On a new or
        // fast-growing table the planner's statistics lag (autovacuum analyzes minutes later) and
        // cached generic plans keep sequential scans: measured 680 vs 11 000 puts/s
        // (docs/benchmarks.md). Tell the planner not to pick them. And no JIT: with sequential
        // scans costed as disabled, plans of a grown table cross `jit_above_cost`, and PostgreSQL
        // compiled short statements with LLVM on every execution (27 % of all CPU during cas-64,
        // which fell from 17k to 9k writes/s as the table grew; docs/benchmarks.md).
        let planner = "-c enable_seqscan=off -c jit=off"
        database.parameters["options"] = database.parameters["options"].map { "\($0) \(planner)" } ?? planner
        _ = await PostgresClient.ensureDatabaseExists(database, logger: logger)
        var options = PostgresClient.Options()
        options.poolSize = configuration.readConnections + 1
        let client = try await PostgresClient.connect(configuration: database, options: options, logger: logger)

        var storeConfiguration = KineStore.Configuration()
        storeConfiguration.schemaMigrationLevel = configuration.schemaMigrationLevel
        storeConfiguration.compactBatchSize = configuration.compactBatchSize
        storeConfiguration.readCache = configuration.readCache
        let store: KineStore
        do {
            store = try await KineStore.open(client: client, configuration: storeConfiguration, logger: logger)
        } catch {
            await client.shutdown()
            throw error
        }

        let identity = ServerIdentity(
            clusterID: ServerIdentity.stableID("cluster:\(database.host ?? "local"):\(database.port ?? 5432)/\(database.database)"),
            memberID: ServerIdentity.stableID("member:\(ProcessInfo.processInfo.hostName):\(configuration.listen)"),
            name: configuration.memberName, version: configuration.emulatedEtcdVersion,
            clientURL: Self.clientURL(configuration.listen))
        let router = EtcdRouter([
            KVService(store: store, identity: identity, maxRequestBytes: configuration.maxRequestBytes).methods(),
            MaintenanceService(store: store, identity: identity).methods(),
            WatchService(store: store, identity: identity, progressInterval: configuration.watchProgressNotifyInterval).methods(),
            LeaseService(store: store, identity: identity).methods(),
        ])
        let endpoints = HTTPEndpoints(store: store, identity: identity)
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(target: configuration.listen, http1Handler: { path in await endpoints.respond(path) }),
            router: router, logger: logger)

        let trimmer = Task { await MemoryTrimmer.run() }
        defer { trimmer.cancel() }
        let startError: (any Error)? = await withTaskGroup(of: Void.self) { group in
            let notifications = client.notifications(channel: "kine")
            group.addTask { await store.run(notifications: notifications) }
            var startError: (any Error)?
            do {
                let bound = try await server.start()
                onListening(bound)
                logger.info("kine ready", metadata: ["kine.listen": "\(bound)", "kine.database": "\(database)"])
                // Returns on graceful shutdown or cancellation.
                try? await gracefulShutdown()
            } catch {
                logger.error("cannot listen", metadata: ["kine.listen": "\(configuration.listen)", "kine.error": "\(error)"])
                startError = error
            }
            await server.shutdown()
            store.stop()
            await group.waitForAll()
            return startError
        }
        await client.shutdown()
        if let startError { throw startError }
    }

    static func clientURL(_ target: GRPCListenTarget) -> String {
        switch target {
        case .tcp(let host, let port):
            let reachable = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
            return reachable.contains(":") ? "http://[\(reachable)]:\(port)" : "http://\(reachable):\(port)"
        case .unixSocket(let path):
            return "unix://\(path)"
        }
    }
}
