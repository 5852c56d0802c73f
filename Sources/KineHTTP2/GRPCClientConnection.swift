import KineCore
import KineSync
public import NIOCore
public import NIOPosix
import NIOSSL

/// A small gRPC client over one HTTP/2 connection (h2c prior knowledge): many concurrent calls are
/// multiplexed on it. Used by tests and the benchmark tool.
public final class GRPCClientConnection: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<ClientConnectionHandler>
    /// Bytes a bidirectional call may queue unsent before `send` suspends.
    let maxPendingBytes = 1 << 20

    private init(channel: any Channel, handler: NIOLoopBound<ClientConnectionHandler>) {
        self.channel = channel
        self.handler = handler
    }

    /// `connectTimeout` bounds the TCP connect (NIO's default is 10 s; the HA prober needs its
    /// probe timeout against a peer whose packets are silently dropped).
    public static func connect(
        host: String, port: Int, connectTimeout: Duration? = nil, tls: GRPCTLSConfiguration? = nil,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> GRPCClientConnection {
        let context = try tls?.clientContext()
        let hostname = tls?.verifyHostname == true ? host : nil
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        var bootstrap = ClientBootstrap(group: eventLoopGroup)
        if let connectTimeout {
            bootstrap = bootstrap.connectTimeout(
                .nanoseconds(
                    Int64(connectTimeout.components.seconds) * 1_000_000_000
                        + connectTimeout.components.attoseconds / 1_000_000_000))
        }
        let channel =
            try await bootstrap
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context { try channel.pipeline.syncOperations.addClientTLS(context, serverHostname: hostname) }
                    try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(authority: authority))
                }
            }
            .connect(host: host, port: port).get()
        return try await wrap(channel)
    }

    public static func connect(
        unixSocketPath path: String, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> GRPCClientConnection {
        let channel = try await ClientBootstrap(group: eventLoopGroup)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ClientConnectionHandler(authority: "localhost"))
                }
            }
            .connect(unixDomainSocketPath: path).get()
        return try await wrap(channel)
    }

    private static func wrap(_ channel: any Channel) async throws -> GRPCClientConnection {
        let handler = try await channel.eventLoop.submit {
            let handler = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
            return NIOLoopBound(handler, eventLoop: channel.eventLoop)
        }.get()
        return GRPCClientConnection(channel: channel, handler: handler)
    }

    /// A unary call. Cancelling the calling task sends RST_STREAM(CANCEL).
    public func unary(
        path: String, request: [UInt8], metadata: GRPCMetadata = GRPCMetadata(), timeout: Duration? = nil
    ) async throws(GRPCStatus) -> [UInt8] {
        try await unaryOutcome(path: path, request: request, metadata: metadata, timeout: timeout).result.get()
    }

    /// A unary call with response details (tests).
    func unaryOutcome(
        path: String, request: [UInt8], metadata: GRPCMetadata = GRPCMetadata(), timeout: Duration? = nil
    ) async -> ClientUnaryOutcome {
        let handler = self.handler
        let callHandle = ClientCallHandle(loopBound: handler)
        let outbound = OutboundMessageBuffer(highWaterMark: Int.max, parked: false, kick: {})
        outbound.appendFinal(request)
        return await withTaskCancellationHandler {
            await Completion<ClientUnaryOutcome>.wait { completion in
                handler.eventLoop.execute {
                    handler.value.startCall(
                        path: path, metadata: metadata, timeout: timeout, outbound: outbound, handle: callHandle,
                        sink: .unary(completion))
                }
            }
        } onCancel: {
            callHandle.cancel()
        }
    }

    /// Opens a bidirectional-streaming call. Send with `send`, half-close with `finish()`, read
    /// `responses`; `status` is the final status.
    public func openBidirectional(
        path: String, metadata: GRPCMetadata = GRPCMetadata(), timeout: Duration? = nil
    ) -> GRPCClientBidirectionalCall {
        let handler = self.handler
        let callHandle = ClientCallHandle(loopBound: handler)
        let outbound = OutboundMessageBuffer(
            highWaterMark: maxPendingBytes, parked: false, kick: { callHandle.kick() })
        let (responses, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
        let promise = handler.eventLoop.makePromise(of: GRPCStatus.self)
        handler.eventLoop.execute {
            handler.value.startCall(
                path: path, metadata: metadata, timeout: timeout, outbound: outbound, handle: callHandle,
                sink: .streaming(continuation, promise))
        }
        return GRPCClientBidirectionalCall(
            handle: callHandle, outbound: outbound, responses: responses, status: promise.futureResult)
    }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }

    /// Sends GOAWAY and closes the connection; open calls fail with UNAVAILABLE.
    public func close() async {
        let handler = self.handler
        handler.eventLoop.execute { handler.value.close() }
        // try?: a channel that failed to close cleanly is closed all the same.
        try? await channel.closeFuture.get()
    }
}

/// A client-side bidirectional-streaming call.
public final class GRPCClientBidirectionalCall: Sendable {
    let handle: ClientCallHandle
    let outbound: OutboundMessageBuffer
    let statusFuture: EventLoopFuture<GRPCStatus>

    /// Response messages; finishes when the server ends the call with OK, throws `GRPCStatus` otherwise.
    public let responses: AsyncThrowingStream<[UInt8], any Error>

    init(
        handle: ClientCallHandle, outbound: OutboundMessageBuffer, responses: AsyncThrowingStream<[UInt8], any Error>,
        status: EventLoopFuture<GRPCStatus>
    ) {
        self.handle = handle
        self.outbound = outbound
        self.responses = responses
        self.statusFuture = status
    }

    /// Sends one message (suspends while too much is queued unsent).
    public func send(_ message: [UInt8]) async throws {
        try await outbound.write(message)
    }

    /// Half-closes the request side (END_STREAM).
    public func finish() {
        if outbound.finish() { handle.kick() }
    }

    /// Resets the stream with CANCEL.
    public func cancel() {
        handle.cancel()
    }

    /// The final status, once the call ended.
    public var status: GRPCStatus {
        get async {
            // try?: a call whose status never came (the connection died) reports UNKNOWN, as grpc-go does.
            (try? await statusFuture.get()) ?? GRPCStatus(.unknown, "status unavailable")
        }
    }
}
