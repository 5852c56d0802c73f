import KineHTTP2
import KinePostgres
import Metrics
import Prometheus
import Synchronization

/// kine's Prometheus metrics (swift-prometheus; swift-metrics is bootstrapped onto the same
/// registry, so libraries that emit through it land here too), under the names Go kine and
/// go-grpc-prometheus export: `grpc_server_started_total`, `grpc_server_handled_total`,
/// `grpc_server_handling_seconds`, `kine_sql_total`, `kine_sql_time_seconds`.
final class KineMetrics: GRPCServerObserver, SQLObserver, Sendable {
    let registry = PrometheusCollectorRegistry()

    /// One gRPC method's metric objects, made once (the registry's own lookup builds label arrays).
    private struct MethodMetrics: Sendable {
        var started: Prometheus.Counter
        var seconds: DurationHistogram
        var handled: [Int: Prometheus.Counter] = [:]
    }

    private struct SQLMetrics: Sendable {
        var total: Prometheus.Counter
        var seconds: DurationHistogram
    }

    private let methods = Mutex<[String: MethodMetrics]>([:])
    /// Go kine's labels: the statement's name and its SQLSTATE ("" on success).
    private struct SQLKey: Hashable, Sendable {
        var name: String
        var errorCode: String
    }

    private let statements = Mutex<[SQLKey: SQLMetrics]>([:])

    /// go-grpc-prometheus's defaults (Prometheus DefBuckets).
    static let grpcBuckets: [Duration] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000].map { Duration.milliseconds($0) }
    static let sqlBuckets: [Duration] = [
        500, 1000, 2500, 5000, 10000, 25000, 50000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
        10_000_000,
    ].map { Duration.microseconds($0) }

    /// The Writer: requests per group commit, and its time.
    private let batchSize: ValueHistogram
    private let commitSeconds: DurationHistogram

    init() {
        batchSize = registry.makeValueHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "kine_writer_batch", unitName: "requests", helpText: "Write requests per group commit."),
            buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000])
        commitSeconds = registry.makeDurationHistogram(
            descriptor: Self.name(
                "kine_writer_commit", "seconds", "Time of one group commit, from its first statement to its acknowledgement."),
            buckets: Self.sqlBuckets)
    }

    func groupCommitted(requests: Int, duration: Duration) {
        batchSize.record(Double(requests))
        commitSeconds.record(duration)
    }

    /// Points swift-metrics at this registry (once per process).
    func bootstrapMetricsSystem() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    // MARK: gRPC

    func callStarted(path: String, streaming: Bool) {
        let started = methods.withLock { table in Self.entry(&table, path: path, streaming: streaming, registry: registry).started }
        started.increment()
    }

    func callHandled(path: String, streaming: Bool, code: Int, duration: Duration) {
        let (counter, histogram) = methods.withLock { table -> (Prometheus.Counter, DurationHistogram) in
            var entry = Self.entry(&table, path: path, streaming: streaming, registry: registry)
            if let counter = entry.handled[code] { return (counter, entry.seconds) }
            let (service, method) = Self.split(path)
            let labels = [
                ("grpc_type", Self.type(streaming)), ("grpc_service", service), ("grpc_method", method), ("grpc_code", Self.codeName(code)),
            ]
            let counter = registry.makeCounter(
                descriptor: Self.name(
                    "grpc_server_handled", "total", "Total number of RPCs completed on the server, regardless of success or failure."),
                labels: labels)
            entry.handled[code] = counter
            table[path] = entry
            return (counter, entry.seconds)
        }
        counter.increment()
        histogram.record(duration)
    }

    private static func entry(
        _ table: inout [String: MethodMetrics], path: String, streaming: Bool, registry: PrometheusCollectorRegistry
    ) -> MethodMetrics {
        if let entry = table[path] { return entry }
        let (service, method) = split(path)
        let labels = [("grpc_type", type(streaming)), ("grpc_service", service), ("grpc_method", method)]
        let entry = MethodMetrics(
            started: registry.makeCounter(
                descriptor: name("grpc_server_started", "total", "Total number of RPCs started on the server."), labels: labels),
            seconds: registry.makeDurationHistogram(
                descriptor: name(
                    "grpc_server_handling", "seconds",
                    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server."),
                labels: labels, buckets: grpcBuckets))
        table[path] = entry
        return entry
    }

    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: metric, unitName: unit, helpText: help)
    }

    static func type(_ streaming: Bool) -> String { streaming ? "bidi_stream" : "unary" }

    /// `/etcdserverpb.KV/Range` → (`etcdserverpb.KV`, `Range`).
    static func split(_ path: String) -> (String, String) {
        let trimmed = path.hasPrefix("/") ? path.dropFirst() : Substring(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return (String(trimmed), "") }
        return (String(trimmed[..<slash]), String(trimmed[trimmed.index(after: slash)...]))
    }

    /// grpc-go's `codes.Code.String()`.
    static func codeName(_ code: Int) -> String {
        let names = [
            "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists", "PermissionDenied",
            "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
            "Unauthenticated",
        ]
        return names.indices.contains(code) ? names[code] : "Code(\(code))"
    }

    // MARK: SQL

    func statementCompleted(name: String, errorCode: String, duration: Duration) {
        let metrics = statements.withLock { table -> SQLMetrics in
            let key = SQLKey(name: name, errorCode: errorCode)
            if let entry = table[key] { return entry }
            let labels = [("name", name), ("error_code", errorCode)]
            let entry = SQLMetrics(
                total: registry.makeCounter(descriptor: Self.name("kine_sql", "total", "Total number of SQL operations"), labels: labels),
                seconds: registry.makeDurationHistogram(
                    descriptor: Self.name("kine_sql_time", "seconds", "Length of time per SQL operation"), labels: labels,
                    buckets: Self.sqlBuckets))
            table[key] = entry
            return entry
        }
        metrics.total.increment()
        metrics.seconds.record(duration)
    }

    // MARK: Exposition

    /// The registry in Prometheus text format.
    func render() -> String {
        registry.emitToString()
    }
}
