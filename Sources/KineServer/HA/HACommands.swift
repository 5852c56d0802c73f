import Foundation
import KineCore
import KineSync
import Synchronization

/// Operator commands that reach a node through its HA port (`kine ha pause|resume|handover`)
/// and wait there for the controller's loop, which alone changes the role machine.
final class HACommands: Sendable {
    /// The maintenance pause: until when (Unix ms, 0: none) and when it was set; the newer of
    /// this node's and the peer's settings wins, so a pause given to either node holds on both.
    struct Pause: Sendable, Equatable {
        var untilUnixMilliseconds: Int64 = 0
        var setUnixMilliseconds: Int64 = 0

        func inForce(atUnixMilliseconds now: Int64) -> Bool { untilUnixMilliseconds > now }
    }

    private struct State {
        var pause = Pause()
        /// Set when `pause` changed and is not persisted yet.
        var pauseDirty = false
        var handover: (timeout: Duration, reply: Completion<Result<Void, HandoverError>>)?
    }

    struct HandoverError: Error, CustomStringConvertible {
        var description: String
    }

    private let state = Mutex(State())

    init(pause: Pause) {
        state.withLock { $0.pause = pause }
    }

    var pause: Pause { state.withLock { $0.pause } }

    /// Records a pause (or a resume, until 0) given now; returns it.
    func setPause(untilUnixMilliseconds: Int64, nowUnixMilliseconds: Int64) -> Pause {
        state.withLock { state in
            state.pause = Pause(untilUnixMilliseconds: untilUnixMilliseconds, setUnixMilliseconds: max(nowUnixMilliseconds, state.pause.setUnixMilliseconds + 1))
            state.pauseDirty = true
            return state.pause
        }
    }

    /// Adopts the peer's pause when it was set later than this node's.
    func adopt(_ peer: Pause) {
        state.withLock { state in
            guard peer.setUnixMilliseconds > state.pause.setUnixMilliseconds else { return }
            state.pause = peer
            state.pauseDirty = true
        }
    }

    /// The pause to persist, once per change.
    func takeDirtyPause() -> Pause? {
        state.withLock { state in
            guard state.pauseDirty else { return nil }
            state.pauseDirty = false
            return state.pause
        }
    }

    /// Waits until the loop has accepted or refused the handover.
    func requestHandover(timeout: Duration) async -> Result<Void, HandoverError> {
        await Completion<Result<Void, HandoverError>>.wait { reply in
            let refused = state.withLock { state -> Bool in
                if state.handover != nil { return true }
                state.handover = (timeout, reply)
                return false
            }
            if refused { reply.complete(.failure(HandoverError(description: "a handover request is already waiting"))) }
        }
    }

    /// The loop takes the waiting handover request, if any.
    func takeHandover() -> (timeout: Duration, reply: Completion<Result<Void, HandoverError>>)? {
        state.withLock { state in
            defer { state.handover = nil }
            return state.handover
        }
    }
}
