import ArgumentParser
import KineHTTP2

/// Flags every scenario shares, named as in etcd's `tools/benchmark`.
struct CommonOptions: ParsableArguments {
    @Option(help: "Comma-separated host:port list; connections are spread over them.")
    var endpoints: String = "127.0.0.1:2379"

    @Option(help: "Number of HTTP/2 connections.")
    var conns: Int = 1

    @Option(help: "Number of concurrent clients (one outstanding request or stream each), spread over the connections.")
    var clients: Int = 1

    @Option(help: "Total number of measured requests.")
    var total: Int = 10000

    @Option(help: "Requests per second over all clients (0 = unlimited).")
    var rate: Int = 0

    @Option(help: "Key size in bytes, prefix included (the numeric part grows if the key space needs it).")
    var keySize: Int = 8

    @Option(help: "Value size in bytes.")
    var valSize: Int = 8

    @Option(help: "Number of distinct keys written.")
    var keySpaceSize: Int = 1

    @Flag(help: "Use keys 0, 1, 2, ... (modulo the key space) instead of random ones.")
    var sequentialKeys = false

    @Option(help: "Key prefix (default: one per scenario, e.g. 'put/').")
    var keyPrefix: String?

    @Option(help: "Per-request timeout in seconds.")
    var timeout: Double = 30

    @Flag(help: "Print one JSON object instead of the text summary.")
    var json = false

    @Option(help: "A label copied into the output (e.g. 'kine' or 'etcd').")
    var label: String = ""

    @Option(help: "TLS: the CA the server's certificate comes from, PEM (etcd benchmark's --cacert).")
    var cacert: String?

    @Option(help: "TLS: the client certificate, PEM.")
    var cert: String?

    @Option(help: "TLS: its private key, PEM.")
    var key: String?

    @Option(help: "name:password to log in with (etcd's auth); every request then carries the token.")
    var user: String?

    mutating func validate() throws {
        guard conns >= 1 else { throw ValidationError("--conns must be at least 1") }
        guard clients >= 1 else { throw ValidationError("--clients must be at least 1") }
        guard total >= 1 else { throw ValidationError("--total must be at least 1") }
        guard rate >= 0 else { throw ValidationError("--rate must not be negative") }
        guard keySize >= 1, valSize >= 0 else { throw ValidationError("--key-size must be ≥ 1 and --val-size ≥ 0") }
        guard keySpaceSize >= 1 else { throw ValidationError("--key-space-size must be at least 1") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        _ = try parsedEndpoints()
        if let user, !user.contains(":") { throw ValidationError("--user takes name:password") }
    }

    func parsedEndpoints() throws -> [(host: String, port: Int)] {
        try endpoints.split(separator: ",").map { item in
            var text = item.trimmingPrefix("http://")
            if text.hasSuffix("/") { text = text.dropLast() }
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else {
                throw ValidationError("endpoint '\(item)' is not host:port")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return (host, port)
        }
    }

    var requestTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// TLS when --cert and --key are given (the server's certificate checked against --cacert).
    var tls: GRPCTLSConfiguration? {
        guard let cert, let key else { return nil }
        return GRPCTLSConfiguration(certificateChainFile: cert, privateKeyFile: key, trustedCAFile: cacert, verifyHostname: false)
    }
}
