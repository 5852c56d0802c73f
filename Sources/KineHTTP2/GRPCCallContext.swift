/// Request metadata (custom headers) in arrival order. Names are lowercase.
public struct GRPCMetadata: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Entry: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public var entries: [Entry]

    public init() { entries = [] }

    public init(_ pairs: [(String, String)]) {
        entries = pairs.map { Entry(name: $0.0.lowercased(), value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// The first value for `name` (lowercase), if any.
    public subscript(name: String) -> String? {
        entries.first(where: { $0.name == name })?.value
    }

    /// All values for `name`.
    public func values(for name: String) -> [String] {
        entries.filter { $0.name == name }.map(\.value)
    }

    public mutating func append(name: String, value: String) {
        entries.append(Entry(name: name.lowercased(), value: value))
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }

    public func makeIterator() -> IndexingIterator<[Entry]> { entries.makeIterator() }
}

/// What a handler knows about its call.
public struct GRPCCallContext: Sendable {
    /// `:path`, e.g. `/etcdserverpb.KV/Range`.
    public var path: String
    /// `:authority` (may be empty).
    public var authority: String
    /// Custom metadata (without pseudo-headers, `content-type`, `te`, `grpc-timeout`, `grpc-encoding`,
    /// `grpc-accept-encoding`).
    public var metadata: GRPCMetadata
    /// From `grpc-timeout`; the server cancels the handler's task when it passes.
    public var deadline: ContinuousClock.Instant?
    /// The peer's address, e.g. `[IPv4]127.0.0.1/127.0.0.1:51234`.
    public var remoteAddress: String?
    /// With TLS client certificates: the subject common name of the client's verified certificate.
    public var peerCommonName: String?

    public init(
        path: String, authority: String = "", metadata: GRPCMetadata = GRPCMetadata(),
        deadline: ContinuousClock.Instant? = nil, remoteAddress: String? = nil, peerCommonName: String? = nil
    ) {
        self.peerCommonName = peerCommonName
        self.path = path
        self.authority = authority
        self.metadata = metadata
        self.deadline = deadline
        self.remoteAddress = remoteAddress
    }
}
