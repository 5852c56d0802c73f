public import KineCore
public import KineSQL
public import Logging

/// `kine restore`: an etcd 3.5 snapshot (`etcdctl snapshot save` against etcd) loaded into an
/// empty kine database, history included, so a cluster can move from etcd to kine.
extension KineStore {
    /// What a restore loaded.
    public struct RestoreSummary: Sendable, Equatable {
        public var changes: Int
        public var leases: Int
        public var revision: Int64
        public var compactRevision: Int64
    }

    /// Checks the snapshot's SHA-256 trailer (unless `skipHashCheck`, for a bare backend file),
    /// reads its key, lease and meta buckets, and writes them to the database behind `client` as
    /// kine rows: one row per change, with etcd's revisions, versions and leases, and the
    /// compacted revision as kine's compaction mark. Refuses a database that already holds keys
    /// or leases, and a file that is not a valid snapshot, naming what is wrong.
    public static func restore(
        snapshot file: [UInt8], into client: any SQLClient, skipHashCheck: Bool = false, logger: Logger
    ) async throws(EtcdError) -> RestoreSummary {
        let snapshot: EtcdSnapshot
        do {
            snapshot = try EtcdSnapshot(file: file, skipHashCheck: skipHashCheck)
        } catch {
            throw EtcdError(.invalidArgument, "kine restore: \(error)")
        }
        do {
            _ = try await Schema.prepare(client, migrationLevel: 0, logger: logger)
            let existing = try await client.run(StoreSQL.tableCounts)
            guard existing.rows == 0 && existing.leases == 0 else {
                throw EtcdError(
                    .failedPrecondition,
                    "kine restore: the database is not empty (\(existing.rows) rows, \(existing.leases) leases); restore into a new database"
                )
            }
            let rows = snapshot.kineRows()
            var pipeline = SQLPipeline([StoreSQL.begin, StoreSQL.lock])
            for start in stride(from: 0, to: rows.count, by: 1000) {
                pipeline.add(StoreSQL.insert(Array(rows[start..<min(rows.count, start + 1000)])))
            }
            pipeline.add(StoreSQL.compactMarkRow(compactRevision: snapshot.compactRevision))
            for lease in snapshot.leases { pipeline.add(StoreSQL.restoreLease(id: lease.id, ttl: lease.ttl)) }
            pipeline.add(StoreSQL.sequenceToNewestID)
            pipeline.add(StoreSQL.commit)
            _ = try await client.withSessionPipeline(pipeline)
            return RestoreSummary(
                changes: rows.count, leases: snapshot.leases.count, revision: snapshot.revision, compactRevision: snapshot.compactRevision)
        } catch let error as EtcdError {
            throw error
        } catch let error as SQLError {
            throw EtcdError(.unavailable, "kine restore: \(error)")
        } catch {
            throw EtcdError(.internal, "kine restore: \(error)")
        }
    }
}

/// The contents of an etcd 3.5 snapshot kine restores: the key history, leases and the compacted
/// revision.
struct EtcdSnapshot {
    struct Change {
        var main: Int64
        var tombstone: Bool
        var kv: KeyValue
    }

    var changes: [Change] = []
    var leases: [(id: Int64, ttl: Int64)] = []
    var compactRevision: Int64 = 0
    /// What etcd restores as its revision: the newest change's, or the compacted one if higher.
    var revision: Int64 { max(changes.last?.main ?? 0, compactRevision) }

    init(file: [UInt8], skipHashCheck: Bool) throws {
        var database = file
        if file.count % 512 == 32 {
            database = Array(file.dropLast(32))
            var digest = SHA256()
            digest.update(database)
            guard digest.finish() == Array(file.suffix(32)) else {
                throw SnapshotError("the snapshot's SHA-256 does not match its contents (a corrupt or truncated file)")
            }
        } else if !skipHashCheck {
            throw SnapshotError(
                "the file has no SHA-256 trailer (not from `etcdctl snapshot save`; --skip-hash-check to load a bare backend file)")
        }
        let reader = try BoltReader(database)
        var sawMeta = false
        try reader.forEach(in: "meta") { key, value in
            sawMeta = true
            if key == Array("finishedCompactRev".utf8), value.count >= 8 { compactRevision = Self.bigEndian(value) }
        }
        let hasKeys = try Self.hasBucket(reader, "key")
        guard sawMeta || hasKeys else { throw SnapshotError("the file holds no etcd data (no meta or key bucket)") }
        try reader.forEach(in: "key") { key, value in
            guard key.count == 17 || key.count == 18, key[8] == UInt8(ascii: "_") else {
                throw SnapshotError("a key bucket entry is not an etcd revision")
            }
            let kv = try ProtobufFields.keyValue(value)
            changes.append(Change(main: Self.bigEndian(Array(key[0..<8])), tombstone: key.count == 18, kv: kv))
        }
        try reader.forEach(in: "lease") { _, value in
            let fields = try ProtobufFields.varints(value)
            if let id = fields[1] { leases.append((Int64(bitPattern: id), Int64(bitPattern: fields[2] ?? 0))) }
        }
    }

