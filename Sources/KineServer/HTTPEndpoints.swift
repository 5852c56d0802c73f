import Foundation
import KineCore
import KineHTTP2
import KineStore

/// The HTTP/1.1 endpoints etcd serves on its client port: `/health`, `/version` and a minimal
/// `/metrics` (`etcdctl check datascale` reads `process_resident_memory_bytes` there).
struct HTTPEndpoints: Sendable {
    let stores: StoreHandle
    /// The current epoch's store (looked up per request, never kept).
    private var store: KineStore { get throws(EtcdError) { try stores.current() } }
    let identity: ServerIdentity
    /// With `--ha-peer`: the pair's figures.
    var ha: HAMetrics? = nil

    func respond(_ path: String) async -> GRPCHTTP1Response {
        switch path.split(separator: "?").first.map(String.init) ?? path {
        case "/health", "/livez", "/readyz":
            if (try? await store.revisions()) != nil {
                return json(200, #"{"health":"true","reason":""}"#)
            }
            return json(503, #"{"health":"false","reason":"database unavailable"}"#)
        case "/version":
            return json(200, #"{"etcdserver":"\#(identity.version)","etcdcluster":"\#(Self.clusterVersion(identity.version))"}"#)
        case "/metrics":
            let text = """
                # HELP process_resident_memory_bytes Resident memory size in bytes.
                # TYPE process_resident_memory_bytes gauge
                process_resident_memory_bytes \(Self.residentMemoryBytes())

                """ + (ha?.render() ?? "")
            return (200, "text/plain; version=0.0.4", Array(text.utf8))
        default:
            return (404, "text/plain", Array("404 page not found\n".utf8))
        }
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

    /// RSS from /proc/self/statm (pages × page size).
    static func residentMemoryBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
