/// Request metadata (custom headers) in arrival order. Names are lowercase.
public struct GRPCMetadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var entries: [Entry]

    public init() { entries = [] }

    public init(_ pairs: [(String, String)]) {
        entries = pairs.map { Entry(name: $0.0.lowercased(), value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// The first value for `name` (lowercase), if any.
    public subscript(name: String) -> String? {
        entries.first(where: { $0.name == name })?.value
    }

    /// All values for `name`.
    public func values(for name: String) -> [String] {
        entries.filter { $0.name == name }.map(\.value)
    }

    public mutating func append(name: String, value: String) {
        entries.append(Entry(name: name.lowercased(), value: value))
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }
}

/// What a handler knows about its call.
public struct GRPCCallContext: Sendable {
    /// `:path`, e.g. `/etcdserverpb.KV/Range`.
    public var path: String
    /// `:authority` (may be empty).
    public var authority: String
    /// Custom metadata (without pseudo-headers, `content-type`, `te`, `grpc-timeout`, `grpc-encoding`,
    /// `grpc-accept-encoding`).
    public var metadata: GRPCMetadata
    /// From `grpc-timeout`; the server cancels the handler's task when it passes.
    public var deadline: ContinuousClock.Instant?
    /// The peer's address, e.g. `[IPv4]127.0.0.1/127.0.0.1:51234`.
    public var remoteAddress: String?

    public init(
        path: String, authority: String = "", metadata: GRPCMetadata = GRPCMetadata(),
        deadline: ContinuousClock.Instant? = nil, remoteAddress: String? = nil
    ) {
        self.path = path
        self.authority = authority
        self.metadata = metadata
        self.deadline = deadline
        self.remoteAddress = remoteAddress
    }
}

/// A method implementation. Handlers run as Swift tasks off the event loop; cancellation of the task
/// means the client went away (RST_STREAM), the deadline passed, or the server is shutting down.
public enum GRPCMethod: Sendable {
    case unary(@Sendable (_ request: [UInt8], _ context: GRPCCallContext) async throws(GRPCStatus) -> [UInt8])
    case bidirectional(
        @Sendable (_ requests: GRPCRequestStream, _ responses: GRPCResponseWriter, _ context: GRPCCallContext)
            async throws(GRPCStatus) -> Void
    )
}

/// Maps a `:path` to a method.
public protocol GRPCRouter: Sendable {
    func method(for path: String) -> GRPCMethod?
    /// Whether `service` (e.g. `etcdserverpb.KV`) exists; only used to word the UNIMPLEMENTED message
    /// ("unknown service X" vs "unknown method Y for service X"). Defaults to `false`.
    func hasService(_ service: String) -> Bool
}

extension GRPCRouter {
    public func hasService(_ service: String) -> Bool { false }
}

/// The request messages of a streaming call, one element per gRPC message. Ends when the client
/// half-closes (END_STREAM) or the stream goes away.
public struct GRPCRequestStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = Never

    let base: AsyncStream<[UInt8]>

    init(_ base: AsyncStream<[UInt8]>) {
        self.base = base
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[UInt8]>.AsyncIterator

        public mutating func next() async -> [UInt8]? {
            await base.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async -> [UInt8]? {
            await base.next(isolation: actor)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator())
    }
}

/// Sends response messages on a streaming call. `write` suspends while too many bytes are queued
/// unsent on the stream (bounded memory) and throws once the stream is gone. Usable from any task.
public struct GRPCResponseWriter: Sendable {
    let buffer: OutboundMessageBuffer

    init(buffer: OutboundMessageBuffer) {
        self.buffer = buffer
    }

    /// Queues one message; suspends for backpressure. Throws `GRPCStatus` (Cancelled/Unavailable) if
    /// the stream has ended.
    public func write(_ message: [UInt8]) async throws {
        try await buffer.write(message)
    }
}

/// Hears every call to a method the router knows: its start and its final status (as
/// go-grpc-prometheus counts them). Called on the connection's event loop: keep it cheap.
public protocol GRPCServerObserver: Sendable {
    func callStarted(path: String, streaming: Bool)
    /// `code` is the status the call ended with (a stream the client reset ends as Canceled).
    func callHandled(path: String, streaming: Bool, code: Int, duration: Duration)
}
