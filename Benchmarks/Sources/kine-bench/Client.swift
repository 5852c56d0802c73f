import KineCore
import KineHTTP2
import KineProto

/// The scenario found no such service on the server (gRPC UNIMPLEMENTED).
struct ServiceNotAvailable: Error, CustomStringConvertible {
    var path: String
    var message: String
    var description: String { "\(path): not available (\(message))" }
}

/// A failed request, with enough text to print a sample.
struct RequestFailure: Error, CustomStringConvertible {
    var description: String
}

enum EtcdPath {
    static let range = "/etcdserverpb.KV/Range"
    static let put = "/etcdserverpb.KV/Put"
    static let txn = "/etcdserverpb.KV/Txn"
    static let watch = "/etcdserverpb.Watch/Watch"
    static let leaseGrant = "/etcdserverpb.Lease/LeaseGrant"
    static let leaseRevoke = "/etcdserverpb.Lease/LeaseRevoke"
    static let leaseKeepAlive = "/etcdserverpb.Lease/LeaseKeepAlive"
}

/// The connections of one run and typed etcd calls over them.
final class EtcdClient: Sendable {
    let connections: [GRPCClientConnection]
    let timeout: Duration
    /// The auth token every call carries (`--user`), as etcd clients send it.
    let metadata: GRPCMetadata

    private init(connections: [GRPCClientConnection], timeout: Duration, metadata: GRPCMetadata = GRPCMetadata()) {
        self.connections = connections
        self.timeout = timeout
        self.metadata = metadata
    }

    static func connect(_ options: CommonOptions) async throws -> EtcdClient {
        let endpoints = try options.parsedEndpoints()
        var connections: [GRPCClientConnection] = []
        for index in 0..<options.conns {
            let endpoint = endpoints[index % endpoints.count]
            connections.append(try await GRPCClientConnection.connect(host: endpoint.host, port: endpoint.port, tls: options.tls))
        }
        guard let user = options.user, let colon = user.firstIndex(of: ":"), let first = connections.first else {
            return EtcdClient(connections: connections, timeout: options.requestTimeout)
        }
        var request = ProtoFieldWriter()
        request.string(1, String(user[..<colon]))
        request.string(2, String(user[user.index(after: colon)...]))
        let response = try await first.unary(
            path: "/etcdserverpb.Auth/Authenticate", request: request.bytes, timeout: options.requestTimeout)
        let token = try ProtoFields(response, message: "etcdserverpb.AuthenticateResponse").string(2)
        return EtcdClient(connections: connections, timeout: options.requestTimeout, metadata: ["token": token])
    }

    func close() async {
        for connection in connections { await connection.close() }
    }

    /// The connection client number `client` uses.
    func connection(for client: Int) -> GRPCClientConnection {
        connections[client % connections.count]
    }

    func call(_ client: Int, _ path: String, _ request: [UInt8]) async throws -> [UInt8] {
        do {
            return try await connection(for: client).unary(path: path, request: request, metadata: metadata, timeout: timeout)
        } catch {
            if error.code == GRPCStatus.Code.unimplemented.rawValue {
                throw ServiceNotAvailable(path: path, message: error.message)
            }
            throw RequestFailure(description: "\(path): \(error)")
        }
    }

    func put(_ client: Int, _ request: PutRequest) async throws -> PutResponse {
        try ProtoDecode.putResponse(await call(client, EtcdPath.put, ProtoEncode.putRequest(request)))
    }

    func range(_ client: Int, _ request: RangeRequest) async throws -> RangeResponse {
        try ProtoDecode.rangeResponse(await call(client, EtcdPath.range, ProtoEncode.rangeRequest(request)))
    }

    func txn(_ client: Int, _ request: TxnRequest) async throws -> TxnResponse {
        try ProtoDecode.txnResponse(await call(client, EtcdPath.txn, ProtoEncode.txnRequest(request)))
    }

    func leaseGrant(_ client: Int, ttl: Int64) async throws -> LeaseGrantResponse {
        let bytes = try await call(client, EtcdPath.leaseGrant, ProtoEncode.leaseGrantRequest(LeaseGrantRequest(ttl: ttl)))
        return try ProtoDecode.leaseGrantResponse(bytes)
    }

    func leaseRevoke(_ client: Int, id: Int64) async throws {
        _ = try await call(client, EtcdPath.leaseRevoke, ProtoEncode.leaseRevokeRequest(LeaseRevokeRequest(id: id)))
    }

    /// Writes `keys` (all with `value`) using up to `parallelism` concurrent requests; returns the
    /// mod revision of each key. Not measured: this is the set-up of a scenario.
    func populate(keys: [Bytes], value: Bytes, parallelism: Int) async throws -> [Int64] {
        let workers = max(1, min(parallelism, keys.count))
        return try await withThrowingTaskGroup(of: [(Int, Int64)].self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var done: [(Int, Int64)] = []
                    var index = worker
                    while index < keys.count {
                        let response = try await self.put(worker, PutRequest(key: keys[index], value: value))
                        done.append((index, response.header.revision))
                        index += workers
                    }
                    return done
                }
            }
            var revisions = [Int64](repeating: 0, count: keys.count)
            for try await part in group {
                for (index, revision) in part { revisions[index] = revision }
            }
            return revisions
        }
    }
}

/// Keys and values of a run.
struct KeyFactory: Sendable {
    let prefix: Bytes
    let digits: Int

    init(prefix: String, keySize: Int, keySpaceSize: Int) {
        self.prefix = Array(prefix.utf8)
        let needed = String(max(keySpaceSize - 1, 0)).count
        self.digits = max(keySize - self.prefix.count, needed)
    }

    /// `prefix` + zero-padded decimal `index`.
    func key(_ index: Int) -> Bytes {
        var key = prefix
        key.reserveCapacity(prefix.count + digits)
        let number = Array(String(index).utf8)
        if number.count < digits { key.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: digits - number.count)) }
        key.append(contentsOf: number)
        return key
    }

    /// The etcd range end that covers every key with `prefix` ("prefix + 1").
    var prefixEnd: Bytes { KeyRange.prefixEnd(prefix) }
}

/// A value of `size` printable, not trivially compressible bytes.
func makeValue(size: Int, seed: UInt64 = 42) -> Bytes {
    var rng = SplitMix64(seed: seed)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
    return (0..<size).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
}

/// A small fast PRNG per client (SystemRandomNumberGenerator is a syscall per call).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
