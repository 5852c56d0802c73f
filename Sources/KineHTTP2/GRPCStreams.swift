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
