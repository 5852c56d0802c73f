import KineCore
import Testing

@testable import KineStore

@Suite("KeyValueCache: the figures /metrics shows")
struct KeyValueCacheFiguresTests {
    private func put(_ key: String, _ value: String, revision: Int64) -> RevisionEvents {
        let kv = KeyValue(key: Array(key.utf8), modRevision: revision, version: 1, value: Array(value.utf8))
        return RevisionEvents(revision: revision, events: [Event(type: .put, kv: kv)], lastID: revision, rowIDs: [revision])
    }

    private func delete(_ key: String, revision: Int64) -> RevisionEvents {
        let kv = KeyValue(key: Array(key.utf8), modRevision: revision)
        return RevisionEvents(revision: revision, events: [Event(type: .delete, kv: kv)], lastID: revision, rowIDs: [revision])
    }

    @Test("Keys, tombstones and bytes follow puts, overwrites, deletes and compaction")
    func figuresFollowChanges() {
        let cache = KeyValueCache()
        #expect(cache.figures == nil)
        cache.load(rows: [], lastID: 0, revision: 0)
        #expect(cache.figures == ReadCacheFigures(keys: 0, tombstones: 0, bytes: 0))
        cache.apply([put("a", "1234", revision: 1), put("bb", "x", revision: 2)])
        #expect(cache.figures == ReadCacheFigures(keys: 2, tombstones: 0, bytes: 1 + 4 + 2 + 1))
        // An overwrite replaces the old value's bytes rather than adding to them.
        cache.apply([put("a", "12", revision: 3)])
        #expect(cache.figures == ReadCacheFigures(keys: 2, tombstones: 0, bytes: 1 + 2 + 2 + 1))
        cache.apply([delete("bb", revision: 4), delete("never", revision: 5)])
        #expect(cache.figures == ReadCacheFigures(keys: 1, tombstones: 2, bytes: 1 + 2))
        // Compaction through 4 drops the tombstone at 4; the one at 5 is the newest row and stays.
        cache.compacted(through: 5)
        #expect(cache.figures == ReadCacheFigures(keys: 1, tombstones: 1, bytes: 3))
        // Putting a deleted key back turns its tombstone into a live key again.
        cache.apply([put("never", "v", revision: 6)])
        #expect(cache.figures == ReadCacheFigures(keys: 2, tombstones: 0, bytes: 3 + 6))
    }
}
