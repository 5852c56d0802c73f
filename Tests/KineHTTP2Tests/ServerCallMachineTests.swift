import KineCore
import Testing

@testable import KineHTTP2

/// Every transition of the server call machine, without sockets: request validation, the unary
/// and bidirectional lifecycles, and RST_STREAM, deadline and GOAWAY in each state.
@Suite("Server call state machine")
struct ServerCallMachineTests {
    typealias Machine = ServerCallMachine
    typealias Action = ServerCallMachine.Action

    static let post = Machine.RequestHead(method: "POST", contentType: "application/grpc")
    static let deadline = GRPCStatus(.deadlineExceeded, "context deadline exceeded")
    static let shuttingDown = GRPCStatus(.unavailable, "server is shutting down")
    static let reset = GRPCStatus(.cancelled, "stream closed")

    /// The machine brought to one named state by real events.
    enum Stage: String, CaseIterable, CustomTestStringConvertible {
        case receivingHead, collectingUnary, collectedUnary, handlingUnary, streamingFresh, streamingResponding, streamingHalfClosed
        case finishedUnary, finishedStreamOpen, closed

        var testDescription: String { rawValue }

        var machine: Machine {
            var m = Machine()
            switch self {
            case .receivingHead: break
            case .collectingUnary: _ = m.headersReceived(ServerCallMachineTests.post, route: .unary, draining: false)
            case .collectedUnary:
                _ = m.headersReceived(ServerCallMachineTests.post, route: .unary, draining: false)
                _ = m.messageReceived([1])
            case .handlingUnary, .finishedUnary:
                _ = m.headersReceived(ServerCallMachineTests.post, route: .unary, draining: false)
                _ = m.messageReceived([1])
                _ = m.requestEnded(deframerIdle: true)
                if self == .finishedUnary { _ = m.handlerReturned(.success([2])) }
            case .streamingFresh: _ = m.headersReceived(ServerCallMachineTests.post, route: .bidirectional, draining: false)
            case .streamingResponding, .finishedStreamOpen:
                _ = m.headersReceived(ServerCallMachineTests.post, route: .bidirectional, draining: false)
                _ = m.responseQueued()
                if self == .finishedStreamOpen { _ = m.handlerReturned(.failure(.ok)) }
            case .streamingHalfClosed:
                _ = m.headersReceived(ServerCallMachineTests.post, route: .bidirectional, draining: false)
                _ = m.requestEnded(deframerIdle: true)
            case .closed:
                _ = m.headersReceived(ServerCallMachineTests.post, route: .unary, draining: false)
                _ = m.streamClosed(ServerCallMachineTests.reset)
            }
            return m
        }

        /// The observer heard the start and not yet the end.
        var observedOpen: Bool {
            [.collectingUnary, .collectedUnary, .handlingUnary, .streamingFresh, .streamingResponding, .streamingHalfClosed].contains(self)
        }
    }

    // MARK: Request validation

    @Test("A draining server refuses new streams with RST_STREAM")
    func draining() {
        var m = Machine()
        #expect(m.headersReceived(Self.post, route: .unary, draining: true) == [.refuse])
        #expect(m.messageReceived([1]) == [] && !m.acceptsData)
    }

