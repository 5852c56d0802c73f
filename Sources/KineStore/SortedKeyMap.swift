import Glibc
import KineCore

/// Byte-ordered map from keys to values: a list of sorted chunks of at most `chunkCapacity`
/// entries. Lookup, insert and delete cost a binary search over chunk boundaries plus one within a
/// chunk and a move of at most one chunk's entries, so a million keys never shift a million-entry
/// array; a range scan walks chunks in order, and a count adds whole chunks without visiting them.
struct SortedKeyMap<Value: Sendable>: Sendable {
    private struct Chunk: Sendable {
        var keys: [Bytes]
        var values: [Value]
    }

    private var chunks: [Chunk] = []
    private(set) var count = 0
    let chunkCapacity: Int

    init(chunkCapacity: Int = 256) {
        precondition(chunkCapacity >= 2, "a chunk must be able to split")
        self.chunkCapacity = chunkCapacity
    }

    /// Builds the map from entries already in ascending key order without duplicates.
    init(sorted entries: some Sequence<(Bytes, Value)>, chunkCapacity: Int = 256) {
        self.init(chunkCapacity: chunkCapacity)
        let fill = max(1, chunkCapacity * 3 / 4)
        var chunk = Chunk(keys: [], values: [])
        for (key, value) in entries {
            chunk.keys.append(key)
            chunk.values.append(value)
            if chunk.keys.count == fill {
                chunks.append(chunk)
                chunk = Chunk(keys: [], values: [])
            }
        }
        if !chunk.keys.isEmpty { chunks.append(chunk) }
        count = chunks.reduce(0) { $0 + $1.keys.count }
    }

    subscript(key: Bytes) -> Value? {
        guard let chunk = chunkIndex(for: key) else { return nil }
        let (index, found) = Self.search(chunks[chunk].keys, key)
        return found ? chunks[chunk].values[index] : nil
    }

    mutating func set(_ key: Bytes, _ value: Value) {
        guard let chunkIndex = chunkIndex(for: key) ?? (chunks.isEmpty ? nil : chunks.count - 1) else {
            chunks = [Chunk(keys: [key], values: [value])]
            count = 1
            return
        }
        let (index, found) = Self.search(chunks[chunkIndex].keys, key)
        if found {
            chunks[chunkIndex].values[index] = value
            return
        }
        chunks[chunkIndex].keys.insert(key, at: index)
        chunks[chunkIndex].values.insert(value, at: index)
        count += 1
        if chunks[chunkIndex].keys.count > chunkCapacity { split(chunkIndex) }
    }

    @discardableResult
    mutating func remove(_ key: Bytes) -> Value? {
        guard let chunkIndex = chunkIndex(for: key) else { return nil }
        let (index, found) = Self.search(chunks[chunkIndex].keys, key)
        guard found else { return nil }
        chunks[chunkIndex].keys.remove(at: index)
        let value = chunks[chunkIndex].values.remove(at: index)
        count -= 1
        if chunks[chunkIndex].keys.isEmpty { chunks.remove(at: chunkIndex) }
        return value
    }

    /// Calls `body` for the entries of `range` in key order until it returns false.
    func forEach(in range: KeyRange, _ body: (Bytes, Value) -> Bool) {
        if case .single(let key) = range {
            if let value = self[key] { _ = body(key, value) }
            return
        }
        guard case .interval(let start, let end) = range else { return }
        var (chunk, index) = position(of: start)
        while chunk < chunks.count {
            let keys = chunks[chunk].keys
            while index < keys.count {
                if let end, Self.compare(keys[index], end) >= 0 { return }
                if !body(keys[index], chunks[chunk].values[index]) { return }
                index += 1
            }
            chunk += 1
            index = 0
        }
    }

    /// Entries in `range`: whole chunks are counted without visiting their entries.
    func count(in range: KeyRange) -> Int {
        switch range {
        case .single(let key):
            return self[key] == nil ? 0 : 1
        case .interval(let start, let end):
            if range.isEmpty { return 0 }
            let low = position(of: start)
            let high = end.map(position(of:)) ?? (chunks.count, 0)
            if low.chunk == high.chunk { return max(0, high.index - low.index) }
            guard low.chunk < chunks.count else { return 0 }
            var total = chunks[low.chunk].keys.count - low.index
            var chunk = low.chunk + 1
            while chunk < high.chunk {
                total += chunks[chunk].keys.count
                chunk += 1
            }
            if high.chunk < chunks.count { total += high.index }
            return total
        }
    }

    // MARK: Internals

    /// The chunk that holds `key` or where it would go: the first whose last key is ≥ `key`;
    /// nil when `key` is above every key (or the map is empty).
    private func chunkIndex(for key: Bytes) -> Int? {
        var low = 0
        var high = chunks.count
        while low < high {
            let mid = (low + high) / 2
            // Chunks are never empty.
            if Self.compare(chunks[mid].keys[chunks[mid].keys.count - 1], key) < 0 { low = mid + 1 } else { high = mid }
        }
        return low < chunks.count ? low : nil
    }

    /// The first entry with a key ≥ `key`, as (chunk, index); (chunks.count, 0) past the end.
    private func position(of key: Bytes) -> (chunk: Int, index: Int) {
        guard let chunk = chunkIndex(for: key) else { return (chunks.count, 0) }
        return (chunk, Self.search(chunks[chunk].keys, key).index)
    }

    private mutating func split(_ chunkIndex: Int) {
        let half = chunks[chunkIndex].keys.count / 2
        let upper = Chunk(keys: Array(chunks[chunkIndex].keys[half...]), values: Array(chunks[chunkIndex].values[half...]))
        chunks[chunkIndex].keys.removeSubrange(half...)
        chunks[chunkIndex].values.removeSubrange(half...)
        chunks.insert(upper, at: chunkIndex + 1)
    }

    /// Lower bound of `key` in sorted `keys`, and whether it is there.
    private static func search(_ keys: [Bytes], _ key: Bytes) -> (index: Int, found: Bool) {
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if compare(keys[mid], key) < 0 { low = mid + 1 } else { high = mid }
        }
        return (low, low < keys.count && compare(keys[low], key) == 0)
    }

    /// Unsigned byte order (etcd's key order), via `memcmp`.
    static func compare(_ a: Bytes, _ b: Bytes) -> Int {
        let common = min(a.count, b.count)
        let result = a.withUnsafeBytes { pa in
            b.withUnsafeBytes { pb -> Int32 in
                guard common > 0, let left = pa.baseAddress, let right = pb.baseAddress else { return 0 }
                return memcmp(left, right, common)
            }
        }
        if result != 0 { return Int(result) }
        return a.count - b.count
    }
}
