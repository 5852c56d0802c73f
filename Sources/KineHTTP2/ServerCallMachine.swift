import KineCore

/// The life of one server call on its HTTP/2 stream, as grpc-go's server lives it: request HEADERS
/// validated and routed, the request read (one message for unary, a stream for bidirectional), the
/// handler run, one final status, and the stream's end however it comes (client RST_STREAM,
/// deadline, GOAWAY drain, connection loss).
///
/// Pure: each event returns the actions the connection must carry out, in order; no sockets,
/// nghttp2 or tasks here, so every transition is tested on its own (ServerCallMachineTests).
struct ServerCallMachine {
    /// What the router has at the request's path.
    enum Route: Equatable {
        case unary
        case bidirectional
        /// No such method; `message` is grpc-go's wording for it.
        case unknown(message: String)
    }

    /// The request HEADERS the machine judges (the connection keeps the rest).
    struct RequestHead: Equatable {
        var method = ""
        var contentType = ""
        var encoding = ""
        var timeout = ""
    }

    enum State: Equatable {
        /// HEADERS not complete yet.
        case receivingHead
        /// A unary call waiting for END_STREAM, with its message once it came.
        case collectingUnary(request: [UInt8]?)
        /// A unary handler runs (the request is complete).
        case handlingUnary
        /// A bidirectional handler runs; the client may still send while `requestOpen`, and
        /// response HEADERS went out once `responseStarted`.
        case streaming(requestOpen: Bool, responseStarted: Bool)
        /// The final status is decided: its trailers are submitted or queued behind the data.
        /// `requestOpen`: the client had not half-closed (trailers are then followed by
        /// RST_STREAM(NO_ERROR), as grpc-go does).
        case finished(status: GRPCStatus, requestOpen: Bool)
        /// The stream is gone.
        case closed
    }

    enum Action: Equatable {
        /// RST_STREAM(REFUSED_STREAM): the server is draining.
        case refuse
        /// Trailers-Only with a non-200 HTTP status, before the call was dispatched.
        case rejectEarly(httpStatus: Int, GRPCStatus)
        /// Arm the call's deadline timer (and give the handler its deadline).
        case scheduleDeadline(nanoseconds: Int64)
        case cancelDeadline
        /// Tell the observer the call started (it then hears its end exactly once).
        case observeStart(streaming: Bool)
        case observeEnd(GRPCStatus)
        /// Start the bidirectional handler with an open request stream and a parked writer.
        case startBidirectional
        /// Start the unary handler with its request.
        case startUnary([UInt8])
        /// Hand a request message to the bidirectional handler.
        case deliverRequest([UInt8])
        /// End the handler's request stream.
        case endRequests
        case cancelHandler
        /// Response HEADERS, the unary response message and OK trailers.
        case respondUnary([UInt8])
        /// Response HEADERS for a streaming call's first message.
        case submitResponseHeaders
        /// The writer has data for nghttp2 to read again.
        case resumeData
        /// Trailers-Only with this status (nothing was sent yet); the writer is closed.
        case submitTrailersOnly(GRPCStatus)
        /// Trailers after the data already queued.
        case finishResponse
        /// Fail the writer: the stream is gone.
        case failOutbound(GRPCStatus)
        /// RST_STREAM(NO_ERROR) after the trailers: the client had not half-closed.
        case resetNoError
        /// Write what nghttp2 has queued.
        case flush
    }

    private(set) var state = State.receivingHead
    /// The observer heard the start and has not heard the end.
    private var observed = false

    /// The status the trailers carry (OK until one is decided).
    var trailerStatus: GRPCStatus {
        if case .finished(let status, _) = state { return status }
        return .ok
    }

    /// Whether request DATA is still read (a finished or closed call ignores it).
    var acceptsData: Bool {
        switch state {
        case .collectingUnary, .streaming(requestOpen: true, _): return true
        default: return false
        }
    }

    // MARK: Request

    /// The request HEADERS are complete. grpc-go's order: method and content-type (an HTTP
    /// error), encoding, timeout, then the route.
    mutating func headersReceived(_ head: RequestHead, route: Route, draining: Bool) -> [Action] {
        guard case .receivingHead = state else { return [] }
        if draining {
            state = .finished(status: GRPCStatus(.unavailable, "server is shutting down"), requestOpen: true)
            return [.refuse]
        }
        if head.method != "POST" {
            return reject(httpStatus: 405, GRPCStatus(.internal, "invalid gRPC request method"))
        }
        if !head.contentType.hasPrefix("application/grpc") {
            return reject(httpStatus: 415, GRPCStatus(.internal, "invalid gRPC request content-type \"\(head.contentType)\""))
        }
        if !head.encoding.isEmpty, head.encoding != "identity" {
            return finish(GRPCStatus(.unimplemented, "grpc: Decompressor is not installed for grpc-encoding \"\(head.encoding)\""))
        }
        var actions: [Action] = []
        if !head.timeout.isEmpty {
            guard let nanoseconds = GRPCTimeout.parse(head.timeout) else {
                return finish(GRPCStatus(.internal, "malformed grpc-timeout: \(head.timeout)"))
            }
            actions.append(.scheduleDeadline(nanoseconds: nanoseconds))
        }
        switch route {
        case .unknown(let message):
            return finish(GRPCStatus(.unimplemented, message))
        case .unary:
            observed = true
            state = .collectingUnary(request: nil)
            return actions + [.observeStart(streaming: false)]
        case .bidirectional:
            observed = true
            state = .streaming(requestOpen: true, responseStarted: false)
            return actions + [.observeStart(streaming: true), .startBidirectional]
        }
    }

