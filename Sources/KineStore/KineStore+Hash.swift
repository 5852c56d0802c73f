public import KineCore
public import KineSQL

extension KineStore {
    /// etcd's HashKV (`StoreHashes.hashKV`).
    public func hashKV(revision: Int64) async throws(EtcdError) -> HashKVResponse {
        try await StoreHashes(reader: reader).hashKV(revision: revision)
    }

    /// etcd's Hash, kine's definition (`StoreHashes.hash`).
    public func hash() async throws(EtcdError) -> HashResponse {
        try await StoreHashes(reader: reader).hash()
    }

    /// HashKV of the database behind `client` without opening a store: it only reads, so it works
    /// on a fenced HA follower's copy (`kine hashkv`).
    public static func hashKV(client: any SQLClient, revision: Int64) async throws(EtcdError) -> HashKVResponse {
        let reader = Reader(client: client, sql: StoreSQL(legacyCollation: false))
        let collation = try await reader.run(StoreSQL.nameCollation)
        let sql = StoreSQL(legacyCollation: collation != "C" && collation != "POSIX")
        return try await StoreHashes(reader: Reader(client: client, sql: sql)).hashKV(revision: revision)
    }
}

/// etcd's Hash and HashKV over the kine table (`KeyHistoryHash`): two kine processes on one
/// database, or the two nodes of an HA pair holding the same rows, answer the same numbers.
struct StoreHashes {
    let reader: Reader
    private var sql: StoreSQL { reader.sql }
    private static let hashPage: Int64 = 5000

    private func runSQL<Output>(_ query: SQLQuery<Output>) async throws(EtcdError) -> Output { try await reader.run(query) }
    private func runSQL(_ pipeline: SQLPipeline) async throws(EtcdError) -> SQLPipelineResults { try await reader.run(pipeline) }

    /// HashKV at `revision` (0: the current one; negative: the empty hash, as etcd answers).
    /// The compacted revision is -1 until the first compaction, as in etcd.
    func hashKV(revision requested: Int64) async throws(EtcdError) -> HashKVResponse {
        let header = try await runSQL(StoreSQL.header)
        let current = header.currentRevision
        let compacted = header.compactRevision
        let compactRevision = compacted == 0 ? -1 : compacted
        let revision = requested == 0 ? current : requested
        if requested > 0 && compacted > 0 && requested <= compacted { throw .compacted }
        if requested > current { throw .futureRevision }
        var hash = KeyHistoryHash(compactRevision: compactRevision, kept: [], nothingLive: true)
        if revision > 0 {
            let live = try await runSQL(sql.liveAt(revision, compactRevision: compactRevision))
            hash = KeyHistoryHash(compactRevision: compactRevision, kept: live.keptBelowCompaction, nothingLive: live.count == 0)
            try await forEachRow(throughRevision: revision) { hash.add($0) }
        }
        return HashKVResponse(
            header: ResponseHeader(revision: current), hash: hash.value, compactRevision: compactRevision, hashRevision: max(revision, 0))
    }

    /// Hash: CRC-32C over everything the store holds, in a fixed order: the key history as HashKV
    /// writes it with nothing filtered, then `lease` and each lease (8-byte big-endian id, the
    /// marshaled `leasepb.Lease{ID, TTL}`), `alarm` and each alarm (the marshaled
    /// `AlarmMember`), and `meta` with the compacted revision (etcd's `finishedCompactRev`).
    /// etcd's own Hash also covers its members, raft state and bbolt buckets, which kine does
    /// not have; so the number is kine's, equal across kine processes holding the same data.
    func hash() async throws(EtcdError) -> HashResponse {
        let header = try await runSQL(StoreSQL.header)
        var everything = KeyHistoryHash(compactRevision: -1, kept: [], nothingLive: true)
        try await forEachRow(throughRevision: header.currentRevision) { everything.add($0) }
        var crc = everything.crc
        var pipeline = SQLPipeline()
        let leases = pipeline.add(StoreSQL.allLeases)
        let alarms = pipeline.add(StoreSQL.alarms)
        let results = try await runSQL(pipeline)
        crc.update(Array("lease".utf8))
        for lease in results[leases] {
            crc.update(KeyHistoryHash.bigEndian(lease.id))
            var message: [UInt8] = []
            KeyValueEncoding.varintField(1, UInt64(bitPattern: lease.id), into: &message)
            KeyValueEncoding.varintField(2, UInt64(bitPattern: lease.ttl), into: &message)
            crc.update(message)
        }
        crc.update(Array("alarm".utf8))
        for alarm in results[alarms] { crc.update(KineStore.alarmKey(alarm)) }
        crc.update(Array("meta".utf8))
        crc.update(Array("finishedCompactRev".utf8))
        crc.update(KeyHistoryHash.revisionKey(main: header.compactRevision, sub: 0, tombstone: false))
        return HashResponse(header: ResponseHeader(revision: header.currentRevision), hash: crc.value)
    }

    /// Every row up to `revision`, oldest first, in pages.
    private func forEachRow(throughRevision revision: Int64, _ body: (StoredRow) -> Void) async throws(EtcdError) {
        var after: Int64 = 0
        while true {
            let rows = try await runSQL(StoreSQL.history(afterID: after, throughRevision: revision, limit: Self.hashPage))
            for row in rows { body(row) }
            guard let last = rows.last, rows.count == Self.hashPage else { return }
            after = last.id
        }
    }
}
