/// An error an etcd client sees: a gRPC code and etcd's exact message text.
/// etcd clients map errors back by message, byte for byte, so the texts below are etcd 3.5's.
public struct EtcdError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: GRPCStatusCode
    public var message: String

    public init(_ code: GRPCStatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code) (\(code.rawValue)): \(message)" }

    public static let emptyKey = EtcdError(.invalidArgument, "etcdserver: key is not provided")
    public static let keyNotFound = EtcdError(.invalidArgument, "etcdserver: key not found")
    public static let valueProvided = EtcdError(.invalidArgument, "etcdserver: value is provided")
    public static let leaseProvided = EtcdError(.invalidArgument, "etcdserver: lease is provided")
    public static let tooManyOps = EtcdError(.invalidArgument, "etcdserver: too many operations in txn request")
    public static let duplicateKey = EtcdError(.invalidArgument, "etcdserver: duplicate key given in txn request")
    public static let compacted = EtcdError(.outOfRange, "etcdserver: mvcc: required revision has been compacted")
    public static let futureRevision = EtcdError(.outOfRange, "etcdserver: mvcc: required revision is a future revision")
    public static let leaseNotFound = EtcdError(.notFound, "etcdserver: requested lease not found")
    public static let leaseExists = EtcdError(.failedPrecondition, "etcdserver: lease already exists")
    public static let leaseTTLTooLarge = EtcdError(.outOfRange, "etcdserver: too large lease TTL")
    public static let requestTooLarge = EtcdError(.invalidArgument, "etcdserver: request is too large")
    public static let noSpace = EtcdError(.resourceExhausted, "etcdserver: mvcc: database space exceeded")
    public static let corrupt = EtcdError(.dataLoss, "etcdserver: corrupt cluster")
    public static let requestTimedOut = EtcdError(.unavailable, "etcdserver: request timed out")
    public static let serverStopped = EtcdError(.unavailable, "etcdserver: server stopped")
}
