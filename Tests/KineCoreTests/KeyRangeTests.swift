import Testing

@testable import KineCore

@Suite("Key ranges")
struct KeyRangeTests {
    private func b(_ s: String) -> Bytes { Array(s.utf8) }

    @Test("range_end conventions: single key, from-key, interval, whole keyspace")
    func conventions() {
        #expect(KeyRange(key: b("a"), rangeEnd: []) == .single(b("a")))
        #expect(KeyRange(key: b("a"), rangeEnd: [0]) == .interval(start: b("a"), end: nil))
        #expect(KeyRange(key: [0], rangeEnd: [0]).contains(b("anything")))
        let interval = KeyRange(key: b("a"), rangeEnd: b("c"))
        #expect(interval.contains(b("a")) && interval.contains(b("bzz")) && !interval.contains(b("c")))
    }

    @Test("range_end <= key selects nothing")
    func empty() {
        #expect(KeyRange(key: b("b"), rangeEnd: b("a")).isEmpty)
        #expect(KeyRange(key: b("b"), rangeEnd: b("b")).isEmpty)
        #expect(!KeyRange(key: b("b"), rangeEnd: [0]).isEmpty)
    }

    @Test("Prefix end increments the last byte below 0xFF")
    func prefixEnd() {
        #expect(KeyRange.prefixEnd(b("aa")) == b("ab"))
        #expect(KeyRange.prefixEnd([0x61, 0xFF]) == b("b"))
        #expect(KeyRange.prefixEnd([0xFF, 0xFF]) == [0])
    }

    @Test("Overlap of intervals and points")
    func overlaps() {
        let ac = KeyRange(key: b("a"), rangeEnd: b("c"))
        #expect(ac.overlaps(.single(b("b"))))
        #expect(!ac.overlaps(.single(b("c"))))
        #expect(ac.overlaps(KeyRange(key: b("b"), rangeEnd: [0])))
        #expect(!ac.overlaps(KeyRange(key: b("c"), rangeEnd: b("d"))))
    }
}
