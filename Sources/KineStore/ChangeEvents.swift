public import KineCore
import KineSQL

/// The events of one etcd revision, in the order the write made them.
public struct RevisionEvents: Sendable {
    public var revision: Int64
    public var events: [Event]
    /// Row ids the revision spans (the WatchHub's tail position).
    var lastID: Int64
    /// The row id of each event (the read cache keeps it as the key's latest row).
    var rowIDs: [Int64]

    init(revision: Int64, events: [Event], lastID: Int64, rowIDs: [Int64]) {
        self.revision = revision
        self.events = events
        self.lastID = lastID
        self.rowIDs = rowIDs
    }

    /// Appends one row's event (or, with nil, a row that is no event) of this revision.
    mutating func append(_ event: Event?, rowID: Int64) {
        if let event {
            events.append(event)
            rowIDs.append(rowID)
        }
        lastID = rowID
    }
}

enum ChangeEvents {
    /// Turns change rows (`StoreSQL.changeColumns`, oldest first) into events grouped by revision.
    /// Go kine's gap-fill rows and its `compact_rev_key` bookkeeping row are not changes.
    static func group(_ rows: [SQLRow]) -> [RevisionEvents] {
        var groups: [RevisionEvents] = []
        for row in rows {
            guard let stored = StoredRow(row) else { continue }
            groups.append(
                event(stored, previous: StoredRow(row, offset: StoreSQL.rowColumnCount)), rowID: stored.id, revision: stored.modRevision)
        }
        return groups
    }

    static func event(_ row: StoredRow, previous: StoredRow?) -> Event? {
        if row.name == KeyMapping.compactName { return nil }
        if row.deleted && row.prevRevision == 0 && row.name.starts(with: Array("gap-".utf8)) { return nil }
        let prevKV = previous.flatMap { $0.deleted ? nil : $0.keyValue }
        if row.deleted {
            let key = KeyMapping.clientKey(forName: row.name)
            return Event(type: .delete, kv: KeyValue(key: key, modRevision: row.modRevision), prevKV: prevKV)
        }
        return Event(type: .put, kv: row.keyValue, prevKV: prevKV)
    }
}

extension [RevisionEvents] {
    /// Appends one row's event (or a row that is no event) to its revision's group, starting a
    /// group when the revision changes; rows come in id order.
    mutating func append(_ event: Event?, rowID: Int64, revision: Int64) {
        if last?.revision != revision { append(RevisionEvents(revision: revision, events: [], lastID: rowID, rowIDs: [])) }
        self[count - 1].append(event, rowID: rowID)
    }
}
