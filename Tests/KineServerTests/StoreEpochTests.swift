import Foundation
import KineCore
import KineHTTP2
import KinePostgres
import KineProto
import KineStore
import Logging
import Testing

@testable import KineServer

/// The store behind a `StoreHandle` replaced at run time (what an HA node does when it starts
/// routing to the leader or promotes): onto a database that is behind and onto one that is
/// ahead. Real PostgreSQL databases, the real gRPC server and client.
@Suite("Store epochs", .enabled(if: ServerFixture.url != nil, "set KINE_TEST_POSTGRES_URL"))
struct StoreEpochTests {
    struct Fixture {
        let stores = StoreHandle()
        let configuration = KineConfiguration(listen: .tcp(host: "127.0.0.1", port: 0), endpoint: "")
        var logger: Logger {
            var logger = Logger(label: "kine.epoch.tests")
            logger.logLevel = .warning
            return logger
        }

        /// A fresh database with `keys` keys `/k/0…` written, its store running.
        func database(keys: Int) async throws -> StoreInstance {
            let name = "kine_epoch_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
            let endpoint = try PostgresConfiguration(endpoint: ServerFixture.url ?? "").with(database: name)
            let instance = try await StoreInstance.open(
                endpoint, configuration: configuration, logger: logger, connectTimeout: .seconds(30))
            for index in 0..<keys {
                _ = try await instance.store.put(PutRequest(key: Array("/k/\(index)".utf8), value: Array("\(name)-\(index)".utf8)))
            }
            return instance
        }
    }

    static func range(_ client: GRPCClientConnection, serializable: Bool = false) async throws -> RangeResponse {
        let request = RangeRequest(key: Array("/k/".utf8), rangeEnd: Array("/k0".utf8), serializable: serializable)
        return try ProtoDecode.rangeResponse(
            try await client.unary(path: "/etcdserverpb.KV/Range", request: ProtoEncode.rangeRequest(request)))
    }

    static func put(_ client: GRPCClientConnection, _ key: String) async throws -> PutResponse {
        let request = PutRequest(key: Array(key.utf8), value: Array("v".utf8))
        return try ProtoDecode.putResponse(try await client.unary(path: "/etcdserverpb.KV/Put", request: ProtoEncode.putRequest(request)))
    }

    /// The next watch response on `call` other than a progress notification.
    static func next(_ iterator: inout AsyncThrowingStream<[UInt8], any Error>.AsyncIterator) async throws -> WatchResponse {
        while true {
            guard let bytes = try await iterator.next() else { throw GRPCStatus(.unknown, "watch stream ended") }
            let response = try ProtoDecode.watchResponse(bytes)
            if response.created || response.canceled || !response.events.isEmpty { return response }
        }
    }

    static func create(_ call: GRPCClientBidirectionalCall, from revision: Int64) async throws {
        let request = WatchRequest.create(WatchCreateRequest(key: Array("/k/".utf8), rangeEnd: Array("/k0".utf8), startRevision: revision))
        try await call.send(ProtoEncode.watchRequest(request))
    }

    @Test("Re-pointing onto a database behind and one ahead: no stale read, watches cancelled as compacted, re-created watches exact")
    func repoint() async throws {
        let fixture = Fixture()
        let first = try await fixture.database(keys: 10)
        let behind = try await fixture.database(keys: 3)
        let ahead = try await fixture.database(keys: 30)
        fixture.stores.install(first.store, startRevision: 0)
        let identity = ServerIdentity(clusterID: 1, memberID: 1, name: "t", version: "3.5.13", clientURL: "")
        let server = GRPCServer(
            configuration: GRPCServerConfiguration(target: .tcp(host: "127.0.0.1", port: 0)),
            router: KineApplication.etcdRouter(stores: fixture.stores, identity: identity, configuration: fixture.configuration),
            logger: fixture.logger)
        let bound = try await server.start()
        let client = try await GRPCClientConnection.connect(host: "127.0.0.1", port: try #require(bound.port))

        #expect(try await Self.range(client).kvs.count == 10)
        // A deadline, so a missing response fails the test instead of hanging it.
        let call = client.openBidirectional(path: "/etcdserverpb.Watch/Watch", timeout: .seconds(60))
        var responses = call.responses.makeAsyncIterator()
        let firstRevision = try await Self.range(client).header.revision
        try await Self.create(call, from: firstRevision + 1)
        #expect(try await Self.next(&responses).created)
        let written = try await Self.put(client, "/k/live")
        let event = try await Self.next(&responses)
        #expect(event.events.map(\.kv.modRevision) == [written.header.revision])

        for (target, keys) in [(behind, 3), (ahead, 30)] {
            let start = try await target.store.revisions().current
            fixture.stores.install(target.store, startRevision: start)
            // Every watch of the old epoch ends as compacted at the new epoch's start.
            let cancel = try await Self.next(&responses)
            #expect(cancel.canceled && cancel.compactRevision == start)
            // The first read after the switch is the new database's (linearizable and serializable).
            let read = try await Self.range(client)
            #expect(read.kvs.count == keys && read.header.revision == start)
            #expect(try await Self.range(client, serializable: true).kvs.count == keys)
            // A watch re-created from the epoch start sees the new database's writes exactly once.
            try await Self.create(call, from: start + 1)
            #expect(try await Self.next(&responses).created)
            var expected: [Int64] = []
            for index in 0..<3 { expected.append(try await Self.put(client, "/k/after-\(index)").header.revision) }
            var seen: [Int64] = []
            while seen.count < expected.count { seen += try await Self.next(&responses).events.map(\.kv.modRevision) }
            #expect(seen == expected)
        }

        // Nothing serves: requests fail with etcd's "no leader"; at shutdown the watch stream ends.
        fixture.stores.withdraw()
        await #expect(throws: GRPCStatus.self) { _ = try await Self.range(client) }
        fixture.stores.withdraw(reason: .serverStopped, endStreams: true)
        await #expect(throws: GRPCStatus.self) { _ = try await Self.range(client) }
        await #expect(throws: (any Error).self) { _ = try await Self.next(&responses) }

        await client.close()
        await server.shutdown()
        for instance in [first, behind, ahead] { await instance.shutdown() }
    }
}