    /// One request message, deframed.
    mutating func messageReceived(_ message: [UInt8]) -> [Action] {
        switch state {
        case .collectingUnary(request: nil):
            state = .collectingUnary(request: message)
            return []
        case .collectingUnary:
            return failRequest(GRPCStatus(.internal, "grpc: received more than one request message for unary call"))
        case .streaming(requestOpen: true, _):
            return [.deliverRequest(message)]
        default:
            return []
        }
    }

    /// The request broke the protocol (a bad frame header, a message over the limit): answer
    /// with `status` and stop the handler.
    mutating func requestFailed(_ status: GRPCStatus) -> [Action] {
        acceptsData ? failRequest(status) : []
    }

    /// END_STREAM from the client. `deframerIdle`: no message was left half received.
    mutating func requestEnded(deframerIdle: Bool) -> [Action] {
        switch state {
        case .collectingUnary(let request):
            if !deframerIdle {
                return failRequest(GRPCStatus(.internal, "grpc: received incomplete message at end of stream"), requestOpen: false)
            }
            guard let request else {
                return failRequest(GRPCStatus(.internal, "grpc: no request message for unary call"), requestOpen: false)
            }
            state = .handlingUnary
            return [.startUnary(request)]
        case .streaming(requestOpen: true, let responseStarted):
            if !deframerIdle {
                return failRequest(GRPCStatus(.internal, "grpc: received incomplete message at end of stream"), requestOpen: false)
            }
            state = .streaming(requestOpen: false, responseStarted: responseStarted)
            return [.endRequests]
        case .finished(let status, requestOpen: true):
            state = .finished(status: status, requestOpen: false)
            return []
        default:
            return []
        }
    }

    // MARK: Handler and response

    /// The handler ended: `.success(response)` for a unary call, `.failure(status)` otherwise
    /// (the status may be OK).
    mutating func handlerReturned(_ result: Result<[UInt8], GRPCStatus>) -> [Action] {
        switch (state, result) {
        case (.handlingUnary, .success(let message)):
            state = .finished(status: .ok, requestOpen: false)
            return observeEnd(.ok) + [.cancelDeadline, .respondUnary(message), .flush]
        case (.handlingUnary, .failure(let status)), (.streaming, .failure(let status)):
            return finish(status)
        default:
            return []
        }
    }

    /// The handler's writer queued a response message.
    mutating func responseQueued() -> [Action] {
        switch state {
        case .streaming(let requestOpen, responseStarted: false):
            state = .streaming(requestOpen: requestOpen, responseStarted: true)
            return [.submitResponseHeaders, .flush]
        case .streaming(_, responseStarted: true), .finished:
            return [.resumeData, .flush]
        default:
            return []
        }
    }

    /// nghttp2 sent HEADERS on the stream.
    mutating func headersSent(endStream: Bool) -> [Action] {
        guard endStream, case .finished(_, requestOpen: true) = state else { return [] }
        return [.resetNoError]
    }

    // MARK: Ends

    mutating func deadlineExpired() -> [Action] {
        let status = GRPCStatus(.deadlineExceeded, "context deadline exceeded")
        switch state {
        case .collectingUnary:
            return finish(status)
        case .handlingUnary:
            return [.cancelHandler] + finish(status)
        case .streaming(let requestOpen, _):
            return [.cancelHandler] + finish(status) + (requestOpen ? [.endRequests] : [])
        default:
            return []
        }
    }

    /// The server began draining (GOAWAY sent): streaming calls end with UNAVAILABLE, unary
    /// calls run to their end.
    mutating func shutdownBegan() -> [Action] {
        guard case .streaming = state else { return [] }
        return [.cancelHandler] + finish(GRPCStatus(.unavailable, "server is shutting down"))
    }

    /// The stream is gone (client RST_STREAM, closed after the trailers, connection lost):
    /// stop everything; the writer fails with `status`.
    mutating func streamClosed(_ status: GRPCStatus) -> [Action] {
        if case .closed = state { return [] }
        let finalStatus = if case .finished(let decided, _) = state { decided } else { GRPCStatus(.cancelled) }
        state = .closed
        return observeEnd(finalStatus) + [.cancelDeadline, .cancelHandler, .failOutbound(status), .endRequests]
    }

    // MARK: Helpers

    private mutating func observeEnd(_ status: GRPCStatus) -> [Action] {
        guard observed else { return [] }
        observed = false
        return [.observeEnd(status)]
    }

    private mutating func reject(httpStatus: Int, _ status: GRPCStatus) -> [Action] {
        state = .finished(status: status, requestOpen: true)
        return [.rejectEarly(httpStatus: httpStatus, status), .flush]
    }

    private mutating func failRequest(_ status: GRPCStatus, requestOpen: Bool? = nil) -> [Action] {
        let running: [Action] = if case .streaming(let open, _) = state { [.cancelHandler] + (open ? [.endRequests] : []) } else { [] }
        return running + finish(status, requestOpen: requestOpen)
    }

    /// Decides the final status: Trailers-Only when no response HEADERS went out yet, else
    /// trailers after the queued data.
    private mutating func finish(_ status: GRPCStatus, requestOpen override: Bool? = nil) -> [Action] {
        let responseStarted: Bool
        let requestOpen: Bool
        switch state {
        case .receivingHead, .collectingUnary: (responseStarted, requestOpen) = (false, true)
        case .handlingUnary: (responseStarted, requestOpen) = (false, false)
        case .streaming(let open, let started): (responseStarted, requestOpen) = (started, open)
        case .finished, .closed: return []
        }
        state = .finished(status: status, requestOpen: override ?? requestOpen)
        return observeEnd(status) + [.cancelDeadline, responseStarted ? .finishResponse : .submitTrailersOnly(status), .flush]
    }
}
