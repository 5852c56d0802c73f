public import KineCore
import KineSync
import Synchronization

/// The watchers of one Watch stream, with etcd 3.5's rules (etcd `watchServer` + `watchableStore`):
/// created responses in request order and before any event of their watcher; synced watchers get
/// one response per revision (header = that revision); watchers behind catch up in batches
/// (header = the current revision); progress notifications and progress requests; compaction
/// cancels. All responses leave through one send loop, so header revisions never go backwards.
public final class WatchSession: Sendable {
    public typealias Sender = @Sendable (WatchResponse) async throws -> Void

    struct Watcher: Sendable {
        var id: Int64
        var range: KeyRange
        /// The first revision this watcher has not been given yet.
        var nextRevision: Int64
        var prevKV: Bool
        var noPut: Bool
        var noDelete: Bool
        var progressNotify: Bool
        var fragment: Bool
        var sentSinceProgress = false
        /// Carried over from the previous HA epoch: reads history with the session's continuity.
        var carried = false
    }

    private enum Control: Sendable {
        case created(WatchResponse, Watcher?)
        case response(WatchResponse)
    }

    private struct State: Sendable {
        /// The hub this session follows; replaced when the watchers go on in a new HA epoch.
        var hub: WatchHub
        /// Set once the watchers went on in a new epoch (`continueEpoch`).
        var continuity: WatchContinuity?
        var watchers: [Int64: Watcher] = [:]
        /// Ids handed out but not yet active (their created response is queued).
        var pendingIDs: Set<Int64> = []
        var nextID: Int64 = 0
        var control: [Control] = []
        var progressRequested = false
        var progressTick = false
        var dirty = true
        var closed = false
        /// Set by `endEpoch`: the send loop ends once the queued responses are out.
        var closeWhenFlushed = false
        /// The send loop, parked until something changes.
        var waiter: Completion<Void>?
        /// The revision every synced watcher has been given everything up to.
        var deliveredThrough: Int64 = 0
        /// Watchers this session has added to the process-wide gauge; `finished` once its send
        /// loop ended and took them out again.
        var countedWatchers = 0
        var finished = false
    }

    private let send: Sender
    private let state: Mutex<State>
    /// The process's figures (one set for every epoch's hub).
    private let statistics: StoreStatistics
    /// Largest response etcd sends before fragmenting: max request bytes + 512 KiB.
    private let fragmentThreshold: Int

    public init(hub: WatchHub, fragmentThreshold: Int = 1_572_864 + 524_288, send: @escaping Sender) {
        self.send = send
        self.fragmentThreshold = fragmentThreshold
        state = Mutex(State(hub: hub))
        statistics = hub.statistics
    }

    /// The hub followed now.
    private var hub: WatchHub { state.withLock { $0.hub } }

    // MARK: Requests

    /// Handles one request from the client. Returns once it is queued for the send loop.
    public func handle(_ request: WatchRequest) async {
        switch request {
        case .create(let create): await createWatcher(create, synced: nil)
        case .cancel(let id): cancel(id)
        case .progress:
            // try?: a progress request answers with the newest revision the hub has; a failed sync leaves it as it was.
            _ = try? await hub.sync()
            update { $0.progressRequested = true }
        case .empty: break
        }
    }

    /// Answers a create the caller may not make as etcd does: created and cancelled at once,
    /// under the id the client asked for, with `reason`.
    public func refuse(_ request: WatchCreateRequest, reason: String) {
        let revision = hub.revision
        update {
            $0.control.append(
                .created(
                    WatchResponse(
                        header: ResponseHeader(revision: revision), watchID: request.watchID, created: true, canceled: true,
                        cancelReason: reason), nil))
        }
    }

    /// Creates a watcher whose "now" is `current`, a revision the caller's read barrier (started
    /// after the request arrived) saw published.
    public func create(_ request: WatchCreateRequest, current: Int64) async {
        await createWatcher(request, synced: current)
    }

