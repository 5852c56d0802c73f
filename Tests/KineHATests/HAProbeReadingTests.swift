import Testing

@testable import KineHA

/// Turning a probe round into the machine's observation: which peers are paired with, the
/// follower's slot and copy checks, the pause, the lag, and the problems an operator reads.
@Suite("HA probe reading")
struct HAProbeReadingTests {
    static func context(role: HARole = .follower, pause: HAPause = HAPause(), wallClock: Int64 = 1_000) -> HAProbeContext {
        HAProbeContext(
            node: "b", schemaVersion: HASchema.version, peerAddress: "10.77.0.1:2380", peerDatabase: "postgres://10.77.0.1/kine",
            probeTimeout: .milliseconds(400), role: role, pause: pause, wallClock: wallClock)
    }

    static let local = LocalProbe(
        maxID: 90, copy: .ready, copyComplete: true, followerStreaming: false, subscribedTerm: 1, hasData: true, subscribedTables: 4)
    static let leaderDatabase = PeerDatabaseProbe(maxID: 100, slotWALStatus: "reserved", publishedTables: 4)

    static func round(
        local: LocalProbe? = local, peer: PeerAnswer, peerDatabase: PeerDatabaseProbe? = leaderDatabase, witness: Bool? = nil
    ) -> HAProbeRound {
        HAProbeRound(now: .seconds(7), local: local, peer: peer, peerDatabase: peerDatabase, witness: witness, epochStart: 0)
    }

    static let leader = PeerStatus(node: "a", role: .leader, term: 1, leader: "a")

    @Test("A peer that answers on both channels is paired with and named; the follower's lag is the leader's newest id minus its own")
    func pairs() {
        let reading = HAProbeReading(Self.round(peer: .status(Self.leader)), context: Self.context())
        #expect(reading.observation.peer.status == Self.leader)
        #expect(reading.observation.peer.sqlOK && !reading.observation.peer.slotLost)
        #expect(reading.peerName == "a" && reading.problems.isEmpty && reading.problem == "")
        #expect(reading.lagRevisions == 10)
        #expect(reading.observation.local.maxID == 90 && reading.observation.local.copy == .ready && reading.observation.now == .seconds(7))
        // A leader reports no lag.
        #expect(HAProbeReading(Self.round(peer: .status(Self.leader)), context: Self.context(role: .leader)).lagRevisions == 0)
    }

    @Test("A peer of another HA schema version, with this node's own name, or with an unknown role is alive but refused")
    func refusals() {
        var other = Self.leader
        other.schemaVersion = HASchema.version + 1
        let schema = HAProbeReading(Self.round(peer: .status(other)), context: Self.context())
        #expect(schema.observation.peer.status == nil && schema.observation.peer.heard && schema.peerName == nil)
        #expect(schema.problem == "peer a runs HA schema version \(HASchema.version + 1), this node \(HASchema.version): not pairing")

        var twin = Self.leader
        twin.node = "b"
        let sameName = HAProbeReading(Self.round(peer: .status(twin), peerDatabase: nil), context: Self.context())
        #expect(sameName.observation.peer.status == nil && sameName.observation.peer.heard && !sameName.observation.peer.sqlOK)
        #expect(
            sameName.problems == [
                .refused(.sameName(address: "10.77.0.1:2380", node: "b")),
                .peerDatabaseSilent(database: "postgres://10.77.0.1/kine", within: .milliseconds(400)),
            ])
        #expect(sameName.problem.hasPrefix("the peer at 10.77.0.1:2380 has this node's own name b: check --ha-peer and --ha-node-name; "))

