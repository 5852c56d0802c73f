/// The set of keys a request addresses, from etcd's `key` / `range_end` pair (etcd-api.md §2.2):
/// empty `range_end` → the single key; `range_end == "\0"` → every key ≥ `key` (with `key == "\0"`
/// that is the whole keyspace); otherwise the half-open byte interval `[key, range_end)`.
public enum KeyRange: Sendable, Hashable {
    case single(Bytes)
    /// `[start, end)`; `end == nil` means unbounded above.
    case interval(start: Bytes, end: Bytes?)

    public init(key: Bytes, rangeEnd: Bytes) {
        if rangeEnd.isEmpty {
            self = .single(key)
        } else if rangeEnd == [0] {
            self = .interval(start: key, end: nil)
        } else {
            self = .interval(start: key, end: rangeEnd)
        }
    }

    /// True when no key can fall in the range (`range_end <= key`).
    public var isEmpty: Bool {
        if case .interval(let start, let end?) = self { return !Self.less(start, end) }
        return false
    }

    public func contains(_ key: Bytes) -> Bool {
        switch self {
        case .single(let only):
            return key == only
        case .interval(let start, let end):
            guard !Self.less(key, start) else { return false }
            if let end { return Self.less(key, end) }
            return true
        }
    }

    /// True when the two ranges share at least one key.
    public func overlaps(_ other: KeyRange) -> Bool {
        switch (self, other) {
        case (.single(let a), _): return other.contains(a)
        case (_, .single(let b)): return contains(b)
        case (.interval(let s1, let e1), .interval(let s2, let e2)):
            if isEmpty || other.isEmpty { return false }
            let firstEndsBeforeSecond = e1.map { !Self.less(s2, $0) } ?? false
            let secondEndsBeforeFirst = e2.map { !Self.less(s1, $0) } ?? false
            return !firstEndsBeforeSecond && !secondEndsBeforeFirst
        }
    }

    /// Unsigned bytewise order, the order etcd keeps keys in.
    @inlinable
    public static func less(_ a: Bytes, _ b: Bytes) -> Bool {
        a.lexicographicallyPrecedes(b)
    }

    /// The smallest key greater than every key with `prefix` (clientv3 `GetPrefixRangeEnd`):
    /// drop trailing 0xFF bytes and increment the last byte; an all-0xFF prefix gives "\0".
    public static func prefixEnd(_ prefix: Bytes) -> Bytes {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }
}
