public import KineCore
import KineSQL

/// etcd's Snapshot: the store as an etcd 3.5 backend file (`BoltWriter`), which `etcdutl snapshot
/// restore` turns into an etcd data directory with the same keys, values, revisions, versions,
/// history since the last compaction, and leases.
extension KineStore {
    /// Bytes of file in each message, as etcd sends them.
    static let snapshotChunk = 32 * 1024

    /// Builds the snapshot from one consistent view of the database, then sends it in chunks with
    /// the bytes still to come, and last the SHA-256 of everything sent (what `etcdctl snapshot
    /// save` checks is there and `etcdutl snapshot restore` verifies).
    public func snapshot(_ send: (SnapshotResponse) async throws -> Void) async throws(EtcdError) {
        let file: SnapshotFile
        let size: Int
        do {
            file = try SnapshotFile()
            size = try await writeSnapshot(into: file)
        } catch let error as SQLError {
            throw StoreError.etcdError(for: error)
        } catch let error as EtcdError {
            throw error
        } catch {
            throw EtcdError(.internal, "kine: snapshot: \(error)")
        }
        var digest = SHA256()
        var sent = 0
        do {
            while sent < size {
                let count = min(Self.snapshotChunk, size - sent)
                let blob = try file.read(at: sent, count: count)
                digest.update(blob)
                sent += count
                try await send(SnapshotResponse(remainingBytes: UInt64(size - sent), blob: blob))
            }
            try await send(SnapshotResponse(remainingBytes: 0, blob: digest.finish()))
        } catch let error as SnapshotError {
            throw EtcdError(.internal, "kine: snapshot: \(error)")
        } catch {
            throw EtcdError(.cancelled, "kine: snapshot stream closed")
        }
    }

    /// Writes the backend file: `alarm`, `key`, `lease`, `meta` (etcd creates its other buckets
    /// when it starts). The key bucket holds what etcd would after a compaction at the compacted
    /// revision C: the newest change at or below C of every key live at C, and every change after.
    private func writeSnapshot(into file: SnapshotFile) async throws -> Int {
        let sql = reader.sql
        return try await client.withSession { session in
            _ = try await session.pipeline([StoreSQL.beginSnapshot])
            let header = try await session.run(StoreSQL.header)
            let compacted = header.compactRevision
            var kept: Set<Int64> = []
            if compacted > 0 { kept = try await session.run(sql.liveAt(compacted, compactRevision: compacted)).keptBelowCompaction }
            var writer = BoltWriter(file: file)

            writer.beginBucket("alarm")
            let alarms = try await session.run(StoreSQL.alarms).map(Self.alarmKey).sorted { $0.lexicographicallyPrecedes($1) }
            for key in alarms { try writer.put(key, []) }
            try writer.endBucket()

            writer.beginBucket("key")
            var numbering = SubRevisions()
            var after: Int64 = 0
            while true {
                let rows = try await session.run(StoreSQL.history(afterID: after, throughRevision: header.currentRevision, limit: 5000))
                for row in rows {
                    guard let entry = numbering.entry(row) else { continue }
                    if row.modRevision <= compacted && !kept.contains(row.id) { continue }
                    try writer.put(entry.key, entry.value)
                }
                guard let last = rows.last, rows.count == 5000 else { break }
                after = last.id
            }
            try writer.endBucket()

            writer.beginBucket("lease")
            for lease in try await session.run(StoreSQL.allLeases) {
                var value: [UInt8] = []
                KeyValueEncoding.varintField(1, UInt64(bitPattern: lease.id), into: &value)
                KeyValueEncoding.varintField(2, UInt64(bitPattern: lease.ttl), into: &value)
                try writer.put(KeyHistoryHash.bigEndian(lease.id), value)
            }
            try writer.endBucket()

            writer.beginBucket("meta")
            if compacted > 0 {
                let mark = KeyHistoryHash.revisionKey(main: compacted, sub: 0, tombstone: false)
                try writer.put(Array("finishedCompactRev".utf8), mark)
                try writer.put(Array("scheduledCompactRev".utf8), mark)
            }
            try writer.endBucket()
            _ = try await session.pipeline([StoreSQL.commit])
            return try writer.finish()
        }
    }

    /// etcd's alarm bucket key: the marshaled `AlarmMember`.
    static func alarmKey(_ alarm: AlarmMember) -> [UInt8] {
        var key: [UInt8] = []
        KeyValueEncoding.varintField(1, alarm.memberID, into: &key)
        KeyValueEncoding.varintField(2, UInt64(UInt32(bitPattern: alarm.alarm)), into: &key)
        return key
    }
}
