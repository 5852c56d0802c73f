/// The request messages of a streaming call, one element per gRPC message. Ends when the client
/// half-closes (END_STREAM) or the stream goes away.
public struct GRPCRequestStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    public typealias Failure = Never

    let base: AsyncStream<[UInt8]>

    /// Requests from elsewhere than an HTTP/2 stream (the JSON gateway feeds a method this way).
    public init(_ base: AsyncStream<[UInt8]>) {
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
    private enum Sink: Sendable {
        case stream(OutboundMessageBuffer)
        case custom(@Sendable ([UInt8]) async throws -> Void)
    }

    private let sink: Sink

    init(buffer: OutboundMessageBuffer) {
        sink = .stream(buffer)
    }

    /// Hands each message to `write` instead of an HTTP/2 stream (the JSON gateway). `write`
    /// throws once its destination is gone.
    public init(_ write: @escaping @Sendable ([UInt8]) async throws -> Void) {
        sink = .custom(write)
    }

    /// Queues one message; suspends for backpressure. Throws `GRPCStatus` (Cancelled/Unavailable) if
    /// the stream has ended.
    public func write(_ message: [UInt8]) async throws {
        switch sink {
        case .stream(let buffer): try await buffer.write(message)
        case .custom(let write): try await write(message)
        }
    }
}
