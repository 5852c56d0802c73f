import KineCore
import KineSync
import NIOCore
import Synchronization

/// Where a client call's results go. Sendable: created by the caller, used on the event loop.
enum ClientCallSink: Sendable {
    case unary(Completion<ClientUnaryOutcome>)
    case streaming(AsyncThrowingStream<[UInt8], any Error>.Continuation, EventLoopPromise<GRPCStatus>)
}

struct ClientUnaryOutcome: Sendable {
    var result: Result<[UInt8], GRPCStatus>
    /// The response was a single HEADERS frame with END_STREAM.
    var trailersOnly: Bool
    var httpStatus: Int?
}

/// A client call's cross-thread handle: stream id (once submitted) and cancellation.
final class ClientCallHandle: Sendable {
    private struct State {
        var streamID: Int32?
        var cancelled = false
    }

    private let state = Mutex(State())
    let loopBound: NIOLoopBound<ClientConnectionHandler>

    init(loopBound: NIOLoopBound<ClientConnectionHandler>) {
        self.loopBound = loopBound
    }

    /// On the event loop, when the request was submitted. Returns false if already cancelled.
    func started(_ id: Int32) -> Bool {
        state.withLock { state in
            guard !state.cancelled else { return false }
            state.streamID = id
            return true
        }
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    /// RST_STREAM(CANCEL) the call (from any thread).
    func cancel() {
        let id = state.withLock { state -> Int32? in
            state.cancelled = true
            return state.streamID
        }
        guard let id else { return }
        let loopBound = self.loopBound
        loopBound.eventLoop.execute { loopBound.value.cancelStream(id) }
    }

    /// Resume the data provider after a write un-parked the outbound buffer.
    func kick() {
        guard let id = state.withLock({ $0.streamID }) else { return }
        let loopBound = self.loopBound
        loopBound.eventLoop.execute { loopBound.value.resumeStream(id) }
    }
}

final class ClientStream {
    let handle: ClientCallHandle
    let sink: ClientCallSink
    let outbound: OutboundMessageBuffer
    var deframer = GRPCMessageDeframer(maxMessageSize: Int(Int32.max))
    var messages: [[UInt8]] = []
    var httpStatus: Int?
    var contentType: String?
    var grpcStatus: Int?
    var grpcMessage: String?
    var trailersOnly = false
    var sawResponseHeaders = false
    var protocolError: GRPCStatus?

    init(handle: ClientCallHandle, sink: ClientCallSink, outbound: OutboundMessageBuffer) {
        self.handle = handle
        self.sink = sink
        self.outbound = outbound
    }
}

/// The client side of one HTTP/2 connection (h2c prior knowledge). Event-loop confined.
final class ClientConnectionHandler: ChannelInboundHandler, NGHTTP2SessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let authority: String
    private var session: NGHTTP2Session?
    private var streams: [Int32: ClientStream] = [:]
    private var context: ChannelHandlerContext?
    private var inReadBatch = false
    private var flushScheduled = false
    private var closed = false
    private var goAwayReceived = false

