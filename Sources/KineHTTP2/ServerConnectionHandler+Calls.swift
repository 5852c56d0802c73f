import KineCore
import NIOCore
import NIOSSL

/// gRPC calls: each stream's `ServerCallMachine` decides, and this carries out its actions
/// (nghttp2 submissions, handler tasks, timers, the observer).
extension ServerConnectionHandler {
    func perform(_ actions: [ServerCallMachine.Action], on stream: ServerStream) {
        for action in actions { perform(action, on: stream) }
    }

    private func perform(_ action: ServerCallMachine.Action, on stream: ServerStream) {
        let id = stream.id
        switch action {
        case .refuse:
            session?.submitReset(streamID: id, errorCode: H2ErrorCode.refusedStream)
        case .rejectEarly(let httpStatus, let status):
            session?.submitResponse(streamID: id, headers: GRPCHeaders.trailersOnly(status, httpStatus: httpStatus), hasData: false)
        case .scheduleDeadline(let nanoseconds):
            stream.deadline = ContinuousClock.now.advanced(by: .nanoseconds(nanoseconds))
            stream.deadlineTimer = context?.eventLoop.assumeIsolated().scheduleTask(in: .nanoseconds(nanoseconds)) { [weak self] in
                self?.deadlineExpired(id)
            }
        case .cancelDeadline:
            stream.deadlineTimer?.cancel()
            stream.deadlineTimer = nil
        case .observeStart(let streaming):
            guard let observer = configuration.observer else { return }
            stream.observation = (.now, streaming)
            observer.callStarted(path: stream.path, streaming: streaming)
        case .observeEnd(let status):
            guard let (since, streaming) = stream.observation else { return }
            stream.observation = nil
            configuration.observer?.callHandled(path: stream.path, streaming: streaming, code: status.code, duration: .now - since)
        case .startBidirectional:
            startBidirectional(stream)
        case .startUnary(let request):
            startUnary(stream, request: request)
        case .deliverRequest(let message):
            stream.requestContinuation?.yield(message)
        case .endRequests:
            stream.requestContinuation?.finish()
            stream.requestContinuation = nil
        case .cancelHandler:
            stream.task?.cancel()
        case .respondUnary(let message):
            let outbound = OutboundMessageBuffer(highWaterMark: Int.max, parked: false, kick: {})
            outbound.appendFinal(message)
            stream.outbound = outbound
            session?.submitResponse(streamID: id, headers: GRPCHeaders.responseHeaders, hasData: true)
        case .submitResponseHeaders:
            session?.submitResponse(streamID: id, headers: GRPCHeaders.responseHeaders, hasData: true)
        case .resumeData:
            session?.resumeData(streamID: id)
        case .submitTrailersOnly(let status):
            stream.outbound?.close(GRPCStatus(.cancelled, "call already finished"))
            session?.submitResponse(streamID: id, headers: GRPCHeaders.trailersOnly(status), hasData: false)
        case .finishResponse:
            if stream.outbound?.finish() == true { session?.resumeData(streamID: id) }
        case .failOutbound(let status):
            stream.outbound?.close(status)
        case .resetNoError:
            session?.submitReset(streamID: id, errorCode: H2ErrorCode.noError)
        case .flush:
            scheduleFlush()
        }
    }

    /// The router's answer for the stream's path; the handler is kept on the stream.
    func route(_ stream: ServerStream) -> ServerCallMachine.Route {
        stream.handler = router.method(for: stream.path)
        switch stream.handler {
        case .unary?: return .unary
        case .bidirectional?: return .bidirectional
        case nil:
            return .unknown(message: router.unknownMethodMessage(stream.path))
        }
    }

    private func makeContext(_ stream: ServerStream) -> GRPCCallContext {
        GRPCCallContext(
            path: stream.path, authority: stream.authority, metadata: stream.metadata, deadline: stream.deadline,
            remoteAddress: remoteAddress, peerCommonName: peerCommonName())
    }

    /// The client certificate's common name, read once per connection (by the first call, so
    /// after the TLS handshake); nil without TLS or without a client certificate.
    private func peerCommonName() -> String? {
        if let known = peerCommonNameCache { return known }
        guard let context else { return nil }
        // try?: no TLS handler in the pipeline means a plain connection, which has no certificate.
        let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
        // try?: a certificate that cannot be re-encoded carries no name kine can use.
        let name = (try? handler?.peerCertificate?.toDERBytes()).flatMap { $0.flatMap(CertificateCommonName.of(der:)) }
        peerCommonNameCache = .some(name)
        return name
    }

    private func startBidirectional(_ stream: ServerStream) {
        guard case .bidirectional(let handler) = stream.handler, let loopBound else { return }
        let (requests, continuation) = AsyncStream<[UInt8]>.makeStream()
        stream.requestContinuation = continuation
        let id = stream.id
        let outbound = OutboundMessageBuffer(
            highWaterMark: configuration.maxPendingResponseBytesPerStream, parked: true,
            kick: { loopBound.eventLoop.execute { loopBound.value.kick(id) } })
        stream.outbound = outbound
        let writer = GRPCResponseWriter(buffer: outbound)
        let requestStream = GRPCRequestStream(requests)
        let callContext = makeContext(stream)
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

    private func startUnary(_ stream: ServerStream, request: [UInt8]) {
        guard case .unary(let handler) = stream.handler, let loopBound, let loopExecutor else { return }
        let callContext = makeContext(stream)
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
        perform(stream.machine.handlerReturned(result), on: stream)
    }

    /// A writer queued data while the provider was parked (or before response HEADERS went out).
    private func kick(_ id: Int32) {
        guard let stream = streams[id] else { return }
        perform(stream.machine.responseQueued(), on: stream)
    }

    private func deadlineExpired(_ id: Int32) {
        guard let stream = streams[id] else { return }
        stream.deadlineTimer = nil
        perform(stream.machine.deadlineExpired(), on: stream)
    }
}
