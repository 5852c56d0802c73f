import KineCore
import Synchronization

/// The newest state of every key, in memory, exactly as of one position in the kine table.
///
/// Loaded once from the table (`load`), then advanced by the WatchHub with every revision it
/// publishes, in id order, so the cache is always the table's state at the hub's `lastID`: no
/// revision is skipped or applied twice. Range reads at the current revision are answered from
/// here (after the read barrier for linearizable ones, `WatchHub.sync`), and the Writer
/// evaluates batches against it instead of reading their keys back (`Writer.processFromCache`).
///
/// Tombstones are kept (key → row id of the delete) because the next write of the key records
/// that id as its `prev_revision`, as it would read it from the table; compaction drops them
/// when it deletes their rows.
final class KeyValueCache: Sendable {
    struct Entry: Sendable {
        var kv: KeyValue
        var rowID: Int64
    }

    struct Tombstone: Sendable {
        var rowID: Int64
        var revision: Int64
    }

    private struct State: Sendable {
        var live = SortedKeyMap<Entry>()
        var tombstones: [Bytes: Tombstone] = [:]
        /// Id of the last row applied and the revision it belongs to; nil until loaded.
        var lastID: Int64?
        var revision: Int64 = 0
        /// Bytes of the live keys and values (metrics).
        var bytes = 0

        /// Live values in `range`, in key order, at most `limit`.
        func kvs(in range: KeyRange, limit: Int = .max) -> [KeyValue] {
            var kvs: [KeyValue] = []
            live.forEach(in: range) { _, entry in
                kvs.append(entry.kv)
                return kvs.count < limit
            }
            return kvs
        }
    }

    private let state = Mutex(State())

    /// Whether the cache holds a state (false until the first load).
    var isLoaded: Bool { state.withLock { $0.lastID != nil } }

    /// Replaces everything with the table's latest rows (tombstones included) as of `lastID`.
    func load(rows: [StoredRow], lastID: Int64, revision: Int64) {
        var tombstones: [Bytes: Tombstone] = [:]
        var live: [(Bytes, Entry)] = []
        live.reserveCapacity(rows.count)
        for row in rows {
            let kv = row.keyValue
            if row.deleted {
                tombstones[kv.key] = Tombstone(rowID: row.id, revision: row.modRevision)
            } else {
                live.append((kv.key, Entry(kv: kv, rowID: row.id)))
            }
        }
        // Rows come in stored-name order, which is client-key order except around the renamed
        // `compact_rev_key`: sort by client key to be sure.
        live.sort { SortedKeyMap<Entry>.compare($0.0, $1.0) < 0 }
        let bytes = live.reduce(0) { $0 + Self.size($1.1) }
        let map = SortedKeyMap(sorted: live)
        state.withLock { state in
            state.live = map
            state.bytes = bytes
            state.tombstones = tombstones
            state.lastID = lastID
            state.revision = revision
        }
    }

    /// Applies published revisions that follow the cache's position, in order.
    func apply(_ groups: [RevisionEvents]) {
        state.withLock { state in
            guard let lastID = state.lastID else { return }
            var position = lastID
            for group in groups where group.lastID > position {
                for (event, rowID) in zip(group.events, group.rowIDs) where rowID > position {
                    let key = event.kv.key
                    switch event.type {
                    case .put:
                        let entry = Entry(kv: event.kv, rowID: rowID)
                        state.bytes += Self.size(entry) - (state.live[key].map(Self.size) ?? 0)
                        state.live.set(key, entry)
                        state.tombstones.removeValue(forKey: key)
                    case .delete:
                        state.bytes -= state.live.remove(key).map(Self.size) ?? 0
                        state.tombstones[key] = Tombstone(rowID: rowID, revision: group.revision)
                    }
                }
                position = group.lastID
                state.revision = max(state.revision, group.revision)
            }
            state.lastID = position
        }
    }

    /// The live values of `keys` (a key absent from the answer is not live), if the cache is at
    /// row `position`; nil when it is somewhere else or not loaded.
    func live(_ keys: some Sequence<Bytes>, at position: Int64) -> [Bytes: KeyValue]? {
        state.withLock { state in
            guard state.lastID == position else { return nil }
            var found: [Bytes: KeyValue] = [:]
            for key in keys {
                if let entry = state.live[key] { found[key] = entry.kv }
            }
            return found
        }
    }

    /// Compaction through `revision` deleted the tombstones at or below it, except the table's
    /// newest row, which always stays: drop the same ones here.
    func compacted(through revision: Int64) {
        state.withLock { state in
            guard let newest = state.lastID else { return }
            state.tombstones = state.tombstones.filter { $0.value.revision > revision || $0.value.rowID >= newest }
        }
    }

    private static func size(_ entry: Entry) -> Int { entry.kv.key.count + entry.kv.value.count }

    /// Keys, tombstones and payload bytes held; nil until loaded.
    var figures: ReadCacheFigures? {
        state.withLock { state in
            state.lastID == nil ? nil : ReadCacheFigures(keys: state.live.count, tombstones: state.tombstones.count, bytes: state.bytes)
        }
    }