    private func createWatcher(_ request: WatchCreateRequest, synced: Int64?) async {
        var key = request.key
        if key.isEmpty { key = [0] }  // etcd: "\0" is the smallest key
        let range = KeyRange(key: key, rangeEnd: request.rangeEnd)
        // "From now" must not replay writes committed before the create, so it waits for the hub
        // to catch up with the database (one query). With an explicit start revision the events are
        // fixed by that revision, and the header is only informative: no query.
        // A caller that made the barrier itself passes what it saw (`synced`).
        let current: Int64
        if let synced {
            current = synced
        } else if request.startRevision == 0 {
            // try?: without the database, the hub's newest revision is the best "now" there is (etcd's answer at that moment).
            current = (try? await hub.sync()) ?? hub.revision
        } else {
            current = hub.revision
        }
        func refuse(_ reason: String) {
            update {
                $0.control.append(
                    .created(
                        WatchResponse(
                            header: ResponseHeader(revision: current), watchID: -1, created: true, canceled: true, cancelReason: reason),
                        nil))
            }
        }
        if range.isEmpty { return refuse("mvcc: watcher range is empty") }
        let id: Int64? = state.withLock { state in
            if request.watchID != 0 {
                if state.watchers[request.watchID] != nil || state.pendingIDs.contains(request.watchID) { return nil }
                state.pendingIDs.insert(request.watchID)
                return request.watchID
            }
            while state.watchers[state.nextID] != nil || state.pendingIDs.contains(state.nextID) { state.nextID += 1 }
            defer { state.nextID += 1 }
            state.pendingIDs.insert(state.nextID)
            return state.nextID
        }
        guard let id else { return refuse("mvcc: duplicate watch ID provided on the WatchStream") }
        let watcher = Watcher(
            id: id, range: range, nextRevision: request.startRevision == 0 ? current + 1 : request.startRevision,
            prevKV: request.prevKV, noPut: request.filters.contains(0), noDelete: request.filters.contains(1),
            progressNotify: request.progressNotify, fragment: request.fragment)
        update {
            $0.control.append(.created(WatchResponse(header: ResponseHeader(revision: current), watchID: id, created: true), watcher))
        }
    }

    /// A queued created response still goes out first (etcd answers every create), but the
    /// watcher never becomes active.
    private func cancel(_ id: Int64) {
        update { state in
            let removed = state.watchers.removeValue(forKey: id) != nil || state.pendingIDs.remove(id) != nil
            self.countWatchers(&state)
            if removed {
                state.control.append(
                    .response(WatchResponse(header: ResponseHeader(revision: state.hub.revision), watchID: id, canceled: true)))
            }
        }
    }

    /// Periodic progress: watchers that asked for it and got nothing since the last tick hear the
    /// current revision.
    public func progressTick() {
        update { $0.progressTick = true }
    }

    /// The store this session follows was replaced (HA re-point or promotion): every watcher is
    /// cancelled as compacted at `compactRevision`, the new epoch's start, as etcd cancels a
    /// watch whose revision was compacted away (clients re-list, R3 of docs/ha.md). The send loop
    /// ends once those responses are out; the stream goes on with a new session.
    public func endEpoch(compactRevision: Int64) {
        update { state in
            let ids = Set(state.watchers.keys).union(state.pendingIDs).sorted()
            state.watchers = [:]
            state.pendingIDs = []
            self.countWatchers(&state)
            for id in ids {
                state.control.append(
                    .response(
                        WatchResponse(header: ResponseHeader(revision: 0), watchID: id, canceled: true, compactRevision: compactRevision)))
            }
            state.closeWhenFlushed = true
        }
    }

