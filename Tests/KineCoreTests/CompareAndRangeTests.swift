import Testing

@testable import KineCore

@Suite("Compare evaluation and range selection")
struct CompareAndRangeTests {
    private func kv(_ key: String, create: Int64, mod: Int64, version: Int64, value: String) -> KeyValue {
        KeyValue(key: Array(key.utf8), createRevision: create, modRevision: mod, version: version, value: Array(value.utf8))
    }

    @Test("A missing key compares as zero, except on VALUE where every compare fails")
    func missingKey() {
        let key = Array("k".utf8)
        #expect(CompareEvaluation.evaluate(Compare(result: .equal, target: .mod, key: key, operand: .modRevision(0)), against: []))
        #expect(CompareEvaluation.evaluate(Compare(result: .equal, target: .version, key: key), against: []))
        #expect(!CompareEvaluation.evaluate(Compare(result: .notEqual, target: .value, key: key, operand: .value([1])), against: []))
        #expect(!CompareEvaluation.evaluate(Compare(result: .equal, target: .value, key: key), against: []))
    }

    @Test("Operators, and an operand of the wrong oneof case counts as zero")
    func operators() {
        let item = kv("k", create: 2, mod: 5, version: 3, value: "m")
        let key = item.key
        #expect(CompareEvaluation.evaluate(Compare(result: .greater, target: .mod, key: key, operand: .modRevision(4)), against: [item]))
        #expect(CompareEvaluation.evaluate(Compare(result: .less, target: .create, key: key, operand: .createRevision(3)), against: [item]))
        #expect(CompareEvaluation.evaluate(Compare(result: .notEqual, target: .version, key: key, operand: .version(2)), against: [item]))
        #expect(
            CompareEvaluation.evaluate(
                Compare(result: .greater, target: .value, key: key, operand: .value(Array("a".utf8))), against: [item]))
        #expect(CompareEvaluation.evaluate(Compare(result: .greater, target: .mod, key: key, operand: .version(100)), against: [item]))
        #expect(CompareEvaluation.evaluate(Compare(result: .equal, target: .lease, key: key, operand: .lease(0)), against: [item]))
    }

    @Test("A range compare must hold for every key")
    func rangeCompare() {
        let items = [kv("a", create: 1, mod: 1, version: 1, value: "x"), kv("b", create: 2, mod: 4, version: 2, value: "y")]
        #expect(CompareEvaluation.evaluate(Compare(result: .greater, target: .mod, key: [0x61], operand: .modRevision(0)), against: items))
        #expect(!CompareEvaluation.evaluate(Compare(result: .greater, target: .mod, key: [0x61], operand: .modRevision(1)), against: items))
    }

    @Test("limit, more and count; count ignores filters")
    func limitAndCount() {
        let items = (1...5).map { kv("k\($0)", create: Int64($0), mod: Int64(10 - $0), version: 1, value: "\($0)") }
        let page = RangeSelection.apply(RangeRequest(limit: 2), kvs: items, count: 5, header: .init())
        #expect(page.kvs.map(\.key) == [Array("k1".utf8), Array("k2".utf8)])
        #expect(page.more && page.count == 5)
        let filtered = RangeSelection.apply(RangeRequest(limit: 10, maxCreateRevision: 2), kvs: items, count: 5, header: .init())
        #expect(filtered.kvs.count == 2 && filtered.count == 5 && !filtered.more)
        let counted = RangeSelection.apply(RangeRequest(countOnly: true), kvs: items, count: 5, header: .init())
        #expect(counted.kvs.isEmpty && counted.count == 5)
    }

    @Test("Sorting: non-key targets default to ascending; descending keeps ties in key order")
    func sorting() {
        let items = [
            kv("a", create: 1, mod: 3, version: 2, value: "z"), kv("b", create: 2, mod: 1, version: 2, value: "y"),
            kv("c", create: 3, mod: 2, version: 1, value: "x"),
        ]
        let byMod = RangeSelection.apply(RangeRequest(sortTarget: .mod), kvs: items, count: 3, header: .init())
        #expect(byMod.kvs.map(\.modRevision) == [1, 2, 3])
        let byVersionDesc = RangeSelection.apply(
            RangeRequest(sortOrder: .descend, sortTarget: .version), kvs: items, count: 3, header: .init())
        #expect(byVersionDesc.kvs.map { String(decoding: $0.key, as: UTF8.self) } == ["a", "b", "c"])
        let byKeyDesc = RangeSelection.apply(RangeRequest(sortOrder: .descend), kvs: items, count: 3, header: .init())
        #expect(byKeyDesc.kvs.map { String(decoding: $0.key, as: UTF8.self) } == ["c", "b", "a"])
        let keysOnly = RangeSelection.apply(RangeRequest(keysOnly: true), kvs: items, count: 3, header: .init())
        #expect(keysOnly.kvs.allSatisfy { $0.value.isEmpty })
    }
}
