/// etcd's permission checks (`isOpPermitted`, `IsAdminPermitted`), against one state.
extension AuthState {
    /// Checks every requirement for `user` (nil: the request carried no credentials) and throws
    /// the first refusal. With auth off everything is allowed.
    /// `permissions` merges a user's ranges (callers cache it per state revision).
    public func authorize(
        _ user: String?, _ requirements: [AuthRequirement], permissions: ((AuthUser) -> UserPermissions)? = nil
    ) throws(EtcdError) {
        guard enabled, !requirements.isEmpty else { return }
        guard let user, !user.isEmpty else { throw .userEmpty }
        for requirement in requirements {
            if case .admin = requirement {
                // etcd's admin check says "not found" where the key checks say "denied".
                guard let account = users[user] else { throw .userNotFound }
                if !account.isRoot { throw .permissionDenied }
            }
        }
        guard let account = users[user] else { throw .permissionDenied }
        if account.isRoot { return }
        let permissions = permissions?(account) ?? self.permissions(of: account)
        for requirement in requirements {
            switch requirement {
            case .read(let key, let rangeEnd):
                if !permissions.read.permits(key: key, rangeEnd: rangeEnd) { throw .permissionDenied }
            case .write(let key, let rangeEnd):
                if !permissions.write.permits(key: key, rangeEnd: rangeEnd) { throw .permissionDenied }
            case .admin:
                break
            }
        }
    }

    /// Whether `user` holds the root role (auth off: everyone does).
    public func isAdmin(_ user: String?) -> Bool {
        guard enabled else { return true }
        guard let user, let account = users[user] else { return false }
        return account.isRoot
    }

    public func permissions(of user: AuthUser) -> UserPermissions {
        UserPermissions(roles: user.roles.compactMap { roles[$0] })
    }
}
