import Synchronization

/// Whether this process's commits must `NOTIFY kine`. The notification exists for other kine
/// processes on the same database (their watch hubs read the table when it arrives); this
/// process publishes its own commits to its watchers directly. A commit that notifies costs a
/// listening backend and the listener threads a wake-up each, on the put's critical path on a
/// small machine, so a process alone on its database leaves it out.
///
/// "Alone" is learned, never assumed:
/// - it starts as "others listen";
/// - every few seconds a look at `pg_stat_activity` counts the sessions on this database that
///   listen on `kine`, other than this process's listener (`observed`);
/// - a process that starts listening says `hello` on the channel, and any notification this
///   process did not cause (a hello, or a revision it has not published) means someone else is
///   there (`heard`), at once;
/// - a look that started before such a notification arrived is discarded, so a newcomer that the
///   look missed cannot be overruled by it.
/// A newcomer may miss the notifications of commits made between its LISTEN and the moment its
/// hello arrives here; its watch hub reads the table again shortly after it greets.
struct CommitNotices: Sendable, Equatable {
    /// What a process says on the channel once it listens; `listener` is its listening
    /// session's backend pid, so that it can tell its own hello from others'.
    static func hello(from listener: Int32?) -> String { "hello \(listener ?? 0)" }

    private(set) var othersListen = true
    /// Counts notifications that showed someone else (`heard`).
    private(set) var heardCount: UInt64 = 0
    /// Whether PostgreSQL's notification queue is filling up (`queueUsage`): a listening session
    /// stopped reading (a frozen kine process keeps its session), and the queue keeps every
    /// notification that session has not read. Commits then say only their revision, so the
    /// queue fills hundreds of times slower before it refuses every NOTIFY, and with it every
    /// commit that notifies.
    private(set) var queueCrowded = false

    /// The share of the queue in use above which commits leave their events out: 1 % of
    /// PostgreSQL's 8 GB, about 80 MB.
    static let crowdedQueueUsage = 0.01

    /// The queue's usage as a look found it (`pg_notification_queue_usage()`, 0…1); returns
    /// whether that changed `queueCrowded`.
    mutating func queueUsage(_ usage: Double) -> Bool {
        let crowded = usage >= Self.crowdedQueueUsage
        defer { queueCrowded = crowded }
        return crowded != queueCrowded
    }

    /// A notification this process did not cause.
    mutating func heard() {
        othersListen = true
        heardCount &+= 1
    }

    /// Taken before a look at the listeners starts.
    var checkpoint: UInt64 { heardCount }

    /// The outcome of a look at the listeners that started at `checkpoint`; a notification heard
    /// since then wins.
    mutating func observed(othersListening: Bool, since checkpoint: UInt64) {
        guard checkpoint == heardCount else { return }
        othersListen = othersListening
    }

    /// This process cannot tell (its own listener is down): notify.
    mutating func unknown() {
        othersListen = true
    }
}

/// `CommitNotices` shared by the Writer (asks), the watch hub (hears) and the store's look at
/// the listeners (observes).
final class CommitNoticeBoard: Sendable {
    private let state = Mutex(CommitNotices())
    /// Called after every `heard()` (the Writer then lets the sole-writer lock go, `SoleWriter`).
    /// (In a struct: a bare function type in a `Mutex` is re-wrapped in a thunk on every access.)
    private struct Action: Sendable {
        var run: @Sendable () -> Void
    }
    private let onHeard = Mutex(Action {})

    var othersListen: Bool { state.withLock { $0.othersListen } }
    /// What a commit's NOTIFY says (`CommitNoticePayload`): its events too unless the queue is
    /// crowded; nil when nobody else listens.
    func payload(revision: Int64, rows: [PendingRow]) -> String? {
        let (others, crowded) = state.withLock { ($0.othersListen, $0.queueCrowded) }
        guard others else { return nil }
        return CommitNoticePayload.text(revision: revision, rows: crowded ? [] : rows)
    }
    /// See `CommitNotices.queueUsage`.
    func queueUsage(_ usage: Double) -> Bool { state.withLock { $0.queueUsage(usage) } }
    var checkpoint: UInt64 { state.withLock { $0.checkpoint } }
    func heard() {
        state.withLock { $0.heard() }
        onHeard.withLock { $0 }.run()
    }
    func whenHeard(_ action: @escaping @Sendable () -> Void) { onHeard.withLock { $0.run = action } }
    func observed(othersListening: Bool, since checkpoint: UInt64) {
        state.withLock { $0.observed(othersListening: othersListening, since: checkpoint) }
    }
    func unknown() { state.withLock { $0.unknown() } }
}
