import Foundation
import KineCore
public import KineHTTP2
import KinePostgres
import KineStore
public import Logging
public import ServiceLifecycle

/// The whole server as one `Service`: the store (behind a `StoreHandle`), the etcd gRPC
/// transport and, with `--ha-peer`, the HA controller and its peer port.
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
        let local = try PostgresConfiguration(endpoint: configuration.endpoint)
        let stores = StoreHandle()
        let identity = ServerIdentity(
            clusterID: ServerIdentity.stableID("cluster:\(local.host ?? "local"):\(local.port ?? 5432)/\(local.database)"),
            memberID: ServerIdentity.stableID("member:\(ProcessInfo.processInfo.hostName):\(configuration.listen)"),
            name: configuration.memberName, version: configuration.emulatedEtcdVersion,
            clientURL: Self.clientURL(configuration.listen))
        let ha: HAController?
        let single: StoreInstance?
        if let haConfiguration = configuration.ha {
            let haIdentity = identity.forPair(haConfiguration)
            ha = try await HAController.start(
                configuration: configuration, ha: haConfiguration, local: local, stores: stores, identity: haIdentity, logger: logger)
            single = nil
            try await serve(stores: stores, identity: haIdentity, ha: ha, onListening: onListening)
        } else {
            ha = nil
            let instance = try await StoreInstance.open(local, configuration: configuration, logger: logger)
            stores.install(instance.store, startRevision: 0)
            single = instance
            try await serve(stores: stores, identity: identity, ha: nil, onListening: onListening)
        }
        await ha?.shutdown()
        await single?.shutdown()
    }

    /// Serves etcd clients (and, with HA, the peer port) until graceful shutdown.
    private func serve(
        stores: StoreHandle, identity: ServerIdentity, ha: HAController?, onListening: @Sendable (GRPCListenTarget) -> Void
    ) async throws {
        let router = Self.etcdRouter(stores: stores, identity: identity, configuration: configuration)
        let endpoints = HTTPEndpoints(stores: stores, identity: identity)
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(target: configuration.listen, http1Handler: { path in await endpoints.respond(path) }),
            router: router, logger: logger)

        let trimmer = Task { await MemoryTrimmer.run() }
        defer { trimmer.cancel() }
        var startError: (any Error)?
        do {
            let bound = try await server.start()
            onListening(bound)
            logger.info("kine ready", metadata: ["kine.listen": "\(bound)", "kine.database": "\((try? PostgresConfiguration(endpoint: configuration.endpoint))?.description ?? "")"])
            await withTaskGroup(of: Void.self) { group in
                if let ha { group.addTask { await ha.run() } }
                // Returns on graceful shutdown or cancellation.
                try? await gracefulShutdown()
                ha?.stop()
                await group.waitForAll()
            }
        } catch {
            logger.error("cannot listen", metadata: ["kine.listen": "\(configuration.listen)", "kine.error": "\(error)"])
            startError = error
        }
        await server.shutdown()
        if let startError { throw startError }
    }

    /// Every etcd service, reaching the store through `stores`.
    static func etcdRouter(stores: StoreHandle, identity: ServerIdentity, configuration: KineConfiguration) -> EtcdRouter {
        EtcdRouter([
            KVService(stores: stores, identity: identity, maxRequestBytes: configuration.maxRequestBytes).methods(),
            MaintenanceService(stores: stores, identity: identity).methods(),
            WatchService(stores: stores, identity: identity, progressInterval: configuration.watchProgressNotifyInterval).methods(),
            LeaseService(stores: stores, identity: identity).methods(),
        ])
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
