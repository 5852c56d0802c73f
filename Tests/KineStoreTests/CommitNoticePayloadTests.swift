import KineCore
import Testing

@testable import KineStore

@Suite("CommitNoticePayload: a commit's NOTIFY carries its events when they fit")
struct CommitNoticePayloadTests {
    private func put(
        _ key: String, _ value: [UInt8], id: Int64, revision: Int64, created: Int64, version: Int64, lease: Int64 = 0
    ) -> PendingRow {
        let kv = KeyValue(
            key: Array(key.utf8), createRevision: created, modRevision: revision, version: version, value: value, lease: lease)
        var row = PendingRow(
            name: kv.key, created: version == 1, deleted: false, createRevision: created, prevRevision: 0, value: value,
            version: version, lease: lease, event: Event(type: .put, kv: kv, prevKV: KeyValue(key: kv.key, value: [9])))
        row.id = id
        row.revision = revision
        return row
    }

    private func delete(_ key: String, id: Int64, revision: Int64) -> PendingRow {
        let tombstone = KeyValue(key: Array(key.utf8), modRevision: revision)
        var row = PendingRow(
            name: tombstone.key, created: false, deleted: true, createRevision: 3, prevRevision: 7, value: nil, version: 0,
            event: Event(type: .delete, kv: tombstone, prevKV: KeyValue(key: tombstone.key, value: [1])))
        row.id = id
        row.revision = revision
        return row
    }

    @Test("Puts and deletes of several revisions come back as the same events, without their previous values")
    func roundTrip() throws {
        let rows = [
            put("/a", [0, 1, 255], id: 41, revision: 30, created: 30, version: 1, lease: 0x7fff_ffff_0000_0001),
            put("/b", [], id: 42, revision: 30, created: 12, version: 5),
            delete("/a", id: 43, revision: 31),
            put("/\u{e9}", Array(repeating: 7, count: 300), id: 44, revision: 32, created: 32, version: 1),
        ]
        let text = CommitNoticePayload.text(revision: 32, rows: rows)
        #expect(text.hasPrefix("32 "))
        let parsed = try #require(CommitNoticePayload(parsing: text))
        #expect(parsed.revision == 32)
        let expected = rows.map { CommitNoticePayload.Row(id: $0.id, type: $0.event.type, kv: $0.event.kv) }
        #expect(parsed.rows == expected)
    }

    @Test("A commit too big for NOTIFY says its revision alone, under PostgreSQL's 8000-byte limit")
    func tooBig() throws {
        let small = CommitNoticePayload.text(
            revision: 9, rows: [put("/k", Array(repeating: 1, count: 3900), id: 9, revision: 9, created: 9, version: 1)])
        #expect(small.utf8.count <= CommitNoticePayload.maxBytes)
        #expect(try #require(CommitNoticePayload(parsing: small)).rows?.count == 1)
        let big = CommitNoticePayload.text(
            revision: 9, rows: [put("/k", Array(repeating: 1, count: 4000), id: 9, revision: 9, created: 9, version: 1)])
        #expect(big == "9")
        #expect(CommitNoticePayload(parsing: big) == CommitNoticePayload(revision: 9, rows: nil))
    }

    @Test("A bare revision, a hello and damaged rows are told apart")
    func otherPayloads() throws {
        #expect(CommitNoticePayload(parsing: "1234") == CommitNoticePayload(revision: 1234, rows: nil))
        #expect(CommitNoticePayload(parsing: "hello 77") == nil)
        #expect(CommitNoticePayload(parsing: "") == nil)
        let text = CommitNoticePayload.text(revision: 5, rows: [put("/k", [1, 2, 3], id: 5, revision: 5, created: 5, version: 1)])
        // Damaged: the revision still counts, the rows are not used.
        for damaged in [String(text.dropLast()), String(text.dropLast(2)), text + "00", String(text.map { $0 == "0" ? "g" : $0 })] {
            let parsed = try #require(CommitNoticePayload(parsing: damaged))
            #expect(parsed.revision == 5)
            #expect(parsed.rows == nil, "\(damaged)")
        }
    }
}
