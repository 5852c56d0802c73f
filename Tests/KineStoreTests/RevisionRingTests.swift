import KineCore
import Testing

@testable import KineStore

@Suite("RevisionRing: recent revisions kept for live watchers")
struct RevisionRingTests {
    private func group(_ revision: Int64, events: Int = 1, valueBytes: Int = 1) -> RevisionEvents {
        let kvs = (0..<events).map { index in
            Event(
                type: .put,
                kv: KeyValue(
                    key: Array("k\(index)".utf8), modRevision: revision, version: 1, value: Array(repeating: 0x61, count: valueBytes)))
        }
        return RevisionEvents(revision: revision, events: kvs, lastID: revision, rowIDs: kvs.map { _ in revision })
    }

    @Test("Everything after the starting point is served, ranges are half-open (after, through]")
    func serves() {
        var ring = RevisionRing(capacity: 100, coversAfter: 10)
        for revision in 11...20 { ring.append(group(Int64(revision))) }
        #expect(ring.revisions(after: 10, through: 20)?.map(\.revision) == Array(11...20))
        #expect(ring.revisions(after: 14, through: 16)?.map(\.revision) == [15, 16])
        #expect(ring.revisions(after: 20, through: 25)?.isEmpty == true)
        #expect(ring.revisions(after: 9, through: 20) == nil, "revision 10 and before were never in the ring")
    }

    @Test("Over the event capacity the oldest revisions go, and asking for them answers nil")
    func evictsByCount() {
        var ring = RevisionRing(capacity: 5)
        for revision in 1...8 { ring.append(group(Int64(revision), events: 1)) }
        #expect(ring.coversAfter == 3)
        #expect(ring.revisions(after: 3, through: 8)?.map(\.revision) == [4, 5, 6, 7, 8])
        #expect(ring.revisions(after: 2, through: 8) == nil)
    }

    @Test("A revision larger than the whole ring is not kept; the ring starts after it")
    func oversizedRevision() {
        var ring = RevisionRing(capacity: 4)
        ring.append(group(1))
        ring.append(group(2, events: 10))
        #expect(ring.coversAfter == 2)
        #expect(ring.revisions(after: 2, through: 2)?.isEmpty == true)
        ring.append(group(3))
        #expect(ring.revisions(after: 2, through: 3)?.map(\.revision) == [3])
    }

    @Test("The byte bound evicts too")
    func evictsByBytes() {
        var ring = RevisionRing(capacity: 1_000)
        let half = RevisionRing.maxBytes / 2
        ring.append(group(1, valueBytes: half))
        ring.append(group(2, valueBytes: half))
        ring.append(group(3, valueBytes: 16))
        #expect(ring.coversAfter == 1)
        #expect(ring.revisions(after: 1, through: 3)?.map(\.revision) == [2, 3])
    }

    @Test("Long runs compact the storage without losing order")
    func longRun() {
        var ring = RevisionRing(capacity: 50)
        for revision in 1...10_000 { ring.append(group(Int64(revision))) }
        #expect(ring.coversAfter == 9_950)
        #expect(ring.revisions(after: 9_950, through: 10_000)?.map(\.revision) == Array(9_951...10_000))
    }
}