    @Test("Method and content-type are HTTP errors; encoding, timeout and route are gRPC statuses, none observed")
    func validation() {
        func first(_ head: Machine.RequestHead, _ route: Machine.Route = .unary) -> [Action] {
            var m = Machine()
            return m.headersReceived(head, route: route, draining: false)
        }
        let bad = GRPCStatus(.internal, "invalid gRPC request method")
        #expect(first(Machine.RequestHead(method: "GET", contentType: "application/grpc")) == [.rejectEarly(httpStatus: 405, bad), .flush])
        let type = GRPCStatus(.internal, "invalid gRPC request content-type \"text/plain\"")
        #expect(first(Machine.RequestHead(method: "POST", contentType: "text/plain")) == [.rejectEarly(httpStatus: 415, type), .flush])
        let gzip = GRPCStatus(.unimplemented, "grpc: Decompressor is not installed for grpc-encoding \"gzip\"")
        #expect(
            first(Machine.RequestHead(method: "POST", contentType: "application/grpc", encoding: "gzip"))
                == [.cancelDeadline, .submitTrailersOnly(gzip), .flush])
        #expect(
            first(Machine.RequestHead(method: "POST", contentType: "application/grpc+proto", encoding: "identity")) == [
                .observeStart(streaming: false)
            ])
        let timeout = GRPCStatus(.internal, "malformed grpc-timeout: 5x")
        #expect(
            first(Machine.RequestHead(method: "POST", contentType: "application/grpc", timeout: "5x"))
                == [.cancelDeadline, .submitTrailersOnly(timeout), .flush])
        let unknown = GRPCStatus(.unimplemented, "unknown service x")
        #expect(first(Self.post, .unknown(message: "unknown service x")) == [.cancelDeadline, .submitTrailersOnly(unknown), .flush])
        #expect(
            first(Machine.RequestHead(method: "POST", contentType: "application/grpc", timeout: "2S"), .bidirectional)
                == [.scheduleDeadline(nanoseconds: 2_000_000_000), .observeStart(streaming: true), .startBidirectional])
    }

    @Test("HEADERS complete once: a repeated headers event changes nothing")
    func headersOnce() {
        var m = Stage.collectingUnary.machine
        #expect(m.headersReceived(Self.post, route: .bidirectional, draining: false) == [])
        #expect(m.state == .collectingUnary(request: nil))
    }

    // MARK: Unary

    @Test("Unary: one message, END_STREAM starts the handler, its response ends the call")
    func unaryLifecycle() {
        var m = Stage.collectingUnary.machine
        #expect(m.acceptsData)
        #expect(m.messageReceived([7]) == [])
        #expect(m.requestEnded(deframerIdle: true) == [.startUnary([7])])
        #expect(m.state == .handlingUnary && !m.acceptsData)
        #expect(m.handlerReturned(.success([9])) == [.observeEnd(.ok), .cancelDeadline, .respondUnary([9]), .flush])
        #expect(m.state == .finished(status: .ok, requestOpen: false) && m.trailerStatus == .ok)
        #expect(m.headersSent(endStream: true) == [], "the client half-closed: no RST after the trailers")
        #expect(m.streamClosed(Self.reset) == [.cancelDeadline, .cancelHandler, .failOutbound(Self.reset), .endRequests])
        #expect(m.state == .closed)
    }

    @Test("Unary: a handler error is sent Trailers-Only")
    func unaryError() {
        var m = Stage.handlingUnary.machine
        let status = GRPCStatus(.notFound, "nope")
        #expect(m.handlerReturned(.failure(status)) == [.observeEnd(status), .cancelDeadline, .submitTrailersOnly(status), .flush])
        #expect(m.trailerStatus == status)
        #expect(m.handlerReturned(.success([1])) == [], "one final status")
    }

    @Test("Unary: two messages, none, or half a message are protocol errors")
    func unaryRequestErrors() {
        var two = Stage.collectedUnary.machine
        let many = GRPCStatus(.internal, "grpc: received more than one request message for unary call")
        #expect(two.messageReceived([2]) == [.observeEnd(many), .cancelDeadline, .submitTrailersOnly(many), .flush])
        #expect(two.state == .finished(status: many, requestOpen: true))
        #expect(two.headersSent(endStream: true) == [.resetNoError], "the client still sends: RST(NO_ERROR) after the trailers")
        #expect(two.requestEnded(deframerIdle: true) == [])
        #expect(two.headersSent(endStream: true) == [], "after END_STREAM no RST")

        var none = Stage.collectingUnary.machine
        let missing = GRPCStatus(.internal, "grpc: no request message for unary call")
        #expect(none.requestEnded(deframerIdle: true) == [.observeEnd(missing), .cancelDeadline, .submitTrailersOnly(missing), .flush])
        #expect(none.state == .finished(status: missing, requestOpen: false))

        var half = Stage.collectedUnary.machine
        let incomplete = GRPCStatus(.internal, "grpc: received incomplete message at end of stream")
        #expect(
            half.requestEnded(deframerIdle: false) == [.observeEnd(incomplete), .cancelDeadline, .submitTrailersOnly(incomplete), .flush])
    }

    @Test("A frame error while reading is answered once; later data is ignored")
    func requestFailed() {
        var m = Stage.collectingUnary.machine
        let big = GRPCStatus(.resourceExhausted, "grpc: received message larger than max (9 vs. 4)")
        #expect(m.requestFailed(big) == [.observeEnd(big), .cancelDeadline, .submitTrailersOnly(big), .flush])
        #expect(m.requestFailed(big) == [] && m.messageReceived([1]) == [] && !m.acceptsData)
        var streaming = Stage.streamingResponding.machine
        #expect(streaming.requestFailed(big) == [.cancelHandler, .endRequests, .observeEnd(big), .cancelDeadline, .finishResponse, .flush])
    }

    // MARK: Bidirectional

    @Test("Bidirectional: requests flow, the first response sends HEADERS, later ones resume data, the status ends it")
    func bidirectionalLifecycle() {
        var m = Stage.streamingFresh.machine
        #expect(m.messageReceived([1]) == [.deliverRequest([1])])
        #expect(m.responseQueued() == [.submitResponseHeaders, .flush])
        #expect(m.responseQueued() == [.resumeData, .flush])
        #expect(m.requestEnded(deframerIdle: true) == [.endRequests])
        #expect(m.messageReceived([2]) == [] && !m.acceptsData)
        #expect(m.handlerReturned(.failure(.ok)) == [.observeEnd(.ok), .cancelDeadline, .finishResponse, .flush])
        #expect(m.state == .finished(status: .ok, requestOpen: false))
        #expect(m.responseQueued() == [.resumeData, .flush], "data queued before the end still drains")
    }

    @Test("Bidirectional: a status before any response is Trailers-Only; the client still open gets RST(NO_ERROR) after it")
    func bidirectionalTrailersOnly() {
        var m = Stage.streamingFresh.machine
        let status = GRPCStatus(.invalidArgument, "bad")
        #expect(m.handlerReturned(.failure(status)) == [.observeEnd(status), .cancelDeadline, .submitTrailersOnly(status), .flush])
        #expect(m.headersSent(endStream: false) == [])
        #expect(m.headersSent(endStream: true) == [.resetNoError])
        #expect(m.handlerReturned(.success([1])) == [] && m.responseQueued() == [.resumeData, .flush])
    }

    // MARK: RST_STREAM, deadline and GOAWAY in each state

    @Test("RST_STREAM (the stream closed) in each state", arguments: Stage.allCases)
    func streamClosed(stage: Stage) {
        var m = stage.machine
        let actions = m.streamClosed(Self.reset)
        #expect(m.state == .closed)
        if stage == .closed {
            #expect(actions == [])
            return
        }
        let observe: [Action] = stage.observedOpen ? [.observeEnd(GRPCStatus(.cancelled))] : []
        #expect(actions == observe + [.cancelDeadline, .cancelHandler, .failOutbound(Self.reset), .endRequests])
        #expect(m.streamClosed(Self.reset) == [] && m.deadlineExpired() == [] && m.shutdownBegan() == [] && m.responseQueued() == [])
    }

    @Test("The deadline in each state", arguments: Stage.allCases)
    func deadline(stage: Stage) {
        var m = stage.machine
        let actions = m.deadlineExpired()
        let trailersOnly: [Action] = [.observeEnd(Self.deadline), .cancelDeadline, .submitTrailersOnly(Self.deadline), .flush]
        let trailers: [Action] = [.observeEnd(Self.deadline), .cancelDeadline, .finishResponse, .flush]
        switch stage {
        case .receivingHead, .finishedUnary, .finishedStreamOpen, .closed:
            #expect(actions == [])
        case .collectingUnary, .collectedUnary:
            #expect(actions == trailersOnly)
            #expect(m.state == .finished(status: Self.deadline, requestOpen: true))
        case .handlingUnary:
            #expect(actions == [.cancelHandler] + trailersOnly)
        case .streamingFresh:
            #expect(actions == [.cancelHandler] + trailersOnly + [.endRequests])
        case .streamingResponding:
            #expect(actions == [.cancelHandler] + trailers + [.endRequests])
        case .streamingHalfClosed:
            #expect(actions == [.cancelHandler] + trailersOnly)
            #expect(m.state == .finished(status: Self.deadline, requestOpen: false))
        }
        if stage.observedOpen { #expect(m.trailerStatus == Self.deadline) }
    }

    @Test("GOAWAY (draining) in each state: streaming calls end with UNAVAILABLE, the rest runs on", arguments: Stage.allCases)
    func goAway(stage: Stage) {
        var m = stage.machine
        let before = m.state
        let actions = m.shutdownBegan()
        switch stage {
        case .streamingFresh, .streamingHalfClosed:
            #expect(
                actions == [
                    .cancelHandler, .observeEnd(Self.shuttingDown), .cancelDeadline, .submitTrailersOnly(Self.shuttingDown), .flush,
                ])
        case .streamingResponding:
            #expect(actions == [.cancelHandler, .observeEnd(Self.shuttingDown), .cancelDeadline, .finishResponse, .flush])
            #expect(m.state == .finished(status: Self.shuttingDown, requestOpen: true))
        default:
            #expect(actions == [])
            #expect(m.state == before)
        }
    }

    @Test("The observer hears each observed call's end exactly once, whatever ends it")
    func observedOnce() {
        for stage in Stage.allCases {
            var m = stage.machine
            var ends = 0
            for actions in [m.deadlineExpired(), m.shutdownBegan(), m.handlerReturned(.failure(.ok)), m.streamClosed(Self.reset)] {
                ends += actions.filter { if case .observeEnd = $0 { true } else { false } }.count
            }
            #expect(ends == (stage.observedOpen ? 1 : 0), "\(stage)")
        }
    }
}
