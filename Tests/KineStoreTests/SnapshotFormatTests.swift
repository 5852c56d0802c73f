import Testing

@testable import KineStore

/// The pieces of a snapshot file: SHA-256 against the standard vectors, and BoltWriter's pages
/// read back by an independent walk of the bbolt format (meta → root bucket → bucket trees).
/// `Tests/e2e/test_snapshot.py` has etcd's own tools read a whole snapshot.
@Suite("Snapshot format: SHA-256 and bbolt pages")
struct SnapshotFormatTests {
    private func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0F)]] })
    }

    @Test("SHA-256 of the FIPS 180-4 vectors, whole and fed in pieces")
    func sha256() {
        var empty = SHA256()
        #expect(hex(empty.finish()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var abc = SHA256()
        abc.update(Array("abc".utf8))
        #expect(hex(abc.finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        var long = SHA256()
        let text = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        for start in stride(from: 0, to: text.count, by: 7) { long.update(text[start..<min(text.count, start + 7)]) }
        #expect(hex(long.finish()) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var million = SHA256()
        for _ in 0..<1000 { million.update([UInt8](repeating: UInt8(ascii: "a"), count: 1000)) }
        #expect(hex(million.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// A minimal bbolt reader: every bucket's keys and values, in stored order.
    struct Reader {
        let bytes: [UInt8]
        let pageSize = 4096

        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) } }

        /// (flags, key, value) of every leaf element under page `id`, in order.
        func walk(_ id: UInt64) -> [(UInt32, [UInt8], [UInt8])] {
            let base = Int(id) * pageSize
            #expect(u64(base) == id, "page \(id) names itself")
            let flags = u16(base + 8)
            let count = u16(base + 10)
            var out: [(UInt32, [UInt8], [UInt8])] = []
            for index in 0..<count {
                let element = base + 16 + 16 * index
                if flags == 0x02 {
                    let pos = u32(element + 4)
                    let ksize = u32(element + 8)
                    let vsize = u32(element + 12)
                    let key = Array(bytes[(element + pos)..<(element + pos + ksize)])
                    out.append((UInt32(u32(element)), key, Array(bytes[(element + pos + ksize)..<(element + pos + ksize + vsize)])))
                } else {
                    #expect(flags == 0x01)
                    out += walk(u64(element + 8))
                }
            }
            return out
        }
    }

    @Test("Buckets, keys in order, branch levels and overflow pages read back; the meta pages check out")
    func boltRoundTrip() throws {
        let file = try SnapshotFile()
        var writer = BoltWriter(file: file)
        writer.beginBucket("alarm")
        try writer.endBucket()
        writer.beginBucket("key")
        let keys = (0..<3000).map { KeyHistoryHash.revisionKey(main: Int64($0 + 2), sub: 0, tombstone: $0 % 7 == 0) }
        for (index, key) in keys.enumerated() {
            try writer.put(key, [UInt8](repeating: UInt8(index % 251), count: index == 10 ? 9000 : 40))
        }
        try writer.endBucket()
        writer.beginBucket("meta")
        try writer.put(Array("finishedCompactRev".utf8), KeyHistoryHash.revisionKey(main: 5, sub: 0, tombstone: false))
        try writer.endBucket()
        let size = try writer.finish()
        let reader = Reader(bytes: try file.read(at: 0, count: size))
        #expect(size % 512 == 0)
        for page in 0..<2 {
            let base = page * 4096
            #expect(reader.u16(base + 8) == 0x04)
            #expect(reader.u32(base + 16) == 0xED0C_DAED)
            #expect(reader.u64(base + 56) == UInt64(size / 4096), "the page count")
            #expect(reader.u64(base + 72) == BoltWriter.fnv1a64(Array(reader.bytes[(base + 16)..<(base + 72)])))
        }
        let root = reader.walk(reader.u64(32))
        #expect(root.map { String(decoding: $0.1, as: UTF8.self) } == ["alarm", "key", "meta"])
        #expect(root.allSatisfy { $0.0 == 1 })
        func bucket(_ index: Int) -> [(UInt32, [UInt8], [UInt8])] {
            let header = root[index].2
            return reader.walk((0..<8).reduce(UInt64(0)) { $0 | UInt64(header[$1]) << (8 * UInt64($1)) })
        }
        #expect(bucket(0).isEmpty)
        let stored = bucket(1)
        #expect(stored.map(\.1) == keys)
        #expect(stored[10].2.count == 9000)
        #expect(stored[11].2 == [UInt8](repeating: 11, count: 40))
        #expect(bucket(2).map(\.2) == [KeyHistoryHash.revisionKey(main: 5, sub: 0, tombstone: false)])
    }
}