        let unknown = HAProbeReading(Self.round(peer: .unknownRole(node: "a", role: "observer")), context: Self.context())
        #expect(unknown.observation.peer.answer == .refused(.unknownRole(peer: "a", role: "observer")) && unknown.observation.peer.heard)
    }

    @Test("A silent peer is not heard; a failed connect is told in an operator's words")
    func silence() {
        let silent = HAProbeReading(Self.round(peer: .timedOut, peerDatabase: nil), context: Self.context())
        #expect(!silent.observation.peer.heard && silent.observation.peer.status == nil)
        #expect(
            silent.problem
                == "peer HA port 10.77.0.1:2380 did not answer within 0.4 seconds; peer PostgreSQL postgres://10.77.0.1/kine did not answer within 0.4 seconds"
        )

        let refused = HAProbeReading(
            Self.round(peer: .failed(.connect(address: "10.77.0.1:2380", .refused))), context: Self.context())
        #expect(refused.observation.peer.answer == .silent && refused.observation.peer.heard)  // channel B answered
        #expect(refused.problem.hasPrefix("connection refused by 10.77.0.1:2380"))
    }

    @Test(
        "As follower with a copy: the slot is lost when it is missing or invalidated; the copy lacks tables the leader publishes beyond its own"
    )
    func followerChecks() {
        for (status, lost) in [("reserved", false), ("extended", false), ("unreserved", false), ("lost", true), (nil, true)]
            as [(String?, Bool)]
        {
            let database = PeerDatabaseProbe(maxID: 100, slotWALStatus: status, publishedTables: 4)
            let reading = HAProbeReading(Self.round(peer: .status(Self.leader), peerDatabase: database), context: Self.context())
            #expect(reading.observation.peer.slotLost == lost, "wal_status \(status ?? "missing")")
        }
        let grown = PeerDatabaseProbe(maxID: 100, slotWALStatus: "reserved", publishedTables: 5)
        #expect(
            HAProbeReading(Self.round(peer: .status(Self.leader), peerDatabase: grown), context: Self.context()).observation.local
                .copyLacksTables)
        #expect(!HAProbeReading(Self.round(peer: .status(Self.leader)), context: Self.context()).observation.local.copyLacksTables)

        // Not as leader, and not without a copy being made: there is no slot of this node's to lose then.
        let missing = PeerDatabaseProbe(maxID: 100, slotWALStatus: nil, publishedTables: 5)
        let leading = HAProbeReading(
            Self.round(peer: .status(Self.leader), peerDatabase: missing), context: Self.context(role: .leaderAlone))
        #expect(!leading.observation.peer.slotLost && !leading.observation.local.copyLacksTables)
        var noCopy = Self.local
        noCopy.copy = .none
        let fresh = HAProbeReading(Self.round(local: noCopy, peer: .status(Self.leader), peerDatabase: missing), context: Self.context())
        #expect(!fresh.observation.peer.slotLost && !fresh.observation.local.copyLacksTables)
    }

    @Test("The peer's pause is adopted when it was set later; the observation is paused while the adopted pause holds")
    func pause() {
        var peer = Self.leader
        peer.pause = HAPause(untilUnixMilliseconds: 5_000, setUnixMilliseconds: 900)
        let newer = HAProbeReading(
            Self.round(peer: .status(peer)), context: Self.context(pause: HAPause(untilUnixMilliseconds: 0, setUnixMilliseconds: 800)))
        #expect(newer.adoptedPause == peer.pause && newer.observation.local.paused)
        // This node resumed after the peer paused: the resume wins.
        let older = HAProbeReading(
            Self.round(peer: .status(peer)), context: Self.context(pause: HAPause(untilUnixMilliseconds: 0, setUnixMilliseconds: 950)))
        #expect(older.adoptedPause == nil && !older.observation.local.paused)
        // A refused peer's pause is not adopted.
        peer.schemaVersion = 99
        #expect(HAProbeReading(Self.round(peer: .status(peer)), context: Self.context()).adoptedPause == nil)
    }

    @Test("A local database that did not answer is down; the witness is passed on")
    func localDown() {
        let reading = HAProbeReading(Self.round(local: nil, peer: .status(Self.leader), witness: false), context: Self.context())
        #expect(
            !reading.observation.local.postgresUp && reading.observation.local.copy == .none && reading.observation.local.witness == false)
    }
}
