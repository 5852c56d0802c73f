import Glibc

/// Writes a bbolt (v1.3.6, format version 2) database file, the format etcd 3.5 keeps its
/// backend in and `etcdctl snapshot save` stores: buckets in name order, each with its keys in
/// byte order, every bucket a tree of its own (leaf pages, then branch levels bottom-up), the
/// root bucket last, no freelist page (bbolt then treats unreachable pages as free, as etcd's own
/// files, written with `NoFreelistSync`, do). Pages are written to `file` as they fill, so memory
/// holds one page per bucket plus one branch entry per page; the two meta pages, which name the
/// root and the page count, are written last at the start of the file.
///
/// Layout (little-endian): a page is a 16-byte header `id u64, flags u16, count u16, overflow u32`
/// and its elements; a leaf element is `flags u32 (1: a bucket), pos u32, ksize u32, vsize u32`,
/// a branch element `pos u32, ksize u32, pgid u64`, `pos` counting from the element itself, the
/// keys and values after the elements; a page too large for one spans `overflow` more.
struct BoltWriter {
    static let pageSize = 4096
    private static let leafFlag: UInt16 = 0x02, branchFlag: UInt16 = 0x01, metaFlag: UInt16 = 0x04
    private static let bucketFlag: UInt32 = 0x01

    private let file: SnapshotFile
    private var nextPage: UInt64 = 2
    /// The bucket being written: its name, its current leaf, and the first key and page of each
    /// leaf written so far.
    private var bucket: (name: [UInt8], leaf: [(key: [UInt8], value: [UInt8])], leafBytes: Int, pages: [(key: [UInt8], page: UInt64)])?
    /// Finished buckets and their root pages, in name order.
    private var buckets: [(name: [UInt8], root: UInt64)] = []

    init(file: SnapshotFile) {
        self.file = file
    }

    mutating func beginBucket(_ name: String) {
        bucket = (Array(name.utf8), [], 0, [])
    }

    /// Adds a key to the open bucket; keys must come in ascending byte order.
    mutating func put(_ key: [UInt8], _ value: [UInt8]) throws(SnapshotError) {
        guard var open = bucket else { return }
        let size = 16 + key.count + value.count
        if !open.leaf.isEmpty && 16 + open.leafBytes + size > Self.pageSize {
            try flushLeaf(&open)
        }
        open.leaf.append((key, value))
        open.leafBytes += size
        bucket = open
    }

    mutating func endBucket() throws(SnapshotError) {
        guard var open = bucket else { return }
        if !open.leaf.isEmpty || open.pages.isEmpty { try flushLeaf(&open) }
        let root = try writeBranches(open.pages)
        buckets.append((open.name, root))
        bucket = nil
    }

    /// Writes the root bucket and the meta pages; returns the file's size (pages × page size).
    mutating func finish() throws(SnapshotError) -> Int {
        var pages: [(key: [UInt8], page: UInt64)] = []
        var leaf: [(key: [UInt8], value: [UInt8])] = []
        var leafBytes = 0
        for (name, root) in buckets {
            let header = Self.le64(root) + Self.le64(0)
            let size = 16 + name.count + header.count
            if !leaf.isEmpty && 16 + leafBytes + size > Self.pageSize {
                pages.append((leaf[0].key, try writeLeaf(leaf, flags: Self.bucketFlag)))
                leaf = []
                leafBytes = 0
            }
            leaf.append((name, header))
            leafBytes += size
        }
        pages.append((leaf.first?.key ?? [], try writeLeaf(leaf, flags: Self.bucketFlag)))
        let root = try writeBranches(pages)
        // Two metas, the higher txid wins (bbolt's choice); both point at the same tree.
        try file.write(Self.metaPage(id: 0, root: root, pages: nextPage, txid: 2), at: 0)
        try file.write(Self.metaPage(id: 1, root: root, pages: nextPage, txid: 1), at: Self.pageSize)
        return Int(nextPage) * Self.pageSize
    }

    private mutating func flushLeaf(
        _ open: inout (name: [UInt8], leaf: [(key: [UInt8], value: [UInt8])], leafBytes: Int, pages: [(key: [UInt8], page: UInt64)])
    ) throws(SnapshotError) {
        open.pages.append((open.leaf.first?.key ?? [], try writeLeaf(open.leaf, flags: 0)))
        open.leaf = []
        open.leafBytes = 0
    }

