import ArgumentParser
import Foundation
import KineHTTP2
import KineServer
import Logging
import ServiceLifecycle
import UnixSignals

/// `kine [serve]`: the server, flag-compatible with Go kine. Every flag can also be given as
/// `KINE_<FLAG_IN_UPPER_SNAKE_CASE>`; the flag wins.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the etcd v3 API from PostgreSQL (the default command).")

    @Option(
        help: "Address to serve etcd clients on: host:port, tcp://host:port or unix://path (KINE_LISTEN_ADDRESS). Default 0.0.0.0:2379.")
    var listenAddress: String?

    @Option(
        help:
            "PostgreSQL to store data in: postgres://user:password@host:port/database (KINE_ENDPOINT). Default postgres://postgres:postgres@localhost/ (database kubernetes)."
    )
    var endpoint: String?

    @Option(help: "etcd version reported to clients (KINE_EMULATED_ETCD_VERSION). Default 3.5.13.")
    var emulatedEtcdVersion: String?

    @Option(help: "PostgreSQL connections for reads (KINE_DATASTORE_MAX_OPEN_CONNECTIONS). Default 4.")
    var datastoreMaxOpenConnections: Int?

    @Option(help: "Revisions per compaction transaction (KINE_COMPACT_BATCH_SIZE). Default 1000.")
    var compactBatchSize: Int?

    @Option(help: "Interval between watch progress notifications, e.g. 5s, 500ms, 1m (KINE_WATCH_PROGRESS_NOTIFY_INTERVAL). Default 5s.")
    var watchProgressNotifyInterval: String?

    @Option(help: "Keep the latest value of every key in memory and serve reads from it: true or false (KINE_READ_CACHE). Default true.")
    var readCache: String?

    @Option(
        help:
            "etcd's space quota in bytes (KINE_QUOTA_BACKEND_BYTES): past it the NOSPACE alarm is raised and puts, txns and lease grants are refused. Default 0: no quota."
    )
    var quotaBackendBytes: Int64?

    @Option(
        help:
            "Auth token type (KINE_AUTH_TOKEN): simple, etcd's default (random tokens this process keeps). etcd's jwt is not offered. Default simple."
    )
    var authToken: String?

    @Option(help: "Seconds a simple auth token stays valid after its last use (KINE_AUTH_TOKEN_TTL). Default 300, as etcd.")
    var authTokenTTL: Int?

    @Option(help: "bcrypt cost for user passwords, 4-31 (KINE_BCRYPT_COST). Default 10, as etcd.")
    var bcryptCost: Int?

    @Flag(help: "Log at debug level (KINE_DEBUG).")
    var debug = false

    @Option(help: "text or json: one JSON object a line (KINE_LOG_FORMAT). Default text.")
    var logFormat: String?

    @Option(
        help:
            "Where to serve /metrics besides the client port, host:port or :port (KINE_METRICS_BIND_ADDRESS); 0 turns kine's gRPC and SQL metrics off. Default :8080."
    )
    var metricsBindAddress: String?

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @OptionGroup(title: "Two-node high availability (docs/ha.md)")
    var ha: HAOptions

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        func setting(_ value: String?, _ name: String) -> String? { value ?? environment["KINE_\(name)"] }

        let listen = try KineConfiguration.parseListenAddress(setting(listenAddress, "LISTEN_ADDRESS") ?? "0.0.0.0:2379")
        var configuration = KineConfiguration(listen: listen, endpoint: setting(endpoint, "ENDPOINT") ?? "")
        if let version = setting(emulatedEtcdVersion, "EMULATED_ETCD_VERSION") { configuration.emulatedEtcdVersion = version }
        if let connections = datastoreMaxOpenConnections ?? environment["KINE_DATASTORE_MAX_OPEN_CONNECTIONS"].flatMap(Int.init),
            connections > 0
        {
            configuration.readConnections = connections
        }
        if let batch = compactBatchSize ?? environment["KINE_COMPACT_BATCH_SIZE"].flatMap(Int.init) {
            guard batch >= 100 else { throw ValidationError("--compact-batch-size must be at least 100") }
            configuration.compactBatchSize = Int64(batch)
        }
        if let text = setting(watchProgressNotifyInterval, "WATCH_PROGRESS_NOTIFY_INTERVAL") {
            guard let interval = Self.parseDuration(text), interval > .zero else {
                throw ValidationError("invalid --watch-progress-notify-interval \(text)")
            }
            configuration.watchProgressNotifyInterval = interval
        }
        if let text = setting(readCache, "READ_CACHE") {
            guard let enabled = ["true": true, "1": true, "false": false, "0": false][text.lowercased()] else {
                throw ValidationError("invalid --read-cache \(text): true or false")
            }
            configuration.readCache = enabled
        }
        if let text = quotaBackendBytes.map(String.init) ?? environment["KINE_QUOTA_BACKEND_BYTES"] {
            guard let bytes = Int64(text) else { throw ValidationError("invalid --quota-backend-bytes \(text): a number of bytes") }
            configuration.quotaBackendBytes = max(0, bytes)
        }
        let tokenType = setting(authToken, "AUTH_TOKEN") ?? "simple"
        guard tokenType == "simple" else {
            throw ValidationError("invalid --auth-token \(tokenType): kine offers simple tokens only (etcd's default)")
        }
        if let text = authTokenTTL.map(String.init) ?? environment["KINE_AUTH_TOKEN_TTL"] {
            guard let seconds = Int(text), seconds > 0 else {
                throw ValidationError("invalid --auth-token-ttl \(text): a number of seconds above 0")
            }
            configuration.authTokenTTL = .seconds(seconds)
        }
        if let text = bcryptCost.map(String.init) ?? environment["KINE_BCRYPT_COST"] {
            guard let cost = Int(text), (4...31).contains(cost) else { throw ValidationError("invalid --bcrypt-cost \(text): 4 to 31") }
            configuration.bcryptCost = cost
        }
        configuration.schemaMigrationLevel = environment["KINE_SCHEMA_MIGRATION"].flatMap(Int.init) ?? 0
        configuration.ha = try ha.configuration(environment: environment)
        try tls.apply(to: &configuration, environment: environment)
        if let text = setting(metricsBindAddress, "METRICS_BIND_ADDRESS") {
            if text == "0" || text.isEmpty {
                configuration.metricsBindAddress = nil
            } else {
                let address = text.hasPrefix(":") ? "0.0.0.0\(text)" : text
                // try?: the parse error is replaced by the flag's own message below.
                guard case .tcp? = try? KineConfiguration.parseListenAddress(address) else {
                    throw ValidationError("invalid --metrics-bind-address \(text): host:port, :port or 0")
                }
                configuration.metricsBindAddress = try KineConfiguration.parseListenAddress(address)
            }
        }
        let format = setting(logFormat, "LOG_FORMAT")?.lowercased() ?? "text"
        guard format == "text" || format == "json" else { throw ValidationError("invalid --log-format \(format): text or json") }
        if let pair = configuration.ha { configuration.memberName = pair.nodeName }

        let verbose = debug || ["1", "true"].contains(environment["KINE_DEBUG"]?.lowercased() ?? "")
        LoggingSystem.bootstrap { label in
            if format == "json" { return JSONLogHandler(label: label, level: verbose ? .debug : .info) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .debug : .info
            return handler
        }
        let logger = Logger(label: "kine")
        let application = KineApplication(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: try application.services(), gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    /// Go-style durations (`KineConfiguration.parseDuration`).
    static func parseDuration(_ text: String) -> Duration? {
        KineConfiguration.parseDuration(text)
    }
}
