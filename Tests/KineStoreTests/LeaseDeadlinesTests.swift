import Testing

@testable import KineStore

@Suite("LeaseDeadlines: keep-alives answered from memory, stored in time")
struct LeaseDeadlinesTests {
    private let start = ContinuousClock.now
    private func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int64(seconds * 1000)) }

    @Test("An unknown lease is renewed in the database")
    func unknownLease() {
        var deadlines = LeaseDeadlines()
        #expect(deadlines.renew(7, now: at(0)) == .renewInDatabase)
    }

    @Test("A lease stored lately is answered from memory, and the renewal waits to be written")
    func answeredFromMemory() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 60, sentAt: at(0))
        #expect(deadlines.renew(7, now: at(0.1)) == .answered(ttl: 60))
        // Trails by 0.1 s: less than the 1 s lag, not due yet.
        #expect(deadlines.dueWrites(now: at(0.2)).isEmpty)
        #expect(deadlines.dueWrites(now: at(0.2), all: true) == [.init(id: 7, remaining: .milliseconds(59_900))])
    }

    @Test("A renewal moving the deadline by the lag or more is due at once")
    func dueByLag() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 60, sentAt: at(0))
        #expect(deadlines.renew(7, now: at(1)) == .answered(ttl: 60))
        let writes = deadlines.dueWrites(now: at(1.1))
        #expect(writes == [.init(id: 7, remaining: .milliseconds(59_900))])
        deadlines.wrote(writes, renewed: [7: 60], sentAt: at(1.1))
        #expect(deadlines.entries[7] == .init(ttl: 60, deadline: at(61), stored: at(61), dirty: false))
        // A short lease's lag is a quarter of its TTL.
        #expect(LeaseDeadlines.lag(ttl: 2) == .milliseconds(500))
    }

    @Test("A client that stops renewing gets its whole TTL: the last renewal is written before the stored deadline comes close")
    func lastRenewalWrittenInTime() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 60, sentAt: at(0))
        #expect(deadlines.renew(7, now: at(0.5)) == .answered(ttl: 60))
        #expect(deadlines.dueWrites(now: at(29)).isEmpty)
        // stored (60) - now ≤ TTL/2 + headroom (30.75)
        #expect(deadlines.dueWrites(now: at(29.3)) == [.init(id: 7, remaining: .milliseconds(31_200))])
    }

    @Test("Without a stored deadline at least half the TTL away, renewals wait for the database")
    func storedDeadlineTooClose() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 10, sentAt: at(0))
        #expect(deadlines.renew(7, now: at(5)) == .answered(ttl: 10))
        // The write failed (no `wrote`): the stored deadline stays at 10.
        #expect(deadlines.renew(7, now: at(5.01)) == .renewInDatabase)
    }

    @Test("A lease the database no longer has is dropped when its renewal is written")
    func goneLeaseDropped() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 60, sentAt: at(0))
        deadlines.stored(8, ttl: 60, sentAt: at(0))
        _ = deadlines.renew(7, now: at(2))
        _ = deadlines.renew(8, now: at(2))
        let writes = deadlines.dueWrites(now: at(2))
        #expect(writes.map(\.id) == [7, 8])
        deadlines.wrote(writes, renewed: [8: 60], sentAt: at(2))
        #expect(deadlines.renew(7, now: at(2.1)) == .renewInDatabase)
        #expect(deadlines.renew(8, now: at(2.1)) == .answered(ttl: 60))
    }

    @Test("A renewal answered while its write is on the way stays dirty")
    func renewalDuringWrite() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 60, sentAt: at(0))
        _ = deadlines.renew(7, now: at(2))
        let writes = deadlines.dueWrites(now: at(2))
        _ = deadlines.renew(7, now: at(2.5))
        deadlines.wrote(writes, renewed: [7: 60], sentAt: at(2))
        #expect(deadlines.entries[7] == .init(ttl: 60, deadline: at(62.5), stored: at(62), dirty: true))
    }

    @Test("A revoked lease is not brought back by a database renewal sent before the revoke")
    func forgottenStaysForgotten() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 60, sentAt: at(0))
        deadlines.forget([7], now: at(1))
        deadlines.stored(7, ttl: 60, sentAt: at(0.5))
        #expect(deadlines.renew(7, now: at(1.1)) == .renewInDatabase)
        // A grant of the same id after the revoke counts.
        deadlines.stored(7, ttl: 30, sentAt: at(2))
        #expect(deadlines.renew(7, now: at(2.1)) == .answered(ttl: 30))
    }

    @Test("Sweeping drops leases nobody renews once their stored deadline has passed")
    func sweep() {
        var deadlines = LeaseDeadlines()
        deadlines.stored(7, ttl: 5, sentAt: at(0))
        deadlines.stored(8, ttl: 60, sentAt: at(0))
        deadlines.sweep(now: at(6))
        #expect(deadlines.entries.keys.sorted() == [8])
    }
}
