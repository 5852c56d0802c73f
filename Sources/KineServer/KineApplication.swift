import Foundation
import KineCore
public import KineHTTP2
import KinePostgres
import KineStore
public import Logging
public import ServiceLifecycle
import Synchronization

/// One kine process: the store (behind a `StoreHandle`) or, with `--ha-peer`, the HA controller
/// that chooses it; the etcd gRPC server; the memory trimmer. Each part is a `Service`
/// (`services(onListening:)`), run under one ServiceGroup that stops them in reverse order (the
/// server drains before the store stops).
public final class KineApplication: Service, Sendable {
    public let configuration: KineConfiguration
    private let logger: Logger

    public init(configuration: KineConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The parts, in start order. `onListening` hears the etcd server's bound address.
    public func services(onListening: @escaping @Sendable (GRPCListenTarget) -> Void = { _ in }) throws -> [any Service] {
        var configuration = self.configuration
        let metrics = configuration.metricsBindAddress == nil ? nil : KineMetrics()
        configuration.sqlObserver = metrics
        if let metrics {
            configuration.groupCommitObserver = { @Sendable requests, duration in
                metrics.groupCommitted(requests: requests, duration: duration)
            }
        }
        if let metrics { Self.bootstrapMetricsOnce(metrics) }
        var local = try PostgresConfiguration(endpoint: configuration.endpoint)
        local.parameters.merge(configuration.datastoreTLS.parameters(existing: local.parameters)) { current, _ in current }
        let stores = StoreHandle()
        var identity = ServerIdentity(
            clusterID: ServerIdentity.stableID("cluster:\(local.host ?? "local"):\(local.port ?? 5432)/\(local.database)"),
            memberID: ServerIdentity.stableID("member:\(ProcessInfo.processInfo.hostName):\(configuration.listen)"),
            name: configuration.memberName, version: configuration.emulatedEtcdVersion,
            clientURL: Self.clientURL(configuration.listen))
        let storeService: any Service
        var haMetrics: HAMetrics?
        if let ha = configuration.ha {
            identity = identity.forPair(ha)
        }
        configuration.quotaMemberID = identity.memberID
        if let ha = configuration.ha {
            let metrics = HAMetrics()
            haMetrics = metrics
            storeService = HAService(
                configuration: configuration, ha: ha, database: local, stores: stores, identity: identity, metrics: metrics, logger: logger)
        } else {
            storeService = StoreService(database: local, configuration: configuration, stores: stores, logger: logger)
        }
        let endpoints = HTTPEndpoints(
            stores: stores, identity: identity, ha: haMetrics, metrics: metrics, statistics: configuration.storeStatistics)
        let router = Self.etcdRouter(stores: stores, identity: identity, configuration: configuration)
        let http = ClientHTTPHandler(
            endpoints: endpoints,
            gateway: JSONGateway(router: router, maxReceiveMessageSize: GRPCServerConfiguration.defaultMaxReceiveMessageSize))
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(
                target: configuration.listen, http1Handler: { request, writer in await http.handle(request, writer) },
                tls: Self.servesTLS(configuration.listen) ? configuration.serverTLS : nil,
                observer: ObserverChain(observers: (metrics.map { [$0] } ?? []) + [RequestLog(logger: logger)])),
            router: router, logger: logger)
        let etcd = EtcdServerService(
            server: server, stores: stores, waitForStore: configuration.ha == nil, onListening: onListening, logger: logger)
        var services: [any Service] = [MemoryTrimService(), storeService, etcd]
        if let target = configuration.metricsBindAddress {
            let metricsServer = GRPCServer(
                configuration: GRPCServerConfiguration(
                    target: target,
                    http1Handler: simpleHTTP1Handler { path in
                        guard path.split(separator: "?").first == "/metrics" else {
                            return (404, "text/plain", Array("404 page not found\n".utf8))
                        }
                        return await endpoints.respond("/metrics")
                    }),
                router: EtcdRouter([]), logger: logger)
            services.append(MetricsServerService(server: metricsServer, logger: logger))
        }
        return services
    }

    private static let metricsBootstrapped = Mutex(false)

    /// swift-metrics takes one factory per process: the first application's registry gets it.
    private static func bootstrapMetricsOnce(_ metrics: KineMetrics) {
        let first = metricsBootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        if first { metrics.bootstrapMetricsSystem() }
    }

    /// Runs every part until graceful shutdown (SIGTERM/SIGINT through the caller's ServiceGroup)
    /// or cancellation.
    public func run() async throws {
        try await run(onListening: { _ in })
    }

    public func run(onListening: @escaping @Sendable (GRPCListenTarget) -> Void) async throws {
        let group = ServiceGroup(configuration: .init(services: try services(onListening: onListening), logger: logger))
        try await group.run()
    }

    /// Every etcd service, reaching the store through `stores`.
    static func etcdRouter(stores: StoreHandle, identity: ServerIdentity, configuration: KineConfiguration) -> EtcdRouter {
        let gate = AuthGate(tokens: AuthTokens(ttl: configuration.authTokenTTL), bcryptCost: configuration.bcryptCost)
        return EtcdRouter([
            KVService(stores: stores, identity: identity, gate: gate, maxRequestBytes: configuration.maxRequestBytes).methods(),
            MaintenanceService(stores: stores, identity: identity, gate: gate).methods(),
            WatchService(stores: stores, identity: identity, progressInterval: configuration.watchProgressNotifyInterval, gate: gate)
                .methods(),
            LeaseService(stores: stores, identity: identity, gate: gate).methods(),
            AuthService(stores: stores, identity: identity, gate: gate).methods(),
            LockService(stores: stores, identity: identity, gate: gate).methods(),
            ElectionService(stores: stores, identity: identity, gate: gate).methods(),
        ])
    }

    /// TLS is for TCP listeners; a unix socket stays plain (as Go kine's `unix://`).
    static func servesTLS(_ target: GRPCListenTarget) -> Bool {
        if case .tcp = target { return true }
        return false
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
