import Foundation
import Logging
import Testing

@testable import KineHTTP2

/// Manual performance smoke tests, off by default.
/// `KINE_HTTP2_SERVE_SECONDS=30 swift test --filter PerfSmoke` serves the test router on
/// 127.0.0.1:50099 for h2load/nghttp; `KINE_HTTP2_BENCH=1` measures unary calls/s with our client.
@Suite("perf smoke (manual)")
struct PerfSmokeTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["KINE_HTTP2_SERVE_SECONDS"] != nil))
    func serve() async throws {
        let seconds = Int(ProcessInfo.processInfo.environment["KINE_HTTP2_SERVE_SECONDS"] ?? "") ?? 30
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(
                target: .tcp(host: "127.0.0.1", port: 50099),
                http1Handler: simpleHTTP1Handler { _ in (200, "text/plain", Array("ok\n".utf8)) }),
            router: TestRouter(), logger: Logger(label: "serve"))
        try await server.start()
        try await Task.sleep(for: .seconds(seconds))
        await server.shutdown()
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["KINE_HTTP2_BENCH"] != nil))
    func unaryThroughput() async throws {
        try await withServer { _, port, _ in
            let connections = 4
            let concurrencyPerConnection = 64
            let callsPerTask = 400
            var clients: [GRPCClientConnection] = []
            for _ in 0..<connections { clients.append(try await GRPCClientConnection.connect(host: "127.0.0.1", port: port)) }
            let request = Array(repeating: UInt8(7), count: 64)
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in clients {
                    for _ in 0..<concurrencyPerConnection {
                        group.addTask {
                            for _ in 0..<callsPerTask {
                                _ = try await client.unary(path: "/test.Echo/Unary", request: request)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = ContinuousClock.now - start
            let total = connections * concurrencyPerConnection * callsPerTask
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print("unary: \(total) calls in \(elapsed) → \(Int(Double(total) / seconds)) calls/s")
            for client in clients { await client.close() }
        }
    }
}
