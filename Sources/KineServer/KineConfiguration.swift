public import KineHTTP2
import KinePostgres
import KineStore

/// Everything `kine` is started with, independent of how it was parsed.
public struct KineConfiguration: Sendable {
    /// Where etcd clients connect.
    public var listen: GRPCListenTarget
    /// `postgres://user:password@host:port/database?params` (Go kine's `--endpoint`).
    public var endpoint: String
    public var emulatedEtcdVersion: String = "3.5.13"
    /// Connections in the read pool (the Writer has its own).
    public var readConnections: Int = 4
    /// Go kine's `KINE_SCHEMA_MIGRATION`.
    public var schemaMigrationLevel: Int = 0
    public var compactBatchSize: Int64 = 1000
    /// Keep every key's latest value in memory for reads and writes (`--read-cache`).
    public var readCache = true
    /// etcd's `--quota-backend-bytes`: when the kine table grows past it, NOSPACE is raised and
    /// writes that add data are refused. 0 (the default) is no quota, unlike etcd's 2 GiB.
    public var quotaBackendBytes: Int64 = 0
    /// The member id NOSPACE is raised for (the server's).
    public var quotaMemberID: UInt64 = 0
    /// etcd's `--max-request-bytes` (1.5 MiB).
    public var maxRequestBytes: Int = 1_572_864
    public var memberName: String = "kine"
    /// Go kine's `--watch-progress-notify-interval` (default 5 s; etcd's is 10 min).
    public var watchProgressNotifyInterval: Duration = .seconds(5)
    /// etcd's `--auth-token-ttl`: how long a simple token lives after its last use.
    public var authTokenTTL: Duration = .seconds(300)
    /// etcd's `--bcrypt-cost` for the passwords UserAdd and UserChangePassword hash.
    public var bcryptCost: Int = 10

    /// Two-node HA (`--ha-peer` and friends); nil runs a single node.
    public var ha: HAConfiguration?
    /// TLS on the etcd port (`--server-cert-file`, `--server-key-file`, `--trusted-ca-file`);
    /// nil serves h2c. Unix sockets stay plain.
    public var serverTLS: GRPCTLSConfiguration?
    /// TLS to PostgreSQL (`--ca-file`, `--cert-file`, `--key-file`, `--skip-verify`).
    public var datastoreTLS = DatastoreTLS()
    /// Go kine's `--metrics-bind-address` (default `:8080`); nil (`0`) turns kine's gRPC and SQL
    /// metrics off, leaving the process metrics on the client port's `/metrics`.
    public var metricsBindAddress: GRPCListenTarget? = .tcp(host: "0.0.0.0", port: 8080)
    /// Set by `KineApplication` when metrics are on: every store's pool reports to it.
    var sqlObserver: (any SQLObserver)?
    /// Likewise for the Writer's group commits (requests in the commit, its duration).
    var groupCommitObserver: (@Sendable (Int, Duration) -> Void)?
    /// Every store this process opens counts into this one (metrics outlive an HA epoch).
    var storeStatistics = StoreStatistics()

    public init(listen: GRPCListenTarget, endpoint: String) {
        self.listen = listen
        self.endpoint = endpoint
    }

    /// Parses Go kine's `--listen-address`: `host:port`, `tcp://host:port`, `http://host:port`,
    /// `[v6]:port` or `unix://path`.
    public static func parseListenAddress(_ text: String) throws(ConfigurationError) -> GRPCListenTarget {
        if text.hasPrefix("unix://") {
            let path = String(text.dropFirst("unix://".count))
            guard !path.isEmpty else { throw ConfigurationError("empty unix socket path in \(text)") }
            return .unixSocket(path: path)
        }
        var rest = Substring(text)
        for scheme in ["tcp://", "http://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
            throw ConfigurationError("listen address \(text) needs host:port")
        }
        var host = String(rest[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return .tcp(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }
}

extension KineConfiguration {
    /// Go-style durations: a non-negative number with ms, s, m or h ("500ms", "5s", "1.5m", "1h");
    /// nil for anything else, including values too large for a Duration in milliseconds.
    public static func parseDuration(_ text: String) -> Duration? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (unit, seconds) in units where text.hasSuffix(unit) {
            let number = text.dropLast(unit.count)
            guard number.first?.isNumber == true || number.first == ".", let value = Double(number) else { return nil }
            let milliseconds = value * seconds * 1000
            guard milliseconds.isFinite, milliseconds >= 0, milliseconds < 9.0e15 else { return nil }
            return .milliseconds(Int64(milliseconds))
        }
        return nil
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Go kine's datastore TLS flags, as libpq connection parameters: `sslrootcert`, `sslcert`,
/// `sslkey`, and `sslmode=verify-full` (`require` with `--skip-verify`) when any is given. What
/// the endpoint's own query sets wins.
public struct DatastoreTLS: Sendable, Hashable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
    public var skipVerify: Bool

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, skipVerify: Bool = false) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.skipVerify = skipVerify
    }

    /// The libpq parameters to add (never replacing one the endpoint has).
    public func parameters(existing: [String: String]) -> [String: String] {
        var added: [String: String] = [:]
        for (key, file) in [("sslrootcert", caFile), ("sslcert", certFile), ("sslkey", keyFile)] {
            if let file, existing[key] == nil { added[key] = file }
        }
        let any = caFile != nil || certFile != nil || keyFile != nil || skipVerify
        if any && existing["sslmode"] == nil { added["sslmode"] = skipVerify ? "require" : "verify-full" }
        return added
    }
}