    private mutating func writeLeaf(_ elements: [(key: [UInt8], value: [UInt8])], flags: UInt32) throws(SnapshotError) -> UInt64 {
        var body: [UInt8] = []
        var data: [UInt8] = []
        for (index, element) in elements.enumerated() {
            let position = 16 * (elements.count - index) + data.count
            body +=
                Self.le32(flags) + Self.le32(UInt32(position)) + Self.le32(UInt32(element.key.count))
                + Self.le32(UInt32(element.value.count))
            data += element.key
            data += element.value
        }
        return try writePage(flags: Self.leafFlag, count: elements.count, body: body + data)
    }

    /// Branch levels over `children` until one page is left; returns it.
    private mutating func writeBranches(_ children: [(key: [UInt8], page: UInt64)]) throws(SnapshotError) -> UInt64 {
        var level = children
        while level.count > 1 {
            var parents: [(key: [UInt8], page: UInt64)] = []
            var start = 0
            while start < level.count {
                var end = start
                var bytes = 16
                while end < level.count && (end == start || bytes + 16 + level[end].key.count <= Self.pageSize) {
                    bytes += 16 + level[end].key.count
                    end += 1
                }
                let group = level[start..<end]
                var body: [UInt8] = []
                var data: [UInt8] = []
                for (offset, child) in group.enumerated() {
                    let position = 16 * (group.count - offset) + data.count
                    body += Self.le32(UInt32(position)) + Self.le32(UInt32(child.key.count)) + Self.le64(child.page)
                    data += child.key
                }
                parents.append((group[group.startIndex].key, try writePage(flags: Self.branchFlag, count: group.count, body: body + data)))
                start = end
            }
            level = parents
        }
        return level[0].page
    }

    /// Writes a page (and its overflow pages) at the next free page number; returns that number.
    private mutating func writePage(flags: UInt16, count: Int, body: [UInt8]) throws(SnapshotError) -> UInt64 {
        guard count < 0xFFFF else { throw SnapshotError("a bbolt page holds fewer than 65535 elements") }
        let id = nextPage
        let pages = (16 + body.count + Self.pageSize - 1) / Self.pageSize
        var bytes = Self.le64(id) + Self.le16(flags) + Self.le16(UInt16(count)) + Self.le32(UInt32(pages - 1)) + body
        bytes += [UInt8](repeating: 0, count: pages * Self.pageSize - bytes.count)
        try file.write(bytes, at: Int(id) * Self.pageSize)
        nextPage += UInt64(pages)
        return id
    }

    static func metaPage(id: UInt64, root: UInt64, pages: UInt64, txid: UInt64) -> [UInt8] {
        var meta = le32(0xED0C_DAED) + le32(2) + le32(UInt32(pageSize)) + le32(0)
        meta += le64(root) + le64(0) + le64(UInt64.max) + le64(pages) + le64(txid)
        meta += le64(fnv1a64(meta))
        let page = le64(id) + le16(metaFlag) + le16(0) + le32(0) + meta
        return page + [UInt8](repeating: 0, count: pageSize - page.count)
    }

    /// bbolt's meta checksum: FNV-1a 64 over the meta fields before it.
    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    static func le16(_ value: UInt16) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8)] }
    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> UInt32(8 * $0)) } }
    static func le64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> UInt64(8 * $0)) } }
}

/// Why a snapshot could not be made or read.
struct SnapshotError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A temporary file the snapshot is built in, removed when closed.
final class SnapshotFile {
    private let descriptor: Int32

    init() throws(SnapshotError) {
        var template = Array("/tmp/kine-snapshot-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return -1 }
            return mkstemp(base)
        }
        guard fd >= 0 else { throw SnapshotError("cannot create a temporary file: errno \(errno)") }
        descriptor = fd
        // Unlinked at once: the file lives as long as the descriptor, whatever happens next.
        template.withUnsafeBufferPointer { buffer in
            if let base = buffer.baseAddress { _ = unlink(base) }
        }
    }

    deinit { close(descriptor) }

    func write(_ bytes: [UInt8], at offset: Int) throws(SnapshotError) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return pwrite(descriptor, base + written, bytes.count - written, off_t(offset + written))
            }
            guard n > 0 else { throw SnapshotError("cannot write the snapshot file: errno \(errno)") }
            written += n
        }
    }

    func read(at offset: Int, count: Int) throws(SnapshotError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return pread(descriptor, base + done, count - done, off_t(offset + done))
            }
            guard n > 0 else { throw SnapshotError("cannot read the snapshot file: errno \(errno)") }
            done += n
        }
        return bytes
    }
}
