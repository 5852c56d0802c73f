/// The stored form of an `AuthState` (the `kine_auth` row's `state`): a version byte, then
/// length-prefixed fields. The generation lives in its own column, where writes compare it.
extension AuthState {
    static let codingVersion: UInt8 = 1

    public func encoded() -> Bytes {
        var out = AuthStateWriter()
        out.byte(Self.codingVersion)
        out.byte(enabled ? 1 : 0)
        out.uint64(revision)
        out.count(users.count)
        for name in userNames {
            guard let user = users[name] else { continue }
            out.string(user.name)
            out.bytes(user.passwordHash)
            out.byte(user.noPassword ? 1 : 0)
            out.count(user.roles.count)
            for role in user.roles { out.string(role) }
        }
        out.count(roles.count)
        for name in roleNames {
            guard let role = roles[name] else { continue }
            out.string(role.name)
            out.count(role.permissions.count)
            for permission in role.permissions {
                out.byte(UInt8(permission.type.rawValue))
                out.bytes(permission.key)
                out.bytes(permission.rangeEnd)
            }
        }
        return out.output
    }

    /// Throws `AuthStateCodingError` for bytes this version did not write.
    public init(decoding bytes: Bytes, generation: UInt64) throws(AuthStateCodingError) {
        var input = AuthStateReader(bytes: bytes)
        guard try input.byte() == Self.codingVersion else { throw AuthStateCodingError(reason: "unknown version") }
        let enabled = try input.byte() == 1
        let revision = try input.uint64()
        var users: [String: AuthUser] = [:]
        for _ in 0..<(try input.count()) {
            let name = try input.string()
            let hash = try input.bytes()
            let noPassword = try input.byte() == 1
            var roles: [String] = []
            for _ in 0..<(try input.count()) { roles.append(try input.string()) }
            users[name] = AuthUser(name: name, passwordHash: hash, roles: roles, noPassword: noPassword)
        }
        var roles: [String: AuthRole] = [:]
        for _ in 0..<(try input.count()) {
            let name = try input.string()
            var permissions: [AuthPermission] = []
            for _ in 0..<(try input.count()) {
                guard let type = PermissionType(rawValue: Int32(try input.byte())) else {
                    throw AuthStateCodingError(reason: "unknown permission type")
                }
                permissions.append(AuthPermission(type: type, key: try input.bytes(), rangeEnd: try input.bytes()))
            }
            roles[name] = AuthRole(name: name, permissions: permissions)
        }
        guard input.atEnd else { throw AuthStateCodingError(reason: "trailing bytes") }
        self.init(enabled: enabled, revision: revision, users: users, roles: roles, generation: generation)
    }
}

public struct AuthStateCodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String
    public var description: String { "kine_auth state unreadable: \(reason)" }
}

private struct AuthStateWriter {
    var output: Bytes = []

    mutating func byte(_ value: UInt8) { output.append(value) }

    mutating func count(_ value: Int) {
        let value = UInt32(clamping: value)
        for shift in stride(from: 24, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    mutating func uint64(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { output.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func bytes(_ value: Bytes) {
        count(value.count)
        output += value
    }

    mutating func string(_ value: String) { bytes(Array(value.utf8)) }
}

private struct AuthStateReader {
    let input: Bytes
    var index = 0

    init(bytes: Bytes) { input = bytes }

    var atEnd: Bool { index == input.count }

    mutating func byte() throws(AuthStateCodingError) -> UInt8 {
        guard index < input.count else { throw AuthStateCodingError(reason: "truncated") }
        defer { index += 1 }
        return input[index]
    }

    mutating func count() throws(AuthStateCodingError) -> Int {
        var value = 0
        for _ in 0..<4 { value = value << 8 | Int(try byte()) }
        return value
    }

    mutating func uint64() throws(AuthStateCodingError) -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(try byte()) }
        return value
    }

    mutating func bytes() throws(AuthStateCodingError) -> Bytes {
        let length = try count()
        guard length <= input.count - index else { throw AuthStateCodingError(reason: "truncated") }
        defer { index += length }
        return Array(input[index..<index + length])
    }

    mutating func string() throws(AuthStateCodingError) -> String { String(decoding: try bytes(), as: UTF8.self) }
}