    // MARK: Reads

    /// Answers a Range at the cache's current revision; nil when the request names another
    /// revision (history or the future: the table answers those) or the cache is not loaded.
    func range(_ request: RangeRequest) -> RangeResponse? {
        state.withLock { state -> RangeResponse? in
            guard state.lastID != nil else { return nil }
            if request.revision != 0 && request.revision != state.revision { return nil }
            return Self.range(request, in: state)
        }
    }

    /// etcd's read-only txn (no put or delete in either branch, at any depth) at the cache's
    /// current revision, evaluated as the Writer would; nil when a range in it names a revision
    /// or the cache is not loaded.
    func readOnlyTxn(_ txn: TxnRequest) -> TxnResponse? {
        guard Self.isReadOnly(txn) else { return nil }
        return state.withLock { state -> TxnResponse? in
            guard state.lastID != nil else { return nil }
            var response = Self.apply(txn, in: state)
            response.header = ResponseHeader(revision: state.revision)
            return response
        }
    }

    /// Whether `txn` only reads, and only the current revision.
    static func isReadOnly(_ txn: TxnRequest) -> Bool {
        (txn.success + txn.failure).allSatisfy { op in
            switch op {
            case .range(let range): return range.revision == 0
            case .txn(let inner): return isReadOnly(inner)
            case .empty: return true
            case .put, .deleteRange: return false
            }
        }
    }

    /// Every compare, nested ones included, sees the same state (etcd `compareToPath`); nested
    /// txn responses carry no header, as etcd's.
    private static func apply(_ txn: TxnRequest, in state: State) -> TxnResponse {
        let succeeded = txn.compare.allSatisfy { compare in
            CompareEvaluation.evaluate(compare, against: state.kvs(in: KeyRange(key: compare.key, rangeEnd: compare.rangeEnd)))
        }
        var response = TxnResponse(succeeded: succeeded)
        for op in succeeded ? txn.success : txn.failure {
            switch op {
            case .range(let request): response.responses.append(.range(range(request, in: state)))
            case .txn(let inner): response.responses.append(.txn(apply(inner, in: state)))
            case .put, .deleteRange, .empty: continue
            }
        }
        return response
    }

    private static func range(_ request: RangeRequest, in state: State) -> RangeResponse {
        let range = KeyRange(key: request.key, rangeEnd: request.rangeEnd)
        let header = ResponseHeader(revision: state.revision)
        if range.isEmpty { return RangeSelection.apply(request, kvs: [], count: 0, header: header) }
        let total = Int64(state.live.count(in: range))
        if request.countOnly { return RangeSelection.apply(request, kvs: [], count: total, header: header) }
        // One more than the limit tells RangeSelection there are more.
        let wanted = RangeSelection.needsFullRange(request) || request.limit <= 0 ? Int.max : Int(request.limit) + 1
        return RangeSelection.apply(request, kvs: state.kvs(in: range, limit: wanted), count: total, header: header)
    }

    /// The live keys a bulk DeleteRange of stored names `nameRange` deletes, in stored-name order
    /// (the order its tombstones get their ids in), taken from `clientRange` (which holds every
    /// key of `nameRange` except, at most, keys whose stored name sorts differently: the caller
    /// compares the count with what PostgreSQL deleted). Nil unless the cache is at `lastID`.
    func victims(of clientRange: KeyRange, nameRange: KeyRange, at lastID: Int64) -> [(name: Bytes, entry: Entry)]? {
        let found: [(name: Bytes, entry: Entry)]? = state.withLock { state in
            guard state.lastID == lastID else { return nil }
            var found: [(name: Bytes, entry: Entry)] = []
            state.live.forEach(in: clientRange) { key, entry in
                let name = KeyMapping.name(forKey: key)
                if nameRange.contains(name) { found.append((name, entry)) }
                return true
            }
            return found
        }
        return found?.sorted { SortedKeyMap<Entry>.compare($0.name, $1.name) < 0 }
    }

    /// What the Writer needs to evaluate a batch without reading the table: the latest state of
    /// `keys` and every live key of `ranges`, as of the position returned. Nil if not loaded.
    func snapshot(keys: Set<Bytes>, ranges: some Sequence<KeyRange>) -> (states: [Bytes: KeyState], lastID: Int64, revision: Int64)? {
        state.withLock { state in
            guard let lastID = state.lastID else { return nil }
            var states: [Bytes: KeyState] = [:]
            states.reserveCapacity(keys.count)
            for key in keys {
                if let entry = state.live[key] {
                    states[key] = KeyState(kv: entry.kv, rowID: entry.rowID, deleted: false)
                } else if let tombstone = state.tombstones[key] {
                    states[key] = KeyState(kv: KeyValue(key: key, modRevision: tombstone.revision), rowID: tombstone.rowID, deleted: true)
                }
            }
            for range in ranges {
                state.live.forEach(in: range) { key, entry in
                    if states[key] == nil { states[key] = KeyState(kv: entry.kv, rowID: entry.rowID, deleted: false) }
                    return true
                }
            }
            return (states, lastID, state.revision)
        }
    }
}
