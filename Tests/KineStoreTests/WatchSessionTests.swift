import KineCore
import KineSQL
import Logging
import Synchronization
import Testing

@testable import KineStore

/// WatchSession against a WatchHub that follows `FakeKineTable`: catch-up, live delivery, slow
/// consumers, cancellation and compaction, without PostgreSQL.
@Suite("WatchSession with a fake table")
struct WatchSessionTests {
    /// What a session sent, in order.
    final class Recorder: Sendable {
        private let sent = Mutex<[WatchResponse]>([])
        /// While closed, `send` waits (a client that does not read).
        private let gate = Mutex<Bool>(true)

        var responses: [WatchResponse] { sent.withLock { $0 } }
        func setOpen(_ open: Bool) { gate.withLock { $0 = open } }

        func send(_ response: WatchResponse) async throws {
            while !gate.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(1)) }
            sent.withLock { $0.append(response) }
        }

        /// Event responses of `watchID`, in order.
        func events(of watchID: Int64) -> [WatchResponse] {
            responses.filter { $0.watchID == watchID && !$0.events.isEmpty }
        }
    }

    private static var logger: Logger {
        var logger = Logger(label: "kine.watch.tests")
        logger.logLevel = .critical
        return logger
    }

    /// Runs a hub on `table` and one session recording into a `Recorder`.
    private func withSession(
        _ table: FakeKineTable, ringCapacity: Int = 8192, _ body: (WatchHub, WatchSession, Recorder) async throws -> Void
    ) async throws {
        let hub = WatchHub(
            client: table, sql: StoreSQL(legacyCollation: false), logger: Self.logger, ringCapacity: ringCapacity,
            pollInterval: .milliseconds(5))
        let hubTask = Task { await hub.run(notifications: nil) }
        let recorder = Recorder()
        let session = WatchSession(hub: hub, send: { try await recorder.send($0) })
        let sessionTask = Task { try await session.run() }
        defer {
            session.close()
            hub.stop()
            hubTask.cancel()
            sessionTask.cancel()
        }
        try await body(hub, session, recorder)
    }

    /// Waits for `condition`; records a failure instead of hanging when it never holds.
    private func eventually(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            if ContinuousClock.now > deadline {
                Issue.record("never happened: \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    private func create(_ key: String, end: String = "", start: Int64 = 0, id: Int64 = 0, prevKV: Bool = false) -> WatchRequest {
        .create(WatchCreateRequest(key: Array(key.utf8), rangeEnd: Array(end.utf8), startRevision: start, prevKV: prevKV, watchID: id))
    }

    private func keys(_ responses: [WatchResponse]) -> [String] {
        responses.flatMap(\.events).map { String(decoding: $0.kv.key, as: UTF8.self) }
    }

    @Test("A watcher behind the ring catches up from the table in one response, headed by the current revision, then follows live")
    func catchUpThenLive() async throws {
        let table = FakeKineTable()
        table.put("a1", "x")  // 1
        table.put("b", "x")  // 2
        table.put("a2", "x")  // 3
        table.put("a1", "y")  // 4
        table.delete("a2")  // 5
        try await withSession(table) { hub, session, recorder in
            try await eventually("hub at revision 5") { hub.revision == 5 }
            await session.handle(create("a", end: "b", start: 2, id: 7, prevKV: true))
            try await eventually("catch-up sent") { !recorder.events(of: 7).isEmpty }
            let catchUp = recorder.events(of: 7)
            #expect(recorder.responses.first?.created == true)
            #expect(catchUp.count == 1)
            #expect(catchUp.first?.header.revision == 5)
            #expect(keys(catchUp) == ["a2", "a1", "a2"])
            #expect(catchUp.first?.events.map(\.type) == [.put, .put, .delete])
            // prev_kv comes from the superseded row.
            #expect(catchUp.first?.events[1].prevKV?.value == Array("x".utf8))
            #expect(hub.statistics.counters.catchUpsFromDatabase >= 1)

            table.put("a3", "z")  // 6
            table.put("c", "z")  // 7: outside the range
            table.put("a1", "z")  // 8
            try await eventually("live events") { recorder.events(of: 7).count == 3 }
            let live = Array(recorder.events(of: 7).dropFirst())
            #expect(live.map(\.header.revision) == [6, 8])
            #expect(keys(live) == ["a3", "a1"])
        }
    }

    @Test("Revisions none of a stream's watchers match pass it by; the next matching one arrives once, with its revision")
    func unmatchedRevisionsPass() async throws {
        let table = FakeKineTable()
        try await withSession(table) { hub, session, recorder in
            try await eventually("hub started") { hub.statistics.counters.watchStreams == 1 }
            await session.handle(create("m", end: "n", id: 1))
            await session.handle(create("p", end: "q", id: 2))
            try await eventually("created") { recorder.responses.filter(\.created).count == 2 }
            var last: Int64 = 0
            for index in 0..<50 {
                last = table.put("x\(index)", "v")
                if index % 10 == 0 { try await Task.sleep(for: .milliseconds(10)) }
            }
            try await eventually("hub caught up") { hub.revision == last }
            let matching = table.put("m1", "v")
            try await eventually("event for watcher 1") { !recorder.events(of: 1).isEmpty }
            // A watcher from an older revision still catches up with everything in its range.
            table.put("p1", "v")
            await session.handle(create("x", end: "y", start: 1, id: 3))
            try await eventually("catch-up of watcher 3") { keys(recorder.events(of: 3)).count == 50 }
            await session.handle(.progress)
            try await eventually("progress") { recorder.responses.contains { $0.watchID == -1 && $0.events.isEmpty && !$0.created } }
            #expect(recorder.events(of: 1).map(\.header.revision) == [matching])
            #expect(keys(recorder.events(of: 1)) == ["m1"])
            #expect(keys(recorder.events(of: 2)) == ["p1"])
            #expect(keys(recorder.events(of: 3)) == (0..<50).map { "x\($0)" })
            let progress = recorder.responses.last { $0.watchID == -1 && $0.events.isEmpty && !$0.created }
            #expect(progress?.header.revision == hub.revision)
        }
    }

    @Test("A client that stops reading falls out of the ring and still gets every revision once, in order")
    func slowConsumer() async throws {
        let table = FakeKineTable()
        try await withSession(table, ringCapacity: 2) { hub, session, recorder in
            try await eventually("hub started") { hub.statistics.counters.watchStreams == 1 }
            await session.handle(create("k", end: "l", id: 1))
            try await eventually("created") { recorder.responses.contains { $0.created } }
            recorder.setOpen(false)
            table.put("k0", "v")
            try await Task.sleep(for: .milliseconds(30))
            for index in 1..<40 { table.put("k\(index)", "v") }
            try await eventually("hub at revision 40") { hub.revision == 40 }
            recorder.setOpen(true)
            try await eventually("all 40 events") { recorder.events(of: 1).flatMap(\.events).count >= 40 }
            let delivered = recorder.events(of: 1)
            #expect(delivered.flatMap(\.events).map(\.kv.modRevision) == Array(1...40))
            let headers = recorder.responses.map(\.header.revision)
            #expect(headers == headers.sorted(), "header revisions never go back")
            #expect(hub.statistics.counters.catchUpsFromDatabase >= 1, "the ring of 2 events could not have served it")
        }
    }

    @Test("Cancel answers once, stops delivery, and an unknown id gets no answer, as etcd does")
    func cancel() async throws {
        let table = FakeKineTable()
        try await withSession(table) { hub, session, recorder in
            await session.handle(create("k", id: 3))
            try await eventually("created") { recorder.responses.contains { $0.created && $0.watchID == 3 } }
            table.put("k", "1")
            try await eventually("event") { recorder.events(of: 3).count == 1 }
            await session.handle(.cancel(watchID: 3))
            await session.handle(.cancel(watchID: 99))
            try await eventually("cancelled") { recorder.responses.contains { $0.canceled && $0.watchID == 3 } }
            table.put("k", "2")
            try await eventually("hub at revision 2") { hub.revision == 2 }
            // Let the session take a round after revision 2 before looking.
            await session.handle(create("other", id: 4))
            try await eventually("second created") { recorder.responses.contains { $0.created && $0.watchID == 4 } }
            #expect(recorder.events(of: 3).count == 1)
            #expect(!recorder.responses.contains { $0.watchID == 99 })
            #expect(recorder.responses.filter { $0.canceled }.count == 1)
        }
    }

    @Test("A start revision below the compacted one is cancelled with the compact revision and a zero header")
    func compacted() async throws {
        let table = FakeKineTable()
        for index in 0..<5 { table.put("k\(index)", "v") }
        table.compact(through: 3)
        try await withSession(table) { hub, session, recorder in
            try await eventually("hub at revision 5") { hub.revision == 5 }
            await session.handle(create("k", end: "l", start: 2, id: 5))
            try await eventually("cancelled") { recorder.responses.contains { $0.canceled } }
            let cancel = recorder.responses.first { $0.canceled }
            #expect(cancel?.watchID == 5)
            #expect(cancel?.compactRevision == 3)
            #expect(cancel?.header.revision == 0)
            #expect(recorder.events(of: 5).isEmpty)
        }
    }

    @Test("Catch-up waits out a database outage and then delivers the history")
    func outageDuringCatchUp() async throws {
        let table = FakeKineTable()
        for index in 0..<3 { table.put("k\(index)", "v") }
        try await withSession(table) { hub, session, recorder in
            try await eventually("hub at revision 3") { hub.revision == 3 }
            table.setFailing(true)
            await session.handle(create("k", end: "l", start: 1, id: 2))
            try await eventually("created") { recorder.responses.contains { $0.created } }
            try await Task.sleep(for: .milliseconds(50))
            #expect(recorder.events(of: 2).isEmpty)
            table.setFailing(false)
            try await eventually("history") { recorder.events(of: 2).flatMap(\.events).count == 3 }
            #expect(recorder.events(of: 2).flatMap(\.events).map(\.kv.modRevision) == [1, 2, 3])
        }
    }

    @Test("In a promotion whose copy holds everything the session was sent, the watchers go on gap-free, without a cancel")
    func continuesIntoTheNextEpoch() async throws {
        let leader = FakeKineTable()
        leader.put("a", "1")  // 1
        leader.put("b", "1")  // 2
        try await withSession(leader) { oldHub, session, recorder in
            try await eventually("hub at revision 2") { oldHub.revision == 2 }
            await session.handle(create("a", end: "z", id: 7, prevKV: true))
            try await eventually("created") { recorder.responses.contains { $0.created } }
            leader.put("a", "2")  // 3, sent from the old hub
            try await eventually("revision 3 sent") { recorder.events(of: 7).count == 1 }
            // The follower's copy has 3 and also 4, which the old hub never published; then its bump.
            let copy = leader.replica()
            copy.put("c", "1")  // 4
            copy.bump(to: 1000)
            oldHub.stop()
            let newHub = WatchHub(client: copy, sql: StoreSQL(legacyCollation: false), logger: Self.logger, pollInterval: .milliseconds(5))
            let newHubTask = Task { await newHub.run(notifications: nil) }
            defer {
                newHub.stop()
                newHubTask.cancel()
            }
            try await eventually("new hub at the bump") { newHub.revision == 1000 }
            #expect(session.continueEpoch(on: newHub, continuity: WatchContinuity(through: 4, compactedBefore: 0, epochStart: 1000)))
            copy.put("a", "3")  // 1001
            try await eventually("4 and 1001 delivered") { recorder.events(of: 7).flatMap(\.events).count == 3 }
            let events = recorder.events(of: 7).flatMap(\.events)
            #expect(events.map(\.kv.modRevision) == [3, 4, 1001])
            #expect(keys(recorder.events(of: 7)) == ["a", "c", "a"])
            #expect(events.last?.prevKV?.value == Array("2".utf8))
            #expect(!recorder.responses.contains { $0.canceled })
            // A new watch below the epoch's start is still refused as compacted (R3).
            await session.handle(create("a", end: "z", start: 3, id: 8))
            try await eventually("new watch below the epoch cancelled") { recorder.responses.contains { $0.canceled && $0.watchID == 8 } }
            #expect(recorder.responses.first { $0.canceled && $0.watchID == 8 }?.compactRevision == 1000)
        }
    }

    @Test("When the old hub published past what the copy holds, the watchers do not go on")
    func refusesWhenTheCopyLacksWhatWasSent() async throws {
        let leader = FakeKineTable()
        leader.put("a", "1")  // 1
        try await withSession(leader) { oldHub, session, recorder in
            await session.handle(create("a", end: "z", id: 1))
            try await eventually("created") { recorder.responses.contains { $0.created } }
            let copy = leader.replica()  // holds 1 only
            leader.put("a", "2")  // 2: published and sent, never copied
            try await eventually("revision 2 sent") { recorder.events(of: 1).count == 1 }
            oldHub.stop()
            copy.bump(to: 1000)
            let newHub = WatchHub(client: copy, sql: StoreSQL(legacyCollation: false), logger: Self.logger, pollInterval: .milliseconds(5))
            #expect(!session.continueEpoch(on: newHub, continuity: WatchContinuity(through: 1, compactedBefore: 0, epochStart: 1000)))
            session.endEpoch(compactRevision: 1000)
            try await eventually("cancelled as compacted") { recorder.responses.contains { $0.canceled && $0.compactRevision == 1000 } }
        }
    }
}
