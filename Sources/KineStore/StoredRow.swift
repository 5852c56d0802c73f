import KineCore
import KineSQL

/// One row of the kine table, as the store reads it.
struct StoredRow: Sendable {
    var id: Int64
    var name: Bytes
    var created: Bool
    var deleted: Bool
    var createRevision: Int64
    var prevRevision: Int64
    var value: Bytes
    /// `kv_version`, or derived for rows Go kine wrote (see `StoreSQL.rowColumns`).
    var version: Int64
    /// The etcd revision of the write this row belongs to (`kv_revision`, else `id`).
    var modRevision: Int64
    /// The attached lease (`kv_lease`), 0 for none.
    var lease: Int64

    init(
        id: Int64, name: Bytes, created: Bool, deleted: Bool, createRevision: Int64, prevRevision: Int64, value: Bytes, version: Int64,
        modRevision: Int64, lease: Int64
    ) {
        self.id = id
        self.name = name
        self.created = created
        self.deleted = deleted
        self.createRevision = createRevision
        self.prevRevision = prevRevision
        self.value = value
        self.version = version
        self.modRevision = modRevision
        self.lease = lease
    }

    /// Decodes the columns of `StoreSQL.rowColumns` starting at `offset`; nil for the NULL row of
    /// an outer join that matched nothing.
    init?(_ row: SQLRow, offset: Int = 0) {
        guard !row.isNull(offset) else { return nil }
        id = row.int64(offset)
        name = row.bytes(offset + 1)
        created = row.int64(offset + 2) != 0
        deleted = row.int64(offset + 3) != 0
        createRevision = row.int64(offset + 4)
        prevRevision = row.int64(offset + 5)
        value = row.bytes(offset + 6)
        version = row.int64(offset + 7)
        modRevision = row.int64(offset + 8)
        lease = row.int64(offset + 9)
    }

    /// The client's view of this row.
    var keyValue: KeyValue {
        var kv = KeyValue(key: KeyMapping.clientKey(forName: name), modRevision: modRevision, version: version, value: value, lease: lease)
        // Go kine stores 0 in create rows' create_revision; the row's own revision is meant.
        kv.createRevision = created && createRevision == 0 ? modRevision : createRevision
        if name == KeyMapping.apiserverCompactName {
            let decoded = KeyMapping.decodeCompactValue(value)
            kv.value = decoded.value
            kv.version = decoded.version
        }
        return kv
    }
}

/// Where the client's key space meets the kine table's `name` column.
enum KeyMapping {
    /// Go kine's own bookkeeping row: its `prev_revision` holds the compacted revision.
    static let compactName: Bytes = Array("compact_rev_key".utf8)
    /// kube-apiserver's `compact_rev_key` lives here, as Go kine keeps it, valued `"<version>|<value>"`.
    static let apiserverCompactName: Bytes = Array("compact_rev_key_apiserver".utf8)

    static func name(forKey key: Bytes) -> Bytes {
        key == compactName ? apiserverCompactName : KeyEncoding.encode(key)
    }

    static func clientKey(forName name: Bytes) -> Bytes {
        name == apiserverCompactName ? compactName : KeyEncoding.decode(name)
    }

    /// What goes in the `value` column for a client value.
    static func storedValue(key: Bytes, value: Bytes, version: Int64) -> Bytes {
        guard key == compactName else { return value }
        return Array("\(version)|".utf8) + value
    }

    /// Go kine's encoding of the apiserver compact key; a legacy value without `|` is the version
    /// alone, with value "0" (Go kine's reading, k3s#13650).
    static func decodeCompactValue(_ stored: Bytes) -> (version: Int64, value: Bytes) {
        if let bar = stored.firstIndex(of: UInt8(ascii: "|")) {
            let version = Int64(String(decoding: stored[..<bar], as: UTF8.self)) ?? 0
            return (version, Array(stored[(bar + 1)...]))
        }
        return (Int64(String(decoding: stored, as: UTF8.self)) ?? 0, Array("0".utf8))
    }

    /// The stored-name bounds of a client range.
    static func nameRange(_ range: KeyRange) -> KeyRange {
        switch range {
        case .single(let key): return .single(name(forKey: key))
        case .interval(let start, let end): return .interval(start: KeyEncoding.encode(start), end: end.map(KeyEncoding.encode))
        }
    }
}
