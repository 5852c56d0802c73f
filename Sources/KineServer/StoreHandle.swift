public import KineCore
public import KineStore
import KineSync
import Synchronization

/// The one way every service reaches the store. Under HA the store is replaced at run time (a
/// follower routes to the leader's database, a promotion switches to the local one): each
/// replacement is a new epoch. Services look the store up per request and never keep it, so a
/// request after the switch can only reach the new database (no stale linearizable read).
public final class StoreHandle: Sendable {
    public struct Epoch: Sendable {
        /// Increases with every `install`.
        public let number: UInt64
        public let store: KineStore
        /// The compacted revision the epoch starts at: watches of earlier epochs are cancelled
        /// with it, as etcd cancels watches whose revision was compacted away.
        public let startRevision: Int64
        /// Set when the previous epoch's watches may go on in this one (`WatchContinuity`);
        /// nil: they are cancelled as compacted at `startRevision`.
        public let continuity: WatchContinuity?
    }

    public enum Change: Sendable {
        case installed(Epoch)
        /// No store serves now; requests fail with `reason`. With `endStreams` (shutdown) open
        /// watch streams end with it too; otherwise (a promotion in progress) they wait for the
        /// next epoch, which cancels their watches as compacted.
        case withdrawn(reason: EtcdError, endStreams: Bool)
    }

    private struct State: Sendable {
        var epoch: Epoch?
        var lastNumber: UInt64 = 0
        var unavailable = StoreHandle.noLeader
        var listeners: [UInt64: @Sendable (Change) -> Void] = [:]
        var nextListener: UInt64 = 0
        var firstEpochWaiters: [UInt64: Completion<Void>] = [:]
        var nextWaiter: UInt64 = 0
    }

    /// etcd's answer while a member has no leader; clients (kube-apiserver, clientv3) retry it.
    public static let noLeader = EtcdError(.unavailable, "etcdserver: no leader")

    private let state = Mutex(State())

    public init() {}

    /// The store of the current epoch, or the reason there is none.
    public func current() throws(EtcdError) -> KineStore {
        try currentEpoch().store
    }

    public func currentEpoch() throws(EtcdError) -> Epoch {
        let (epoch, reason) = state.withLock { ($0.epoch, $0.unavailable) }
        guard let epoch else { throw reason }
        return epoch
    }

    /// The current epoch, nil while nothing serves.
    public var epoch: Epoch? { state.withLock { $0.epoch } }

    /// Serves from `store` from now on. Returns the new epoch; the caller stops the previous store.
    @discardableResult
    public func install(_ store: KineStore, startRevision: Int64, continuity: WatchContinuity? = nil) -> Epoch {
        let (epoch, listeners, waiters) = state.withLock { state in
            state.lastNumber += 1
            let epoch = Epoch(number: state.lastNumber, store: store, startRevision: startRevision, continuity: continuity)
            state.epoch = epoch
            defer { state.firstEpochWaiters = [:] }
            return (epoch, Array(state.listeners.values), Array(state.firstEpochWaiters.values))
        }
        for waiter in waiters { waiter.complete() }
        for listener in listeners { listener(.installed(epoch)) }
        return epoch
    }

    /// Stops serving: requests fail with `reason` until the next `install`.
    public func withdraw(reason: EtcdError = StoreHandle.noLeader, endStreams: Bool = false) {
        let listeners = state.withLock { state in
            state.epoch = nil
            state.unavailable = reason
            return Array(state.listeners.values)
        }
        for listener in listeners { listener(.withdrawn(reason: reason, endStreams: endStreams)) }
    }

    /// Returns once a store has been installed (at once if one has), or when the task is cancelled.
    public func waitForFirstEpoch() async {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await Completion<Void>.wait { completion in
                let ready = state.withLock { state in
                    if state.lastNumber > 0 || Task.isCancelled { return true }
                    state.firstEpochWaiters[id] = completion
                    return false
                }
                if ready { completion.complete() }
            }
        } onCancel: {
            state.withLock { $0.firstEpochWaiters.removeValue(forKey: id) }?.complete()
        }
    }

    /// `listener` hears every change (from the thread making it; it must not block).
    public func observe(_ listener: @escaping @Sendable (Change) -> Void) -> UInt64 {
        state.withLock { state in
            state.nextListener += 1
            state.listeners[state.nextListener] = listener
            return state.nextListener
        }
    }

    public func stopObserving(_ token: UInt64) {
        _ = state.withLock { $0.listeners.removeValue(forKey: token) }
    }
}
