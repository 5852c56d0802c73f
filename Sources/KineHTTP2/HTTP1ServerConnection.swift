import Logging
import NIOCore

/// The HTTP/1.1 side of a connection once the first bytes showed a request line: reads requests
/// with `HTTP1RequestParser`, runs the handler as a task per request, writes what it answers, and
/// keeps the connection for the next request when both sides allow it.
///
/// Confined to the channel's event loop; the handler's tasks reach it through
/// `HTTP1ResponseWriter`, which hops to the loop.
final class HTTP1ServerConnection {
    enum Output: Sendable {
        case full(HTTP1Response)
        case streamHead(HTTP1Response)
        case chunk([UInt8])
        case streamEnd
    }

    private enum ResponseState {
        case notStarted
        case streaming
        case complete
    }

    private struct Exchange {
        let id: UInt64
        let head: HTTP1RequestHead
        var body: AsyncStream<[UInt8]>.Continuation
        var task: Task<Void, Never>?
        var bodyComplete = false
        var response = ResponseState.notStarted
        var headOnly: Bool { head.method == "HEAD" }
    }

    /// How long a kept connection may sit between requests.
    static let idleTimeout = TimeAmount.seconds(90)

    private let handler: HTTP1Handler?
    private let eventLoop: any EventLoop
    private let allocator: ByteBufferAllocator
    private let write: (ByteBuffer) -> EventLoopFuture<Void>
    private let close: () -> Void
    private let remoteAddress: String?
    private let logger: Logger
    private var parser = HTTP1RequestParser()
    private var exchange: Exchange?
    private var lastExchangeID: UInt64 = 0
    private var idleTimer: Scheduled<Void>?
    private var draining = false
    private var closed = false

    /// Whether any request head has been read (the connection's detection timeout stops there).
    private(set) var sawRequest = false

    init(
        handler: HTTP1Handler?, eventLoop: any EventLoop, allocator: ByteBufferAllocator, remoteAddress: String?,
        logger: Logger, write: @escaping (ByteBuffer) -> EventLoopFuture<Void>, close: @escaping () -> Void
    ) {
        self.handler = handler
        self.eventLoop = eventLoop
        self.allocator = allocator
        self.remoteAddress = remoteAddress
        self.logger = logger
        self.write = write
        self.close = close
    }

    func receive(_ bytes: ByteBufferView) {
        guard !closed else { return }
        handle(parser.feed(bytes))
    }

    private func handle(_ events: [HTTP1RequestParser.Event]) {
        for event in events {
            guard !closed else { return }
            switch event {
            case .head(let head):
                begin(head)
            case .body(let bytes):
                exchange?.body.yield(bytes)
            case .end:
                exchange?.body.finish()
                exchange?.bodyComplete = true
                if exchange?.response == .complete { responseCompleted() }
            case .failure(let status, let message):
                logger.debug("bad HTTP/1.1 request", metadata: ["error": "\(message)"])
                if let current = exchange {
                    current.body.finish()
                    current.task?.cancel()
                    if current.response != .notStarted {
                        shutDown()
                        return
                    }
                }
                exchange = nil
                writeFinal(
                    HTTP1Response(status: status, contentType: "text/plain; charset=utf-8", body: Array("\(message)\n".utf8)),
                    headOnly: false)
                return
            }
        }
    }

    private func begin(_ head: HTTP1RequestHead) {
        sawRequest = true
        idleTimer?.cancel()
        idleTimer = nil
        lastExchangeID += 1
        let id = lastExchangeID
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        exchange = Exchange(id: id, head: head, body: continuation)
        if head.expectsContinue {
            var interim = allocator.buffer(capacity: 32)
            interim.writeString("HTTP/1.1 100 Continue\r\n\r\n")
            _ = write(interim)
        }
        guard let handler else {
            _ = send(
                .full(HTTP1Response(status: 404, contentType: "text/plain; charset=utf-8", body: Array("404 page not found\n".utf8))),
                exchange: id)
            return
        }
        let request = HTTP1Request(head: head, body: HTTP1RequestBody(stream), remoteAddress: remoteAddress)
        // Made per request, not stored: a stored one would hold this connection from inside itself.
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        let writer = HTTP1ResponseWriter(connection: loopBound, exchange: id)
        exchange?.task = Task {
            await handler(request, writer)
            // A handler that returned without a complete answer: end what it started.
            // try?: an event loop that is shutting down takes the connection with it; nothing to finish then.
            let finished = try? await loopBound.eventLoop.submit { loopBound.value.isComplete(id) }.get()
            if finished == false { await writer.finish() }
        }
    }

