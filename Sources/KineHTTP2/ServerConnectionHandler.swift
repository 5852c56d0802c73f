import KineCore
import Logging
import NIOCore

/// One server connection: detects HTTP/2 (prior knowledge) vs HTTP/1.1, drives an nghttp2 server
/// session with the bytes the channel reads, runs handlers as tasks and writes what nghttp2 produces.
///
/// Confined to the channel's event loop. Handler tasks come back through `NIOLoopBound`.
final class ServerConnectionHandler: ChannelInboundHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Mode {
        case detecting
        case http2
        case http1
        case closed
    }

    let configuration: GRPCServerConfiguration
    let router: any GRPCRouter
    var logger: Logger
    private let registry: ConnectionRegistry?

    var mode = Mode.detecting
    var pendingInput: ByteBuffer?
    var session: NGHTTP2Session?
    var http1Connection: HTTP1ServerConnection?
    var streams: [Int32: ServerStream] = [:]
    var context: ChannelHandlerContext?
    var loopBound: NIOLoopBound<ServerConnectionHandler>?
    /// Unary handlers run on this connection's loop (`EventLoopTaskExecutor`).
    var loopExecutor: EventLoopTaskExecutor?
    var remoteAddress: String?
    /// `peerCommonName()`'s answer once known (the outer optional: not looked up yet).
    var peerCommonNameCache: String??
    private var inReadBatch = false
    private var flushScheduled = false
    var draining = false
    private var forceCloseTimer: Scheduled<Void>?
    /// Closes connections that never finish their preface / HTTP/1.1 request head.
    private var detectionTimer: Scheduled<Void>?
    static let detectionTimeout = TimeAmount.seconds(10)

    init(configuration: GRPCServerConfiguration, router: any GRPCRouter, logger: Logger, registry: ConnectionRegistry?) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.registry = registry
    }

    // MARK: channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.loopBound = bound
        self.loopExecutor = EventLoopTaskExecutor(context.eventLoop)
        if context.channel.isActive { channelBecameActive(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
        self.loopBound = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        channelBecameActive(context: context)
        context.fireChannelActive()
    }

    private var registered = false

    private func channelBecameActive(context: ChannelHandlerContext) {
        guard !registered, let loopBound else { return }
        registered = true
        remoteAddress = context.channel.remoteAddress?.description
        logger[metadataKey: "grpc.peer"] = "\(remoteAddress ?? "?")"
        if let registry, !registry.add(ObjectIdentifier(self), loopBound) {
            // Server is shutting down.
            mode = .closed
            context.close(promise: nil)
            return
        }
        detectionTimer = context.eventLoop.assumeIsolated().scheduleTask(in: Self.detectionTimeout) { [weak self] in
            guard let self else { return }
            switch self.mode {
            case .detecting:
                self.logger.debug("no complete request in time")
                self.closeConnection()
            case .http1 where self.http1Connection?.sawRequest != true:
                self.logger.debug("no complete request in time")
                self.closeConnection()
            case .http1, .http2, .closed:
                break
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        teardown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        closeConnection()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        switch mode {
        case .http2:
            feed(buffer)
        case .detecting:
            if pendingInput == nil {
                pendingInput = buffer
            } else {
                pendingInput?.writeBuffer(&buffer)
            }
            detectProtocol()
        case .http1:
            http1Connection?.receive(buffer.readableBytesView)
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBatch = false
        flushOutput()
    }

    // MARK: protocol detection and HTTP/1.1

    private func detectProtocol() {
        guard let input = pendingInput else { return }
        switch HTTP1.detect(input.readableBytesView) {
        case .needMoreBytes:
            if input.readableBytes > HTTP1.maxHeadSize { closeConnection() }
        case .http2:
            pendingInput = nil
            startHTTP2()
            feed(input)
        case .http1:
            startHTTP1()
        case .garbage:
            logger.debug("neither HTTP/2 preface nor HTTP/1.1 request")
            closeConnection()
        }
    }

    // MARK: HTTP/2 driving

    func startHTTP2() {
        mode = .http2
        detectionTimer?.cancel()
        detectionTimer = nil
        guard let session = NGHTTP2Session(role: .server, delegate: self) else {
            logger.error("cannot create nghttp2 session")
            closeConnection()
            return
        }
        self.session = session
        // The first frame we send must be SETTINGS (grpc-go checks).
        session.submitSettings(
            .init(maxConcurrentStreams: UInt32.max, initialWindowSize: configuration.streamWindow, enablePush: false)
        )
        session.setConnectionWindowSize(configuration.connectionWindow)
    }

    func feed(_ buffer: ByteBuffer) {
        guard let session else { return }
        inReadBatch = true
        let failure = buffer.withUnsafeReadableBytes { session.receive($0) }
        if let failure {
            logger.debug("HTTP/2 session error", metadata: ["error": "\(failure)"])
            // Whatever nghttp2 queued (GOAWAY) goes out, then we close.
            inReadBatch = false
            flushOutput()
            closeConnection()
        }
    }

    /// Coalesces output produced outside a read batch (handler results, writer kicks) into one
    /// write per event-loop tick.
    func scheduleFlush() {
        guard !inReadBatch, !flushScheduled, let loopBound else { return }
        flushScheduled = true
        loopBound.eventLoop.assumeIsolated().execute { [weak self] in
            guard let self else { return }
            self.flushScheduled = false
            self.flushOutput()
        }
    }

    /// Serialises everything nghttp2 wants to send and writes it with a single flush.
    func flushOutput() {
        guard mode == .http2, let session, let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 0)
        let ok = session.send(into: &buffer)
        if buffer.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        }
        if !ok {
            logger.debug("nghttp2 send failed")
            closeConnection()
        } else if !session.wantsRead && !session.wantsWrite {
            closeConnection()
        } else if draining && streams.isEmpty && !session.wantsWrite {
            closeConnection()
        }
    }

    func closeConnection() {
        guard let context else { return }
        if mode != .closed || context.channel.isActive {
            mode = .closed
            context.close(promise: nil)
        }
    }

    private func teardown() {
        mode = .closed
        forceCloseTimer?.cancel()
        forceCloseTimer = nil
        detectionTimer?.cancel()
        detectionTimer = nil
        http1Connection?.connectionClosed()
        http1Connection = nil
        let open = streams
        streams = [:]
        for stream in open.values { perform(stream.machine.streamClosed(GRPCStatus(.unavailable, "connection closed")), on: stream) }
        if registered, let registry {
            registry.remove(ObjectIdentifier(self))
            registered = false
        }
    }

    // MARK: graceful shutdown

    /// Sends GOAWAY, ends streaming calls with UNAVAILABLE, lets unary calls finish, and closes when
    /// idle or after the grace period.
    func beginGracefulShutdown(gracePeriod: TimeAmount, eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        guard let context else { return eventLoop.makeSucceededVoidFuture() }
        let closeFuture = context.channel.closeFuture
        guard !draining else { return closeFuture }
        draining = true
        switch mode {
        case .http2:
            session?.submitGoAway(errorCode: H2ErrorCode.noError)
            for stream in streams.values { perform(stream.machine.shutdownBegan(), on: stream) }
            flushOutput()
            forceCloseTimer = context.eventLoop.assumeIsolated().scheduleTask(in: gracePeriod) { [weak self] in
                self?.closeConnection()
            }
        case .detecting, .closed:
            closeConnection()
        case .http1:
            http1Connection?.beginShutdown()
            forceCloseTimer = context.eventLoop.assumeIsolated().scheduleTask(in: gracePeriod) { [weak self] in
                self?.closeConnection()
            }
        }
        return closeFuture
    }
}
