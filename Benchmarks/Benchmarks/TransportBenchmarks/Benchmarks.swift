import Benchmark
import KineHTTP2
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// gRPC over HTTP/2 in KineHTTP2 (nghttp2 sessions, gRPC framing, NIO) end to end: an in-process
/// echo server and the project's client over loopback TCP. One iteration = one unary round trip.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        warmupIterations: 50,
        maxDuration: .seconds(3),
        maxIterations: 100_000
    )

    for size in [64, 4096, 262_144] {
        let payload = [UInt8](repeating: 0x5A, count: size)
        Benchmark("GRPC.unary.echo\(size)B") { benchmark in
            let connection = try await EchoFixture.shared.connection()
            for _ in benchmark.scaledIterations {
                blackHole(try await connection.unary(path: "/bench.Echo/Echo", request: payload))
            }
        }
    }

    Benchmark("GRPC.unary.echo64B.concurrent16", configuration: .init(scalingFactor: .one)) { benchmark in
        let connection = try await EchoFixture.shared.connection()
        let payload = [UInt8](repeating: 0x5A, count: 64)
        for _ in benchmark.scaledIterations {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<16 {
                    group.addTask { _ = try await connection.unary(path: "/bench.Echo/Echo", request: payload) }
                }
                try await group.waitForAll()
            }
        }
    }

    Benchmark.teardown = { await EchoFixture.shared.shutdown() }
}

struct EchoRouter: GRPCRouter {
    func method(for path: String) -> GRPCMethod? {
        .unary { request, _ in request }
    }
}

/// One echo server and one client connection for every benchmark of the process.
final class EchoFixture: Sendable {
    static let shared = EchoFixture()

    private struct State {
        var server: GRPCServer?
        var connection: GRPCClientConnection?
    }

    private let state = Mutex(State())

    func connection() async throws -> GRPCClientConnection {
        if let connection = state.withLock({ $0.connection }) { return connection }
        var logger = Logger(label: "bench.echo")
        logger.logLevel = .error
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(target: .tcp(host: "127.0.0.1", port: 0)), router: EchoRouter(),
            logger: logger)
        let bound = try await server.start()
        let connection = try await GRPCClientConnection.connect(host: "127.0.0.1", port: bound.port ?? 0)
        state.withLock {
            $0.server = server
            $0.connection = connection
        }
        return connection
    }

    func shutdown() async {
        let (server, connection) = state.withLock { ($0.server, $0.connection) }
        await connection?.close()
        await server?.shutdown()
        state.withLock { $0 = State() }
    }
}
