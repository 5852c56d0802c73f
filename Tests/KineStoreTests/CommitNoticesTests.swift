import KineCore
import Testing

@testable import KineStore

@Suite("CommitNotices: NOTIFY only while other kine processes listen")
struct CommitNoticesTests {
    @Test("Starts as 'others listen' until a look finds nobody")
    func startsNotifying() {
        var notices = CommitNotices()
        #expect(notices.othersListen)
        notices.observed(othersListening: false, since: notices.checkpoint)
        #expect(!notices.othersListen)
        notices.observed(othersListening: true, since: notices.checkpoint)
        #expect(notices.othersListen)
    }

    @Test("A crowded notification queue turns the events in the payload off, and room turns them on again")
    func crowdedQueue() {
        var notices = CommitNotices()
        #expect(!notices.queueCrowded)
        var changed = notices.queueUsage(0.002)
        #expect(!changed && !notices.queueCrowded)
        changed = notices.queueUsage(CommitNotices.crowdedQueueUsage)
        #expect(changed && notices.queueCrowded)
        changed = notices.queueUsage(0.5)
        #expect(!changed && notices.queueCrowded)
        changed = notices.queueUsage(0)
        #expect(changed && !notices.queueCrowded)
        let board = CommitNoticeBoard()
        var row = PendingRow(
            name: Array("/k".utf8), created: true, deleted: false, createRevision: 7, prevRevision: 0, value: [1], version: 1,
            event: Event(type: .put, kv: KeyValue(key: Array("/k".utf8), createRevision: 7, modRevision: 7, version: 1, value: [1])))
        row.id = 7
        row.revision = 7
        #expect(board.payload(revision: 7, rows: [row]).map { $0.hasPrefix("7 ") } == true)
        _ = board.queueUsage(0.02)
        #expect(board.payload(revision: 7, rows: [row]) == "7")
        board.observed(othersListening: false, since: board.checkpoint)
        #expect(board.payload(revision: 7, rows: [row]) == nil)
    }

    @Test("A notification heard while a look is on the way wins over the look")
    func heardDuringLookWins() {
        var notices = CommitNotices()
        notices.observed(othersListening: false, since: notices.checkpoint)
        let checkpoint = notices.checkpoint
        notices.heard()  // a newcomer's hello arrives before the look answers
        notices.observed(othersListening: false, since: checkpoint)
        #expect(notices.othersListen)
        // The next look counts again.
        notices.observed(othersListening: false, since: notices.checkpoint)
        #expect(!notices.othersListen)
    }

    @Test("A notification heard after the look answered turns notifying back on at once")
    func heardAfterLook() {
        var notices = CommitNotices()
        notices.observed(othersListening: false, since: notices.checkpoint)
        notices.heard()
        #expect(notices.othersListen)
    }

    @Test("Without its own listener a process notifies")
    func unknownNotifies() {
        var notices = CommitNotices()
        notices.observed(othersListening: false, since: notices.checkpoint)
        notices.unknown()
        #expect(notices.othersListen)
    }

    @Test("A hello names the listener it comes from")
    func helloNamesListener() {
        #expect(CommitNotices.hello(from: 4242) == "hello 4242")
        #expect(CommitNotices.hello(from: 4242) != CommitNotices.hello(from: 4243))
    }
}
