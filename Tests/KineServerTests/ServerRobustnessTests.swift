import Foundation
import KineCore
import KineHTTP2
import KinePostgres
import KineProto
import KineServer
import Logging
import Synchronization
import Testing

/// Starts a whole kine (PostgreSQL pool, store, gRPC server) on a fresh database and port 0.
enum ServerFixture {
    static let url = ProcessInfo.processInfo.environment["KINE_TEST_POSTGRES_URL"]

    static func withServer(_ body: (GRPCClientConnection) async throws -> Void) async throws {
        let database = "kine_server_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        var logger = Logger(label: "kine.server.tests")
        logger.logLevel = .warning
        let endpoint = try PostgresConfiguration(endpoint: url ?? "").with(database: database)
        let configuration = KineConfiguration(listen: .tcp(host: "127.0.0.1", port: 0), endpoint: endpointURL(endpoint))
        let application = KineApplication(configuration: configuration, logger: logger)
        let port = Mutex<Int?>(nil)
        // Cancelling the task ends `run()` the way a graceful shutdown does.
        let running = Task {
            try await application.run { bound in port.withLock { $0 = bound.port } }
        }
        defer { running.cancel() }
        var bound: Int?
        for _ in 0..<600 where bound == nil {
            try await Task.sleep(for: .milliseconds(50))
            bound = port.withLock { $0 }
        }
        let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: try #require(bound))
        do {
            try await body(client)
        } catch {
            await client.close()
            running.cancel()
            _ = await running.result
            throw error
        }
        await client.close()
        running.cancel()
        _ = await running.result
    }

    private static func endpointURL(_ configuration: PostgresConfiguration) -> String {
        "postgres://\(configuration.user ?? "postgres")@\(configuration.host ?? "127.0.0.1"):\(configuration.port ?? 5432)/\(configuration.database)"
    }
}

@Suite("Server robustness", .enabled(if: ServerFixture.url != nil, "set KINE_TEST_POSTGRES_URL"))
struct ServerRobustnessTests {
    static let unaryMethods = [
        "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact", "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Lease/LeaseRevoke",
        "/etcdserverpb.Lease/LeaseTimeToLive", "/etcdserverpb.Maintenance/Status", "/etcdserverpb.Maintenance/Alarm",
        "/etcdserverpb.Cluster/MemberList", "/grpc.health.v1.Health/Check",
    ]

    /// Valid encodings whose truncations and corruptions are sent too.
    static let samples: [[UInt8]] = [
        ProtoEncode.rangeRequest(RangeRequest(key: Array("/fuzz/".utf8), rangeEnd: Array("/fuzz0".utf8), limit: 3)),
        ProtoEncode.putRequest(PutRequest(key: Array("/fuzz/k".utf8), value: Array("v".utf8), prevKV: true)),
        ProtoEncode.txnRequest(
            TxnRequest(
                compare: [Compare(result: .equal, target: .mod, key: Array("/fuzz/k".utf8), operand: .modRevision(0))],
                success: [.put(PutRequest(key: Array("/fuzz/t".utf8), value: [1]))],
                failure: [.range(RangeRequest(key: Array("/fuzz/k".utf8)))])),
        ProtoEncode.watchRequest(.create(WatchCreateRequest(key: Array("/fuzz/".utf8), rangeEnd: Array("/fuzz0".utf8)))),
    ]

    @Test("Random, truncated and corrupted payloads to every method end in a status, never a crash")
    func garbage() async throws {
        try await ServerFixture.withServer { client in
            var generator = SystemRandomNumberGenerator()
            var payloads: [[UInt8]] = []
            for sample in Self.samples {
                for length in 0..<sample.count { payloads.append(Array(sample.prefix(length))) }
                for index in sample.indices {
                    var corrupted = sample
                    corrupted[index] ^= 0xFF
                    payloads.append(corrupted)
                }
            }
            for _ in 0..<60 {
                payloads.append((0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            }
            for method in Self.unaryMethods {
                for payload in payloads {
                    do throws(GRPCStatus) {
                        _ = try await client.unary(path: method, request: payload, timeout: .seconds(10))
                    } catch {
                        // Any status is fine; the server must stay up and answer the next call.
                        #expect(error.code != GRPCStatus.Code.unavailable.rawValue, "\(method): \(error)")
                    }
                }
            }
            for stream in ["/etcdserverpb.Watch/Watch", "/etcdserverpb.Lease/LeaseKeepAlive"] {
                for payload in payloads.prefix(40) {
                    let call = client.openBidirectional(path: stream, timeout: .seconds(5))
                    try? await call.send(payload)
                    call.finish()
                    // The stream may end with an error status; only the server's survival matters.
                    do {
                        for try await _ in call.responses {}
                    } catch {}
                }
            }
            // Still serving.
            let put = try await client.unary(
                path: "/etcdserverpb.KV/Put", request: ProtoEncode.putRequest(PutRequest(key: Array("/after".utf8), value: [1])))
            #expect(try ProtoDecode.putResponse(put).header.revision > 0)
        }
    }

    @Test("Unknown methods and services answer UNIMPLEMENTED with grpc-go's wording")
    func unknownMethod() async throws {
        try await ServerFixture.withServer { client in
            await #expect(throws: GRPCStatus(.unimplemented, "unknown method Nope for service etcdserverpb.KV")) {
                _ = try await client.unary(path: "/etcdserverpb.KV/Nope", request: [])
            }
            await #expect(throws: GRPCStatus(.unimplemented, "unknown service etcdserverpb.Nope")) {
                _ = try await client.unary(path: "/etcdserverpb.Nope/Call", request: [])
            }
        }
    }

    @Test("A request over etcd's 1.5 MiB limit is refused with etcd's error")
    func requestTooLarge() async throws {
        try await ServerFixture.withServer { client in
            let big = ProtoEncode.putRequest(PutRequest(key: Array("/big".utf8), value: [UInt8](repeating: 7, count: 1_600_000)))
            await #expect(throws: GRPCStatus(.invalidArgument, "etcdserver: request is too large")) {
                _ = try await client.unary(path: "/etcdserverpb.KV/Put", request: big)
            }
            let fits = ProtoEncode.putRequest(PutRequest(key: Array("/big".utf8), value: [UInt8](repeating: 7, count: 1_500_000)))
            _ = try await client.unary(path: "/etcdserverpb.KV/Put", request: fits)
            let range = try ProtoDecode.rangeResponse(
                try await client.unary(
                    path: "/etcdserverpb.KV/Range", request: ProtoEncode.rangeRequest(RangeRequest(key: Array("/big".utf8)))))
            #expect(range.kvs.first?.value.count == 1_500_000)
        }
    }
}
