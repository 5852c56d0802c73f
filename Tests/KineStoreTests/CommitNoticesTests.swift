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
