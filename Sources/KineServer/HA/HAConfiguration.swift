public import KineHA
public import KineHTTP2

/// The two-node HA settings (`--ha-*` flags). HA is off unless `--ha-peer` is given.
public struct HAConfiguration: Sendable {
    /// This node's name (`--ha-node-name`, default: the host name); names slots and members.
    public var nodeName: String
    /// The peer's HA port (`--ha-peer HOST:PORT`).
    public var peerHost: String
    public var peerPort: Int
    /// This node's HA port (`--ha-listen-address`, default 0.0.0.0:2380).
    public var listen: GRPCListenTarget
    /// The peer's PostgreSQL (`--ha-peer-endpoint`): where a follower routes, what it probes,
    /// and the publisher its subscription connects to.
    public var peerEndpoint: String
    public var replication: ReplicationMode = .sync
    public var priority: HAPriority = .secondary
    public var timing = HATiming()
    /// How far a promotion moves revisions forward (etcd's restore guidance: 10⁹).
    public var revisionBump: Int64 = 1_000_000_000
    /// The HA schema and protocol version this node announces (`HASchema.version`; tests of a
    /// mixed-version pair set another with `KINE_HA_TEST_SCHEMA_VERSION`).
    public var schemaVersion: UInt32 = HASchema.version
    /// `--ha-witness HOST:PORT`: a third address both nodes can reach (e.g. the site's router),
    /// tried with a TCP connect each round. A node that cannot reach it does not promote, and a
    /// leader that loses both peer and witness stops taking writes.
    public var witness: (host: String, port: Int)?
    /// `--ha-reunion` and `--ha-max-clock-skew`: how two leaders that meet after a split choose.
    public var reunionPolicy: ReunionPolicy = .newest
    public var maxClockSkew: Duration = .seconds(2)
    /// `kine ha handover` gives up (the leader serves again) when the follower has not taken over
    /// within this (a request may ask for another).
    public var handoverTimeout: Duration = .seconds(10)
    /// Added to this node's wall clock where the reunion compares write times (tests inject skew
    /// with `KINE_HA_TEST_CLOCK_OFFSET_MS`).
    public var clockOffset: Duration = .zero
    /// `--ha-cert-file`, `--ha-key-file`, `--ha-trusted-ca-file`: mutual TLS on the peer link
    /// (the HA port and this node's probes of its peer); a peer without a certificate from the
    /// trusted CA is refused at the handshake.
    public var peerTLS: GRPCTLSConfiguration?

    public init(nodeName: String, peerHost: String, peerPort: Int, listen: GRPCListenTarget, peerEndpoint: String) {
        self.nodeName = nodeName
        self.peerHost = peerHost
        self.peerPort = peerPort
        self.listen = listen
        self.peerEndpoint = peerEndpoint
    }
}

/// Names derived from node names: replication slot names allow only lower-case letters, digits
/// and underscores, so every other character becomes `_`.
enum HANames {
    static func sanitized(_ node: String) -> String {
        String(node.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }

    /// The subscription (and its slot on the leader) of `node`'s copy.
    static func subscription(_ node: String) -> String { "kine_sub_\(sanitized(node))" }

    /// `application_name` of `node`'s replication connection: what `synchronous_standby_names` lists.
    static func application(_ node: String) -> String { "kine_\(sanitized(node))" }
}