    private func isComplete(_ id: UInt64) -> Bool {
        guard let exchange, exchange.id == id else { return true }
        if exchange.response == .notStarted {
            _ = send(
                .full(HTTP1Response(status: 500, contentType: "text/plain; charset=utf-8", body: Array("no response\n".utf8))), exchange: id
            )
            return true
        }
        return exchange.response == .complete
    }

    /// Writes one piece of the answer to exchange `id`; the future completes when the bytes are
    /// written (or fails if the exchange or connection is gone).
    func send(_ output: Output, exchange id: UInt64) -> EventLoopFuture<Void> {
        guard !closed, var current = exchange, current.id == id, current.response != .complete else {
            return eventLoop.makeFailedFuture(HTTP1ConnectionClosed())
        }
        var buffer = allocator.buffer(capacity: 256)
        switch output {
        case .full(let response):
            guard current.response == .notStarted else { return eventLoop.makeFailedFuture(HTTP1ConnectionClosed()) }
            current.response = .complete
            HTTP1.renderHead(response, framing: .length(response.body.count), keepAlive: keepsAlive(current), into: &buffer)
            if !current.headOnly { buffer.writeBytes(response.body) }
        case .streamHead(let response):
            guard current.response == .notStarted else { return eventLoop.makeFailedFuture(HTTP1ConnectionClosed()) }
            current.response = .streaming
            HTTP1.renderHead(response, framing: current.headOnly ? .length(0) : .chunked, keepAlive: keepsAlive(current), into: &buffer)
        case .chunk(let bytes):
            guard current.response == .streaming else { return eventLoop.makeFailedFuture(HTTP1ConnectionClosed()) }
            guard !current.headOnly else { return eventLoop.makeSucceededVoidFuture() }
            buffer.writeString(String(bytes.count, radix: 16) + "\r\n")
            buffer.writeBytes(bytes)
            buffer.writeString("\r\n")
        case .streamEnd:
            guard current.response == .streaming else { return eventLoop.makeFailedFuture(HTTP1ConnectionClosed()) }
            current.response = .complete
            if !current.headOnly { buffer.writeString("0\r\n\r\n") }
        }
        exchange = current
        let written = write(buffer)
        if current.response == .complete {
            written.assumeIsolated().whenComplete { [weak self] result in
                guard let self, self.exchange?.id == id else { return }
                if case .success = result, self.exchange?.bodyComplete == true {
                    self.responseCompleted()
                } else {
                    // Answered before the body ended: the rest would have to be read and thrown
                    // away, so the connection closes instead.
                    self.shutDown()
                }
            }
        }
        return written
    }

    /// A kept connection needs the client to allow it and the server not to be draining.
    private func keepsAlive(_ exchange: Exchange) -> Bool {
        exchange.head.keepAlive && !draining
    }

    /// Both the request body and the response are complete.
    private func responseCompleted() {
        guard let current = exchange else { return }
        exchange = nil
        guard keepsAlive(current) else { return shutDown() }
        scheduleIdleTimer()
        handle(parser.nextRequest())
    }

    private func scheduleIdleTimer() {
        idleTimer?.cancel()
        idleTimer = eventLoop.assumeIsolated().scheduleTask(in: Self.idleTimeout) { [weak self] in
            guard let self, self.exchange == nil else { return }
            self.shutDown()
        }
    }

    private func writeFinal(_ response: HTTP1Response, headOnly: Bool) {
        var buffer = allocator.buffer(capacity: 128 + response.body.count)
        HTTP1.renderHead(response, framing: .length(response.body.count), keepAlive: false, into: &buffer)
        if !headOnly { buffer.writeBytes(response.body) }
        write(buffer).assumeIsolated().whenComplete { [weak self] _ in self?.shutDown() }
    }

    /// The server is shutting down: an idle connection closes now; a streamed answer (a watch) is
    /// ended by cancelling its handler; a request in progress may finish, then the connection closes.
    func beginShutdown() {
        draining = true
        guard let current = exchange else { return shutDown() }
        if current.response == .streaming { current.task?.cancel() }
    }

    private func shutDown() {
        guard !closed else { return }
        connectionClosed()
        close()
    }

    /// The channel closed: the handler's body ends and its task is cancelled.
    func connectionClosed() {
        closed = true
        idleTimer?.cancel()
        idleTimer = nil
        if let current = exchange {
            current.body.finish()
            current.task?.cancel()
        }
        exchange = nil
    }
}