    private static func hasBucket(_ reader: BoltReader, _ name: String) throws -> Bool {
        var any = false
        try reader.forEach(in: name) { _, _ in any = true }
        return any
    }

    static func bigEndian(_ bytes: [UInt8]) -> Int64 {
        bytes.prefix(8).reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    /// One kine row per change, ids from 1 in revision order, each pointing at the key's previous
    /// row, as kine's Writer lays them out.
    func kineRows() -> [PendingRow] {
        var previous: [Bytes: (id: Int64, createRevision: Int64)] = [:]
        let ttls = Dictionary(leases.map { ($0.id, $0.ttl) }, uniquingKeysWith: { first, _ in first })
        var rows: [PendingRow] = []
        rows.reserveCapacity(changes.count)
        for (index, change) in changes.enumerated() {
            let id = Int64(index + 1)
            let key = change.kv.key
            let before = previous[key]
            var row = PendingRow(
                name: KeyMapping.name(forKey: key), created: !change.tombstone && change.kv.version == 1, deleted: change.tombstone,
                createRevision: change.tombstone ? before?.createRevision ?? 0 : change.kv.createRevision, prevRevision: before?.id ?? 0,
                value: change.tombstone ? nil : KeyMapping.storedValue(key: key, value: change.kv.value, version: change.kv.version),
                version: change.tombstone ? 0 : change.kv.version,
                event: Event(type: change.tombstone ? .delete : .put, kv: change.kv))
            row.lease = change.tombstone ? 0 : change.kv.lease
            row.leaseTTL = ttls[row.lease] ?? 0
            row.id = id
            row.revision = change.main
            rows.append(row)
            previous[key] = (id, row.createRevision)
        }
        return rows
    }
}

/// Just enough protobuf reading for the messages in a snapshot (`mvccpb.KeyValue`, `leasepb.Lease`).
enum ProtobufFields {
    static func keyValue(_ bytes: [UInt8]) throws(SnapshotError) -> KeyValue {
        var kv = KeyValue(key: [])
        try each(bytes) { field, varint, data in
            switch (field, varint, data) {
            case (1, _, let data?): kv.key = data
            case (2, let value?, _): kv.createRevision = Int64(bitPattern: value)
            case (3, let value?, _): kv.modRevision = Int64(bitPattern: value)
            case (4, let value?, _): kv.version = Int64(bitPattern: value)
            case (5, _, let data?): kv.value = data
            case (6, let value?, _): kv.lease = Int64(bitPattern: value)
            default: break
            }
        }
        guard !kv.key.isEmpty else { throw SnapshotError("a key bucket value has no key") }
        return kv
    }

    static func varints(_ bytes: [UInt8]) throws(SnapshotError) -> [Int: UInt64] {
        var out: [Int: UInt64] = [:]
        try each(bytes) { field, varint, _ in if let varint { out[field] = varint } }
        return out
    }

    /// Calls `body` with each field: its number and either its varint or its bytes.
    private static func each(_ bytes: [UInt8], _ body: (Int, UInt64?, [UInt8]?) -> Void) throws(SnapshotError) {
        var index = 0
        func varint() throws(SnapshotError) -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard index < bytes.count, shift < 64 else { throw SnapshotError("a protobuf varint is truncated") }
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
        }
        while index < bytes.count {
            let tag = try varint()
            let field = Int(tag >> 3)
            switch tag & 7 {
            case 0: body(field, try varint(), nil)
            case 2:
                let length = Int(try varint())
                guard length >= 0, index + length <= bytes.count else { throw SnapshotError("a protobuf field runs past its message") }
                body(field, nil, Array(bytes[index..<index + length]))
                index += length
            case 1:
                guard index + 8 <= bytes.count else { throw SnapshotError("a protobuf field is truncated") }
                index += 8
            case 5:
                guard index + 4 <= bytes.count else { throw SnapshotError("a protobuf field is truncated") }
                index += 4
            default: throw SnapshotError("a protobuf field has wire type \(tag & 7)")
            }
        }
    }
}
