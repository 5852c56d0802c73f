import KineCore
import KinePostgres
import KineSQL
import KineTestSupport
import Testing

@testable import KineStore

@Suite("Read cache on PostgreSQL", .enabled(if: StoreTestDB.enabled, "set KINE_TEST_POSTGRES_URL"))
struct ReadCacheIntegrationTests {
    private static var uncached: KineStore.Configuration {
        var configuration = KineStore.Configuration()
        configuration.readCache = false
        return configuration
    }

    private static let keyPool: [Bytes] = {
        var keys = (0..<40).map { bytes("/registry/pods/ns\($0 % 4)/p\($0)") }
        keys += [bytes("compact_rev_key"), bytes("a"), bytes("a\0"), [0x00], [0xFF, 0x01], bytes("/registry/pods/")]
        return keys
    }()

    // Not compared: ranges whose bounds fall between `compact_rev_key` and the name it is stored
    // under (`compact_rev_key_apiserver`); the table orders by stored name there, the cache
    // (rightly) by key. `loadFromExistingTable` checks the cache's order.

    /// Ranges covering single keys, prefixes, open ends and the whole key space.
    private static let ranges: [(key: Bytes, end: Bytes)] = {
        var ranges: [(Bytes, Bytes)] = keyPool.prefix(6).map { ($0, []) }
        ranges += [
            (bytes("/registry/pods/ns1/"), bytes("/registry/pods/ns1/").dropLast() + bytes("0")),
            (bytes("/registry/"), bytes("/registry0")), ([0], [0]), (bytes("compact"), [0]), (bytes("b"), bytes("a")),
            ([0xFF], [0]),
        ]
        return ranges
    }()

