/// Plain Swift values for the etcd Maintenance and Cluster services (the parts kine serves).

public struct StatusResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var version: String
    public var dbSize: Int64
    public var leader: UInt64
    public var raftIndex: UInt64
    public var raftTerm: UInt64
    public var raftAppliedIndex: UInt64
    public var errors: [String]
    public var dbSizeInUse: Int64
    public var isLearner: Bool

    public init(
        header: ResponseHeader = .init(), version: String = "", dbSize: Int64 = 0, leader: UInt64 = 0,
        raftIndex: UInt64 = 0, raftTerm: UInt64 = 0, raftAppliedIndex: UInt64 = 0, errors: [String] = [],
        dbSizeInUse: Int64 = 0, isLearner: Bool = false
    ) {
        self.header = header
        self.version = version
        self.dbSize = dbSize
        self.leader = leader
        self.raftIndex = raftIndex
        self.raftTerm = raftTerm
        self.raftAppliedIndex = raftAppliedIndex
        self.errors = errors
        self.dbSizeInUse = dbSizeInUse
        self.isLearner = isLearner
    }
}

public struct AlarmRequest: Sendable, Hashable {
    public enum Action: Int32, Sendable {
        case get = 0
        case activate = 1
        case deactivate = 2
    }
    public var action: Int32
    public var memberID: UInt64
    public var alarm: Int32
    public init(action: Int32 = 0, memberID: UInt64 = 0, alarm: Int32 = 0) {
        self.action = action
        self.memberID = memberID
        self.alarm = alarm
    }
}

/// etcd's alarm types (`etcdserverpb.AlarmType`).
public enum AlarmType: Int32, Sendable, CaseIterable {
    case none = 0
    case noSpace = 1
    case corrupt = 2

    /// The name etcd prints (`NOSPACE`, `CORRUPT`).
    public var name: String {
        switch self {
        case .none: "NONE"
        case .noSpace: "NOSPACE"
        case .corrupt: "CORRUPT"
        }
    }
}

public struct AlarmMember: Sendable, Hashable, CustomStringConvertible {
    public var memberID: UInt64
    public var alarm: Int32
    public init(memberID: UInt64, alarm: Int32) {
        self.memberID = memberID
        self.alarm = alarm
    }

    /// The text form etcd puts in Status `errors` and `etcdctl alarm list` prints (protobuf text
    /// format, zero fields left out, a trailing space): `memberID:7 alarm:NOSPACE `.
    public var description: String {
        let type = AlarmType(rawValue: alarm).map(\.name) ?? "\(alarm)"
        return (memberID == 0 ? "" : "memberID:\(memberID) ") + "alarm:\(type) "
    }
}

public struct AlarmResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var alarms: [AlarmMember]
    public init(header: ResponseHeader = .init(), alarms: [AlarmMember] = []) {
        self.header = header
        self.alarms = alarms
    }
}

public struct Member: Sendable, Hashable {
    public var id: UInt64
    public var name: String
    public var peerURLs: [String]
    public var clientURLs: [String]
    public var isLearner: Bool
    public init(id: UInt64, name: String, peerURLs: [String], clientURLs: [String], isLearner: Bool = false) {
        self.id = id
        self.name = name
        self.peerURLs = peerURLs
        self.clientURLs = clientURLs
        self.isLearner = isLearner
    }
}

public struct MemberListResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var members: [Member]
    public init(header: ResponseHeader = .init(), members: [Member] = []) {
        self.header = header
        self.members = members
    }
}

/// `HashKVResponse`: a stable hash of the keyspace up to a revision.
public struct HashKVResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var hash: UInt32
    public var compactRevision: Int64
    /// The revision hashed (etcd 3.5.5 and later send it; 3.5.1 clients skip the field).
    public var hashRevision: Int64
    public init(header: ResponseHeader = .init(), hash: UInt32 = 0, compactRevision: Int64 = 0, hashRevision: Int64 = 0) {
        self.header = header
        self.hash = hash
        self.compactRevision = compactRevision
        self.hashRevision = hashRevision
    }
}

/// `SnapshotResponse`: one chunk of a snapshot file, with the bytes still to come (etcd sets no
/// header).
public struct SnapshotResponse: Sendable, Hashable {
    public var remainingBytes: UInt64
    public var blob: [UInt8]
    public init(remainingBytes: UInt64 = 0, blob: [UInt8] = []) {
        self.remainingBytes = remainingBytes
        self.blob = blob
    }
}

/// `HashResponse`: a hash of everything the store holds.
public struct HashResponse: Sendable, Hashable {
    public var header: ResponseHeader
    public var hash: UInt32
    public init(header: ResponseHeader = .init(), hash: UInt32 = 0) {
        self.header = header
        self.hash = hash
    }
}
