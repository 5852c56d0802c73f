/// The auth management calls, with etcd 3.5's rules and errors (`auth/store.go`). Each one that
/// changes something bumps `revision`, except enabling auth; a call that changes nothing (enable
/// when enabled, granting a role the user has) leaves it, as etcd does. Admin permission is
/// checked by the caller.
extension AuthState {
    /// Turns auth on; root must exist and hold the root role.
    public mutating func enable() throws(EtcdError) {
        if enabled { return }
        guard let root = users[Self.rootUser] else { throw .rootUserNotExist }
        guard root.isRoot else { throw .rootRoleNotExist }
        // etcd does not move its revision here.
        enabled = true
    }

    public mutating func disable() {
        if !enabled { return }
        enabled = false
        revision += 1
    }

    /// `passwordHash` is the bcrypt hash of the password (etcd hashes even an empty one);
    /// ignored with `noPassword`.
    public mutating func addUser(_ name: String, passwordHash: Bytes, noPassword: Bool) throws(EtcdError) {
        if name.isEmpty { throw .userEmpty }
        if users[name] != nil { throw .userAlreadyExist }
        users[name] = AuthUser(name: name, passwordHash: noPassword ? [] : passwordHash, noPassword: noPassword)
        revision += 1
    }

    public mutating func deleteUser(_ name: String) throws(EtcdError) {
        if enabled && name == Self.rootUser { throw .invalidAuthManagement }
        guard users.removeValue(forKey: name) != nil else { throw .userNotFound }
        revision += 1
    }

    /// A user without password keeps having none.
    public mutating func changePassword(_ name: String, passwordHash: Bytes) throws(EtcdError) {
        guard var user = users[name] else { throw .userNotFound }
        if !user.noPassword { user.passwordHash = passwordHash }
        users[name] = user
        revision += 1
    }

    /// The root role may be granted before it is added as a role.
    public mutating func grantRole(_ role: String, to name: String) throws(EtcdError) {
        guard var user = users[name] else { throw .userNotFound }
        if role != Self.rootRole && roles[role] == nil { throw .roleNotFound }
        if user.roles.contains(role) { return }
        user.roles.append(role)
        user.roles.sort(by: Self.byteOrder)
        users[name] = user
        revision += 1
    }

    public mutating func revokeRole(_ role: String, from name: String) throws(EtcdError) {
        if enabled && name == Self.rootUser && role == Self.rootRole { throw .invalidAuthManagement }
        guard var user = users[name] else { throw .userNotFound }
        guard let index = user.roles.firstIndex(of: role) else { throw .roleNotGranted }
        user.roles.remove(at: index)
        users[name] = user
        revision += 1
    }

    public func user(_ name: String) throws(EtcdError) -> AuthUser {
        guard let user = users[name] else { throw .userNotFound }
        return user
    }

    public mutating func addRole(_ name: String) throws(EtcdError) {
        if name.isEmpty { throw .roleEmpty }
        if roles[name] != nil { throw .roleAlreadyExist }
        roles[name] = AuthRole(name: name)
        revision += 1
    }

    /// Also takes the role from every user that had it.
    public mutating func deleteRole(_ name: String) throws(EtcdError) {
        if enabled && name == Self.rootRole { throw .invalidAuthManagement }
        guard roles.removeValue(forKey: name) != nil else { throw .roleNotFound }
        for (userName, var user) in users where user.roles.contains(name) {
            user.roles.removeAll { $0 == name }
            users[userName] = user
        }
        revision += 1
    }

    public func role(_ name: String) throws(EtcdError) -> AuthRole {
        guard let role = roles[name] else { throw .roleNotFound }
        return role
    }

    /// A grant on a key and range end the role already has replaces its type; a new one is
    /// inserted after the permissions with a smaller or equal key.
    public mutating func grantPermission(_ permission: AuthPermission?, to name: String) throws(EtcdError) {
        guard let permission else { throw .permissionNotGiven }
        guard var role = roles[name] else { throw .roleNotFound }
        // etcd looks at the first permission whose key is not below the new one's only: a grant
        // matching a later one with the same key is added again, as etcd adds it.
        let first = role.permissions.firstIndex { !Self.bytesLess($0.key, permission.key) }
        if let index = first, role.permissions[index].key == permission.key, role.permissions[index].rangeEnd == permission.rangeEnd {
            role.permissions[index].type = permission.type
        } else {
            let index = role.permissions.firstIndex { Self.bytesLess(permission.key, $0.key) } ?? role.permissions.endIndex
            role.permissions.insert(permission, at: index)
        }
        roles[name] = role
        revision += 1
    }

    public mutating func revokePermission(key: Bytes, rangeEnd: Bytes, from name: String) throws(EtcdError) {
        guard var role = roles[name] else { throw .roleNotFound }
        let before = role.permissions.count
        role.permissions.removeAll { $0.key == key && $0.rangeEnd == rangeEnd }
        if role.permissions.count == before { throw .permissionNotGranted }
        roles[name] = role
        revision += 1
    }

    static func byteOrder(_ a: String, _ b: String) -> Bool { bytesLess(Array(a.utf8), Array(b.utf8)) }

    static func bytesLess(_ a: Bytes, _ b: Bytes) -> Bool { a.lexicographicallyPrecedes(b) }
}
