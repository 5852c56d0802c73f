import NIOCore

/// Serves HTTP/1.1 requests on the gRPC port: `/health`, `/version`, `/metrics` and etcd's JSON
/// gateway. Runs as a task per request; answers through the writer, once in full or as a stream.
public typealias HTTP1Handler = @Sendable (_ request: HTTP1Request, _ response: HTTP1ResponseWriter) async -> Void

/// One HTTP/1.1 request: its head and a body that arrives as it is read off the connection.
public struct HTTP1Request: Sendable {
    public var head: HTTP1RequestHead
    public var body: HTTP1RequestBody
    /// The peer, e.g. `[IPv4]127.0.0.1/127.0.0.1:51234`.
    public var remoteAddress: String?

    public init(head: HTTP1RequestHead, body: HTTP1RequestBody, remoteAddress: String? = nil) {
        self.head = head
        self.body = body
        self.remoteAddress = remoteAddress
    }
}

/// The request body in the pieces the connection read; ends with the body (or the connection).
public struct HTTP1RequestBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = Never
    let stream: AsyncStream<[UInt8]>

    public init(_ stream: AsyncStream<[UInt8]>) {
        self.stream = stream
    }

    /// An empty body.
    public static var empty: HTTP1RequestBody {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        continuation.finish()
        return HTTP1RequestBody(stream)
    }

    public func makeAsyncIterator() -> AsyncStream<[UInt8]>.AsyncIterator { stream.makeAsyncIterator() }

    /// The whole body, or nil once it grows past `limit` bytes.
    public func collect(limit: Int) async -> [UInt8]? {
        var bytes: [UInt8] = []
        for await piece in stream {
            bytes.append(contentsOf: piece)
            if bytes.count > limit { return nil }
        }
        return bytes
    }
}

public struct HTTP1Response: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [HTTP1Header]
    public var body: [UInt8]

    public init(status: Int, contentType: String, headers: [HTTP1Header] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    public init(_ simple: GRPCHTTP1Response) {
        self.init(status: simple.status, contentType: simple.contentType, body: simple.body)
    }
}

/// The connection went away (or the response was already complete) before a write.
public struct HTTP1ConnectionClosed: Error, Sendable {}

/// Answers one request, from any task. Either `respond` once, or `startStream`, `writeChunk`s and
/// `finish`. A chunk write returns once the bytes are handed to the socket, so a slow reader slows
/// the writer instead of filling memory. A HEAD request gets heads only.
public struct HTTP1ResponseWriter: Sendable {
    let connection: NIOLoopBound<HTTP1ServerConnection>
    let exchange: UInt64

    public func respond(_ response: HTTP1Response) async {
        // try?: a connection that closed has no one to answer; the handler has nothing left to do.
        _ = try? await apply(.full(response))
    }

    /// Sends the head of a chunked response.
    public func startStream(status: Int, contentType: String, headers: [HTTP1Header] = []) async throws(HTTP1ConnectionClosed) {
        try await apply(.streamHead(HTTP1Response(status: status, contentType: contentType, headers: headers, body: [])))
    }

    public func writeChunk(_ bytes: [UInt8]) async throws(HTTP1ConnectionClosed) {
        guard !bytes.isEmpty else { return }
        try await apply(.chunk(bytes))
    }

    /// Ends a chunked response.
    public func finish() async {
        // try?: a connection that closed has no one to answer; the handler has nothing left to do.
        _ = try? await apply(.streamEnd)
    }

    private func apply(_ output: HTTP1ServerConnection.Output) async throws(HTTP1ConnectionClosed) {
        let connection = self.connection
        let exchange = self.exchange
        let future = connection.eventLoop.flatSubmit {
            connection.value.send(output, exchange: exchange)
        }
        do {
            try await future.get()
        } catch {
            throw HTTP1ConnectionClosed()
        }
    }
}
