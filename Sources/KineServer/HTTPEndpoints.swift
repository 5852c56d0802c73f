import KineCore
import KineHTTP2
import KineStore

/// The HTTP/1.1 endpoints etcd serves on its client port: `/health`, `/version` and `/metrics`
/// (`etcdctl check datascale` reads `process_resident_memory_bytes` there).
struct HTTPEndpoints: Sendable {
    let stores: StoreHandle
    /// The current epoch's store (looked up per request, never kept).
    private var store: KineStore { get throws(EtcdError) { try stores.current() } }
    let identity: ServerIdentity
    /// With `--ha-peer`: the pair's figures.
    var ha: HAMetrics? = nil
    /// gRPC and SQL metrics (nil with `--metrics-bind-address 0`).
    var metrics: KineMetrics? = nil
    /// The stores' watch, lease and compaction counters (shared by every epoch's store).
    var statistics = StoreStatistics()

    /// Prometheus text: the process, etcd's server gauges, the store, gRPC and SQL, the HA pair.
    func metricsText() async -> String {
        var text = ProcessMetrics.render()
        if ha == nil {
            var leader = PrometheusText()
            leader.leaderFamilies(hasLeader: stores.epoch != nil, isLeader: stores.epoch != nil)
            text += leader.text
        }
        // try?: a database that does not answer leaves its figures out of the scrape, as etcd does on error.
        let storage = await withDeadline(.seconds(2)) { [stores] in try? await stores.current().storageFigures() }
        let cache = try? stores.current().readCacheFigures
        text += StoreMetrics.render(counters: statistics.counters, storage: storage ?? nil, cache: cache ?? nil)
        return text + (metrics?.render() ?? "") + (ha?.render() ?? "")
    }

    func respond(_ path: String) async -> GRPCHTTP1Response {
        switch path.split(separator: "?").first.map(String.init) ?? path {
        case "/health", "/livez", "/readyz":
            // try?: any failure to read from the database is what /health reports as unhealthy.
            guard let store = try? store, (try? await store.revisions()) != nil, let alarms = try? await store.activeAlarms() else {
                return json(503, #"{"health":"false","reason":"database unavailable"}"#)
            }
            if let alarm = Self.unexcusedAlarm(alarms, excluded: Self.excludedAlarms(path)) {
                // etcd answers an active alarm with its name, the body ending in a newline.
                return json(503, #"{"health":"false","reason":"ALARM \#(alarm)"}"# + "\n")
            }
            return json(200, #"{"health":"true","reason":""}"#)
        case "/version":
            return json(200, #"{"etcdserver":"\#(identity.version)","etcdcluster":"\#(Self.clusterVersion(identity.version))"}"#)
        case "/metrics":
            return (200, "text/plain; version=0.0.4", Array(await metricsText().utf8))
        default:
            return (404, "text/plain", Array("404 page not found\n".utf8))
        }
    }

    /// The `exclude=NAME` parameters of a `/health` request.
    static func excludedAlarms(_ path: String) -> [String] {
        guard let query = path.split(separator: "?", maxSplits: 1).dropFirst().first else { return [] }
        return query.split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1)
            return parts.count == 2 && parts[0] == "exclude" ? String(parts[1]) : nil
        }
    }

    /// The first alarm `/health` reports: as in etcd, the excluded names form a set and each
    /// excuses one alarm of that type (naming it twice excuses no more); names are case-sensitive.
    static func unexcusedAlarm(_ alarms: [AlarmMember], excluded: [String]) -> String? {
        var excuses = Set(excluded)
        for alarm in alarms {
            let name = AlarmType(rawValue: alarm.alarm)?.name ?? "UNKNOWN"
            if excuses.remove(name) != nil { continue }
            return name
        }
        return nil
    }

    private func json(_ status: Int, _ body: String) -> GRPCHTTP1Response {
        (status, "application/json", Array(body.utf8))
    }

    /// etcd reports the cluster version as major.minor.0.
    static func clusterVersion(_ version: String) -> String {
        let parts = version.split(separator: ".")
        guard parts.count >= 2 else { return version }
        return "\(parts[0]).\(parts[1]).0"
    }
}
