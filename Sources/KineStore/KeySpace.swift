import KineCore

/// The latest state of one key: a live value or a tombstone, with the id of its newest row
/// (the next row's `prev_revision`).
struct KeyState: Sendable {
    var kv: KeyValue
    var rowID: Int64
    var deleted: Bool
}

/// A row the Writer will insert. `id` is assigned when the batch's revisions are known.
struct PendingRow: Sendable {
    var name: Bytes
    var created: Bool
    var deleted: Bool
    var createRevision: Int64
    var prevRevision: Int64
    var value: Bytes?
    var version: Int64
    /// Attached lease id (0 = none) and its TTL (Go kine's `lease` column).
    var lease: Int64 = 0
    var leaseTTL: Int64 = 0
    var id: Int64 = 0
    var revision: Int64 = 0
    /// The watch event this row is, so the WatchHub can publish a local commit without reading
    /// it back (the same event the table would give).
    var event: Event
}

/// What the Writer knows about the keys a batch touches: everything it prefetched under the lock,
/// updated by each request of the batch as it executes, so later requests see earlier writes.
struct KeySpace: Sendable {
    /// Client key → latest state. A key that is absent here does not exist (the prefetch covered it).
    var states: [Bytes: KeyState] = [:]
    /// Live keys at past revisions, for Range ops with `revision != 0` inside txns.
    var historic: [HistoricRange: [KeyValue]] = [:]
    /// Leases the batch refers to that exist: id → TTL.
    var leases: [Int64: Int64] = [:]
    /// Leases revoked by the batch so far (their rows go in the same transaction).
    var revokedLeases: [Int64] = []
    var currentRevision: Int64
    var compactRevision: Int64
    /// The id the next row gets. Ids and revisions both grow, but a write that changes several
    /// keys uses one revision and several ids.
    var nextRowID: Int64

    init(currentRevision: Int64, compactRevision: Int64, nextRowID: Int64? = nil) {
        self.currentRevision = currentRevision
        self.compactRevision = compactRevision
        self.nextRowID = nextRowID ?? currentRevision + 1
    }

    func live(_ key: Bytes) -> KeyValue? {
        guard let state = states[key], !state.deleted else { return nil }
        return state.kv
    }

    /// Live keys in `range`, in key order.
    func live(in range: KeyRange) -> [KeyValue] {
        if case .single(let key) = range { return live(key).map { [$0] } ?? [] }
        return states.values.filter { !$0.deleted && range.contains($0.kv.key) }
            .map(\.kv)
            .sorted { KeyRange.less($0.key, $1.key) }
    }
}

/// A range read at a fixed past revision.
struct HistoricRange: Hashable, Sendable {
    var range: KeyRange
    var revision: Int64
}
