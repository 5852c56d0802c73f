import KineCore
import KineHTTP2
import KineProto
import KineStore

/// `/etcdserverpb.Auth/*`: users, roles and permissions in the database's auth store
/// (`AuthStore`, shared by every kine process on the database and replicated to an HA
/// follower), with etcd 3.5's rules: every call but Authenticate needs the root role once auth
/// is on (UserGet of oneself and RoleGet of one's own role excepted).
struct AuthService: Sendable {
    let stores: StoreHandle
    let identity: ServerIdentity
    let gate: AuthGate

    func methods() -> [String: GRPCMethod] {
        func unary(
            _ body: @escaping @Sendable (ProtoFields, GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter, _ message: String
        )
            -> GRPCMethod
        {
            .unary { bytes, context throws(GRPCStatus) in
                let fields = try StatusMapping.decode(bytes) { bytes throws(ProtoError) in
                    try ProtoFields(bytes, message: "etcdserverpb.\(message)")
                }
                return try await StatusMapping.run { () async throws(EtcdError) in try await body(fields, context).bytes }
            }
        }
        let prefix = "/etcdserverpb.Auth/"
        return [
            prefix + "AuthEnable": unary(authEnable, "AuthEnableRequest"),
            prefix + "AuthDisable": unary(authDisable, "AuthDisableRequest"),
            prefix + "AuthStatus": unary(authStatus, "AuthStatusRequest"),
            prefix + "Authenticate": unary(authenticate, "AuthenticateRequest"),
            prefix + "UserAdd": unary(userAdd, "AuthUserAddRequest"),
            prefix + "UserGet": unary(userGet, "AuthUserGetRequest"),
            prefix + "UserList": unary(userList, "AuthUserListRequest"),
            prefix + "UserDelete": unary(userDelete, "AuthUserDeleteRequest"),
            prefix + "UserChangePassword": unary(userChangePassword, "AuthUserChangePasswordRequest"),
            prefix + "UserGrantRole": unary(userGrantRole, "AuthUserGrantRoleRequest"),
            prefix + "UserRevokeRole": unary(userRevokeRole, "AuthUserRevokeRoleRequest"),
            prefix + "RoleAdd": unary(roleAdd, "AuthRoleAddRequest"),
            prefix + "RoleGet": unary(roleGet, "AuthRoleGetRequest"),
            prefix + "RoleList": unary(roleList, "AuthRoleListRequest"),
            prefix + "RoleDelete": unary(roleDelete, "AuthRoleDeleteRequest"),
            prefix + "RoleGrantPermission": unary(roleGrantPermission, "AuthRoleGrantPermissionRequest"),
            prefix + "RoleRevokePermission": unary(roleRevokePermission, "AuthRoleRevokePermissionRequest"),
        ]
    }

    // MARK: Changes (admin only, in one transaction with the check)

    func authEnable(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        try await change(context) { state throws(EtcdError) in try state.enable() }
    }

    func authDisable(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        try await change(context) { state throws(EtcdError) in state.disable() }
    }

    /// etcd hashes the password (an empty one too) unless the user is to have none.
    func userAdd(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        let noPassword =
            try StatusMapping.decodeField { () throws(ProtoError) in try fields.message(3, "authpb.UserAddOptions") }?.bool(1) ?? false
        let hash = noPassword ? [] : try await hashPassword(fields.string(2))
        return try await change(context) { state throws(EtcdError) in try state.addUser(name, passwordHash: hash, noPassword: noPassword) }
    }

    func userDelete(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        return try await change(context) { state throws(EtcdError) in try state.deleteUser(name) }
    }

    func userChangePassword(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        let hash = try await hashPassword(fields.string(2))
        return try await change(context) { state throws(EtcdError) in try state.changePassword(name, passwordHash: hash) }
    }

    func userGrantRole(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (user, role) = (fields.string(1), fields.string(2))
        return try await change(context) { state throws(EtcdError) in try state.grantRole(role, to: user) }
    }

    func userRevokeRole(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (user, role) = (fields.string(1), fields.string(2))
        return try await change(context) { state throws(EtcdError) in try state.revokeRole(role, from: user) }
    }

    func roleAdd(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        return try await change(context) { state throws(EtcdError) in try state.addRole(name) }
    }

    func roleDelete(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        return try await change(context) { state throws(EtcdError) in try state.deleteRole(name) }
    }

    func roleGrantPermission(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        var permission: AuthPermission?
        if let perm = try StatusMapping.decodeField({ () throws(ProtoError) in try fields.message(2, "authpb.Permission") }) {
            guard let type = PermissionType(rawValue: Int32(truncatingIfNeeded: perm.int64(1))) else {
                throw EtcdError(.internal, "grpc: error unmarshalling request: unknown permission type \(perm.int64(1))")
            }
            permission = AuthPermission(type: type, key: perm.bytes(2), rangeEnd: perm.bytes(3))
        }
        return try await change(context) { [permission] state throws(EtcdError) in try state.grantPermission(permission, to: name) }
    }

    func roleRevokePermission(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (name, key, rangeEnd) = (fields.string(1), fields.bytes(2), fields.bytes(3))
        return try await change(context) { state throws(EtcdError) in try state.revokePermission(key: key, rangeEnd: rangeEnd, from: name) }
    }

    // MARK: Reads (from the table, as etcd's go through raft)

    func authStatus(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (store, state) = try await read(context, [.admin])
        var response = header(store)
        response.bool(2, state.enabled)
        response.uint64(3, state.revision)
        return response
    }

    func userGet(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        let (store, state) = try await read(context, []) { state, user throws(EtcdError) in
            // Anyone may read their own user.
            if user != name { try state.authorize(user, [.admin]) }
        }
        var response = header(store)
        response.repeatedString(2, try state.user(name).roles)
        return response
    }

    func userList(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (store, state) = try await read(context, [.admin])
        var response = header(store)
        response.repeatedString(2, state.userNames)
        return response
    }

    func roleGet(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let name = fields.string(1)
        let (store, state) = try await read(context, []) { state, user throws(EtcdError) in
            // Anyone may read a role they have.
            let hasRole = user.flatMap { state.users[$0] }?.roles.contains(name) ?? false
            if !hasRole { try state.authorize(user, [.admin]) }
        }
        var response = header(store)
        for permission in try state.role(name).permissions {
            var perm = ProtoFieldWriter()
            perm.int64(1, Int64(permission.type.rawValue))
            perm.bytes(2, permission.key)
            perm.bytes(3, permission.rangeEnd)
            response.message(2, perm)
        }
        return response
    }

    func roleList(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (store, state) = try await read(context, [.admin])
        var response = header(store)
        response.repeatedString(2, state.roleNames)
        return response
    }

    /// etcd: with auth off, "authentication is not enabled"; an unknown user or a wrong password
    /// "authentication failed"; a user without password its own error. The check reads the
    /// table, so a user made or changed on another node logs in at once.
    func authenticate(_ fields: ProtoFields, _ context: GRPCCallContext) async throws(EtcdError) -> ProtoFieldWriter {
        let (name, password) = (fields.string(1), fields.string(2))
        let store = try stores.current()
        let state = try await store.auth.fresh()
        guard state.enabled else { throw .authNotEnabled }
        guard let user = state.users[name] else { throw .authFailed }
        if user.noPassword { throw .noPasswordUser }
        let matches = await Self.offLoop { PasswordHasher.verify(password, hash: user.passwordHash) }
        guard matches else { throw .authFailed }
        var response = header(store)
        response.string(2, gate.tokens.issue(for: user))
        return response
    }

    // MARK: Helpers

    /// Applies `body` to the table's state after checking the caller is an admin, both inside
    /// the same transaction.
    private func change(
        _ context: GRPCCallContext, _ body: @escaping @Sendable (inout AuthState) throws(EtcdError) -> Void
    ) async throws(EtcdError) -> ProtoFieldWriter {
        let store = try stores.current()
        let gate = self.gate
        try await store.auth.update { state throws(EtcdError) in
            try state.authorize(try gate.user(context, in: state), [.admin])
            try body(&state)
        }
        return header(store)
    }

    /// The table's state, after `requirements` (and `check`, given the caller) passed.
    private func read(
        _ context: GRPCCallContext, _ requirements: [AuthRequirement],
        check: (AuthState, String?) throws(EtcdError) -> Void = { _, _ in }
    ) async throws(EtcdError) -> (KineStore, AuthState) {
        let store = try stores.current()
        let state = try await store.auth.fresh()
        let user = try gate.user(context, in: state)
        try state.authorize(user, requirements)
        try check(state, user)
        return (store, state)
    }

    private func header(_ store: KineStore) -> ProtoFieldWriter {
        identity.responseStartingWith(ResponseHeader(revision: store.watchHub.revision))
    }

    private func hashPassword(_ password: String) async throws(EtcdError) -> Bytes {
        let cost = gate.bcryptCost
        return try await Self.offLoop { () throws(EtcdError) in try PasswordHasher.hash(password, cost: cost) }.get()
    }

    /// bcrypt takes tens of milliseconds of CPU: run it on the global executor, not on the
    /// connection's event loop, which serves every other call of the connection.
    static func offLoop<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withTaskExecutorPreference(globalConcurrentExecutor) { body() }
    }

    static func offLoop<T: Sendable>(_ body: @escaping @Sendable () throws(EtcdError) -> T) async -> Result<T, EtcdError> {
        await withTaskExecutorPreference(globalConcurrentExecutor) { Result(catching: body) }
    }
}
