import Testing

@testable import KineCore

@Suite("Auth store rules and permission checks (etcd 3.5's auth/store.go)")
struct AuthStateTests {
    private func b(_ text: String) -> Bytes { Array(text.utf8) }

    /// root (with the root role) and alice (role "reader": read on /a prefix, write on /a/w).
    private func populated(enabled: Bool = true) throws -> AuthState {
        var state = AuthState()
        try state.addUser("root", passwordHash: b("h"), noPassword: false)
        try state.grantRole("root", to: "root")
        try state.addUser("alice", passwordHash: b("h2"), noPassword: false)
        try state.addRole("reader")
        try state.grantPermission(AuthPermission(type: .read, key: b("/a"), rangeEnd: b("/b")), to: "reader")
        try state.grantPermission(AuthPermission(type: .write, key: b("/a/w"), rangeEnd: []), to: "reader")
        try state.grantRole("reader", to: "alice")
        if enabled { try state.enable() }
        return state
    }

    @Test("Enable needs root with the root role and, as in etcd, keeps the revision; so does a no-op change")
    func enable() throws {
        var state = AuthState()
        #expect(throws: EtcdError.rootUserNotExist) { try state.enable() }
        try state.addUser("root", passwordHash: b("h"), noPassword: false)
        #expect(throws: EtcdError.rootRoleNotExist) { try state.enable() }
        try state.grantRole("root", to: "root")
        let before = state.revision
        try state.grantRole("root", to: "root")
        #expect(state.revision == before)
        try state.enable()
        #expect(state.enabled && state.revision == before)
        state.disable()
        #expect(!state.enabled && state.revision == before + 1)
    }

    @Test("Management errors: empty names, duplicates, unknown users and roles, root protected while enabled")
    func managementErrors() throws {
        var state = try populated()
        #expect(throws: EtcdError.userEmpty) { try state.addUser("", passwordHash: [], noPassword: false) }
        #expect(throws: EtcdError.userAlreadyExist) { try state.addUser("alice", passwordHash: [], noPassword: false) }
        #expect(throws: EtcdError.roleEmpty) { try state.addRole("") }
        #expect(throws: EtcdError.roleAlreadyExist) { try state.addRole("reader") }
        #expect(throws: EtcdError.userNotFound) { try state.deleteUser("bob") }
        #expect(throws: EtcdError.roleNotFound) { try state.grantRole("nope", to: "alice") }
        #expect(throws: EtcdError.roleNotGranted) { try state.revokeRole("nope", from: "alice") }
        #expect(throws: EtcdError.invalidAuthManagement) { try state.deleteUser("root") }
        #expect(throws: EtcdError.invalidAuthManagement) { try state.revokeRole("root", from: "root") }
        #expect(throws: EtcdError.invalidAuthManagement) { try state.deleteRole("root") }
        #expect(throws: EtcdError.permissionNotGiven) { try state.grantPermission(nil, to: "reader") }
        #expect(throws: EtcdError.permissionNotGranted) { try state.revokePermission(key: b("/x"), rangeEnd: [], from: "reader") }
        state.disable()
        try state.deleteUser("root")
        #expect(state.users["root"] == nil)
    }

    @Test("Deleting a role takes it from its users; permissions stay sorted by key and a regrant replaces the type")
    func rolesAndPermissions() throws {
        var state = try populated()
        try state.grantPermission(AuthPermission(type: .readWrite, key: b("/0"), rangeEnd: [0]), to: "reader")
        try state.grantPermission(AuthPermission(type: .readWrite, key: b("/a"), rangeEnd: b("/b")), to: "reader")
        #expect(try state.role("reader").permissions.map(\.key) == [b("/0"), b("/a"), b("/a/w")])
        #expect(try state.role("reader").permissions[1].type == .readWrite)
        // etcd compares a grant with the first permission of its key only: a second range end
        // under the same key granted twice is there twice.
        try state.addRole("dup")
        for end in ["e1", "e2", "e2"] {
            try state.grantPermission(AuthPermission(type: .read, key: b("k"), rangeEnd: b(end)), to: "dup")
        }
        #expect(try state.role("dup").permissions.map(\.rangeEnd) == [b("e1"), b("e2"), b("e2")])
        try state.revokePermission(key: b("k"), rangeEnd: b("e2"), from: "dup")
        #expect(try state.role("dup").permissions.map(\.rangeEnd) == [b("e1")])
        try state.deleteRole("reader")
        #expect(try state.user("alice").roles.isEmpty)
    }

