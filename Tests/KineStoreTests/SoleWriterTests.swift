import Testing

@testable import KineStore

@Suite("SoleWriter: linearizable reads from memory only while the sole-writer lock proves no other writer")
struct SoleWriterTests {
    private let start = ContinuousClock.now
    private func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int64(seconds * 1000)) }

    @Test("Takes the lock only when alone, listening and with the cache loaded; retries after the interval")
    func acquireRules() {
        var sole = SoleWriter()
        #expect(sole.step(othersListen: true, listener: 11, cacheLoaded: true, now: at(0)) == .none)
        #expect(sole.step(othersListen: false, listener: nil, cacheLoaded: true, now: at(0)) == .none)
        #expect(sole.step(othersListen: false, listener: 11, cacheLoaded: false, now: at(0)) == .none)
        #expect(sole.step(othersListen: false, listener: 11, cacheLoaded: true, now: at(0)) == .acquire(listener: 11))
        sole.attempted(at: at(0))  // refused: another session holds it
        #expect(sole.step(othersListen: false, listener: 11, cacheLoaded: true, now: at(1.9)) == .none)
        #expect(sole.step(othersListen: false, listener: 11, cacheLoaded: true, now: at(2)) == .acquire(listener: 11))
    }

    @Test("Reads from memory while held, confirmed and alone, at the id read after taking it")
    func memoryReads() {
        var sole = SoleWriter()
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 11, now: at(0)) == nil)
        sole.acquired(listener: 11, throughID: 500, sentAt: at(0))
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 11, now: at(0.5)) == 500)
        // Any sign of another process, or another listening session, stops them at once.
        #expect(sole.memoryReadsThrough(othersListen: true, listener: 11, now: at(0.5)) == nil)
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 12, now: at(0.5)) == nil)
        #expect(sole.memoryReadsThrough(othersListen: false, listener: nil, now: at(0.5)) == nil)
    }

    @Test("A holder confirms its session every interval; without a confirmation reads stop after the validity")
    func confirmation() {
        var sole = SoleWriter()
        sole.acquired(listener: 11, throughID: 500, sentAt: at(0))
        #expect(sole.step(othersListen: false, listener: 11, cacheLoaded: true, now: at(0.9)) == .none)
        #expect(sole.step(othersListen: false, listener: 11, cacheLoaded: true, now: at(1)) == .confirm)
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 11, now: at(1.99)) == 500)
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 11, now: at(2)) == nil)
        sole.confirmed(sentAt: at(1.5))
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 11, now: at(3)) == 500)
        // An older round trip answering late does not move the confirmation back.
        sole.confirmed(sentAt: at(0.2))
        #expect(sole.holding?.confirmedAt == at(1.5))
    }

    @Test("A holder that hears another process, or whose listener reconnected, releases; a released lock serves nothing")
    func release() {
        var sole = SoleWriter()
        sole.acquired(listener: 11, throughID: 500, sentAt: at(0))
        #expect(sole.step(othersListen: true, listener: 11, cacheLoaded: true, now: at(0.1)) == .release)
        #expect(sole.step(othersListen: false, listener: 12, cacheLoaded: true, now: at(0.1)) == .release)
        sole.released()
        #expect(sole.memoryReadsThrough(othersListen: false, listener: 11, now: at(0.1)) == nil)
        // Confirming a released lock does not bring it back.
        sole.confirmed(sentAt: at(0.2))
        #expect(sole.holding == nil)
    }

    @Test("A refused writer greets with growing pauses, then ends the holder's session once per patience period")
    func refusedWrites() {
        var refusals = RefusedWrites()
        #expect(refusals.refused(now: at(0)) == .greet(retryAfter: .milliseconds(2)))
        #expect(refusals.refused(now: at(0.01)) == .greet(retryAfter: .milliseconds(4)))
        for step in 2..<10 { _ = refusals.refused(now: at(0.01 * Double(step))) }
        #expect(refusals.refused(now: at(1)) == .greet(retryAfter: .milliseconds(50)))
        #expect(refusals.refused(now: at(4)) == .endHolder)
        // The next period starts at the end.
        #expect(refusals.refused(now: at(5)) == .greet(retryAfter: .milliseconds(2)))
        #expect(refusals.refused(now: at(8)) == .endHolder)
        refusals.admitted()
        #expect(refusals.since == nil)
    }
}
