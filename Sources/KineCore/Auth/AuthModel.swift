/// etcd's auth data (`authpb`): users, roles and the key permissions roles grant.

/// What a permission allows, with authpb's numbers.
public enum PermissionType: Int32, Sendable, Hashable {
    case read = 0
    case write = 1
    case readWrite = 2

    public var allowsRead: Bool { self != .write }
    public var allowsWrite: Bool { self != .read }
}

/// A permission on one key (`rangeEnd` empty), a range `[key, rangeEnd)`, or every key from
/// `key` on (`rangeEnd` `"\0"`).
public struct AuthPermission: Sendable, Hashable {
    public var type: PermissionType
    public var key: Bytes
    public var rangeEnd: Bytes

    public init(type: PermissionType, key: Bytes, rangeEnd: Bytes) {
        self.type = type
        self.key = key
        self.rangeEnd = rangeEnd
    }
}

public struct AuthUser: Sendable, Hashable {
    public var name: String
    /// The bcrypt hash of the password (`$2b$10$…`); empty for a user added without one.
    public var passwordHash: Bytes
    /// Sorted, as etcd keeps them.
    public var roles: [String]
    /// Added with `--no-password`: can never authenticate with a password.
    public var noPassword: Bool

    public init(name: String, passwordHash: Bytes, roles: [String] = [], noPassword: Bool = false) {
        self.name = name
        self.passwordHash = passwordHash
        self.roles = roles
        self.noPassword = noPassword
    }

    public var isRoot: Bool { roles.contains(AuthState.rootRole) }
}

public struct AuthRole: Sendable, Hashable {
    public var name: String
    /// Sorted by key, as etcd keeps them (a grant on an existing key and range end replaces it).
    public var permissions: [AuthPermission]

    public init(name: String, permissions: [AuthPermission] = []) {
        self.name = name
        self.permissions = permissions
    }
}

/// The whole auth store: whether auth is on, its revision (bumped by every change) and every
/// user and role. Small, so it is kept, read and written whole.
public struct AuthState: Sendable, Hashable {
    public static let rootUser = "root"
    public static let rootRole = "root"

    public var enabled: Bool
    /// etcd's auth revision (AuthStatus): starts at 1 and moves with most changes, as etcd's does
    /// (enabling auth and a change that changes nothing leave it).
    public var revision: UInt64
    public var users: [String: AuthUser]
    public var roles: [String: AuthRole]
    /// Which saved version of the store this is: +1 for every change saved, whatever it was. Not
    /// etcd's: it is what kine processes compare to know their copy is current.
    public var generation: UInt64

    public init(
        enabled: Bool = false, revision: UInt64 = 1, users: [String: AuthUser] = [:], roles: [String: AuthRole] = [:],
        generation: UInt64 = 0
    ) {
        self.enabled = enabled
        self.revision = revision
        self.users = users
        self.roles = roles
        self.generation = generation
    }

    /// Names in byte order (etcd's bucket order).
    public var userNames: [String] { users.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } }
    public var roleNames: [String] { roles.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) } }
}
