/// This process's view of the leases it renews, so that a keep-alive is answered from memory and
/// stored later (etcd's lessor keeps renewals in memory only).
///
/// Two deadlines per lease: `deadline`, the one the last answered renewal promised (renewal time +
/// TTL), and `stored`, a time before which the deadline in `kine_leases` is known not to fall (what
/// this process last wrote and saw confirmed). Every process expires leases by the stored deadline,
/// so the rules keep the two close:
/// - a renewal is answered from memory only while the stored deadline is at least half the TTL
///   away: if storing stops (PostgreSQL unreachable), a lease outlives an answered renewal by at
///   least half its TTL, and after that renewals wait for the database again and fail visibly;
/// - a renewal is stored soon (it is due, and a pass every 250 ms writes what is due) once the
///   stored deadline trails the promised one by `lag` (at most 1 s, a quarter of the TTL for short
///   leases): a crash loses at most that much of a lease's life, plus one pass;
/// - a renewal is stored, at the latest, when the stored deadline comes within half the TTL plus
///   `headroom` of now, so a client that stops renewing gets its whole promised TTL.
/// A lease this process has not renewed or granted, or whose stored deadline is too close, is
/// renewed in the database and the caller waits, as before.
///
/// Pure state: every instant comes from the caller, so the rules are tested without a clock.
struct LeaseDeadlines: Sendable {
    typealias Instant = ContinuousClock.Instant

    struct Entry: Sendable, Equatable {
        var ttl: Int64
        var deadline: Instant
        var stored: Instant
        /// `deadline` is later than what was stored.
        var dirty: Bool
    }

    /// A renewal either answered now, or to be made in the database.
    enum Renewal: Sendable, Equatable {
        /// Answer this TTL now.
        case answered(ttl: Int64)
        case renewInDatabase
    }

    /// One lease's deadline to write: seconds from the moment the statement is sent.
    struct Write: Sendable, Equatable {
        var id: Int64
        var remaining: Duration
    }

    static let maximumLag = Duration.seconds(1)
    /// How long before a stored deadline gets within half the TTL of now the periodic pass writes
    /// it: more than the pass's period plus a write's round trip.
    static let headroom = Duration.milliseconds(750)

    private(set) var entries: [Int64: Entry] = [:]
    /// When leases were forgotten: a database renewal sent before then that answers after must
    /// not bring a revoked lease back.
    private var forgottenAt: [Int64: Instant] = [:]
    /// How long `forgottenAt` remembers; far longer than a renewal's round trip.
    static let forgetMemory = Duration.seconds(60)

    static func ttlDuration(_ ttl: Int64) -> Duration { .seconds(ttl) }

    /// How far the stored deadline may trail the promised one before it is written.
    static func lag(ttl: Int64) -> Duration { min(maximumLag, ttlDuration(ttl) / 4) }

    mutating func renew(_ id: Int64, now: Instant) -> Renewal {
        guard var entry = entries[id] else { return .renewInDatabase }
        let ttl = Self.ttlDuration(entry.ttl)
        guard entry.stored - now >= ttl / 2 else { return .renewInDatabase }
        entry.deadline = now + ttl
        entry.dirty = true
        entries[id] = entry
        return .answered(ttl: entry.ttl)
    }

    /// A renewal or grant the database made: the statement was sent at `sentAt` and set the
    /// deadline to the database's now + TTL (its now is not earlier than `sentAt`).
    mutating func stored(_ id: Int64, ttl: Int64, sentAt: Instant) {
        if let forgotten = forgottenAt[id], forgotten >= sentAt { return }
        let deadline = sentAt + Self.ttlDuration(ttl)
        if var entry = entries[id], entry.ttl == ttl, entry.deadline > deadline {
            // A renewal answered from memory after this statement was sent stays dirty.
            entry.stored = max(entry.stored, deadline)
            entries[id] = entry
            return
        }
        entries[id] = Entry(ttl: ttl, deadline: deadline, stored: deadline, dirty: false)
    }

    /// The dirty leases due for writing now, as writes relative to `now` (when the statement is
    /// about to be sent). With `all`, every dirty lease (a TimeToLive or shutdown wants them).
    func dueWrites(now: Instant, all: Bool = false) -> [Write] {
        entries.compactMap { id, entry in
            guard entry.dirty, all || isDue(entry, now: now) else { return nil }
            return Write(id: id, remaining: entry.deadline - now)
        }
        .sorted { $0.id < $1.id }
    }

    /// The outcome of writing `writes` (sent at `sentAt`): `renewed` maps each lease the database
    /// still had to its TTL; the others are gone (revoked or expired by another process).
    mutating func wrote(_ writes: [Write], renewed: [Int64: Int64], sentAt: Instant) {
        for write in writes {
            guard let ttl = renewed[write.id] else {
                entries[write.id] = nil
                continue
            }
            guard var entry = entries[write.id] else { continue }
            let written = sentAt + write.remaining
            entry.stored = max(entry.stored, written)
            entry.ttl = ttl
            entry.dirty = entry.deadline > entry.stored
            entries[write.id] = entry
        }
    }

    /// Leases revoked or expired (by this process's Writer): later renewals ask the database.
    mutating func forget(_ ids: some Sequence<Int64>, now: Instant) {
        for id in ids {
            entries[id] = nil
            forgottenAt[id] = now
        }
    }

    /// Drops leases nobody renews any more: their stored deadline has passed and nothing newer
    /// waits to be written.
    mutating func sweep(now: Instant) {
        entries = entries.filter { _, entry in entry.dirty || entry.stored > now }
        forgottenAt = forgottenAt.filter { _, at in now - at < Self.forgetMemory }
    }

    private func isDue(_ entry: Entry, now: Instant) -> Bool {
        guard entry.dirty else { return false }
        let ttl = Self.ttlDuration(entry.ttl)
        return entry.deadline - entry.stored >= Self.lag(ttl: entry.ttl) || entry.stored - now <= ttl / 2 + Self.headroom
    }
}