    /// A database with two stores on it (two kine processes), both caches loaded.
    private static func withTwoLoadedProcesses(_ body: (PostgresClient, KineStore, KineStore) async throws -> Void) async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withTwoProcesses(client) { first, second in
                try await waitLoaded(first)
                try await waitLoaded(second)
                try await body(client, first, second)
            }
        }
    }

    private static func waitLoaded(_ store: KineStore) async throws {
        for _ in 0..<500 where !store.readCacheLoaded { try await Task.sleep(for: .milliseconds(10)) }
        #expect(store.readCacheLoaded)
    }

    /// Every shape of Range over `ranges`, through the cache and through the table: equal answers.
    private static func compareReads(cached: KineStore, table: KineStore) async throws {
        let revision = try await cached.range(RangeRequest(key: [0], rangeEnd: [0], countOnly: true)).header.revision
        for (key, end) in ranges {
            let shapes = [
                RangeRequest(key: key, rangeEnd: end),
                RangeRequest(key: key, rangeEnd: end, limit: 3),
                RangeRequest(key: key, rangeEnd: end, limit: 1, serializable: true),
                RangeRequest(key: key, rangeEnd: end, countOnly: true),
                RangeRequest(key: key, rangeEnd: end, limit: 2, keysOnly: true),
                RangeRequest(key: key, rangeEnd: end, limit: 4, sortOrder: .descend, sortTarget: .mod),
                RangeRequest(key: key, rangeEnd: end, sortOrder: .ascend, sortTarget: .version, minModRevision: revision / 2),
                RangeRequest(key: key, rangeEnd: end, revision: revision),
            ]
            for request in shapes {
                let fromCache = try await cached.range(request)
                let fromTable = try await table.range(request)
                #expect(fromCache == fromTable, "\(String(decoding: key, as: UTF8.self)) \(request)")
            }
            // A read-only txn (from memory) against the same txn through the Writer.
            let inner = TxnRequest(
                compare: [Compare(result: .equal, target: .value, key: key, operand: .value(bytes("v1")))],
                success: [.range(RangeRequest(key: key, rangeEnd: end, countOnly: true))],
                failure: [.range(RangeRequest(key: key, rangeEnd: end, limit: 1, keysOnly: true))])
            let txn = TxnRequest(
                compare: [Compare(result: .greater, target: .version, key: key, rangeEnd: end, operand: .version(0))],
                success: [.range(RangeRequest(key: key, rangeEnd: end, limit: 2)), .txn(inner)],
                failure: [.range(RangeRequest(key: key, rangeEnd: end, sortOrder: .descend, sortTarget: .create)), .txn(inner)])
            let fromCache = try await cached.txn(txn)
            let fromTable = try await table.txn(txn)
            #expect(fromCache == fromTable, "txn \(String(decoding: key, as: UTF8.self))")
        }
    }

    @Test("The cache answers every kind of Range exactly as the table does, while writes go on")
    func cacheEqualsTable() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withStore(client) { cached in
                try await StoreTestDB.withStore(client, configuration: Self.uncached) { table in
                    try await Self.waitLoaded(cached)
                    var generator = SeededGenerator(seed: 42)
                    for step in 1...500 {
                        let key = Self.keyPool.randomElement(using: &generator) ?? []
                        switch Int.random(in: 0..<10, using: &generator) {
                        case 0:
                            _ = try await cached.deleteRange(DeleteRangeRequest(key: key))
                        case 1:
                            // Without prev_kv: PostgreSQL writes the tombstones; the hub reads them.
                            _ = try await cached.deleteRange(
                                DeleteRangeRequest(
                                    key: bytes("/registry/pods/ns\(step % 4)/"), rangeEnd: bytes("/registry/pods/ns\(step % 4)0")))
                        case 2:
                            _ = try await cached.deleteRange(
                                DeleteRangeRequest(
                                    key: bytes("/registry/pods/ns\(step % 4)/p1"), rangeEnd: bytes("/registry/pods/ns\(step % 4)/p2"),
                                    prevKV: true))
                        case 3:
                            var other = Self.keyPool.randomElement(using: &generator) ?? []
                            if other == key { other += [0] }
                            _ = try await cached.txn(
                                TxnRequest(
                                    compare: [Compare(result: .greater, target: .version, key: key, operand: .version(0))],
                                    success: [
                                        .put(PutRequest(key: key, value: bytes("t\(step)"))), .deleteRange(DeleteRangeRequest(key: other)),
                                    ],
                                    failure: [.put(PutRequest(key: key, value: bytes("f\(step)")))]))
                        case 4:
                            // Through the other store: the cached one learns it from the table.
                            _ = try await table.put(PutRequest(key: key, value: bytes("u\(step)")))
                        default:
                            _ = try await cached.put(PutRequest(key: key, value: bytes("v\(step)")))
                        }
                        if step % 100 == 0 { try await Self.compareReads(cached: cached, table: table) }
                    }
                }
            }
        }
    }

    @Test("A linearizable read through one process sees a write acknowledged by another at once")
    func linearizableAcrossProcesses() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withTwoProcesses(client) { reader, writer in
                try await Self.waitLoaded(reader)
                for index in 0..<100 {
                    let put = try await writer.put(PutRequest(key: bytes("k\(index % 7)"), value: bytes("\(index)")))
                    let read = try await reader.range(RangeRequest(key: bytes("k\(index % 7)")))
                    #expect(read.kvs.first?.value == bytes("\(index)") && read.kvs.first?.modRevision == put.header.revision)
                    #expect(read.header.revision >= put.header.revision)
                }
            }
        }
    }

    @Test("A compaction made by another process lets this process's cache drop its tombstones (learnt at the next read barrier)")
    func tombstonesDroppedAfterAnotherProcessCompacts() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withTwoProcesses(client) { reader, compacting in
                try await Self.waitLoaded(reader)
                for index in 0..<50 { _ = try await compacting.put(PutRequest(key: bytes("gone/\(index)"), value: bytes("v"))) }
                let deleted = try await compacting.deleteRange(DeleteRangeRequest(key: bytes("gone/"), rangeEnd: bytes("gone0")))
                #expect(deleted.deleted == 50)
                _ = try await compacting.put(PutRequest(key: bytes("after"), value: bytes("v")))
                _ = try await reader.range(RangeRequest(key: bytes("after")))
                #expect((reader.readCacheFigures?.tombstones ?? 0) >= 50, "the reader saw the deletes")
                _ = try await compacting.compact(CompactionRequest(revision: deleted.header.revision + 1))
                // The reader never compacts itself; its next linearizable read learns the mark.
                _ = try await reader.range(RangeRequest(key: bytes("after")))
                #expect((reader.readCacheFigures?.tombstones ?? 99) < 50, "the reader still holds the compacted tombstones")
            }
        }
    }

    @Test("Two processes writing the same keys in turn: each write builds on the other's (the Writer's cache guard)")
    func alternatingWriters() async throws {
        try await Self.withTwoLoadedProcesses { client, first, second in
            var last: [Int: (value: Bytes, revision: Int64, version: Int64)] = [:]
            for index in 0..<90 {
                let store = index.isMultiple(of: 2) ? first : second
                let key = index % 3
                let put = try await store.put(PutRequest(key: bytes("k\(key)"), value: bytes("\(index)"), prevKV: true))
                #expect(put.prevKV?.value == last[key]?.value && put.prevKV?.modRevision == last[key]?.revision)
                #expect(put.prevKV?.version == last[key]?.version)
                last[key] = (bytes("\(index)"), put.header.revision, (last[key]?.version ?? 0) + 1)
                // A txn that only reads (compare fails) must see the other's write too.
                let txn = try await store.txn(
                    TxnRequest(
                        compare: [Compare(result: .equal, target: .value, key: bytes("k\(key)"), operand: .value(bytes("none")))],
                        failure: [.range(RangeRequest(key: bytes("k\(key)")))]))
                guard case .range(let read)? = txn.responses.first else { throw EtcdError.keyNotFound }
                #expect(read.kvs.first?.value == bytes("\(index)") && txn.header.revision >= put.header.revision)
            }
            let revisions = try await client.query(
                "SELECT count(*), count(DISTINCT COALESCE(kv_revision, id)) FROM kine WHERE name LIKE 'k%'"
            ).rows.first
            #expect(revisions?.int64(0) == 90 && revisions?.int64(1) == 90)
        }
    }

    @Test("Many concurrent writers on two processes: every put's prev_kv and version continue the one before it")
    func concurrentChains() async throws {
        try await Self.withTwoLoadedProcesses { client, first, second in
            // Each process batches its writers' puts on its cache while the other process's commits
            // make some of those batches stale (the guard sends them the slow way).
            let puts = try await withThrowingTaskGroup(of: [(key: Int, revision: Int64, value: Bytes, prev: KeyValue?)].self) { group in
                for task in 0..<48 {
                    let store = task.isMultiple(of: 3) ? second : first
                    group.addTask {
                        var done: [(key: Int, revision: Int64, value: Bytes, prev: KeyValue?)] = []
                        for step in 0..<25 {
                            let key = (task + step) % 5
                            let value = bytes("\(task)-\(step)")
                            let put = try await store.put(PutRequest(key: bytes("c\(key)"), value: value, prevKV: true))
                            done.append((key, put.header.revision, value, put.prevKV))
                        }
                        return done
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(Set(puts.map(\.revision)).count == puts.count)
            for key in 0..<5 {
                let chain = puts.filter { $0.key == key }.sorted { $0.revision < $1.revision }
                for (index, put) in chain.enumerated() {
                    let before = index > 0 ? chain[index - 1] : nil
                    #expect(put.prev?.value == before?.value && put.prev?.modRevision == before?.revision)
                    #expect(put.prev?.version == (before == nil ? nil : Int64(index)))
                }
                let stored = try await first.range(RangeRequest(key: bytes("c\(key)")))
                #expect(stored.kvs.first?.version == Int64(chain.count) && stored.kvs.first?.value == chain.last?.value)
            }
        }
    }

    @Test("A cache loaded from an existing table continues it as the table would (tombstones, versions)")
    func loadFromExistingTable() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withStore(client, configuration: Self.uncached) { table in
                for index in 0..<30 { _ = try await table.put(PutRequest(key: bytes("/x/\(index % 10)"), value: bytes("\(index)"))) }
                _ = try await table.deleteRange(DeleteRangeRequest(key: bytes("/x/3")))
                _ = try await table.put(PutRequest(key: bytes("compact_rev_key"), value: bytes("7")))
            }
            try await StoreTestDB.withStore(client) { cached in
                try await StoreTestDB.withStore(client, configuration: Self.uncached) { table in
                    try await Self.waitLoaded(cached)
                    try await Self.compareReads(cached: cached, table: table)
                    let tombstone = try await client.query("SELECT max(id) FROM kine WHERE name = '/x/3'").rows.first?.int64(0)
                    let recreated = try await cached.put(PutRequest(key: bytes("/x/3"), value: bytes("again")))
                    let row = try await client.query(
                        "SELECT prev_revision, created, kv_version FROM kine WHERE id = (SELECT max(id) FROM kine)"
                    ).rows.first
                    #expect(row?.int64(0) == tombstone && row?.int64(1) == 1 && row?.int64(2) == 1)
                    let read = try await cached.range(RangeRequest(key: bytes("/x/3")))
                    #expect(read.kvs.first?.createRevision == recreated.header.revision && read.kvs.first?.version == 1)
                    let updated = try await cached.put(PutRequest(key: bytes("/x/4"), value: bytes("more")))
                    let four = try await table.range(RangeRequest(key: bytes("/x/4")))
                    #expect(four.kvs.first?.version == 4 && four.kvs.first?.modRevision == updated.header.revision)
                    try await Self.compareReads(cached: cached, table: table)

                    // etcd's order around the key kine stores under another name.
                    _ = try await cached.put(PutRequest(key: bytes("compact_rev_key0"), value: bytes("x")))
                    let around = try await cached.range(RangeRequest(key: bytes("compact_rev_key"), rangeEnd: bytes("compact_rev_key1")))
                    #expect(around.kvs.map(\.key) == [bytes("compact_rev_key"), bytes("compact_rev_key0")])
                }
            }
        }
    }
}
