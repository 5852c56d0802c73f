/// Keys and values are arbitrary bytes in etcd; ordering is unsigned bytewise.
public typealias Bytes = [UInt8]

/// `mvccpb.KeyValue`: one key at one revision.
public struct KeyValue: Sendable, Hashable {
    public var key: Bytes
    public var createRevision: Int64
    public var modRevision: Int64
    /// Writes since the key was (re)created: 1 on create, +1 per write, reset by delete.
    public var version: Int64
    public var value: Bytes
    public var lease: Int64

    public init(
        key: Bytes, createRevision: Int64 = 0, modRevision: Int64 = 0, version: Int64 = 0,
        value: Bytes = [], lease: Int64 = 0
    ) {
        self.key = key
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.value = value
        self.lease = lease
    }
}

/// `mvccpb.Event`.
public struct Event: Sendable, Hashable {
    public enum EventType: Int32, Sendable {
        case put = 0
        case delete = 1
    }
    public var type: EventType
    public var kv: KeyValue
    public var prevKV: KeyValue?

    public init(type: EventType, kv: KeyValue, prevKV: KeyValue? = nil) {
        self.type = type
        self.kv = kv
        self.prevKV = prevKV
    }
}

/// `etcdserverpb.ResponseHeader`.
public struct ResponseHeader: Sendable, Hashable {
    public var clusterID: UInt64
    public var memberID: UInt64
    public var revision: Int64
    public var raftTerm: UInt64

    public init(clusterID: UInt64 = 0, memberID: UInt64 = 0, revision: Int64 = 0, raftTerm: UInt64 = 0) {
        self.clusterID = clusterID
        self.memberID = memberID
        self.revision = revision
        self.raftTerm = raftTerm
    }
}
