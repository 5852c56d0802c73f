import KineHA
import KineSync
import Synchronization

/// Operator commands that reach a node through its HA port (`kine ha pause|resume|handover`)
/// and wait there for the controller's loop, which alone changes the role machine.
final class HACommands: Sendable {
    private struct State {
        var pause = HAPause()
        /// Set when `pause` changed and is not persisted yet.
        var pauseDirty = false
        var handover: HandoverRequest?
    }

    /// A waiting `kine ha handover`, answered by the loop once it has acted on it.
    struct HandoverRequest: Sendable {
        var timeout: Duration
        var reply: Completion<Result<Void, HandoverFailure>>
    }

    private let state = Mutex(State())

    init(pause: HAPause) {
        state.withLock { $0.pause = pause }
    }

    var pause: HAPause { state.withLock { $0.pause } }

    /// Records a pause (or a resume, until 0) given now; returns it.
    func setPause(untilUnixMilliseconds: Int64, nowUnixMilliseconds: Int64) -> HAPause {
        state.withLock { state in
            state.pause = state.pause.replaced(untilUnixMilliseconds: untilUnixMilliseconds, nowUnixMilliseconds: nowUnixMilliseconds)
            state.pauseDirty = true
            return state.pause
        }
    }

    /// Adopts the peer's pause (the probe round found it newer than this node's).
    func adopt(_ peer: HAPause) {
        state.withLock { state in
            guard state.pause.superseded(by: peer) != nil else { return }
            state.pause = peer
            state.pauseDirty = true
        }
    }

    /// The pause to persist, once per change (`pausePersisted` after the write; a failed write
    /// leaves it dirty, so the next round tries again).
    var unpersistedPause: HAPause? {
        state.withLock { $0.pauseDirty ? $0.pause : nil }
    }

    func pausePersisted(_ pause: HAPause) {
        state.withLock { state in
            if state.pause == pause { state.pauseDirty = false }
        }
    }

    /// Waits until the loop has accepted or refused the handover.
    func requestHandover(timeout: Duration) async -> Result<Void, HandoverFailure> {
        await Completion<Result<Void, HandoverFailure>>.wait { reply in
            let refused = state.withLock { state -> Bool in
                if state.handover != nil { return true }
                state.handover = HandoverRequest(timeout: timeout, reply: reply)
                return false
            }
            if refused { reply.complete(.failure(.anotherRequestWaiting)) }
        }
    }

    /// The loop takes the waiting handover request, if any.
    func takeHandover() -> HandoverRequest? {
        state.withLock { state in
            defer { state.handover = nil }
            return state.handover
        }
    }

    /// Fails a request still waiting when the loop stops.
    func refuseWaitingHandover() {
        takeHandover()?.reply.complete(.failure(.stopping))
    }
}

/// Why `kine ha handover` did not start a handover.
enum HandoverFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case refused(HandoverRefused)
    case anotherRequestWaiting
    /// The machine accepted it, but fencing this node for it failed; it leads on.
    case stepDownFailed
    case stopping

    var description: String {
        switch self {
        case .refused(let refusal): refusal.description
        case .anotherRequestWaiting: "a handover request is already waiting"
        case .stepDownFailed: "stepping down for the handover failed; this node leads on (see its log)"
        case .stopping: "this node is shutting down"
        }
    }
}