    init(authority: String) {
        self.authority = authority
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start() }
    }

    func channelActive(context: ChannelHandlerContext) {
        start()
        context.fireChannelActive()
    }

    private func start() {
        guard session == nil, !closed else { return }
        guard let session = NGHTTP2Session(role: .client, delegate: self) else {
            closed = true
            context?.close(promise: nil)
            return
        }
        self.session = session
        session.submitSettings(.init(initialWindowSize: 4 << 20, enablePush: false))
        session.setConnectionWindowSize(64 << 20)
        flushOutput()
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(GRPCStatus(.unavailable, "connection closed"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        failAll(GRPCStatus(.unavailable, "connection closed"))
        self.context = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let session, !closed else { return }
        inReadBatch = true
        if let failure = buffer.withUnsafeReadableBytes({ session.receive($0) }) {
            inReadBatch = false
            flushOutput()
            failAll(GRPCStatus(.internal, "HTTP/2 error: \(failure)"))
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inReadBatch = false
        flushOutput()
    }

    private func failAll(_ status: GRPCStatus) {
        closed = true
        let open = streams
        streams = [:]
        for stream in open.values {
            stream.outbound.close(status)
            deliver(stream, status)
        }
    }

    private func scheduleFlush() {
        guard !inReadBatch, !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute { [weak self] in
            guard let self else { return }
            self.flushScheduled = false
            self.flushOutput()
        }
    }

    private func flushOutput() {
        guard let session, let context, !closed else { return }
        var buffer = context.channel.allocator.buffer(capacity: 0)
        let ok = session.send(into: &buffer)
        if buffer.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(buffer), promise: nil) }
        if !ok || (!session.wantsRead && !session.wantsWrite) {
            failAll(GRPCStatus(.unavailable, "connection closed"))
            context.close(promise: nil)
        }
    }

    // MARK: calls (event loop)

    func startCall(
        path: String, metadata: GRPCMetadata, timeout: Duration?, outbound: OutboundMessageBuffer,
        handle: ClientCallHandle, sink: ClientCallSink
    ) {
        guard let session, !closed, !goAwayReceived else {
            outbound.close(GRPCStatus(.unavailable, "connection closed"))
            deliver(
                sink: sink, status: GRPCStatus(.unavailable, "connection is closed"), messages: [], trailersOnly: false, httpStatus: nil)
            return
        }
        var headers = HeaderBlock()
        headers.append(":method", "POST")
        headers.append(":scheme", "http")
        headers.append(":path", path)
        headers.append(":authority", authority)
        headers.append("content-type", "application/grpc")
        headers.append("te", "trailers")
        if let timeout { headers.append("grpc-timeout", GRPCTimeout.encode(timeout)) }
        for entry in metadata { headers.append(entry.name, entry.value) }
        guard let id = session.submitRequest(headers: headers) else {
            outbound.close(GRPCStatus(.unavailable, "cannot start stream"))
            deliver(sink: sink, status: GRPCStatus(.unavailable, "cannot start stream"), messages: [], trailersOnly: false, httpStatus: nil)
            return
        }
        streams[id] = ClientStream(handle: handle, sink: sink, outbound: outbound)
        if !handle.started(id) {
            session.submitReset(streamID: id, errorCode: H2ErrorCode.cancel)
        }
        scheduleFlush()
    }

    func cancelStream(_ id: Int32) {
        guard streams[id] != nil, let session else { return }
        session.submitReset(streamID: id, errorCode: H2ErrorCode.cancel)
        scheduleFlush()
    }

    func resumeStream(_ id: Int32) {
        guard streams[id] != nil, let session else { return }
        session.resumeData(streamID: id)
        scheduleFlush()
    }

    /// Sends GOAWAY and closes the channel.
    func close() {
        guard let context else { return }
        if !closed, let session {
            session.submitGoAway(errorCode: H2ErrorCode.noError)
            flushOutput()
        }
        failAll(GRPCStatus(.unavailable, "connection closed by client"))
        context.close(promise: nil)
    }

    private func deliver(_ stream: ClientStream, _ status: GRPCStatus) {
        deliver(
            sink: stream.sink, status: status, messages: stream.messages, trailersOnly: stream.trailersOnly, httpStatus: stream.httpStatus)
        stream.messages = []
    }

    private func deliver(sink: ClientCallSink, status: GRPCStatus, messages: [[UInt8]], trailersOnly: Bool, httpStatus: Int?) {
        switch sink {
        case .unary(let completion):
            let result: Result<[UInt8], GRPCStatus>
            if !status.isOK {
                result = .failure(status)
            } else if messages.count == 1 {
                result = .success(messages[0])
            } else {
                result = .failure(
                    GRPCStatus(.internal, "unary response carried \(messages.count) messages"))
            }
            completion.complete(ClientUnaryOutcome(result: result, trailersOnly: trailersOnly, httpStatus: httpStatus))
        case .streaming(let continuation, let promise):
            if status.isOK {
                continuation.finish()
            } else {
                continuation.finish(throwing: status)
            }
            promise.succeed(status)
        }
    }

    /// Final status of a closed stream (grpc-go's client rules).
    private func finalStatus(_ stream: ClientStream, errorCode: UInt32) -> GRPCStatus {
        if let error = stream.protocolError { return error }
        if let code = stream.grpcStatus {
            return GRPCStatus(code: code, message: GRPCMessageEncoding.decode(stream.grpcMessage ?? ""))
        }
        if stream.handle.isCancelled { return GRPCStatus(.cancelled, "context canceled") }
        if errorCode != H2ErrorCode.noError {
            switch errorCode {
            case H2ErrorCode.refusedStream: return GRPCStatus(.unavailable, "stream refused (RST_STREAM \(errorCode))")
            case H2ErrorCode.cancel: return GRPCStatus(.cancelled, "stream reset by server (CANCEL)")
            case H2ErrorCode.enhanceYourCalm: return GRPCStatus(.resourceExhausted, "RST_STREAM ENHANCE_YOUR_CALM")
            default: return GRPCStatus(.internal, "stream terminated by RST_STREAM with error code: \(errorCode)")
            }
        }
        if let http = stream.httpStatus, http != 200 {
            let code: GRPCStatus.Code
            switch http {
            case 400: code = .internal
            case 401: code = .unauthenticated
            case 403: code = .permissionDenied
            case 404: code = .unimplemented
            case 429, 502, 503, 504: code = .unavailable
            default: code = .unknown
            }
            return GRPCStatus(code, "unexpected HTTP status code received from server: \(http)")
        }
        return GRPCStatus(.internal, "server closed the stream without sending trailers")
    }

    // MARK: NGHTTP2SessionDelegate

    func h2BeginHeaders(streamID: Int32, isTrailers: Bool) {}

    func h2Header(streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>, isTrailers: Bool) -> Bool {
        guard let stream = streams[streamID] else { return true }
        let nameString = String(decoding: name, as: UTF8.self)
        let valueString = String(decoding: value, as: UTF8.self)
        switch nameString {
        case ":status": stream.httpStatus = Int(valueString)
        case "content-type": stream.contentType = valueString
        case "grpc-status": stream.grpcStatus = Int(valueString) ?? GRPCStatus.Code.unknown.rawValue
        case "grpc-message": stream.grpcMessage = valueString
        default: break
        }
        return true
    }

    func h2HeadersEnd(streamID: Int32, isTrailers: Bool, endStream: Bool) {
        guard let stream = streams[streamID] else { return }
        if !isTrailers {
            stream.sawResponseHeaders = true
            if endStream { stream.trailersOnly = true }
            if stream.httpStatus == 200, !(stream.contentType?.hasPrefix("application/grpc") ?? false) {
                stream.protocolError = GRPCStatus(.internal, "unexpected content-type \"\(stream.contentType ?? "")\"")
            }
        }
    }

    func h2Data(streamID: Int32, bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID] else { return }
        do throws(GRPCMessageDeframer.Failure) {
            try stream.deframer.process(bytes) { message in
                switch stream.sink {
                case .unary: stream.messages.append(message)
                case .streaming(let continuation, _): continuation.yield(message)
                }
            }
        } catch {
            stream.protocolError = GRPCStatus(.internal, "malformed response message: \(error)")
            session?.submitReset(streamID: streamID, errorCode: H2ErrorCode.protocolError)
        }
    }

    func h2DataEnd(streamID: Int32, endStream: Bool) {}

    func h2StreamClosed(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        let status = finalStatus(stream, errorCode: errorCode)
        stream.outbound.close(status.isOK ? GRPCStatus(.cancelled, "call finished") : status)
        deliver(stream, status)
    }

    func h2GoAway(lastStreamID: Int32, errorCode: UInt32) {
        goAwayReceived = true
    }

    func h2ReadData(streamID: Int32, into destination: UnsafeMutableRawBufferPointer) -> H2ReadResult {
        guard let stream = streams[streamID] else { return .failure }
        switch stream.outbound.read(into: destination) {
        case .deferred: return .deferred
        case .bytes(let count, let end): return .data(count: count, end: end ? .endStream : .none)
        }
    }

    func h2HeadersSent(streamID: Int32, endStream: Bool) {}
}
