import KineCore
import KineTestSupport
import Testing

@testable import KineStore

@Suite("SortedKeyMap: byte-ordered chunked map")
struct SortedKeyMapTests {
    /// Keys from a small alphabet with NUL and 0xFF, so prefixes, equal prefixes and byte order
    /// edge cases all occur.
    private func randomKey(_ generator: inout some RandomNumberGenerator) -> Bytes {
        let alphabet: [UInt8] = [0, 1, 0x61, 0x62, 0x7F, 0x80, 0xFF]
        return (0..<Int.random(in: 0...4, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? 0 }
    }

    @Test("Random inserts, updates and removals agree with a sorted reference", arguments: [2, 4, 256])
    func agreesWithReference(chunkCapacity: Int) {
        var generator = SeededGenerator(seed: UInt64(chunkCapacity))
        var map = SortedKeyMap<Int>(chunkCapacity: chunkCapacity)
        var reference: [Bytes: Int] = [:]
        for step in 0..<4000 {
            let key = randomKey(&generator)
            if Int.random(in: 0..<3, using: &generator) == 0 {
                #expect(map.remove(key) == reference.removeValue(forKey: key))
            } else {
                map.set(key, step)
                reference[key] = step
            }
            #expect(map.count == reference.count)
            if step % 50 == 0 { check(map, against: reference, using: &generator) }
        }
        check(map, against: reference, using: &generator)
    }

    @Test("Bulk load from sorted entries, then ranges and counts")
    func bulkLoad() {
        var generator = SeededGenerator(seed: 7)
        var reference: [Bytes: Int] = [:]
        for index in 0..<1000 { reference[randomKey(&generator) + Array("\(index)".utf8)] = index }
        let sorted = reference.sorted { KeyRange.less($0.key, $1.key) }.map { ($0.key, $0.value) }
        var map = SortedKeyMap(sorted: sorted, chunkCapacity: 8)
        #expect(map.count == reference.count)
        check(map, against: reference, using: &generator)
        for (key, _) in sorted.prefix(500) {
            map.remove(key)
            reference.removeValue(forKey: key)
        }
        check(map, against: reference, using: &generator)
    }

    private func check(_ map: SortedKeyMap<Int>, against reference: [Bytes: Int], using generator: inout some RandomNumberGenerator) {
        let sortedKeys = reference.keys.sorted(by: KeyRange.less)
        var all: [Bytes] = []
        map.forEach(in: .interval(start: [], end: nil)) { key, value in
            all.append(key)
            #expect(reference[key] == value)
            return true
        }
        #expect(all == sortedKeys)
        for _ in 0..<40 {
            let start = randomKey(&generator)
            let end: Bytes? = Bool.random(using: &generator) ? randomKey(&generator) : nil
            let range = KeyRange.interval(start: start, end: end)
            let expected = sortedKeys.filter { range.contains($0) }
            var seen: [Bytes] = []
            map.forEach(in: range) { key, _ in
                seen.append(key)
                return true
            }
            #expect(seen == expected)
            #expect(map.count(in: range) == expected.count)
            let single = randomKey(&generator)
            #expect(map[single] == reference[single])
            #expect(map.count(in: .single(single)) == (reference[single] == nil ? 0 : 1))
        }
        // Stopping early stops.
        var visited = 0
        map.forEach(in: .interval(start: [], end: nil)) { _, _ in
            visited += 1
            return visited < 3
        }
        #expect(visited == min(3, reference.count))
    }
}
