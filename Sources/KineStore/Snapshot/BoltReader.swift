/// Reads a bbolt (format version 2) database held in memory: the meta page with the highest
/// valid txid names the root bucket, whose tree lists the buckets; each bucket is a tree of its
/// own or an inline page in its value. The tree is walked from the root, never scanned page by
/// page: etcd's files hold stale free pages.
struct BoltReader {
    private let bytes: [UInt8]
    private let pageSize: Int
    private let root: UInt64

    init(_ bytes: [UInt8]) throws(SnapshotError) {
        self.bytes = bytes
        var best: (txid: UInt64, root: UInt64, pageSize: Int)?
        for page in 0..<2 {
            // Page 1 sits one page after page 0, whose own meta says how large a page is.
            let size = page == 0 ? 0 : best?.pageSize ?? 4096
            let base = page * size
            guard bytes.count >= base + 80, Self.u32(bytes, base + 16) == 0xED0C_DAED, Self.u32(bytes, base + 20) == 2 else { continue }
            let checksum = Self.u64(bytes, base + 72)
            if checksum != 0 && checksum != BoltWriter.fnv1a64(Array(bytes[(base + 16)..<(base + 72)])) { continue }
            let candidate = (txid: Self.u64(bytes, base + 64), root: Self.u64(bytes, base + 32), pageSize: Int(Self.u32(bytes, base + 24)))
            if best.map({ candidate.txid > $0.txid }) ?? true { best = candidate }
        }
        guard let best, best.pageSize >= 1024 else { throw SnapshotError("not a bbolt database (no valid meta page)") }
        pageSize = best.pageSize
        root = best.root
    }

    /// Calls `body` with every key and value of the bucket `name`, in key order; nothing if the
    /// bucket does not exist.
    func forEach(in name: String, _ body: ([UInt8], [UInt8]) throws -> Void) throws {
        var bucket: [UInt8]?
        try walk(page: root) { flags, key, value in
            if flags & 1 != 0 && key == Array(name.utf8) { bucket = value }
        }
        guard let bucket, bucket.count >= 16 else { return }
        let rootPage = Self.u64(bucket, 0)
        if rootPage == 0 {
            // An inline bucket: a leaf page image after the 16-byte header.
            try walkLeaf(Array(bucket[16...]), base: 0) { flags, key, value in if flags & 1 == 0 { try body(key, value) } }
        } else {
            try walk(page: rootPage) { flags, key, value in if flags & 1 == 0 { try body(key, value) } }
        }
    }

    private func walk(page id: UInt64, depth: Int = 0, _ body: (UInt32, [UInt8], [UInt8]) throws -> Void) throws {
        guard depth < 64 else { throw SnapshotError("bbolt tree deeper than 64 levels") }
        let base = Int(id) * pageSize
        guard id >= 2, base + 16 <= bytes.count else { throw SnapshotError("page \(id) lies outside the file") }
        let flags = Self.u16(bytes, base + 8)
        if flags & 0x02 != 0 { return try walkLeaf(bytes, base: base, body) }
        guard flags & 0x01 != 0 else { throw SnapshotError("page \(id) is neither a branch nor a leaf") }
        let count = Int(Self.u16(bytes, base + 10))
        for index in 0..<count {
            let element = base + 16 + 16 * index
            guard element + 16 <= bytes.count else { throw SnapshotError("page \(id) is truncated") }
            try walk(page: Self.u64(bytes, element + 8), depth: depth + 1, body)
        }
    }

    private func walkLeaf(_ data: [UInt8], base: Int, _ body: (UInt32, [UInt8], [UInt8]) throws -> Void) throws {
        guard base + 16 <= data.count else { throw SnapshotError("leaf page is truncated") }
        let count = Int(Self.u16(data, base + 10))
        for index in 0..<count {
            let element = base + 16 + 16 * index
            guard element + 16 <= data.count else { throw SnapshotError("leaf page is truncated") }
            let flags = Self.u32(data, element)
            let start = element + Int(Self.u32(data, element + 4))
            let keySize = Int(Self.u32(data, element + 8))
            let valueSize = Int(Self.u32(data, element + 12))
            guard start >= 0, start + keySize + valueSize <= data.count else { throw SnapshotError("leaf element points outside the file") }
            try body(flags, Array(data[start..<start + keySize]), Array(data[(start + keySize)..<(start + keySize + valueSize)]))
        }
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(b[at + $1]) << (8 * UInt32($1)) } }
    static func u64(_ b: [UInt8], _ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(b[at + $1]) << (8 * UInt64($1)) } }
}
