/// Plain Swift values for the etcd Watch service.

public struct WatchCreateRequest: Sendable, Hashable {
    public enum Filter: Int32, Sendable {
        case noPut = 0
        case noDelete = 1
    }

    public var key: Bytes
    public var rangeEnd: Bytes
    public var startRevision: Int64
    public var progressNotify: Bool
    /// Raw filter numbers; unknown values are kept so validation can see them.
    public var filters: [Int32]
    public var prevKV: Bool
    public var watchID: Int64
    public var fragment: Bool

    public init(
        key: Bytes = [], rangeEnd: Bytes = [], startRevision: Int64 = 0, progressNotify: Bool = false,
        filters: [Int32] = [], prevKV: Bool = false, watchID: Int64 = 0, fragment: Bool = false
    ) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.startRevision = startRevision
        self.progressNotify = progressNotify
        self.filters = filters
        self.prevKV = prevKV
        self.watchID = watchID
        self.fragment = fragment
    }
}

/// `etcdserverpb.WatchRequest` and its `request_union` oneof; `.empty` = no oneof set.
public enum WatchRequest: Sendable, Hashable {
    case create(WatchCreateRequest)
    case cancel(watchID: Int64)
    case progress
    case empty
}

public struct WatchResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var watchID: Int64
    public var created: Bool
    public var canceled: Bool
    public var compactRevision: Int64
    public var cancelReason: String
    public var fragment: Bool
    public var events: [Event]

    public init(
        header: ResponseHeader = .init(), watchID: Int64 = 0, created: Bool = false, canceled: Bool = false,
        compactRevision: Int64 = 0, cancelReason: String = "", fragment: Bool = false, events: [Event] = []
    ) {
        self.header = header
        self.watchID = watchID
        self.created = created
        self.canceled = canceled
        self.compactRevision = compactRevision
        self.cancelReason = cancelReason
        self.fragment = fragment
        self.events = events
    }
}
