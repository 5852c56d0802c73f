import KineCore

/// Who this server says it is in response headers, Status and MemberList.
public struct ServerIdentity: Sendable {
    public var clusterID: UInt64
    public var memberID: UInt64
    public var name: String
    /// etcd version reported by Status and /version. kube-apiserver needs ≥ 3.5.13 to use
    /// watch progress requests (etcd-api.md §4.6).
    public var version: String
    /// Client URL advertised when a request carries no `:authority`.
    public var clientURL: String
    /// Term and leader: fixed for a single node (term 2, itself, as a fresh one-member etcd
    /// reports), moved by the HA controller on every role change.
    public let cluster: ClusterView

    public init(clusterID: UInt64, memberID: UInt64, name: String, version: String, clientURL: String, cluster: ClusterView? = nil) {
        self.clusterID = clusterID
        self.memberID = memberID
        self.name = name
        self.version = version
        self.clientURL = clientURL
        self.cluster = cluster ?? ClusterView(term: 2, leaderID: memberID)
    }

    public var raftTerm: UInt64 { cluster.term }

    /// Stable non-zero ids derived from names (FNV-1a), so restarts keep them.
    public static func stableID(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash == 0 ? 1 : hash
    }

    /// The top-level response header etcd sends: ids and term filled in.
    func header(revision: Int64) -> ResponseHeader {
        ResponseHeader(clusterID: clusterID, memberID: memberID, revision: revision, raftTerm: raftTerm)
    }

    func fill(_ header: inout ResponseHeader) {
        header.clusterID = clusterID
        header.memberID = memberID
        header.raftTerm = raftTerm
    }
}