    @Test("Key checks: no user, unknown user, root, single keys, covered and uncovered ranges")
    func checks() throws {
        let state = try populated()
        #expect(throws: EtcdError.userEmpty) { try state.authorize(nil, [.read(key: b("/a/1"), rangeEnd: [])]) }
        #expect(throws: EtcdError.permissionDenied) { try state.authorize("bob", [.read(key: b("/a/1"), rangeEnd: [])]) }
        try state.authorize("root", [.write(key: b("/z"), rangeEnd: [0]), .admin])
        try state.authorize("alice", [.read(key: b("/a/1"), rangeEnd: [])])
        try state.authorize("alice", [.read(key: b("/a"), rangeEnd: b("/b"))])
        try state.authorize("alice", [.write(key: b("/a/w"), rangeEnd: [])])
        #expect(throws: EtcdError.permissionDenied) { try state.authorize("alice", [.write(key: b("/a/1"), rangeEnd: [])]) }
        #expect(throws: EtcdError.permissionDenied) { try state.authorize("alice", [.read(key: b("/a"), rangeEnd: b("/c"))]) }
        #expect(throws: EtcdError.permissionDenied) { try state.authorize("alice", [.read(key: b("/a"), rangeEnd: [0])]) }
        #expect(throws: EtcdError.permissionDenied) { try state.authorize("alice", [.admin]) }
        #expect(throws: EtcdError.userNotFound) { try state.authorize("bob", [.admin]) }
        // With auth off, anything goes.
        var off = state
        off.disable()
        try off.authorize(nil, [.admin, .write(key: b("/z"), rangeEnd: [0])])
    }

    @Test("Ranges are covered by adjacent permissions; an open-ended permission covers an open-ended request")
    func coverage() {
        let set = KeyPermissionSet([
            AuthPermission(type: .read, key: b("a"), rangeEnd: b("c")),
            AuthPermission(type: .read, key: b("c"), rangeEnd: b("e")),
            AuthPermission(type: .read, key: b("x"), rangeEnd: [0]),
        ])
        #expect(set.permits(key: b("a"), rangeEnd: b("e")))
        #expect(set.permits(key: b("b"), rangeEnd: b("d")))
        #expect(!set.permits(key: b("a"), rangeEnd: b("f")))
        #expect(set.permits(key: b("y"), rangeEnd: [0]))
        #expect(set.permits(key: b("zzz"), rangeEnd: []))
        #expect(!set.permits(key: b("e"), rangeEnd: []))
        #expect(!set.permits(key: b("d"), rangeEnd: b("y")))
    }

    @Test("A Txn needs every compare and both branches, nested Txns included; prev_kv adds a read")
    func txnRequirements() {
        let txn = TxnRequest(
            compare: [Compare(key: b("c"))],
            success: [.put(PutRequest(key: b("p"), prevKV: true))],
            failure: [
                .deleteRange(DeleteRangeRequest(key: b("d"), prevKV: true)),
                .txn(TxnRequest(success: [.range(RangeRequest(key: b("n")))])),
            ])
        #expect(
            AuthRequirement.of(txn) == [
                .read(key: b("c"), rangeEnd: []), .write(key: b("p"), rangeEnd: []), .write(key: b("d"), rangeEnd: []),
                .read(key: b("d"), rangeEnd: []), .read(key: b("n"), rangeEnd: []),
            ])
        #expect(
            AuthRequirement.of(PutRequest(key: b("k"), prevKV: true)) == [
                .write(key: b("k"), rangeEnd: []), .read(key: b("k"), rangeEnd: []),
            ])
    }

    @Test("The stored form round-trips, and other bytes are refused")
    func coding() throws {
        var state = try populated()
        try state.addUser("nopw", passwordHash: [], noPassword: true)
        let decoded = try AuthState(decoding: state.encoded(), generation: state.generation)
        #expect(decoded == state)
        #expect(throws: AuthStateCodingError.self) { try AuthState(decoding: [9], generation: 1) }
        #expect(throws: AuthStateCodingError.self) { try AuthState(decoding: Array(state.encoded().dropLast()), generation: 1) }
    }
}
