import KineTestSupport
import Testing

@testable import KineCore

@Suite("Key encoding")
struct KeyEncodingTests {
    @Test("NUL-free UTF-8 keys are stored byte-identical, as Go kine stores them")
    func plainKeysUnchanged() {
        for key in ["/registry/pods/default/x", "compact_rev_key", "ключ/ü/😀", "a b_c%d"] {
            let bytes = Array(key.utf8)
            #expect(KeyEncoding.encode(bytes) == bytes)
            #expect(KeyEncoding.decode(bytes) == bytes)
        }
    }

    @Test("Arbitrary bytes round-trip and encode to valid NUL-free UTF-8")
    func roundTrip() {
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<5000 {
            let length = Int.random(in: 0...40, using: &generator)
            let key = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let encoded = KeyEncoding.encode(key)
            #expect(!encoded.contains(0))
            #expect(String(validating: encoded, as: UTF8.self) != nil)
            #expect(KeyEncoding.decode(encoded) == key)
        }
    }

    @Test("etcdctl check perf keys keep their prefix, so prefix ranges find them")
    func checkPerfKeys() {
        let prefix = Array("/etcdctl-check-perf/".utf8)
        let key = prefix + [0x96, 0x01] + [UInt8](repeating: 0, count: 254)
        let encoded = KeyEncoding.encode(key)
        #expect(Array(encoded.prefix(prefix.count)) == prefix)
        #expect(KeyRange.less(encoded, Array("/etcdctl-check-perf0".utf8)))
    }

    @Test("Order is preserved among ASCII, control bytes and high bytes")
    func orderPreserved() {
        var generator = SeededGenerator(seed: 7)
        let alphabet: [UInt8] = [0x00, 0x01, 0x02, 0x2F, 0x41, 0x7F, 0x80, 0x96, 0xFF]
        for _ in 0..<3000 {
            let a = (0..<Int.random(in: 0...6, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? 0 }
            let b = (0..<Int.random(in: 0...6, using: &generator)).map { _ in alphabet.randomElement(using: &generator) ?? 0 }
            #expect(KeyRange.less(a, b) == KeyRange.less(KeyEncoding.encode(a), KeyEncoding.encode(b)), "\(a) vs \(b)")
        }
    }

    @Test("Characters of the reserved block are escaped so decoding stays unambiguous")
    func reservedBlock() {
        let reserved = Array("\u{10FF80}x".utf8)
        #expect(KeyEncoding.encode(reserved) != reserved)
        #expect(KeyEncoding.decode(KeyEncoding.encode(reserved)) == reserved)
    }
}
