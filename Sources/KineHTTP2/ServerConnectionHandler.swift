import Logging
import NIOCore

/// One server connection: detects HTTP/2 (prior knowledge) vs HTTP/1.1, drives an nghttp2 server
/// session with the bytes the channel reads, runs handlers as tasks and writes what nghttp2 produces.
///
/// Confined to the channel's event loop. Handler tasks come back through `NIOLoopBound`.
final class ServerConnectionHandler: ChannelInboundHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Mode {
        case detecting
        case http2
        case http1
        case closed
    }

    private let configuration: GRPCServerConfiguration
    private let router: any GRPCRouter
    private var logger: Logger
    private let registry: ConnectionRegistry?

    private var mode = Mode.detecting
    private var pendingInput: ByteBuffer?
    private var session: NGHTTP2Session?
    private var streams: [Int32: ServerStream] = [:]
    private var context: ChannelHandlerContext?
    private var loopBound: NIOLoopBound<ServerConnectionHandler>?
    /// Unary handlers run on this connection's loop (`EventLoopTaskExecutor`).
    private var loopExecutor: EventLoopTaskExecutor?
    private var remoteAddress: String?
    private var inReadBatch = false
    private var flushScheduled = false
    private var draining = false
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
            case .detecting, .http1:
                self.logger.debug("no complete request in time")
                self.closeConnection()
            case .http2, .closed:
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
            pendingInput?.writeBuffer(&buffer)
            processHTTP1()
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
            mode = .http1
            processHTTP1()
        case .garbage:
            logger.debug("neither HTTP/2 preface nor HTTP/1.1 request")
            closeConnection()
        }
    }

    private func processHTTP1() {
        guard let input = pendingInput else { return }
        switch HTTP1.parseHead(input.readableBytesView) {
        case .needMoreBytes:
            return
        case .tooLarge:
            pendingInput = nil
            respondHTTP1((431, "text/plain", Array("request header too large\n".utf8)), headOnly: false)
        case .invalid:
            pendingInput = nil
            respondHTTP1((400, "text/plain", Array("bad request\n".utf8)), headOnly: false)
        case .head(let head):
            pendingInput = nil
            // Anything after the head (a body, a pipelined request) is ignored: we close after answering.
            mode = .closed
            guard head.method == "GET" || head.method == "HEAD" else {
                respondHTTP1((405, "text/plain", Array("method not allowed\n".utf8)), headOnly: false)
                return
            }
            guard let handler = configuration.http1Handler, let loopBound else {
                respondHTTP1((404, "text/plain", Array("404 page not found\n".utf8)), headOnly: head.method == "HEAD")
                return
            }
            let headOnly = head.method == "HEAD"
            let path = head.target
            Task {
                let response = await handler(path)
                loopBound.eventLoop.execute {
                    loopBound.value.respondHTTP1(response, headOnly: headOnly)
                }
            }
        }
    }

    private func respondHTTP1(_ response: GRPCHTTP1Response, headOnly: Bool) {
        mode = .closed
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 128 + response.body.count)
        HTTP1.render(response, headOnly: headOnly, into: &buffer)
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { [weak self] _ in
            self?.closeConnection()
        }
    }

    // MARK: HTTP/2 driving

    private func startHTTP2() {
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

    private func feed(_ buffer: ByteBuffer) {
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
    private func scheduleFlush() {
        guard !inReadBatch, !flushScheduled, let loopBound else { return }
        flushScheduled = true
        loopBound.eventLoop.assumeIsolated().execute { [weak self] in
            guard let self else { return }
            self.flushScheduled = false
            self.flushOutput()
        }
    }

    /// Serialises everything nghttp2 wants to send and writes it with a single flush.
    private func flushOutput() {
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

    private func closeConnection() {
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
        let open = streams
        streams = [:]
        for stream in open.values { abandon(stream, GRPCStatus(.unavailable, "connection closed")) }
        if registered, let registry {
            registry.remove(ObjectIdentifier(self))
            registered = false
        }
    }

    /// The stream is gone (reset, connection closed): cancel its work, fail its writers.
    private func abandon(_ stream: ServerStream, _ status: GRPCStatus) {
        observeEnd(stream, stream.finished ? stream.trailerStatus : GRPCStatus(.cancelled))
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
        stream.task?.cancel()
        stream.task = nil
        stream.outbound?.close(status)
        stream.requestContinuation?.finish()
        stream.requestContinuation = nil
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
            for stream in streams.values {
                if case .bidirectional = stream.kind, !stream.finished {
                    stream.task?.cancel()
                    finish(stream, GRPCStatus(.unavailable, "server is shutting down"))
                }
            }
            flushOutput()
            forceCloseTimer = context.eventLoop.assumeIsolated().scheduleTask(in: gracePeriod) { [weak self] in
                self?.closeConnection()
            }
        case .detecting, .closed:
            closeConnection()
        case .http1:
            forceCloseTimer = context.eventLoop.assumeIsolated().scheduleTask(in: gracePeriod) { [weak self] in
                self?.closeConnection()
            }
        }
        return closeFuture
    }

    // MARK: calls

    /// Decides the final status. Trailers-Only if no response HEADERS went out yet; otherwise the
    /// trailers follow the queued data.
    private func finish(_ stream: ServerStream, _ status: GRPCStatus) {
        guard !stream.finished, let session else { return }
        stream.finished = true
        stream.trailerStatus = status
        observeEnd(stream, status)
        stream.deadlineTimer?.cancel()
        stream.deadlineTimer = nil
        if !stream.responseStarted {
            stream.responseStarted = true
            stream.outbound?.close(GRPCStatus(.cancelled, "call already finished"))
            session.submitResponse(streamID: stream.id, headers: GRPCHeaders.trailersOnly(status), hasData: false)
        } else if stream.outbound?.finish() == true {
            session.resumeData(streamID: stream.id)
        }
        scheduleFlush()
    }

    /// Rejects before dispatch with a non-200 HTTP status (grpc-go's early abort).
    private func reject(_ stream: ServerStream, httpStatus: Int, _ status: GRPCStatus) {
        guard !stream.finished, let session else { return }
        stream.finished = true
        stream.responseStarted = true
        stream.trailerStatus = status
        session.submitResponse(
            streamID: stream.id, headers: GRPCHeaders.trailersOnly(status, httpStatus: httpStatus), hasData: false)
        scheduleFlush()
    }

    private func makeContext(_ stream: ServerStream, deadline: ContinuousClock.Instant?) -> GRPCCallContext {
        GRPCCallContext(
            path: stream.path, authority: stream.authority, metadata: stream.metadata, deadline: deadline,
            remoteAddress: remoteAddress)
    }

    private func dispatch(_ stream: ServerStream) {
        guard let loopBound, let context else { return }
        if stream.method != "POST" {
            reject(stream, httpStatus: 405, GRPCStatus(.internal, "invalid gRPC request method"))
            return
        }
        if !stream.contentType.hasPrefix("application/grpc") {
            reject(
                stream, httpStatus: 415,
                GRPCStatus(.internal, "invalid gRPC request content-type \"\(stream.contentType)\""))
            return
        }
        if !stream.encoding.isEmpty, stream.encoding != "identity" {
            finish(
                stream,
                GRPCStatus(.unimplemented, "grpc: Decompressor is not installed for grpc-encoding \"\(stream.encoding)\""))
            return
        }
        var deadline: ContinuousClock.Instant?
        if !stream.timeout.isEmpty {
            guard let nanoseconds = GRPCTimeout.parse(stream.timeout) else {
                finish(stream, GRPCStatus(.internal, "malformed grpc-timeout: \(stream.timeout)"))
                return
            }
            deadline = ContinuousClock.now.advanced(by: .nanoseconds(nanoseconds))
            stream.deadline = deadline
            let id = stream.id
            stream.deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) {
                [weak self] in
                self?.deadlineExpired(id)
            }
        }
        guard let method = router.method(for: stream.path) else {
            finish(stream, GRPCStatus(.unimplemented, Self.unknownMethodMessage(stream.path, router: router)))
            return
        }
        if let observer = configuration.observer {
            let streaming = if case .bidirectional = method { true } else { false }
            stream.observedSince = .now
            observer.callStarted(path: stream.path, streaming: streaming)
        }
        switch method {
        case .unary(let handler):
            // Runs once the request message is complete (END_STREAM).
            stream.kind = .unary(handler)
        case .bidirectional(let handler):
            stream.kind = .bidirectional(handler)
            let (requests, continuation) = AsyncStream<[UInt8]>.makeStream()
            stream.requestContinuation = continuation
            let id = stream.id
            let outbound = OutboundMessageBuffer(
                highWaterMark: configuration.maxPendingResponseBytesPerStream, parked: true,
                kick: { loopBound.eventLoop.execute { loopBound.value.kick(id) } })
            stream.outbound = outbound
            let writer = GRPCResponseWriter(buffer: outbound)
            let requestStream = GRPCRequestStream(requests)
            let callContext = makeContext(stream, deadline: deadline)
            stream.task = Task {
                let status: GRPCStatus
                do throws(GRPCStatus) {
                    try await handler(requestStream, writer, callContext)
                    status = .ok
                } catch {
                    status = error
                }
                loopBound.eventLoop.execute { loopBound.value.handlerCompleted(id, .failure(status)) }
            }
        }
    }

    /// Reports a call's end once (the observer saw its start).
    private func observeEnd(_ stream: ServerStream, _ status: GRPCStatus) {
        guard let since = stream.observedSince, let observer = configuration.observer else { return }
        stream.observedSince = nil
        let streaming = if case .bidirectional? = stream.kind { true } else { false }
        observer.callHandled(path: stream.path, streaming: streaming, code: status.code, duration: .now - since)
    }

    static func unknownMethodMessage(_ path: String, router: any GRPCRouter) -> String {
        // grpc-go wording: "malformed method name", "unknown service X", "unknown method Y for service X".
        var trimmed = Substring(path)
        guard trimmed.first == "/" else { return "malformed method name: \"\(path)\"" }
        trimmed = trimmed.dropFirst()
        guard let slash = trimmed.lastIndex(of: "/") else { return "malformed method name: \"\(path)\"" }
        let service = String(trimmed[trimmed.startIndex..<slash])
        let method = String(trimmed[trimmed.index(after: slash)...])
        if router.hasService(service) { return "unknown method \(method) for service \(service)" }
        return "unknown service \(service)"
    }

    private func startUnary(_ stream: ServerStream, request: [UInt8]) {
        guard case .unary(let handler) = stream.kind, let loopBound, let loopExecutor else { return }
        let callContext = makeContext(stream, deadline: stream.deadline)
        let id = stream.id
        // Started on this event loop thread and run here until its first suspension: a request
        // that the store answers from memory never leaves the loop, and a write reaches the
        // Writer without a hop to the task pool first.
        stream.task = Task.immediate(executorPreference: loopExecutor) {
            let result: Result<[UInt8], GRPCStatus>
            do throws(GRPCStatus) {
                result = .success(try await handler(request, callContext))
            } catch {
                result = .failure(error)
            }
            if loopBound.eventLoop.inEventLoop {
                loopBound.value.handlerCompleted(id, result)
            } else {
                loopBound.eventLoop.execute { loopBound.value.handlerCompleted(id, result) }
            }
        }
    }

    /// A handler task ended: `.success(message)` for unary, `.failure(status)` otherwise (status
    /// may be OK).
    private func handlerCompleted(_ id: Int32, _ result: Result<[UInt8], GRPCStatus>) {
        guard let stream = streams[id] else { return }
        stream.task = nil
        guard !stream.finished, let session else { return }
        switch result {
        case .failure(let status):
            finish(stream, status)
        case .success(let message):
            stream.finished = true
            stream.trailerStatus = .ok
            observeEnd(stream, .ok)
            stream.deadlineTimer?.cancel()
            stream.deadlineTimer = nil
            let outbound = OutboundMessageBuffer(highWaterMark: Int.max, parked: false, kick: {})
            outbound.appendFinal(message)
            stream.outbound = outbound
            stream.responseStarted = true
            session.submitResponse(streamID: id, headers: GRPCHeaders.responseHeaders, hasData: true)
            scheduleFlush()
        }
    }

    /// A writer queued data while the provider was parked (or before response HEADERS went out).
    private func kick(_ id: Int32) {
        guard let stream = streams[id], let session else { return }
        if !stream.responseStarted {
            guard !stream.finished else { return }
            stream.responseStarted = true
            session.submitResponse(streamID: id, headers: GRPCHeaders.responseHeaders, hasData: true)
        } else {
            session.resumeData(streamID: id)
        }
        scheduleFlush()
    }

    private func deadlineExpired(_ id: Int32) {
        guard let stream = streams[id] else { return }
        stream.deadlineTimer = nil
        stream.task?.cancel()
        finish(stream, GRPCStatus(.deadlineExceeded, "context deadline exceeded"))
        stream.requestContinuation?.finish()
        stream.requestContinuation = nil
    }

    /// A request-side protocol error: answer with `status`, stop the handler.
    private func failRequest(_ stream: ServerStream, _ status: GRPCStatus) {
        stream.task?.cancel()
        stream.requestContinuation?.finish()
        stream.requestContinuation = nil
        finish(stream, status)
    }

    private func requestEnded(_ stream: ServerStream) {
        guard !stream.requestEnded else { return }
        stream.requestEnded = true
        guard !stream.finished else { return }
        if !stream.deframer.isIdle {
            failRequest(stream, GRPCStatus(.internal, "grpc: received incomplete message at end of stream"))
            return
        }
        switch stream.kind {
        case .unary:
            guard let request = stream.unaryRequest else {
                failRequest(stream, GRPCStatus(.internal, "grpc: no request message for unary call"))
                return
            }
            stream.unaryRequest = nil
            startUnary(stream, request: request)
        case .bidirectional:
            stream.requestContinuation?.finish()
            stream.requestContinuation = nil
        case nil:
            break
        }
    }

    // MARK: NGHTTP2SessionDelegate

    func h2BeginHeaders(streamID: Int32, isTrailers: Bool) {
        guard !isTrailers, streams[streamID] == nil else { return }
        streams[streamID] = ServerStream(id: streamID, maxMessageSize: configuration.maxReceiveMessageSize)
    }

    func h2Header(
        streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, isTrailers: Bool
    ) -> Bool {
        guard !isTrailers, let stream = streams[streamID] else { return true }
        stream.addHeader(name: name, value: value)
        return true
    }

    func h2HeadersEnd(streamID: Int32, isTrailers: Bool, endStream: Bool) {
        guard let stream = streams[streamID] else { return }
        if !isTrailers {
            if draining {
                stream.finished = true
                stream.responseStarted = true
                session?.submitReset(streamID: streamID, errorCode: H2ErrorCode.refusedStream)
                return
            }
            dispatch(stream)
        }
        if endStream { requestEnded(stream) }
    }

    func h2Data(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID], !stream.finished, let kind = stream.kind else { return }
        var tooManyMessages = false
        do throws(GRPCMessageDeframer.Failure) {
            try stream.deframer.process(bytes) { message in
                switch kind {
                case .unary:
                    if stream.unaryRequest == nil {
                        stream.unaryRequest = message
                    } else {
                        tooManyMessages = true
                    }
                case .bidirectional:
                    stream.requestContinuation?.yield(message)
                }
            }
        } catch {
            switch error {
            case .compressedMessage:
                failRequest(stream, GRPCStatus(.internal, "grpc: compressed flag set with identity or empty encoding"))
            case .invalidFlag(let flag):
                failRequest(stream, GRPCStatus(.internal, "grpc: invalid compressed flag \(flag)"))
            case .messageTooLarge(let length, let limit):
                failRequest(
                    stream,
                    GRPCStatus(.resourceExhausted, "grpc: received message larger than max (\(length) vs. \(limit))"))
            }
            return
        }
        if tooManyMessages {
            failRequest(stream, GRPCStatus(.internal, "grpc: received more than one request message for unary call"))
        }
    }

    func h2DataEnd(streamID: Int32, endStream: Bool) {
        guard endStream, let stream = streams[streamID] else { return }
        requestEnded(stream)
    }

    func h2StreamClosed(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        abandon(stream, GRPCStatus(.cancelled, "stream closed"))
    }

    func h2GoAway(lastStreamID: Int32, errorCode: UInt32) {}

    func h2ReadData(streamID: Int32, into destination: UnsafeMutableRawBufferPointer) -> H2ReadResult {
        guard let stream = streams[streamID], let outbound = stream.outbound else { return .failure }
        switch outbound.read(into: destination) {
        case .deferred:
            return .deferred
        case .bytes(let count, let end):
            return .data(count: count, end: end ? .trailers(GRPCHeaders.trailers(stream.trailerStatus)) : .none)
        }
    }

    func h2HeadersSent(streamID: Int32, endStream: Bool) {
        // Finished before the client half-closed: follow the trailers with RST_STREAM(NO_ERROR).
        guard endStream, let stream = streams[streamID], !stream.requestEnded else { return }
        session?.submitReset(streamID: streamID, errorCode: H2ErrorCode.noError)
    }
}

