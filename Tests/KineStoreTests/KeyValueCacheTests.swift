import KineCore
import Testing

@testable import KineStore

@Suite("KeyValueCache: the newest state of every key, in memory")
struct KeyValueCacheTests {
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

    private func keys(_ response: RangeResponse?) -> [String] {
        response?.kvs.map { String(decoding: $0.key, as: UTF8.self) } ?? []
    }

    @Test("Ranges at the current revision are answered in key order with limit, count and more; other revisions are not")
    func ranges() {
        let cache = KeyValueCache()
        #expect(cache.range(RangeRequest(key: Array("a".utf8))) == nil, "nothing before the first load")
        cache.load(rows: [], lastID: 0, revision: 0)
        cache.apply([put("b", "2", revision: 1), put("a", "1", revision: 2), put("c", "3", revision: 3), delete("b", revision: 4)])
        let all = cache.range(RangeRequest(key: [0], rangeEnd: [0]))
        #expect(keys(all) == ["a", "c"])
        #expect(all?.count == 2)
        #expect(all?.header.revision == 4)
        let limited = cache.range(RangeRequest(key: [0], rangeEnd: [0], limit: 1))
        #expect(keys(limited) == ["a"])
        #expect(limited?.more == true)
        #expect(limited?.count == 2)
        let counted = cache.range(RangeRequest(key: [0], rangeEnd: [0], countOnly: true))
        #expect(counted?.kvs.isEmpty == true)
        #expect(counted?.count == 2)
        #expect(cache.range(RangeRequest(key: Array("a".utf8), revision: 4)) != nil, "the current revision, named")
        #expect(cache.range(RangeRequest(key: Array("a".utf8), revision: 3)) == nil, "history goes to the table")
        #expect(cache.range(RangeRequest(key: Array("a".utf8), revision: 9)) == nil, "a future revision goes to the table")
    }

    @Test("A snapshot gives the Writer live keys, tombstones with their row ids, and every live key of a range")
    func snapshot() {
        let cache = KeyValueCache()
        #expect(cache.snapshot(keys: [], ranges: [KeyRange]()) == nil)
        cache.load(rows: [], lastID: 0, revision: 0)
        cache.apply([put("a", "1", revision: 1), put("p/1", "x", revision: 2), put("p/2", "y", revision: 3), delete("a", revision: 4)])
        guard
            let snapshot = cache.snapshot(
                keys: [Array("a".utf8), Array("zz".utf8)], ranges: [KeyRange(key: Array("p/".utf8), rangeEnd: Array("p0".utf8))])
        else {
            Issue.record("a loaded cache gives a snapshot")
            return
        }
        #expect(snapshot.lastID == 4)
        #expect(snapshot.revision == 4)
        #expect(snapshot.states[Array("a".utf8)]?.deleted == true)
        #expect(snapshot.states[Array("a".utf8)]?.rowID == 4)
        #expect(snapshot.states[Array("zz".utf8)] == nil, "a key never written has no state")
        #expect(snapshot.states[Array("p/1".utf8)]?.kv.value == Array("x".utf8))
        #expect(snapshot.states[Array("p/2".utf8)]?.rowID == 3)
    }

    @Test("Read-only txns are evaluated against the cache; txns that write or read history are not")
    func readOnlyTxn() {
        let cache = KeyValueCache()
        cache.load(rows: [], lastID: 0, revision: 0)
        cache.apply([put("a", "1", revision: 1)])
        let compare = Compare(result: .equal, target: .value, key: Array("a".utf8), operand: .value(Array("1".utf8)))
        let read = TxnRequest(compare: [compare], success: [.range(RangeRequest(key: Array("a".utf8)))], failure: [])
        let response = cache.readOnlyTxn(read)
        #expect(response?.succeeded == true)
        #expect(response?.header.revision == 1)
        let writes = TxnRequest(compare: [], success: [.put(PutRequest(key: Array("a".utf8), value: []))], failure: [])
        #expect(cache.readOnlyTxn(writes) == nil)
        let history = TxnRequest(compare: [], success: [.range(RangeRequest(key: Array("a".utf8), revision: 1))], failure: [])
        #expect(cache.readOnlyTxn(history) == nil)
    }
}
