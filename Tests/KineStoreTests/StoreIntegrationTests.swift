import KineCore
import KinePostgres
import KineSQL
import Testing

@testable import KineStore

@Suite("KineStore on PostgreSQL", .enabled(if: StoreTestDB.enabled, "set KINE_TEST_POSTGRES_URL"))
struct StoreIntegrationTests {
    @Test("Put, range with limit/more/count, historic reads, binary keys")
    func basics() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withStore(client) { store in
                let first = try await store.put(PutRequest(key: bytes("/p/a"), value: bytes("1")))
                for key in ["/p/b", "/p/c", "/q/a"] { _ = try await store.put(PutRequest(key: bytes(key), value: bytes("1"))) }
                let binary: Bytes = bytes("/p/") + [0x00, 0x96, 0x01, 0xFF]
                _ = try await store.put(PutRequest(key: binary, value: [0, 1, 2]))

                let page = try await store.range(RangeRequest(key: bytes("/p/"), rangeEnd: bytes("/p0"), limit: 2))
                #expect(page.kvs.map(\.key) == [binary, bytes("/p/a")])
                #expect(page.more && page.count == 4)
                // Counting from a continue key, as kube-apiserver pages.
                let rest = try await store.range(
                    RangeRequest(key: bytes("/p/a\0"), rangeEnd: bytes("/p0"), limit: 1, revision: page.header.revision))
                #expect(rest.kvs.map(\.key) == [bytes("/p/b")] && rest.count == 2 && rest.more)

                _ = try await store.put(PutRequest(key: bytes("/p/a"), value: bytes("2")))
                let old = try await store.range(RangeRequest(key: bytes("/p/a"), revision: first.header.revision))
                #expect(old.kvs.first?.value == bytes("1") && old.header.revision > first.header.revision)
                let current = try await store.range(RangeRequest(key: bytes("/p/a")))
                #expect(current.kvs.first?.version == 2 && current.kvs.first?.createRevision == first.header.revision)
                await #expect(throws: EtcdError.futureRevision) {
                    try await store.range(RangeRequest(key: bytes("a"), revision: 1_000_000))
                }
                let stored = try await store.range(RangeRequest(key: binary))
                #expect(stored.kvs.first?.value == [0, 1, 2])
            }
        }
    }

    @Test("Delete range, compaction removes history but keeps the latest versions")
    func compaction() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withStore(client) { store in
                for value in 1...5 { _ = try await store.put(PutRequest(key: bytes("k"), value: bytes("\(value)"))) }
                _ = try await store.put(PutRequest(key: bytes("gone"), value: bytes("x")))
                let deleted = try await store.deleteRange(DeleteRangeRequest(key: bytes("gone"), prevKV: true))
                #expect(deleted.deleted == 1 && deleted.prevKVs.first?.value == bytes("x"))
                let target = deleted.header.revision
                _ = try await store.put(PutRequest(key: bytes("later"), value: bytes("y")))
                _ = try await store.compact(CompactionRequest(revision: target))
                await #expect(throws: EtcdError.compacted) { try await store.range(RangeRequest(key: bytes("k"), revision: target - 1)) }
                await #expect(throws: EtcdError.compacted) { try await store.compact(CompactionRequest(revision: target)) }
                let latest = try await store.range(RangeRequest(key: bytes("k")))
                #expect(latest.kvs.first?.value == bytes("5") && latest.kvs.first?.version == 5)
                let rows = try await client.query("SELECT count(*) FROM kine WHERE name IN ('k', 'gone')").rows.first?.int64(0)
                #expect(rows == 1)
                let mark = try await client.query("SELECT prev_revision FROM kine WHERE name = 'compact_rev_key'").rows.first?.int64(0)
                #expect(mark == target)
                // Compacting up to a tombstone that is the newest row keeps the current revision.
                let last = try await store.deleteRange(DeleteRangeRequest(key: bytes("later")))
                _ = try await store.compact(CompactionRequest(revision: last.header.revision))
                #expect(try await store.revisions().current == last.header.revision)
            }
        }
    }

    @Test("Two stores on one database (two kine processes): every write gets its own revision, no holes")
    func twoWriters() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withTwoProcesses(client) { first, second in
                let revisions = try await withThrowingTaskGroup(of: Int64.self) { group in
                    for index in 0..<200 {
                        let store = index.isMultiple(of: 2) ? first : second
                        group.addTask {
                            // Compare-and-swap loop on one counter key, as kube-apiserver updates.
                            while true {
                                let current = try await store.range(RangeRequest(key: bytes("counter")))
                                let kv = current.kvs.first
                                let next = Int(String(decoding: kv?.value ?? bytes("0"), as: UTF8.self)) ?? 0
                                let txn = try await store.txn(
                                    TxnRequest(
                                        compare: [
                                            Compare(
                                                result: .equal, target: .mod, key: bytes("counter"),
                                                operand: .modRevision(kv?.modRevision ?? 0))
                                        ],
                                        success: [.put(PutRequest(key: bytes("counter"), value: bytes("\(next + 1)")))]))
                                if txn.succeeded { return txn.header.revision }
                            }
                        }
                    }
                    return try await group.reduce(into: [Int64]()) { $0.append($1) }
                }
                #expect(Set(revisions).count == 200)
                let final = try await first.range(RangeRequest(key: bytes("counter")))
                #expect(final.kvs.first?.value == bytes("200") && final.kvs.first?.version == 200)
                // Ids are dense: every revision between the first and the last exists.
                let row = try await client.query("SELECT min(id), max(id), count(*) FROM kine WHERE name = 'counter'").rows.first
                #expect(row.map { $0.int64(1) - $0.int64(0) + 1 } == row?.int64(2))
            }
        }
    }

    @Test("Rows written by Go kine are served with etcd's fields")
    func goKineRows() async throws {
        try await StoreTestDB.withDatabase { client in
            // Create the table the way Go kine does, then add its rows: a create, an update, a
            // deleted key, a gap row and the apiserver compact key.
            _ = try await KineStore.open(client: client, logger: StoreTestDB.logger)
            _ = try await client.pipeline([
                SQLStatement("DELETE FROM kine"),
                SQLStatement(
                    """
                    INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value) VALUES
                    (1, 'compact_rev_key', 1, 0, 0, 0, 0, '', NULL),
                    (2, '/registry/a', 1, 0, 0, 0, 0, 'a1', NULL),
                    (3, '/registry/a', 0, 0, 2, 2, 0, 'a2', 'a1'),
                    (4, '/registry/b', 1, 0, 0, 0, 0, 'b1', NULL),
                    (5, '/registry/b', 0, 1, 0, 4, 0, NULL, 'b1'),
                    (6, 'gap-6', 0, 1, 0, 0, 0, NULL, NULL),
                    (7, 'compact_rev_key_apiserver', 1, 0, 0, 0, 0, '3|1234', NULL),
                    (8, '/registry/health', 1, 0, 0, 0, 0, '{"health":"true"}', NULL)
                    """),
                SQLStatement("SELECT setval('kine_id_seq', 8)"),
            ])
            try await StoreTestDB.withStore(client) { store in
                let all = try await store.range(RangeRequest(key: [0], rangeEnd: [0]))
                #expect(all.header.revision == 8)
                let a = try #require(all.kvs.first { $0.key == bytes("/registry/a") })
                #expect(a.createRevision == 2 && a.modRevision == 3 && a.version == 2 && a.value == bytes("a2"))
                #expect(!all.kvs.contains { $0.key == bytes("/registry/b") || $0.key.starts(with: bytes("gap-")) })
                let compactKey = try #require(all.kvs.first { $0.key == bytes("compact_rev_key") })
                #expect(compactKey.version == 3 && compactKey.value == bytes("1234"))
                let put = try await store.put(PutRequest(key: bytes("/registry/b"), value: bytes("b2")))
                #expect(put.header.revision == 9)
                let recreated = try await client.query("SELECT prev_revision, created FROM kine WHERE id = 9").rows.first
                #expect(recreated?.int64(0) == 5 && recreated?.int64(1) == 1)
            }
        }
    }

    @Test("A pre-v0.13 Go kine table (VARCHAR name, linguistic collation) is still read in byte order")
    func legacyCollation() async throws {
        try await StoreTestDB.withDatabase { client in
            _ = try await client.pipeline([
                SQLStatement(
                    """
                    CREATE TABLE kine (id SERIAL PRIMARY KEY, name VARCHAR(630) COLLATE "en-US-x-icu", created INTEGER, \
                    deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value bytea, old_value bytea)
                    """),
                SQLStatement("CREATE INDEX kine_name_index ON kine (name)"),
                SQLStatement("CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)"),
            ])
            try await StoreTestDB.withStore(client) { store in
                for key in ["/k/b", "/k/B", "/k/_", "/k/a"] { _ = try await store.put(PutRequest(key: bytes(key), value: bytes("v"))) }
                let all = try await store.range(RangeRequest(key: bytes("/k/"), rangeEnd: bytes("/k0")))
                // Byte order: "B" (0x42) < "_" (0x5F) < "a" < "b"; en-US would say _, a, b, B.
                #expect(all.kvs.map { String(decoding: $0.key, as: UTF8.self) } == ["/k/B", "/k/_", "/k/a", "/k/b"])
                let page = try await store.range(RangeRequest(key: bytes("/k/B"), rangeEnd: bytes("/k/b"), limit: 1))
                #expect(page.count == 3 && page.more)
            }
        }
    }

    @Test("A prefix delete is done by PostgreSQL: one revision, tombstones in key order, history intact")
    func bulkDelete() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withStore(client) { store in
                for chunk in 0..<20 {
                    let puts = (0..<100).map { RequestOp.put(PutRequest(key: bytes("/bulk/\(chunk * 100 + $0)"), value: bytes("v\($0)"))) }
                    _ = try await store.txn(TxnRequest(success: puts))
                }
                _ = try await store.put(PutRequest(key: bytes("/bulk0"), value: bytes("outside")))
                let before = try await store.revisions().current
                let deleted = try await store.deleteRange(DeleteRangeRequest(key: bytes("/bulk/"), rangeEnd: bytes("/bulk0")))
                #expect(deleted.deleted == 2000 && deleted.header.revision == before + 1)
                let left = try await store.range(RangeRequest(key: bytes("/bulk"), rangeEnd: bytes("/bulk1")))
                #expect(left.kvs.map(\.key) == [bytes("/bulk0")])
                let old = try await store.range(
                    RangeRequest(key: bytes("/bulk/"), rangeEnd: bytes("/bulk0"), revision: before, countOnly: true))
                #expect(old.count == 2000)
                let nothing = try await store.deleteRange(DeleteRangeRequest(key: bytes("/bulk/"), rangeEnd: bytes("/bulk0")))
                #expect(nothing.deleted == 0 && nothing.header.revision == before + 1)
                let tombstones = try await client.query(
                    "SELECT count(*), count(DISTINCT COALESCE(kv_revision, id)), bool_and(value IS NULL AND prev_revision > 0) FROM kine WHERE deleted = 1 AND name LIKE '/bulk/%'"
                ).rows.first
                #expect(tombstones?.int64(0) == 2000 && tombstones?.int64(1) == 1 && tombstones?.bool(2) == true)
                let next = try await store.put(PutRequest(key: bytes("/bulk/0"), value: bytes("again")))
                #expect(next.header.revision == before + 2)
            }
        }
    }
}
