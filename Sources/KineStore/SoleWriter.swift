import Synchronization

/// Linearizable reads from memory for a kine process alone on its database.
///
/// A linearizable read must see every write acknowledged before it started, by any kine process
/// on the database; normally that takes a read barrier (a query for the newest id). A process
/// that can prove no other process commits needs none: its own commits are in its memory
/// before they are acknowledged. The proof is the sole-writer lock (`StoreSQL.soleWriterKey`):
/// - every write transaction of every kine process first takes it shared (`admitWrite`, and
///   inside the guarded insert); a transaction that cannot writes nothing and is retried;
/// - a process that finds itself alone (`CommitNotices`: no other listener, no hello heard)
///   takes it exclusively on its Writer's session, then reads the newest id: every other
///   process's commit is at or below it. From then on it answers linearizable reads from memory
///   at its own last commit or that id, whichever is newer;
/// - any notification it did not cause (a newcomer's hello, another process's commit) stops the
///   memory reads at once, and the Writer releases the lock before its next batch;
/// - a refused writer says hello (so the holder lets go) and, after `holderPatience` of
///   refusals, ends the holder's session (a frozen holder would otherwise block every writer);
/// - memory reads also need the holder's listener session to be the one it acquired with
///   (a reconnected listener may have missed a hello) and a round trip on the Writer's session
///   sent within `validity` (the session, and so the lock, still existed then); the Writer
///   confirms every `confirmInterval` while it holds the lock and is otherwise idle.
///
/// This struct holds the rules; `SoleWriterBoard` shares them between the Writer (which acts)
/// and the readers (which ask).
struct SoleWriter: Sendable, Equatable {
    /// How often a process alone tries to take the lock while it does not hold it.
    static let retryInterval = Duration.seconds(2)
    /// While it holds the lock, the Writer makes a round trip at least this often.
    static let confirmInterval = Duration.seconds(1)
    /// Memory reads stop once the last round trip that showed the Writer's session alive was
    /// sent longer ago than this.
    static let validity = Duration.seconds(2)
    /// A writer refused this long ends the holder's session (longer than `validity`, so the
    /// holder's memory reads have stopped by then unless it is still confirming, and it then
    /// hears the hellos).
    static let holderPatience = Duration.seconds(4)

    enum Step: Equatable {
        case none
        /// Take the lock; `listener` is the listening session it is taken under.
        case acquire(listener: Int32)
        case release
        /// Make a round trip on the Writer's session.
        case confirm
    }

    struct Holding: Equatable {
        /// The backend pid of this process's listening session when the lock was taken.
        var listener: Int32
        /// The newest id right after the lock was taken.
        var throughID: Int64
        /// When the last round trip that succeeded on the Writer's session was sent.
        var confirmedAt: ContinuousClock.Instant
    }

    private(set) var holding: Holding?
    private(set) var lastAttempt: ContinuousClock.Instant?

    /// What the Writer should do between batches.
    func step(othersListen: Bool, listener: Int32?, cacheLoaded: Bool, now: ContinuousClock.Instant) -> Step {
        if let holding {
            if othersListen || listener != holding.listener { return .release }
            return now - holding.confirmedAt >= Self.confirmInterval ? .confirm : .none
        }
        guard !othersListen, cacheLoaded, let listener else { return .none }
        if let lastAttempt, now - lastAttempt < Self.retryInterval { return .none }
        return .acquire(listener: listener)
    }

    /// An acquisition was tried at `time` (taken or not).
    mutating func attempted(at time: ContinuousClock.Instant) {
        lastAttempt = time
    }

    mutating func acquired(listener: Int32, throughID: Int64, sentAt: ContinuousClock.Instant) {
        holding = Holding(listener: listener, throughID: throughID, confirmedAt: sentAt)
    }

    /// A round trip sent at `time` succeeded on the Writer's session.
    mutating func confirmed(sentAt time: ContinuousClock.Instant) {
        guard var held = holding else { return }
        held.confirmedAt = max(held.confirmedAt, time)
        holding = held
    }

    /// Released, or the session that held it is gone.
    mutating func released() {
        holding = nil
    }

    /// The id a linearizable read may be answered at from memory (the caller takes the newer of
    /// it and its own Writer's last commit), or nil: make a read barrier.
    func memoryReadsThrough(othersListen: Bool, listener: Int32?, now: ContinuousClock.Instant) -> Int64? {
        guard let holding, !othersListen, listener == holding.listener, now - holding.confirmedAt < Self.validity else { return nil }
        return holding.throughID
    }
}

/// What a writer does while the sole-writer lock refuses its transactions.
struct RefusedWrites: Sendable, Equatable {
    enum Action: Equatable {
        /// Say hello (so the holder lets go), then retry after `delay`.
        case greet(retryAfter: Duration)
        /// The holder has not let go for `SoleWriter.holderPatience`: end its session, then retry.
        case endHolder
    }

    private(set) var since: ContinuousClock.Instant?
    private var attempts = 0

    mutating func refused(now: ContinuousClock.Instant) -> Action {
        let since = self.since ?? now
        self.since = since
        attempts += 1
        if now - since >= SoleWriter.holderPatience {
            // The next patience period starts now: at most one session ended per period.
            self.since = now
            attempts = 0
            return .endHolder
        }
        // 2, 4, 8 … ms, at most 50: the holder normally lets go within a few milliseconds.
        return .greet(retryAfter: .milliseconds(min(50, 1 << min(attempts, 6))))
    }

    mutating func admitted() {
        since = nil
        attempts = 0
    }
}

/// `SoleWriter` shared by the Writer (acts between batches) and linearizable readers (ask).
final class SoleWriterBoard: Sendable {
    private let state = Mutex(SoleWriter())
    /// This process's listening session's backend pid (nil while it connects); set by `KineStore.run`.
    /// (In a struct: a bare function type in a `Mutex` is re-wrapped in a thunk on every access.)
    private struct ListenerSource: Sendable {
        var pid: @Sendable () -> Int32?
    }
    private let listenerSource = Mutex(ListenerSource { nil })

    func setListener(_ pid: @escaping @Sendable () -> Int32?) {
        listenerSource.withLock { $0.pid = pid }
    }

    var listener: Int32? { listenerSource.withLock { $0 }.pid() }

    func step(othersListen: Bool, cacheLoaded: Bool) -> SoleWriter.Step {
        let listener = self.listener
        return state.withLock { $0.step(othersListen: othersListen, listener: listener, cacheLoaded: cacheLoaded, now: .now) }
    }

    func update<T>(_ body: (inout SoleWriter) -> T) -> T {
        state.withLock { body(&$0) }
    }

    var isHeld: Bool { state.withLock { $0.holding != nil } }

    func memoryReadsThrough(othersListen: Bool) -> Int64? {
        let listener = self.listener
        return state.withLock { $0.memoryReadsThrough(othersListen: othersListen, listener: listener, now: .now) }
    }
}
