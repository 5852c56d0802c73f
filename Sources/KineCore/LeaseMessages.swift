/// Plain Swift values for the etcd Lease service.

public struct LeaseGrantRequest: Sendable, Hashable {
    public var ttl: Int64
    public var id: Int64
    public init(ttl: Int64 = 0, id: Int64 = 0) {
        self.ttl = ttl
        self.id = id
    }
}

public struct LeaseGrantResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var id: Int64
    public var ttl: Int64
    public var error: String
    public init(header: ResponseHeader = .init(), id: Int64 = 0, ttl: Int64 = 0, error: String = "") {
        self.header = header
        self.id = id
        self.ttl = ttl
        self.error = error
    }
}

public struct LeaseRevokeRequest: Sendable, Hashable {
    public var id: Int64
    public init(id: Int64 = 0) { self.id = id }
}

public struct LeaseRevokeResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public init(header: ResponseHeader = .init()) { self.header = header }
}

public struct LeaseKeepAliveRequest: Sendable, Hashable {
    public var id: Int64
    public init(id: Int64 = 0) { self.id = id }
}

public struct LeaseKeepAliveResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var id: Int64
    public var ttl: Int64
    public init(header: ResponseHeader = .init(), id: Int64 = 0, ttl: Int64 = 0) {
        self.header = header
        self.id = id
        self.ttl = ttl
    }
}

public struct LeaseTimeToLiveRequest: Sendable, Hashable {
    public var id: Int64
    public var keys: Bool
    public init(id: Int64 = 0, keys: Bool = false) {
        self.id = id
        self.keys = keys
    }
}

public struct LeaseTimeToLiveResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var id: Int64
    public var ttl: Int64
    public var grantedTTL: Int64
    public var keys: [Bytes]
    public init(header: ResponseHeader = .init(), id: Int64 = 0, ttl: Int64 = 0, grantedTTL: Int64 = 0, keys: [Bytes] = []) {
        self.header = header
        self.id = id
        self.ttl = ttl
        self.grantedTTL = grantedTTL
        self.keys = keys
    }
}

public struct LeaseLeasesResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var leaseIDs: [Int64]
    public init(header: ResponseHeader = .init(), leaseIDs: [Int64] = []) {
        self.header = header
        self.leaseIDs = leaseIDs
    }
}
