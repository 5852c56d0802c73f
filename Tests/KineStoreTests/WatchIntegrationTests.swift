import KineCore
import KinePostgres
import KineSQL
import Synchronization
import Testing

@testable import KineStore

/// Collects what a WatchSession sends.
final class ResponseLog: Sendable {
    private let responses = Mutex<[WatchResponse]>([])

    func append(_ response: WatchResponse) { responses.withLock { $0.append(response) } }
    var all: [WatchResponse] { responses.withLock { $0 } }

    /// Waits (up to 5 s) until `predicate` holds for the responses so far.
    func wait(_ predicate: ([WatchResponse]) -> Bool) async -> [WatchResponse] {
        for _ in 0..<500 {
            let now = all
            if predicate(now) { return now }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return all
    }
}

@Suite("Watch on PostgreSQL", .enabled(if: StoreTestDB.enabled, "set KINE_TEST_POSTGRES_URL"))
struct WatchIntegrationTests {
    private func events(_ responses: [WatchResponse], watch id: Int64) -> [Event] {
        responses.filter { $0.watchID == id }.flatMap(\.events)
    }

    /// Runs a store with its Writer and WatchHub, and a session whose responses land in `log`.
    private func withSession(_ body: (KineStore, WatchSession, ResponseLog) async throws -> Void) async throws {
        try await StoreTestDB.withDatabase { client in
            let store = try await KineStore.open(client: client, logger: StoreTestDB.logger)
            let running = Task { await store.run() }
            let log = ResponseLog()
            let session = WatchSession(hub: store.watchHub) { log.append($0) }
            let sending = Task { try await session.run() }
            defer {
                session.close()
                store.stop()
                sending.cancel()
                running.cancel()
            }
            try await body(store, session, log)
        }
    }

    @Test("Created first, then live events with prev_kv, one response per revision")
    func liveEvents() async throws {
        try await withSession { store, session, log in
            let before = try await store.put(PutRequest(key: bytes("/w/a"), value: bytes("0")))
            await session.handle(.create(WatchCreateRequest(key: bytes("/w/"), rangeEnd: bytes("/w0"), prevKV: true)))
            _ = await log.wait { $0.contains { $0.created } }
            let put = try await store.put(PutRequest(key: bytes("/w/a"), value: bytes("1")))
            let delete = try await store.deleteRange(DeleteRangeRequest(key: bytes("/w/"), rangeEnd: bytes("/w0")))
            _ = try await store.put(PutRequest(key: bytes("/other"), value: bytes("x")))
            let responses = await log.wait { events($0, watch: 0).count >= 2 }
            #expect(responses.first?.created == true && responses.first?.watchID == 0)
            #expect(responses.first?.header.revision == before.header.revision)
            let seen = events(responses, watch: 0)
            #expect(seen.map(\.type) == [.put, .delete])
            #expect(seen[0].kv.modRevision == put.header.revision && seen[0].prevKV?.value == bytes("0"))
            #expect(seen[1].kv.modRevision == delete.header.revision && seen[1].prevKV?.value == bytes("1"))
            #expect(responses.filter { !$0.events.isEmpty }.map(\.header.revision) == [put.header.revision, delete.header.revision])
        }
    }

    @Test("A watch from a past revision replays history, then continues live without gap or duplicate")
    func history() async throws {
        try await withSession { store, session, log in
            let first = try await store.put(PutRequest(key: bytes("/h/k"), value: bytes("1")))
            for value in 2...5 { _ = try await store.put(PutRequest(key: bytes("/h/k"), value: bytes("\(value)"))) }
            await session.handle(
                .create(WatchCreateRequest(key: bytes("/h/"), rangeEnd: bytes("/h0"), startRevision: first.header.revision)))
            _ = await log.wait { events($0, watch: 0).count >= 5 }
            _ = try await store.put(PutRequest(key: bytes("/h/k"), value: bytes("6")))
            let responses = await log.wait { events($0, watch: 0).count >= 6 }
            #expect(events(responses, watch: 0).map { String(decoding: $0.kv.value, as: UTF8.self) } == ["1", "2", "3", "4", "5", "6"])
        }
    }

    @Test("A compacted start revision cancels the watch with the compacted revision")
    func compacted() async throws {
        try await withSession { store, session, log in
            let first = try await store.put(PutRequest(key: bytes("/c/k"), value: bytes("1")))
            let second = try await store.put(PutRequest(key: bytes("/c/k"), value: bytes("2")))
            _ = try await store.put(PutRequest(key: bytes("/c/other"), value: bytes("x")))
            _ = try await store.compact(CompactionRequest(revision: second.header.revision))
            await session.handle(.create(WatchCreateRequest(key: bytes("/c/k"), startRevision: first.header.revision)))
            let responses = await log.wait { $0.contains { $0.canceled } }
            let cancel = try #require(responses.first { $0.canceled })
            #expect(cancel.compactRevision == second.header.revision && cancel.cancelReason.isEmpty)
        }
    }

