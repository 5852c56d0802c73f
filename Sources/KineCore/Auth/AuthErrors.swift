/// etcd 3.5's auth errors, with the gRPC codes and texts etcd sends (`rpctypes`). Errors etcd
/// 3.5.1 has no gRPC mapping for reach clients as UNKNOWN with the auth package's own text.
extension EtcdError {
    public static let rootUserNotExist = EtcdError(.failedPrecondition, "etcdserver: root user does not exist")
    public static let rootRoleNotExist = EtcdError(.failedPrecondition, "etcdserver: root user does not have root role")
    public static let userAlreadyExist = EtcdError(.failedPrecondition, "etcdserver: user name already exists")
    public static let userEmpty = EtcdError(.invalidArgument, "etcdserver: user name is empty")
    public static let userNotFound = EtcdError(.failedPrecondition, "etcdserver: user name not found")
    public static let roleAlreadyExist = EtcdError(.failedPrecondition, "etcdserver: role name already exists")
    public static let roleNotFound = EtcdError(.failedPrecondition, "etcdserver: role name not found")
    public static let roleEmpty = EtcdError(.invalidArgument, "etcdserver: role name is empty")
    public static let authFailed = EtcdError(.invalidArgument, "etcdserver: authentication failed, invalid user ID or password")
    public static let permissionNotGiven = EtcdError(.invalidArgument, "etcdserver: permission not given")
    public static let permissionDenied = EtcdError(.permissionDenied, "etcdserver: permission denied")
    public static let roleNotGranted = EtcdError(.failedPrecondition, "etcdserver: role is not granted to the user")
    public static let permissionNotGranted = EtcdError(.failedPrecondition, "etcdserver: permission is not granted to the role")
    public static let authNotEnabled = EtcdError(.failedPrecondition, "etcdserver: authentication is not enabled")
    public static let invalidAuthToken = EtcdError(.unauthenticated, "etcdserver: invalid auth token")
    public static let invalidAuthManagement = EtcdError(.invalidArgument, "etcdserver: invalid auth management")
    /// The auth store changed between the permission check and the write (etcd 3.5.1 has no
    /// gRPC mapping for it: UNKNOWN with the auth package's text).
    public static let authOldRevision = EtcdError(.unknown, "auth: revision in header is old")
    /// Authenticate on a user added with `--no-password` (unmapped in etcd 3.5.1 as well).
    public static let noPasswordUser = EtcdError(.unknown, "auth: authentication failed, password was given for no password user")
}

extension EtcdError {
    /// The auth package's own error behind an auth error (what a client sees, as UNKNOWN, where
    /// etcd returns it without its gRPC mapping: the maintenance calls' root check).
    public var unconvertedAuthError: EtcdError {
        let rawTexts: [EtcdError: String] = [
            .userEmpty: "auth: user name is empty", .userNotFound: "auth: user not found",
            .permissionDenied: "auth: permission denied", .invalidAuthToken: "auth: invalid auth token",
        ]
        guard let text = rawTexts[self] else { return self }
        return EtcdError(.unknown, text)
    }

    /// What a client sees when etcd's server-side recipes (Lock, Election) fail: they call the
    /// KV API through an in-process client and return its error as is, which gRPC sends as
    /// UNKNOWN with etcd's text.
    public var asRecipeError: EtcdError { EtcdError(.unknown, message) }
}
