import KineCore
import KineSync
import NIOCore
import Synchronization

/// The bytes a stream has queued for sending, shared between writers (any task) and the nghttp2
/// data provider (the connection's event loop), with backpressure.
///
/// Writers append framed messages under the lock. When the provider had nothing to send it
/// returned NGHTTP2_ERR_DEFERRED and marked the buffer `parked`; the next append un-parks it and calls
/// `kick`, which hops to the event loop to resume (or start) the data provider. Writers suspend while
/// `pending >= highWaterMark` and are resumed once the provider drained it below the low-water mark
/// or the stream ended.
final class OutboundMessageBuffer: Sendable {
    enum ReadResult {
        /// `count` bytes copied; `end` when everything is sent and `finish()` was called.
        case bytes(count: Int, end: Bool)
        case deferred
    }

    private struct State {
        var buffer: ByteBuffer
        var finished = false
        var closedStatus: GRPCStatus?
        var parked: Bool
        /// Writers parked until the provider drains below the low-water mark or the stream closes.
        var waiters: [Completion<Result<Void, GRPCStatus>>] = []
    }

    private let state: Mutex<State>
    private let highWaterMark: Int
    private let lowWaterMark: Int
    /// Called (outside the lock) when a write un-parks the buffer.
    private let kick: @Sendable () -> Void

    /// - Parameter parked: `true` if nothing has been submitted to nghttp2 yet, so the first write
    ///   must kick.
    init(highWaterMark: Int, parked: Bool, kick: @escaping @Sendable () -> Void) {
        self.highWaterMark = max(highWaterMark, 1)
        self.lowWaterMark = max(highWaterMark / 2, 1)
        self.kick = kick
        self.state = Mutex(State(buffer: ByteBuffer(), parked: parked))
    }

    // MARK: writer side (any thread)

    func write(_ message: [UInt8]) async throws {
        while try !tryAppend(message) {
            try await waitForSpace()
        }
    }

    private func waitForSpace() async throws {
        try await Completion<Result<Void, GRPCStatus>>.wait { waiter in
            let outcome: Result<Void, GRPCStatus>? = state.withLock { state in
                if let status = state.closedStatus { return .failure(status) }
                if state.buffer.readableBytes < highWaterMark { return .success(()) }
                state.waiters.append(waiter)
                return nil
            }
            if let outcome { waiter.complete(outcome) }
        }.get()
    }

    /// Appends if below the high-water mark. Returns false if the caller must wait.
    private func tryAppend(_ message: [UInt8]) throws -> Bool {
        let (appended, mustKick) = try state.withLock { state throws -> (Bool, Bool) in
            if let status = state.closedStatus { throw status }
            if state.finished { throw GRPCStatus(.internal, "write after the call finished") }
            if state.buffer.readableBytes >= highWaterMark { return (false, false) }
            Self.appendFramed(message, to: &state.buffer)
            let mustKick = state.parked
            state.parked = false
            return (true, mustKick)
        }
        if mustKick { kick() }
        return appended
    }

    private static func appendFramed(_ message: [UInt8], to buffer: inout ByteBuffer) {
        let p = GRPCMessageFramer.prefix(length: message.count)
        buffer.writeMultipleIntegers(p.0, p.1, p.2, p.3, p.4)
        buffer.writeBytes(message)
    }

    // MARK: event-loop side

    /// Appends a final message and marks the buffer finished (unary responses / requests); never
    /// waits. Returns whether the caller must resume the provider.
    @discardableResult
    func appendFinal(_ message: [UInt8]?) -> Bool {
        state.withLock { state in
            if let message { Self.appendFramed(message, to: &state.buffer) }
            state.finished = true
            let mustKick = state.parked
            state.parked = false
            return mustKick
        }
    }

    /// Marks the writer side finished: after the queued bytes, the provider signals the end.
    /// Returns whether the provider is parked and must be resumed.
    @discardableResult
    func finish() -> Bool {
        appendFinal(nil)
    }

    /// The stream is gone: fail pending and future writes with `status`, drop queued bytes.
    func close(_ status: GRPCStatus) {
        let waiters = state.withLock { state in
            if state.closedStatus == nil { state.closedStatus = status }
            state.buffer.clear()
            let waiters = state.waiters
            state.waiters = []
            return waiters
        }
        for waiter in waiters { waiter.complete(.failure(status)) }
    }

    /// Called from the nghttp2 data provider: copies up to `destination.count` bytes.
    func read(into destination: UnsafeMutableRawBufferPointer) -> ReadResult {
        var toWake: [Completion<Result<Void, GRPCStatus>>] = []
        let result = state.withLock { state -> ReadResult in
            let readable = state.buffer.readableBytes
            if readable == 0 {
                if state.finished { return .bytes(count: 0, end: true) }
                state.parked = true
                return .deferred
            }
            let count = min(readable, destination.count)
            state.buffer.withUnsafeReadableBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<count]))
            }
            state.buffer.moveReaderIndex(forwardBy: count)
            let remaining = readable - count
            if remaining == 0 {
                // Reclaim the storage instead of letting it grow with every message.
                state.buffer.clear()
            }
            if remaining < lowWaterMark, !state.waiters.isEmpty {
                toWake = state.waiters
                state.waiters = []
            }
            return .bytes(count: count, end: remaining == 0 && state.finished)
        }
        for waiter in toWake { waiter.complete(.success(())) }
        return result
    }

    var pendingBytes: Int {
        state.withLock { $0.buffer.readableBytes }
    }
}
