import KineCore
import KinePostgres
import Testing

@testable import KineStore

@Suite("Auth store on PostgreSQL: shared by processes, never stale", .enabled(if: StoreTestDB.enabled, "set KINE_TEST_POSTGRES_URL"))
struct AuthStoreIntegrationTests {
    /// root, and alice with read-write on /a/ (the "rw" role); auth on.
    private static func setUp(_ store: KineStore) async throws {
        try await store.auth.update { state throws(EtcdError) in
            try state.addUser("root", passwordHash: bytes("x"), noPassword: false)
            try state.grantRole("root", to: "root")
            try state.addUser("alice", passwordHash: bytes("y"), noPassword: false)
            try state.addRole("rw")
            try state.grantPermission(AuthPermission(type: .readWrite, key: bytes("/a/"), rangeEnd: bytes("/a0")), to: "rw")
            try state.grantRole("rw", to: "alice")
            try state.enable()
        }
    }

    private static func revokeAlice(_ store: KineStore) async throws {
        try await store.auth.update { state throws(EtcdError) in try state.revokeRole("rw", from: "alice") }
    }

    private static func asAlice(_ requirements: [AuthRequirement]) -> KineStore.Authorization {
        { state throws(EtcdError) in try state.authorize("alice", requirements) }
    }

    @Test("A revoke made through one process refuses the other's next linearizable read at once")
    func revokeSeenByReads() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withTwoProcesses(client) { first, second in
                try await Self.setUp(first)
                let read = RangeRequest(key: bytes("/a/1"))
                _ = try await second.range(read, authorize: Self.asAlice(AuthRequirement.of(read)))
                try await Self.revokeAlice(first)
                await #expect(throws: EtcdError.permissionDenied) {
                    try await second.range(read, authorize: Self.asAlice(AuthRequirement.of(read)))
                }
                // A serializable read may use the copy it has, as etcd's member does; the next
                // linearizable one above already refreshed it.
                let serializable = RangeRequest(key: bytes("/a/1"), serializable: true)
                await #expect(throws: EtcdError.permissionDenied) {
                    try await second.range(serializable, authorize: Self.asAlice(AuthRequirement.of(serializable)))
                }
            }
        }
    }

    @Test("A write checked against a state another process changed fails as etcd's old auth revision, then is refused")
    func staleWriteRefused() async throws {
        for readCache in [true, false] {
            var configuration = KineStore.Configuration()
            configuration.readCache = readCache
            try await StoreTestDB.withDatabase { client in
                let other = try await PostgresClient.connect(configuration: client.configuration, logger: StoreTestDB.logger)
                defer { Task { await other.shutdown() } }
                try await StoreTestDB.withStore(client, configuration: configuration) { first in
                    try await StoreTestDB.withStore(other, configuration: configuration) { second in
                        try await Self.setUp(first)
                        let put = PutRequest(key: bytes("/a/1"), value: bytes("v"))
                        _ = try await second.put(put, authorize: Self.asAlice(AuthRequirement.of(put)))
                        try await Self.revokeAlice(first)
                        await #expect(throws: EtcdError.authOldRevision) {
                            try await second.put(put, authorize: Self.asAlice(AuthRequirement.of(put)))
                        }
                        await #expect(throws: EtcdError.permissionDenied) {
                            try await second.put(put, authorize: Self.asAlice(AuthRequirement.of(put)))
                        }
                        let read = try await first.range(RangeRequest(key: bytes("/a/1")))
                        #expect(read.kvs.count == 1 && read.kvs[0].version == 1, "only the write made before the revoke is there")
                    }
                }
            }
        }
    }

    @Test("Auth changes are kept in the table: a store opened later reads the same state")
    func persisted() async throws {
        try await StoreTestDB.withDatabase { client in
            try await StoreTestDB.withStore(client) { store in try await Self.setUp(store) }
            try await StoreTestDB.withStore(client) { store in
                let state = try await store.auth.fresh()
                #expect(state.enabled && state.userNames == ["alice", "root"] && state.roles["rw"]?.permissions.count == 1)
            }
        }
    }
}
