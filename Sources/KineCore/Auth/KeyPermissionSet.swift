/// The key ranges one user may read (or write), merged from all its roles, answering etcd's two
/// questions: does some range hold this key, and do the ranges together cover this whole range.
///
/// Bounds compare as etcd's `BytesAffineComparable`: an empty bound is above every key, so an
/// empty end means "no end" (permissions and requests with range end `"\0"` get one).
public struct KeyPermissionSet: Sendable, Hashable {
    struct Interval: Sendable, Hashable {
        var begin: Bytes
        var end: Bytes
    }

    /// Sorted by begin.
    private var intervals: [Interval]

    init(_ permissions: [AuthPermission]) {
        intervals = permissions.map(Self.interval).sorted { Self.compare($0.begin, $1.begin) < 0 }
    }

    /// A single key is `[key, key+"\0")`; a range end `"\0"` is no end.
    static func interval(_ permission: AuthPermission) -> Interval {
        if permission.rangeEnd.isEmpty { return Interval(begin: permission.key, end: permission.key + [0]) }
        return Interval(begin: permission.key, end: permission.rangeEnd == [0] ? [] : permission.rangeEnd)
    }

    /// Whether a request on `key` (`rangeEnd` empty) or on `[key, rangeEnd)` is allowed: a key
    /// must fall in some range; a range must be covered, without gaps, by the ranges it meets.
    public func permits(key: Bytes, rangeEnd: Bytes) -> Bool {
        if rangeEnd.isEmpty {
            let point = Interval(begin: key, end: key + [0])
            return intervals.contains { Self.intersects($0, point) }
        }
        let wanted = Interval(begin: key, end: rangeEnd == [0] ? [] : rangeEnd)
        var minBegin: Bytes?
        var maxEnd: Bytes = []
        for interval in intervals where Self.intersects(interval, wanted) {
            guard minBegin != nil else {
                minBegin = interval.begin
                maxEnd = interval.end
                continue
            }
            if Self.compare(maxEnd, interval.begin) < 0 { return false }
            if Self.compare(interval.end, maxEnd) > 0 { maxEnd = interval.end }
        }
        guard let minBegin else { return false }
        return Self.compare(maxEnd, wanted.end) >= 0 && Self.compare(minBegin, wanted.begin) <= 0
    }

    static func intersects(_ a: Interval, _ b: Interval) -> Bool {
        compare(a.begin, b.end) < 0 && compare(b.begin, a.end) < 0
    }

    /// Byte order, with the empty value above everything.
    static func compare(_ a: Bytes, _ b: Bytes) -> Int {
        switch (a.isEmpty, b.isEmpty) {
        case (true, true): return 0
        case (true, false): return 1
        case (false, true): return -1
        case (false, false):
            if a == b { return 0 }
            return a.lexicographicallyPrecedes(b) ? -1 : 1
        }
    }
}

/// A user's merged read and write ranges.
public struct UserPermissions: Sendable, Hashable {
    public let read: KeyPermissionSet
    public let write: KeyPermissionSet

    public init(roles: [AuthRole]) {
        let permissions = roles.flatMap(\.permissions)
        read = KeyPermissionSet(permissions.filter { $0.type.allowsRead })
        write = KeyPermissionSet(permissions.filter { $0.type.allowsWrite })
    }
}
