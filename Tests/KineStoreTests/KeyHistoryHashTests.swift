import KineCore
import Testing

@testable import KineStore

/// HashKV's byte layout, checked against numbers a real etcd 3.5.1 answered for the same history
/// (a fresh etcd; put a=1, put b=2, put a=3, delete b, txn [put c=cc, put d=""], compact 3).
/// Tests/e2e/test_hash.py asks etcd for the same numbers in every run, so they stay honest.
@Suite("KeyHistoryHash: etcd's HashKV over kine's rows")
struct KeyHistoryHashTests {
    /// The rows kine holds for that history: one row per change, ids in commit order.
    static let rows: [StoredRow] = [
        row(id: 1, "a", "1", revision: 2, create: 2, version: 1),
        row(id: 2, "b", "2", revision: 3, create: 3, version: 1),
        row(id: 3, "a", "3", revision: 4, create: 2, version: 2, previous: 1),
        tombstone(id: 4, "b", revision: 5, previous: 2),
        row(id: 5, "c", "cc", revision: 6, create: 6, version: 1),
        row(id: 6, "d", "", revision: 6, create: 6, version: 1),
    ]

    static func row(
        id: Int64, _ key: String, _ value: String, revision: Int64, create: Int64, version: Int64, previous: Int64 = 0
    ) -> StoredRow {
        StoredRow(
            fakeID: id, name: Array(key.utf8), created: version == 1, deleted: false, createRevision: create, prevRevision: previous,
            value: Array(value.utf8), version: version, revision: revision)
    }

    static func tombstone(id: Int64, _ key: String, revision: Int64, previous: Int64) -> StoredRow {
        StoredRow(
            fakeID: id, name: Array(key.utf8), created: false, deleted: true, createRevision: 0, prevRevision: previous,
            value: [], version: 0, revision: revision)
    }

    private func hash(through revision: Int64, compacted: Int64 = -1, kept: Set<Int64> = [], nothingLive: Bool = false) -> UInt32 {
        var hash = KeyHistoryHash(compactRevision: compacted, kept: kept, nothingLive: nothingLive)
        for row in Self.rows where row.modRevision <= revision { hash.add(row) }
        return hash.value
    }

    @Test("The empty history hashes the bucket name alone")
    func empty() {
        #expect(KeyHistoryHash(compactRevision: -1, kept: [], nothingLive: true).value == 1_084_519_789)
    }

    @Test(
        "Never compacted: every change up to the revision",
        arguments: [
            (Int64(1), UInt32(1_084_519_789)), (2, 2_587_454_935), (3, 1_827_592_406), (4, 2_069_675_932), (5, 1_125_682_900),
            (6, 3_439_950_231),
        ])
    func uncompacted(revision: Int64, expected: UInt32) {
        #expect(hash(through: revision) == expected)
    }

    @Test("Compacted at 3: changes at or below 3 count only when a compaction at the revision keeps them")
    func compacted() {
        // At 4 the live keys are a (newest change a@4) and b (b@3): of the changes at or below 3,
        // only b@3 (row 2) is kept. At 5 b is deleted and at 6 a, c and d are live through changes
        // above 3: nothing at or below 3 is kept, while keys are live, so a@2 and b@3 are left out.
        #expect(hash(through: 4, compacted: 3, kept: [2]) == 1_107_643_163)
        #expect(hash(through: 5, compacted: 3, kept: []) == 1_468_967_122)
        #expect(hash(through: 6, compacted: 3, kept: []) == 78_437_169)
    }

    @Test("KeyValue is marshaled as gogo protobuf does: fields in order, zero fields left out")
    func keyValueEncoding() {
        let kv = KeyValue(key: Array("d".utf8), createRevision: 6, modRevision: 6, version: 1, value: [])
        #expect(KeyValueEncoding.encode(kv) == [0x0A, 0x01, 0x64, 0x10, 0x06, 0x18, 0x06, 0x20, 0x01])
        #expect(KeyValueEncoding.encode(KeyValue(key: Array("x".utf8))) == [0x0A, 0x01, 0x78])
        var big: [UInt8] = []
        KeyValueEncoding.varint(300, into: &big)
        #expect(big == [0xAC, 0x02])
    }

    @Test("Revision keys: 8-byte big-endian main, '_', 8-byte sub, 't' for a tombstone")
    func revisionKey() {
        #expect(KeyHistoryHash.revisionKey(main: 6, sub: 1, tombstone: false) == [0, 0, 0, 0, 0, 0, 0, 6, 0x5F, 0, 0, 0, 0, 0, 0, 0, 1])
        #expect(KeyHistoryHash.revisionKey(main: 5, sub: 0, tombstone: true).last == UInt8(ascii: "t"))
    }

    @Test("CRC-32C matches the standard check value")
    func crc() {
        var crc = CRC32C()
        crc.update(Array("123456789".utf8))
        #expect(crc.value == 0xE306_9283)
    }
}
