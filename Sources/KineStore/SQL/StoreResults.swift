import KineSQL

/// The header every statement family reads: current revision, compacted revision, newest id.
struct StoreHeader: Sendable, Equatable {
    var currentRevision: Int64
    var compactRevision: Int64
    var newestID: Int64

    /// Decodes `StoreSQL.header`'s columns; an empty table (no row) is all zeros.
    init(row: SQLRow?) {
        currentRevision = row?.int64(0) ?? 0
        compactRevision = row?.int64(1) ?? 0
        newestID = row?.int64(2) ?? 0
    }

    init(currentRevision: Int64, compactRevision: Int64, newestID: Int64) {
        self.currentRevision = currentRevision
        self.compactRevision = compactRevision
        self.newestID = newestID
    }
}

/// What `StoreSQL.guardedInsert` did: wrote its rows, or not, and whether the sole-writer lock
/// admitted the transaction (not admitted: another process holds it, and nothing was written).
struct GuardedInsertOutcome: Sendable, Equatable {
    var wrote: Bool
    var admitted: Bool
}

/// The header of a read pinned at a revision (`StoreSQL.headerCTE`): the id bound is the last
/// row id the read may see.
struct ReadHeader: Sendable, Equatable {
    var currentRevision: Int64
    var compactRevision: Int64
    var idBound: Int64

    init(row: SQLRow?) {
        currentRevision = row?.int64(0) ?? 0
        compactRevision = row?.int64(1) ?? 0
        idBound = row?.int64(2) ?? 0
    }
}

/// A range read: its header and the latest rows of the matching keys.
struct RangeRows: Sendable {
    var header: ReadHeader
    var rows: [StoredRow]
}

/// A count-only read: its header and the number of live keys.
struct RangeCount: Sendable {
    var header: ReadHeader
    var count: Int64
}

/// The read cache's starting point: the table's position and the latest row of every name.
struct CacheStart: Sendable {
    var currentRevision: Int64
    var newestID: Int64
    var rows: [StoredRow]
}

/// Change rows for watchers, grouped by revision; `rowCount` tells a caller paging by row
/// count whether the page was full.
struct ChangePage: Sendable {
    var groups: [RevisionEvents]
    var rowCount: Int
}

/// A lease a write batch refers to (`StoreSQL.leases`).
struct LeaseRow: Sendable {
    var id: Int64
    var ttl: Int64
    var expired: Bool
}

/// A lease's granted TTL and the whole seconds it has left.
struct LeaseRemaining: Sendable {
    var grantedTTL: Int64
    var remaining: Int64
}