    /// The store this session follows was replaced by one that holds, unchanged, every revision
    /// the previous one published (`continuity`, a promotion): the watchers go on,
    /// gap-free, on `hub`. Returns false, changing nothing, when that cannot be shown: the
    /// previous hub (stopped by the caller, so it publishes nothing more) is past
    /// `continuity.through`, so this session may have sent something the new store lacks; the
    /// caller then ends the epoch as compacted. A watcher still behind the previous compaction is
    /// cancelled as compacted on its own.
    public func continueEpoch(on newHub: WatchHub, continuity: WatchContinuity) -> Bool {
        let (continued, wake) = state.withLock { state -> (Bool, Completion<Void>?) in
            guard !state.closed, !state.closeWhenFlushed, state.hub.revision <= continuity.through else { return (false, nil) }
            for (id, var watcher) in state.watchers {
                if watcher.nextRevision <= continuity.compactedBefore {
                    state.watchers.removeValue(forKey: id)
                    state.control.append(
                        .response(
                            WatchResponse(
                                header: ResponseHeader(revision: 0), watchID: id, canceled: true, compactRevision: continuity.epochStart)))
                } else {
                    watcher.carried = true
                    state.watchers[id] = watcher
                }
            }
            state.control = state.control.map { item in
                guard case .created(let response, var watcher?) = item else { return item }
                watcher.carried = true
                return .created(response, watcher)
            }
            self.countWatchers(&state)
            state.hub = newHub
            state.continuity = continuity
            state.dirty = true
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        wake?.complete()
        return continued
    }

    /// Ends the send loop.
    public func close() {
        let waiter = state.withLock { state in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.complete()
    }

    private func update(_ body: (inout State) -> Void) {
        let waiter = state.withLock { state in
            body(&state)
            state.dirty = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.complete()
    }

    /// The hub published revisions. Most publications concern none of a session's watchers (every
    /// put of the process reaches every stream): when none of them can match, the watchers move
    /// past the revisions here, on the publishing thread, and the send loop stays parked.
    private func published(_ publication: WatchHub.Publication, by publisher: WatchHub) {
        let waiter = state.withLock { state -> Completion<Void>? in
            if Self.passWithoutEvents(&state, publication, by: publisher) { return nil }
            state.dirty = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.complete()
    }

    /// Most watcher-event pairs checked on the publishing thread (the Writer's, for this
    /// process's commits); a larger publication wakes the send loop.
    static let passCheckLimit = 256

    /// Moves every synced watcher past `publication` when no event in it is in a watcher's range
    /// and nothing else waits for the send loop; false (change nothing) otherwise. Does what a
    /// send loop round would do for such a publication (`deliverRound` step 1).
    private static func passWithoutEvents(_ state: inout State, _ publication: WatchHub.Publication, by publisher: WatchHub) -> Bool {
        guard !state.dirty, !state.closed, !state.closeWhenFlushed, state.control.isEmpty, state.pendingIDs.isEmpty,
            !state.progressRequested, !state.progressTick, state.continuity == nil, state.hub === publisher,
            state.deliveredThrough == publication.previousRevision, let last = publication.groups.last,
            last.revision == publication.revision
        else { return false }
        let eventCount = publication.groups.reduce(0) { $0 + $1.events.count }
        guard eventCount * max(state.watchers.count, 1) <= passCheckLimit else { return false }
        let previous = publication.previousRevision
        for watcher in state.watchers.values {
            // A watcher behind the session catches up in a round.
            guard watcher.nextRevision > previous else { return false }
            for group in publication.groups where watcher.nextRevision <= group.revision {
                if group.events.contains(where: { watcher.range.contains($0.kv.key) }) { return false }
            }
        }
        for id in state.watchers.keys {
            if let next = state.watchers[id]?.nextRevision, next <= last.revision {
                state.watchers[id]?.nextRevision = last.revision + 1
            }
        }
        state.deliveredThrough = publication.revision
        return true
    }

    /// Brings the process-wide watchers gauge in line with this session's watchers; called, under
    /// the lock, wherever they change.
    private func countWatchers(_ state: inout State) {
        guard !state.finished else { return }
        let delta = state.watchers.count - state.countedWatchers
        state.countedWatchers = state.watchers.count
        if delta != 0 { statistics.count { $0.watchers += delta } }
    }

    // MARK: Send loop

    /// Sends responses until `close()` or a send fails (the stream is gone).
    public func run() async throws {
        var followed = hub
        var token = followed.subscribe { [weak self, followed] in self?.published($0, by: followed) }
        statistics.count { $0.watchStreams += 1 }
        defer {
            followed.unsubscribe(token)
            statistics.count { $0.watchStreams -= 1 }
            state.withLock { state in
                statistics.count { $0.watchers -= state.countedWatchers }
                state.countedWatchers = 0
                state.finished = true
            }
        }
        state.withLock { $0.deliveredThrough = $0.hub.revision }
        while true {
            await waitForWork()
            if state.withLock({ $0.closed }) { return }
            let current = hub
            if current !== followed {
                // The watchers went on in a new epoch: wake on the new hub's revisions.
                followed.unsubscribe(token)
                followed = current
                token = followed.subscribe { [weak self, followed] in self?.published($0, by: followed) }
            }
            try await deliverRound(hub: current)
            if state.withLock({ $0.closeWhenFlushed && $0.control.isEmpty }) { return }
        }
    }

    private func waitForWork() async {
        await Completion<Void>.wait { completion in
            let now = state.withLock { state in
                if state.dirty || state.closed {
                    state.dirty = false
                    return true
                }
                state.waiter = completion
                return false
            }
            if now { completion.complete() }
        }
    }

    private func deliverRound(hub: WatchHub) async throws {
        let target = hub.revision
        let previous = state.withLock { $0.deliveredThrough }

        // 1. Synced watchers: each new revision, in order, from memory.
        if target > previous {
            let compacted = hub.knownCompactedRevision
            if let groups = hub.recent(after: previous, through: target) {
                for group in groups {
                    let synced = state.withLock { state in
                        state.watchers.values.filter { $0.nextRevision <= group.revision && $0.nextRevision > previous }
                    }
                    for watcher in synced.sorted(by: { $0.id < $1.id }) {
                        let events = filter(group.events, for: watcher, compacted: compacted)
                        if !events.isEmpty {
                            try await sendEvents(events, watcher: watcher, header: group.revision)
                        }
                        advance(watcher.id, to: group.revision + 1, sent: !events.isEmpty)
                    }
                }
            }
            state.withLock { $0.deliveredThrough = target }
        }

        // 2. Control responses in request order; a created watcher becomes active after its response.
        let control = state.withLock { state in
            defer { state.control = [] }
            return state.control
        }
        for item in control {
            switch item {
            case .created(let response, let watcher):
                try await send(response)
                if let watcher {
                    state.withLock { state in
                        if state.pendingIDs.remove(watcher.id) != nil { state.watchers[watcher.id] = watcher }
                        self.countWatchers(&state)
                    }
                }
            case .response(let response):
                try await send(response)
            }
        }

        // 3. Watchers behind: catch up from memory or the table, batched, header = target.
        let behind = state.withLock { state in state.watchers.values.filter { $0.nextRevision <= target } }
        for watcher in behind.sorted(by: { $0.id < $1.id }) {
            try await catchUp(watcher, target: target, hub: hub)
        }

        // 4. Progress.
        // Only a progress tick needs the watchers themselves: copying every watcher on every
        // round made creating many watches on one stream quadratic.
        let (requested, tick, anyWatcher, allSynced, ticked) = state.withLock { state in
            defer {
                state.progressTick = false
            }
            let allSynced = state.watchers.values.allSatisfy { $0.nextRevision > target }
            let ticked = state.progressTick ? state.watchers.values.filter(\.progressNotify) : []
            return (state.progressRequested, state.progressTick, !state.watchers.isEmpty, allSynced, ticked)
        }
        if requested && allSynced {
            state.withLock { $0.progressRequested = false }
            if anyWatcher {
                try await send(WatchResponse(header: ResponseHeader(revision: target), watchID: -1))
            }
        }
        if tick {
            for watcher in ticked.sorted(by: { $0.id < $1.id }) {
                if watcher.nextRevision > target && !watcher.sentSinceProgress {
                    try await send(WatchResponse(header: ResponseHeader(revision: target), watchID: watcher.id))
                }
            }
            state.withLock { state in
                for id in state.watchers.keys { state.watchers[id]?.sentSinceProgress = false }
            }
        }
    }

    private func catchUp(_ watcher: Watcher, target: Int64, hub: WatchHub) async throws {
        var next = watcher.nextRevision
        let continuity = watcher.carried ? state.withLock { $0.continuity } : nil
        // History below the compacted revision is gone even if the ring still holds it (a watcher
        // carried over from the previous epoch reads below the epoch's mark, `WatchContinuity`).
        // try?: the hub's last known compacted revision stands in while the database does not answer.
        let tableCompacted = (try? await hub.compactedRevision()) ?? hub.knownCompactedRevision
        let compacted = continuity?.compactedRevision(forCarried: tableCompacted) ?? tableCompacted
        if next < compacted {
            try await compactedCancel(watcher, compacted: compacted)
            return
        }
        while next <= target {
            let groups: [RevisionEvents]
            let through: Int64
            if let recent = hub.recent(after: next - 1, through: target) {
                (groups, through) = (recent, target)
                statistics.count { $0.catchUpsFromMemory += 1 }
            } else {
                do {
                    (groups, through) = try await hub.history(watcher.range, from: next, continuity: continuity)
                    statistics.count { $0.catchUpsFromDatabase += 1 }
                } catch let error where error == .compacted {
                    // try?: the cancel must go out even if the compacted revision cannot be read; 0 is etcd's "unknown".
                    try await compactedCancel(watcher, compacted: (try? await hub.compactedRevision()) ?? 0)
                    return
                } catch {
                    // The database is unavailable: try again on the next round.
                    update { _ in }
                    // try?: cancellation ends the catch-up; the loop checks it.
                    try? await Task.sleep(for: .milliseconds(100))
                    return
                }
            }
            let complete = min(through, target)
            let events = groups.filter { $0.revision >= next && $0.revision <= complete }
                .flatMap { filter($0.events, for: watcher, compacted: compacted) }
            guard state.withLock({ $0.watchers[watcher.id] != nil }) else { return }
            if !events.isEmpty {
                try await sendEvents(events, watcher: watcher, header: target)
            }
            let newNext = max(complete, next - 1) + 1
            advance(watcher.id, to: newNext, sent: !events.isEmpty)
            if newNext <= next { return }
            next = newNext
        }
    }

    private func compactedCancel(_ watcher: Watcher, compacted: Int64) async throws {
        state.withLock { state in
            state.watchers.removeValue(forKey: watcher.id)
            countWatchers(&state)
        }
        statistics.count { $0.compactedCancels += 1 }
        // etcd 3.5 sends this with a zero header revision and no reason; "canceled" is derived
        // from the compact revision, so a negative start on a never-compacted store is dropped
        // with a response that says neither.
        try await send(
            WatchResponse(header: ResponseHeader(revision: 0), watchID: watcher.id, canceled: compacted != 0, compactRevision: compacted))
    }

    private func advance(_ id: Int64, to next: Int64, sent: Bool) {
        state.withLock { state in
            guard var watcher = state.watchers[id] else { return }
            watcher.nextRevision = max(watcher.nextRevision, next)
            if sent { watcher.sentSinceProgress = true }
            state.watchers[id] = watcher
        }
    }

    /// The events of `events` the watcher wants, as etcd has them once compacted at `compacted`
    /// (the memory ring captured them at write time; the table has lost the rows by then): a
    /// compaction removes the tombstones at or below its revision, so a DELETE there is not
    /// sent; and etcd reads `prev_kv` at the event's revision - 1 when it sends the event, which
    /// fails once that revision is compacted, so an event at or below it carries none.
    private func filter(_ events: [Event], for watcher: Watcher, compacted: Int64) -> [Event] {
        var result: [Event] = []
        for var event in events where watcher.range.contains(event.kv.key) {
            if event.type == .put && watcher.noPut { continue }
            if event.type == .delete && (watcher.noDelete || event.kv.modRevision <= compacted) { continue }
            if !watcher.prevKV || event.kv.modRevision <= compacted { event.prevKV = nil }
            result.append(event)
        }
        return result
    }

    /// Sends events, split into fragments when the watcher asked for it and they are too large.
    private func sendEvents(_ events: [Event], watcher: Watcher, header: Int64) async throws {
        statistics.count { $0.eventsSent += events.count }
        guard watcher.fragment else {
            try await send(WatchResponse(header: ResponseHeader(revision: header), watchID: watcher.id, events: events))
            return
        }
        var chunk: [Event] = []
        var size = 0
        for (index, event) in events.enumerated() {
            let eventSize = event.kv.key.count + event.kv.value.count + (event.prevKV.map { $0.key.count + $0.value.count } ?? 0) + 64
            if !chunk.isEmpty && size + eventSize > fragmentThreshold {
                try await send(WatchResponse(header: ResponseHeader(revision: header), watchID: watcher.id, fragment: true, events: chunk))
                chunk = []
                size = 0
            }
            chunk.append(event)
            size += eventSize
            if index == events.count - 1 {
                try await send(WatchResponse(header: ResponseHeader(revision: header), watchID: watcher.id, events: chunk))
            }
        }
    }
}
