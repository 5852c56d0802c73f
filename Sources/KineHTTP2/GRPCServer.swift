import KineCore
public import Logging
public import NIOCore
public import NIOPosix
import NIOSSL
import Synchronization

/// Tracks live connections so `shutdown()` can drain them.
final class ConnectionRegistry: Sendable {
    private struct State {
        var connections: [ObjectIdentifier: NIOLoopBound<ServerConnectionHandler>] = [:]
        var closing = false
    }

    private let state = Mutex(State())

    /// Returns false when the server is shutting down (the connection should close).
    func add(_ id: ObjectIdentifier, _ handler: NIOLoopBound<ServerConnectionHandler>) -> Bool {
        state.withLock { state in
            guard !state.closing else { return false }
            state.connections[id] = handler
            return true
        }
    }

    func remove(_ id: ObjectIdentifier) {
        _ = state.withLock { $0.connections.removeValue(forKey: id) }
    }

    func beginClosing() -> [NIOLoopBound<ServerConnectionHandler>] {
        state.withLock { state in
            state.closing = true
            return Array(state.connections.values)
        }
    }

    var count: Int { state.withLock { $0.connections.count } }
}

/// A gRPC server over HTTP/2 (h2c prior knowledge, plus HTTP/1.1 GETs on the same port).
public final class GRPCServer: Sendable {
    private enum State {
        case idle
        case starting
        case running(any Channel)
        case stopped
    }

    public let configuration: GRPCServerConfiguration
    private let router: any GRPCRouter
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = Mutex(State.idle)
    private let registry = ConnectionRegistry()

    public init(
        configuration: GRPCServerConfiguration,
        router: any GRPCRouter,
        logger: Logger,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.group = eventLoopGroup
    }

    /// Binds and starts accepting. Returns the bound target (with the real port when 0 was asked).
    @discardableResult
    public func start() async throws -> GRPCListenTarget {
        let mayStart = state.withLock { state -> Bool in
            guard case .idle = state else { return false }
            state = .starting
            return true
        }
        guard mayStart else { throw GRPCStatus(.failedPrecondition, "server already started") }

        let configuration = self.configuration
        let router = self.router
        let logger = self.logger
        let registry = self.registry
        let tls: ReloadingTLSContext?
        do {
            tls = try configuration.tls.map { (tls) throws(GRPCTLSError) in try ReloadingTLSContext(tls, logger: logger) }
        } catch {
            state.withLock { $0 = .idle }
            throw error
        }
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = ServerConnectionHandler(
                        configuration: configuration, router: router, logger: logger, registry: registry)
                    if let tls { try channel.pipeline.syncOperations.addServerTLS(tls.current(), logger: logger) }
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
        let channel: any Channel
        do {
            switch configuration.target {
            case .tcp(let host, let port):
                bootstrap = bootstrap.childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                channel = try await bootstrap.bind(host: host, port: port).get()
            case .unixSocket(let path):
                channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
            }
        } catch {
            state.withLock { $0 = .idle }
            throw error
        }
        state.withLock { $0 = .running(channel) }

        let bound: GRPCListenTarget
        switch configuration.target {
        case .tcp(let host, _):
            bound = .tcp(host: host, port: channel.localAddress?.port ?? 0)
        case .unixSocket(let path):
            bound = .unixSocket(path: path)
        }
        logger.info("grpc server listening", metadata: ["grpc.address": "\(bound)"])
        return bound
    }

    /// Number of open connections (diagnostics, tests).
    public var connectionCount: Int { registry.count }

    /// Graceful shutdown: stop accepting, GOAWAY every connection, end streaming calls, let in-flight
    /// unary calls finish (up to `shutdownGracePeriod`), then close.
    public func shutdown() async {
        let channel = state.withLock { state -> (any Channel)? in
            defer { state = .stopped }
            if case .running(let channel) = state { return channel }
            return nil
        }
        // try?: a listener that fails to close is closed all the same; shutdown goes on to the connections.
        if let channel { try? await channel.close() }
        let (seconds, attoseconds) = configuration.shutdownGracePeriod.components
        let grace = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        let connections = registry.beginClosing()
        var futures: [EventLoopFuture<Void>] = []
        for connection in connections {
            let eventLoop = connection.eventLoop
            futures.append(
                eventLoop.flatSubmit {
                    connection.value.beginGracefulShutdown(gracePeriod: grace, eventLoop: eventLoop)
                })
        }
        // try?: a connection that failed while draining has ended, which is what shutdown waits for.
        for future in futures { try? await future.get() }
    }
}
