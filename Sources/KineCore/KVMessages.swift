/// Plain Swift values for the etcd KV service (`etcdserverpb`), field for field.
/// Unset proto fields are zero / empty, exactly as proto3 decodes them.

public struct RangeRequest: Sendable, Hashable {
    public enum SortOrder: Int32, Sendable {
        case none = 0
        case ascend = 1
        case descend = 2
    }
    public enum SortTarget: Int32, Sendable {
        case key = 0
        case version = 1
        case create = 2
        case mod = 3
        case value = 4
    }

    public var key: Bytes
    public var rangeEnd: Bytes
    public var limit: Int64
    public var revision: Int64
    public var sortOrder: SortOrder
    public var sortTarget: SortTarget
    public var serializable: Bool
    public var keysOnly: Bool
    public var countOnly: Bool
    public var minModRevision: Int64
    public var maxModRevision: Int64
    public var minCreateRevision: Int64
    public var maxCreateRevision: Int64

    public init(
        key: Bytes = [], rangeEnd: Bytes = [], limit: Int64 = 0, revision: Int64 = 0,
        sortOrder: SortOrder = .none, sortTarget: SortTarget = .key, serializable: Bool = false,
        keysOnly: Bool = false, countOnly: Bool = false, minModRevision: Int64 = 0,
        maxModRevision: Int64 = 0, minCreateRevision: Int64 = 0, maxCreateRevision: Int64 = 0
    ) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.limit = limit
        self.revision = revision
        self.sortOrder = sortOrder
        self.sortTarget = sortTarget
        self.serializable = serializable
        self.keysOnly = keysOnly
        self.countOnly = countOnly
        self.minModRevision = minModRevision
        self.maxModRevision = maxModRevision
        self.minCreateRevision = minCreateRevision
        self.maxCreateRevision = maxCreateRevision
    }
}

public struct RangeResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var kvs: [KeyValue]
    public var more: Bool
    public var count: Int64

    public init(header: ResponseHeader = .init(), kvs: [KeyValue] = [], more: Bool = false, count: Int64 = 0) {
        self.header = header
        self.kvs = kvs
        self.more = more
        self.count = count
    }
}

public struct PutRequest: Sendable, Hashable {
    public var key: Bytes
    public var value: Bytes
    public var lease: Int64
    public var prevKV: Bool
    public var ignoreValue: Bool
    public var ignoreLease: Bool

    public init(
        key: Bytes = [], value: Bytes = [], lease: Int64 = 0, prevKV: Bool = false,
        ignoreValue: Bool = false, ignoreLease: Bool = false
    ) {
        self.key = key
        self.value = value
        self.lease = lease
        self.prevKV = prevKV
        self.ignoreValue = ignoreValue
        self.ignoreLease = ignoreLease
    }
}

public struct PutResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var prevKV: KeyValue?

    public init(header: ResponseHeader = .init(), prevKV: KeyValue? = nil) {
        self.header = header
        self.prevKV = prevKV
    }
}

public struct DeleteRangeRequest: Sendable, Hashable {
    public var key: Bytes
    public var rangeEnd: Bytes
    public var prevKV: Bool

    public init(key: Bytes = [], rangeEnd: Bytes = [], prevKV: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.prevKV = prevKV
    }
}

public struct DeleteRangeResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var deleted: Int64
    public var prevKVs: [KeyValue]

    public init(header: ResponseHeader = .init(), deleted: Int64 = 0, prevKVs: [KeyValue] = []) {
        self.header = header
        self.deleted = deleted
        self.prevKVs = prevKVs
    }
}

public struct Compare: Sendable, Hashable {
    public enum Result: Int32, Sendable {
        case equal = 0
        case greater = 1
        case less = 2
        case notEqual = 3
    }
    public enum Target: Int32, Sendable {
        case version = 0
        case create = 1
        case mod = 2
        case value = 3
        case lease = 4
    }
    /// The `target_union` oneof. `nil` = unset, which etcd treats as zero / empty.
    public enum Operand: Sendable, Hashable {
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        case value(Bytes)
        case lease(Int64)
    }

    public var result: Result
    public var target: Target
    public var key: Bytes
    public var rangeEnd: Bytes
    public var operand: Operand?

    public init(result: Result = .equal, target: Target = .version, key: Bytes = [], rangeEnd: Bytes = [], operand: Operand? = nil) {
        self.result = result
        self.target = target
        self.key = key
        self.rangeEnd = rangeEnd
        self.operand = operand
    }
}

/// `etcdserverpb.RequestOp`; `.empty` is a RequestOp with no oneof set.
public indirect enum RequestOp: Sendable, Hashable {
    case range(RangeRequest)
    case put(PutRequest)
    case deleteRange(DeleteRangeRequest)
    case txn(TxnRequest)
    case empty
}

/// `etcdserverpb.ResponseOp`.
public indirect enum ResponseOp: Sendable, Hashable {
    case range(RangeResponse)
    case put(PutResponse)
    case deleteRange(DeleteRangeResponse)
    case txn(TxnResponse)
}

public struct TxnRequest: Sendable, Hashable {
    public var compare: [Compare]
    public var success: [RequestOp]
    public var failure: [RequestOp]

    public init(compare: [Compare] = [], success: [RequestOp] = [], failure: [RequestOp] = []) {
        self.compare = compare
        self.success = success
        self.failure = failure
    }
}

public struct TxnResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var succeeded: Bool
    public var responses: [ResponseOp]

    public init(header: ResponseHeader = .init(), succeeded: Bool = false, responses: [ResponseOp] = []) {
        self.header = header
        self.succeeded = succeeded
        self.responses = responses
    }
}

public struct CompactionRequest: Sendable, Hashable {
    public var revision: Int64
    public var physical: Bool

    public init(revision: Int64 = 0, physical: Bool = false) {
        self.revision = revision
        self.physical = physical
    }
}

public struct CompactionResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public init(header: ResponseHeader = .init()) { self.header = header }
}
