public import Synchronization

/// The one way kine's components park a task until another resumes it: a one-shot completion.
///
/// A component keeps the `Completion` in its locked state and calls `complete` after unlocking.
/// Completing is idempotent, whoever gets there first (the worker, a stop, cancellation, expiry):
/// later calls are ignored, so a race between two ways of finishing can never resume a
/// continuation twice. The receiver is taken out under the completion's own lock and called
/// outside it.
///
/// Inlinable, so the stores and the pool get it specialised for their value types instead of
/// looking generic metadata up on every wait.
public final class Completion<Value: Sendable>: Sendable {
    @usableFromInline
    enum Receiver: Sendable {
        case task(CheckedContinuation<Value, Never>)
        case callback(@Sendable (Value) -> Void)
    }

    @usableFromInline
    let receiver: Mutex<Receiver?>

    /// Resumes `continuation` on completion.
    @inlinable
    public init(_ continuation: CheckedContinuation<Value, Never>) {
        receiver = Mutex(.task(continuation))
    }

    /// Calls `callback` on completion (where no task waits: tests, fire-and-forget requests).
    @inlinable
    public init(callback: @escaping @Sendable (Value) -> Void) {
        receiver = Mutex(.callback(callback))
    }

    /// Suspends until someone completes the completion handed to `register`. `register` runs
    /// before the task suspends; it typically stores the completion under the caller's lock, or
    /// completes it at once when what it waits for is already there.
    @inlinable
    public static func wait(_ register: (Completion<Value>) -> Void) async -> Value {
        await withCheckedContinuation { (continuation: CheckedContinuation<Value, Never>) in
            register(Completion(continuation))
        }
    }

    /// Delivers `value`; does nothing if the completion was completed already.
    @inlinable
    public func complete(_ value: Value) {
        let taken = receiver.withLock { slot -> Receiver? in
            defer { slot = nil }
            return slot
        }
        switch taken {
        case .task(let continuation): continuation.resume(returning: value)
        case .callback(let callback): callback(value)
        case nil: break
        }
    }

    /// Whether `complete` has been called.
    @inlinable
    public var isCompleted: Bool { receiver.withLock { $0 == nil } }
}

extension Completion where Value == Void {
    @inlinable
    public func complete() { complete(()) }
}
