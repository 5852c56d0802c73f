import KineCore

/// etcd 3.5's HashKV over kine's rows (etcd `kvHasher`): CRC-32C over the key bucket's name,
/// then, in revision order, each change's bbolt key (8-byte big-endian main revision, `_`, 8-byte
/// big-endian sub revision, `t` for a tombstone) and value (the marshaled `mvccpb.KeyValue`; a
/// tombstone's holds only the key). Changes at or below the compacted revision count only if they
/// are the newest change at or below the hashed revision of a key live there (what a compaction
/// keeps), unless no key is live there at all, when etcd filters nothing.
///
/// Rows arrive in id order (`SubRevisions` numbers them).
struct KeyHistoryHash {
    private(set) var crc = CRC32C()
    private let compactRevision: Int64
    /// Row ids at or below the compacted revision that a compaction at the hashed revision keeps.
    private let kept: Set<Int64>
    /// Whether no key is live at the hashed revision (then nothing is filtered).
    private let nothingLive: Bool
    private var numbering = SubRevisions()

    init(compactRevision: Int64, kept: Set<Int64>, nothingLive: Bool) {
        self.compactRevision = compactRevision
        self.kept = kept
        self.nothingLive = nothingLive
        crc.update(Self.keyBucket)
    }

    static let keyBucket = Array("key".utf8)

    mutating func add(_ row: StoredRow) {
        guard let (key, change) = numbering.entry(row) else { return }
        if row.modRevision <= compactRevision && !nothingLive && !kept.contains(row.id) { return }
        crc.update(key)
        crc.update(change)
    }

    var value: UInt32 { crc.value }

    /// The stored value etcd writes for the row, nil for a row that is no change.
    static func change(_ row: StoredRow) -> [UInt8]? {
        if row.name == KeyMapping.compactName { return nil }
        if row.deleted && row.prevRevision == 0 && row.name.starts(with: Array("gap-".utf8)) { return nil }
        let kv = row.keyValue
        return row.deleted ? KeyValueEncoding.encode(KeyValue(key: kv.key)) : KeyValueEncoding.encode(kv)
    }

    /// etcd's bbolt key for a revision (`revToBytes`, plus the tombstone mark).
    static func revisionKey(main: Int64, sub: Int64, tombstone: Bool) -> [UInt8] {
        bigEndian(main) + [UInt8(ascii: "_")] + bigEndian(sub) + (tombstone ? [UInt8(ascii: "t")] : [])
    }

    static func bigEndian(_ value: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> Int64(56 - 8 * $0)) }
    }
}

/// etcd's key bucket entries for kine's rows, fed in id order: the sub revision is a change's
/// position within its revision, as the Writer lays a write's rows out in the order of its
/// operations; rows that are no change (Go kine's gap and `compact_rev_key` rows) get none.
struct SubRevisions {
    private var revision: Int64 = -1
    private var sub: Int64 = 0

    /// The bbolt key and value etcd stores for `row`, nil for a row that is no change.
    mutating func entry(_ row: StoredRow) -> (key: [UInt8], value: [UInt8])? {
        guard let change = KeyHistoryHash.change(row) else { return nil }
        if row.modRevision != revision {
            revision = row.modRevision
            sub = 0
        } else {
            sub += 1
        }
        return (KeyHistoryHash.revisionKey(main: row.modRevision, sub: sub, tombstone: row.deleted), change)
    }
}

/// `mvccpb.KeyValue` as etcd's gogo protobuf marshals it: fields 1-6 in order, zero and empty
/// fields left out. Kept here rather than in KineProto because the hash needs these exact bytes
/// whatever the protobuf library does.
enum KeyValueEncoding {
    static func encode(_ kv: KeyValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(kv.key.count + kv.value.count + 24)
        bytesField(1, kv.key, into: &out)
        varintField(2, UInt64(bitPattern: kv.createRevision), into: &out)
        varintField(3, UInt64(bitPattern: kv.modRevision), into: &out)
        varintField(4, UInt64(bitPattern: kv.version), into: &out)
        bytesField(5, kv.value, into: &out)
        varintField(6, UInt64(bitPattern: kv.lease), into: &out)
        return out
    }

    static func varintField(_ field: UInt8, _ value: UInt64, into out: inout [UInt8]) {
        guard value != 0 else { return }
        out.append(field << 3)
        varint(value, into: &out)
    }

    static func bytesField(_ field: UInt8, _ value: [UInt8], into out: inout [UInt8]) {
        guard !value.isEmpty else { return }
        out.append(field << 3 | 2)
        varint(UInt64(value.count), into: &out)
        out.append(contentsOf: value)
    }

    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }
}
