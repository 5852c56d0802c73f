import KineHTTP2

/// Maps gRPC paths to the etcd services this server implements. Anything else is UNIMPLEMENTED,
/// worded by the transport as grpc-go does.
struct EtcdRouter: GRPCRouter {
    let methods: [String: GRPCMethod]
    let services: Set<String>

    init(_ tables: [[String: GRPCMethod]]) {
        var methods: [String: GRPCMethod] = [:]
        for table in tables { methods.merge(table) { first, _ in first } }
        self.methods = methods
        // "/etcdserverpb.KV/Range" → "etcdserverpb.KV"
        services = Set(methods.keys.compactMap { path in path.split(separator: "/").first.map(String.init) })
    }

    func method(for path: String) -> GRPCMethod? { methods[path] }
    func hasService(_ service: String) -> Bool { services.contains(service) }
}