    @Test("Validation: empty range, negative start, duplicate id; progress request when synced")
    func validationAndProgress() async throws {
        try await withSession { store, session, log in
            _ = try await store.put(PutRequest(key: bytes("/v"), value: bytes("1")))
            await session.handle(.create(WatchCreateRequest(key: bytes("b"), rangeEnd: bytes("a"))))
            await session.handle(.create(WatchCreateRequest(key: bytes("a"), startRevision: -1)))
            await session.handle(.create(WatchCreateRequest(key: bytes("a"), watchID: 7)))
            await session.handle(.create(WatchCreateRequest(key: bytes("a"), watchID: 7)))
            await session.handle(.progress)
            let responses = await log.wait { $0.contains { $0.watchID == -1 && !$0.created } }
            let created = responses.filter(\.created)
            // A negative start revision is accepted (etcd 3.5 then cancels it as compacted).
            #expect(
                created.map(\.cancelReason) == [
                    "mvcc: watcher range is empty", "", "", "mvcc: duplicate watch ID provided on the WatchStream",
                ])
            #expect(created.map(\.watchID) == [-1, 0, 7, -1])
            #expect(responses.last?.watchID == -1 && responses.last?.events.isEmpty == true)
        }
    }

    @Test("Revoking a lease deletes its keys in one revision and watchers see the deletes")
    func leaseRevoke() async throws {
        try await withSession { store, session, log in
            let lease = try await store.leaseGrant(LeaseGrantRequest(ttl: 60))
            for key in ["/l/a", "/l/b"] { _ = try await store.put(PutRequest(key: bytes(key), value: bytes("v"), lease: lease.id)) }
            await session.handle(.create(WatchCreateRequest(key: bytes("/l/"), rangeEnd: bytes("/l0"))))
            _ = await log.wait { $0.contains { $0.created } }
            let revoked = try await store.leaseRevoke(LeaseRevokeRequest(id: lease.id))
            let responses = await log.wait { events($0, watch: 0).count >= 2 }
            let deletes = events(responses, watch: 0)
            #expect(deletes.map(\.type) == [.delete, .delete])
            #expect(deletes.allSatisfy { $0.kv.modRevision == revoked.header.revision })
            let ttl = try await store.leaseTimeToLive(LeaseTimeToLiveRequest(id: lease.id))
            #expect(ttl.ttl == -1)
            await #expect(throws: EtcdError.leaseNotFound) { try await store.leaseRevoke(LeaseRevokeRequest(id: lease.id)) }
        }
    }

    @Test("A prefix delete larger than the watch ring reaches a live and a history watcher whole, in one revision, with prev_kv")
    func hugeDelete() async throws {
        try await withSession { store, session, log in
            let count = 9000  // more events than the ring keeps (8192)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<32 {
                    group.addTask {
                        for index in stride(from: worker, to: count, by: 32) {
                            _ = try await store.put(PutRequest(key: bytes("/huge/\(index)"), value: bytes("v\(index)")))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let before = try await store.range(RangeRequest(key: bytes("/huge/"), rangeEnd: bytes("/huge0"), countOnly: true))
            #expect(before.count == Int64(count))
            await session.handle(.create(WatchCreateRequest(key: bytes("/huge/"), rangeEnd: bytes("/huge0"), prevKV: true, watchID: 1)))
            _ = await log.wait { $0.contains { $0.created && $0.watchID == 1 } }
            let deleted = try await store.deleteRange(DeleteRangeRequest(key: bytes("/huge/"), rangeEnd: bytes("/huge0")))
            #expect(deleted.deleted == Int64(count))
            // A second watcher replays the same revision from the table.
            await session.handle(
                .create(
                    WatchCreateRequest(
                        key: bytes("/huge/"), rangeEnd: bytes("/huge0"), startRevision: deleted.header.revision, prevKV: true, watchID: 2)))
            let responses = await log.wait { events($0, watch: 1).count >= count && events($0, watch: 2).count >= count }
            for id: Int64 in [1, 2] {
                let got = events(responses, watch: id)
                #expect(got.count == count, "watch \(id)")
                #expect(got.allSatisfy { $0.type == .delete && $0.kv.modRevision == deleted.header.revision }, "watch \(id)")
                #expect(
                    got.allSatisfy { $0.prevKV.map { $0.value == bytes("v") + Array($0.key.dropFirst("/huge/".count)) } ?? false },
                    "watch \(id)")
                #expect(Set(got.map(\.kv.key)).count == count, "watch \(id)")
                // One revision arrives in one response.
                #expect(responses.filter { $0.watchID == id && !$0.events.isEmpty }.count == 1, "watch \(id)")
            }
            let after = try await store.range(RangeRequest(key: bytes("/huge/"), rangeEnd: bytes("/huge0"), countOnly: true))
            #expect(after.count == 0)
        }
    }
}
