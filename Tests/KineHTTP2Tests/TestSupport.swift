import KineCore
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import KineHTTP2

/// Records handler cancellations so tests can observe them.
final class Probe: Sendable {
    private let state = Mutex<(started: Int, cancelled: Int)>((0, 0))

    func started() { state.withLock { $0.started += 1 } }
    func cancelled() { state.withLock { $0.cancelled += 1 } }
    var startedCount: Int { state.withLock { $0.started } }
    var cancelledCount: Int { state.withLock { $0.cancelled } }

    /// Polls until `condition` holds or ~5 s passed.
    func wait(_ condition: (Probe) -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition(self) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(self)
    }
}

struct TestRouter: GRPCRouter {
    let probe = Probe()

    static let failure = GRPCStatus(code: 9, message: "etcdserver: failed ✓ 100%\n")

    func hasService(_ service: String) -> Bool { service == "test.Echo" }

    func method(for path: String) -> GRPCMethod? {
        let probe = self.probe
        switch path {
        case "/test.Echo/Unary":
            return .unary { request, _ in request }
        case "/test.Echo/Metadata":
            return .unary { _, context in
                Array("\(context.metadata["x-test"] ?? "-") \(context.deadline != nil) \(context.path)".utf8)
            }
        case "/test.Echo/Fail":
            return .unary { _, _ throws(GRPCStatus) in throw TestRouter.failure }
        case "/test.Echo/Sleep":
            return .unary { _, _ throws(GRPCStatus) in
                probe.started()
                do {
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    probe.cancelled()
                    throw GRPCStatus(.cancelled, "handler cancelled")
                }
                return []
            }
        case "/test.Echo/Stream":
            return .bidirectional { requests, responses, _ throws(GRPCStatus) in
                for await message in requests {
                    do {
                        try await responses.write(message)
                    } catch {
                        throw GRPCStatus(.cancelled, "write failed")
                    }
                }
            }
        case "/test.Echo/StreamSleep":
            return .bidirectional { _, responses, _ throws(GRPCStatus) in
                probe.started()
                do {
                    try await responses.write([1])
                    try await Task.sleep(for: .seconds(60))
                } catch {
                    probe.cancelled()
                    throw GRPCStatus(.cancelled, "handler cancelled")
                }
            }
        case "/test.Echo/StreamFail":
            return .bidirectional { _, _, _ throws(GRPCStatus) in throw GRPCStatus(code: 5, message: "nope") }
        case "/test.Echo/StreamFailAfter":
            return .bidirectional { _, responses, _ throws(GRPCStatus) in
                do { try await responses.write([7, 7]) } catch { throw GRPCStatus(.cancelled) }
                throw GRPCStatus(code: 11, message: "after one")
            }
        case "/test.Echo/Flood":
            // Writes many messages quickly: exercises backpressure and flow control.
            return .bidirectional { requests, responses, _ throws(GRPCStatus) in
                var iterator = requests.makeAsyncIterator()
                guard let first = await iterator.next(), first.count == 2 else { throw GRPCStatus(.invalidArgument) }
                let count = Int(first[0]) * 256 + Int(first[1])
                for index in 0..<count {
                    do {
                        try await responses.write(Array(repeating: UInt8(truncatingIfNeeded: index), count: 16_384))
                    } catch {
                        throw GRPCStatus(.cancelled)
                    }
                }
            }
        default:
            return nil
        }
    }
}

func withServer(
    router: TestRouter = TestRouter(),
    configure: (inout GRPCServerConfiguration) -> Void = { _ in },
    _ body: (GRPCServer, Int, TestRouter) async throws -> Void
) async throws {
    var configuration = GRPCServerConfiguration(target: .tcp(host: "127.0.0.1", port: 0))
    configuration.shutdownGracePeriod = .seconds(2)
    configure(&configuration)
    var logger = Logger(label: "kine.http2.test")
    logger.logLevel = .critical
    let server = GRPCServer(configuration: configuration, router: router, logger: logger)
    let bound = try await server.start()
    let port = bound.port ?? 0
    do {
        try await body(server, port, router)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}

/// Sends raw bytes on a fresh TCP connection and collects what comes back until the server closes
/// or `readTimeout` passes.
func rawExchange(
    port: Int, bytes: [UInt8], readTimeout: Duration = .milliseconds(300)
) async throws -> (received: [UInt8], closedByServer: Bool) {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
            }
        }
    let collected = ByteCollector()
    return try await channel.executeThenClose { inbound, outbound in
        try await outbound.write(ByteBuffer(bytes: bytes))
        let closed = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do {
                    for try await chunk in inbound {
                        collected.append(chunk)
                    }
                } catch {}
                return true
            }
            group.addTask {
                try? await Task.sleep(for: readTimeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        return (collected.bytes, closed)
    }
}

final class ByteCollector: Sendable {
    private let storage = Mutex<[UInt8]>([])
    func append(_ chunk: ByteBuffer) { storage.withLock { $0.append(contentsOf: chunk.readableBytesView) } }
    var bytes: [UInt8] { storage.withLock { $0 } }
}
