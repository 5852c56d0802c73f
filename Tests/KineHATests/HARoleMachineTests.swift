import Testing

@testable import KineHA

/// The role rules of docs/ha.md, driven round by round with a fake clock: no sockets, no database.
@Suite("HA role machine")
struct HARoleMachineTests {
    static let timing = HATiming(
        liveness: .seconds(3), probeInterval: .milliseconds(500), probeTimeout: .milliseconds(400), holdDown: .seconds(5),
        startupGrace: .seconds(3))

    /// A machine and a clock that advances one probe interval per round.
    struct Harness {
        var machine: HARoleMachine
        var now: Duration = .zero

        init(
            node: String = "b", priority: HAPriority = .secondary, mode: ReplicationMode = .sync, lastRole: HARole? = nil, term: UInt64 = 0
        ) {
            machine = HARoleMachine(
                node: node, priority: priority, mode: mode, timing: HARoleMachineTests.timing, lastRole: lastRole, term: term)
        }

        mutating func round(_ local: HAObservation.Local = .init(), _ peer: HAObservation.Peer) -> [HAAction] {
            defer { now += HARoleMachineTests.timing.probeInterval }
            return machine.step(HAObservation(now: now, local: local, peer: peer))
        }

        /// Rounds until `duration` has passed, collecting every action.
        mutating func rounds(for duration: Duration, _ local: HAObservation.Local = .init(), _ peer: HAObservation.Peer) -> [HAAction] {
            let end = now + duration
            var actions: [HAAction] = []
            while now < end { actions += round(local, peer) }
            return actions
        }
    }

    static func leader(_ node: String = "a", term: UInt64 = 1, postgresUp: Bool = true) -> HAObservation.Peer {
        HAObservation.Peer(
            status: PeerStatus(node: node, role: .leaderAlone, term: term, leader: node, postgresUp: postgresUp), sqlOK: true)
    }

    static let dead = HAObservation.Peer(status: nil, sqlOK: false)
    static let ready = HAObservation.Local(copy: .ready, subscribedTerm: 1)

    /// A follower of `a` at term 1 with a ready copy, past the hold-down.
    static func follower() -> Harness {
        var harness = Harness()
        _ = harness.round(.init(), leader())
        _ = harness.round(.init(copy: .syncing, copyComplete: false, subscribedTerm: 1), leader())
        _ = harness.rounds(for: .seconds(6), ready, leader())
        return harness
    }

    static func isPromote(_ action: HAAction) -> Bool {
        if case .promote = action { return true }
        return false
    }

    @Test("Both starting empty: the primary leads, the secondary follows once it leads")
    func bootstrapBothEmpty() {
        var primary = Harness(node: "a", priority: .primary)
        let actions = primary.round(.init(), .init(status: PeerStatus(node: "b", role: .bootstrap, term: 0), sqlOK: true))
        #expect(actions == [.lead(term: 1, reason: "both nodes starting; this node wins (data, term, last leader, priority, name)")])
        #expect(primary.machine.role == .leaderAlone)

        var secondary = Harness(node: "b", priority: .secondary)
        #expect(
            secondary.round(.init(), .init(status: PeerStatus(node: "a", role: .bootstrap, term: 0, priority: .primary), sqlOK: true))
                .isEmpty)
        #expect(secondary.machine.role == .bootstrap)
        let follow = secondary.round(.init(), Self.leader())
        #expect(follow == [.follow(leader: "a", term: 1, reason: "peer a leads at term 1")])
        // No copy yet: make one.
        #expect(secondary.round(.init(), Self.leader()) == [.resync(reason: "no local copy")])
        #expect(secondary.machine.role == .resyncing)
        #expect(
            secondary.round(.init(copy: .syncing, copyComplete: false, subscribedTerm: 1), Self.leader())
                == [.persist(reason: "local copy catching up")])
        #expect(secondary.machine.role == .followerSyncing)
        #expect(secondary.round(Self.ready, Self.leader()) == [.persist(reason: "local copy ready")])
        #expect(secondary.machine.role == .follower)
    }

    @Test("A node with data beats an empty one, whatever the priority")
    func dataBeatsPriority() {
        // An existing single-node kine database (no HA term yet) becomes the pair's first leader.
        var secondary = Harness(node: "b", priority: .secondary)
        let peer = HAObservation.Peer(
            status: PeerStatus(node: "a", role: .bootstrap, term: 0, hasData: false, priority: .primary), sqlOK: true)
        let actions = secondary.round(.init(hasData: true), peer)
        #expect(actions == [.lead(term: 1, reason: "both nodes starting; this node wins (data, term, last leader, priority, name)")])
        #expect(secondary.machine.role == .leaderAlone)

        var primary = Harness(node: "a", priority: .primary)
        let withData = HAObservation.Peer(status: PeerStatus(node: "b", role: .bootstrap, term: 0, hasData: true), sqlOK: true)
        #expect(primary.round(.init(), withData).isEmpty)
        #expect(primary.machine.role == .bootstrap)
    }

    @Test("Both restarting after a power loss: the node that led leads again; a former follower that wins takes over with a bump")
    func powerLoss() {
        // b was promoted (term 2) and led; a followed it. Both come back; a is the primary.
        var a = Harness(node: "a", priority: .primary, lastRole: .follower, term: 2)
        a.machine = HARoleMachine(
            node: "a", priority: .primary, mode: .sync, timing: Self.timing, lastRole: .follower, term: 2, lastLeader: "b")
        let bStarting = HAObservation.Peer(
            status: PeerStatus(node: "b", role: .bootstrap, term: 2, leader: "b", hasData: true), sqlOK: true)
        #expect(a.round(.init(hasData: true), bStarting).isEmpty)
        var b = Harness(node: "b", priority: .secondary)
        b.machine = HARoleMachine(
            node: "b", priority: .secondary, mode: .sync, timing: Self.timing, lastRole: .leaderAlone, term: 2, lastLeader: "b")
        let aStarting = HAObservation.Peer(
            status: PeerStatus(node: "a", role: .bootstrap, term: 2, leader: "b", hasData: true, priority: .primary), sqlOK: true)
        #expect(
            b.round(.init(hasData: true), aStarting).first
                == .lead(term: 2, reason: "both nodes starting; this node wins (data, term, last leader, priority, name)"))

        // b's machine was replaced (empty database): a, which followed b, wins on data and, as a
        // former follower, takes over with a revision bump instead of leading at b's revisions.
        var c = Harness(node: "a", priority: .primary)
        c.machine = HARoleMachine(
            node: "a", priority: .primary, mode: .sync, timing: Self.timing, lastRole: .follower, term: 2, lastLeader: "b")
        let other = HAObservation.Peer(
            status: PeerStatus(node: "b", role: .bootstrap, term: 0, hasData: false, maxRevision: 77), sqlOK: true)
        let actions = c.round(.init(copy: .disabled, copyComplete: true, subscribedTerm: 2, hasData: true), other)
        #expect(
            actions == [
                .promote(
                    term: 3, peerMaxRevision: 77, reason: "both nodes starting; this node wins (data, term, last leader, priority, name)")
            ])
    }

    @Test("A lone primary leads after the startup grace; a fresh lone secondary never serves alone")
    func loneNodes() {
        var primary = Harness(node: "a", priority: .primary)
        #expect(primary.rounds(for: .seconds(2.5), .init(), Self.dead).isEmpty)
        #expect(primary.rounds(for: .seconds(1), .init(), Self.dead).count == 1)
        #expect(primary.machine.role == .leaderAlone)

        var secondary = Harness(node: "b", priority: .secondary)
        #expect(secondary.rounds(for: .seconds(30), .init(), Self.dead).isEmpty)
        #expect(secondary.machine.role == .bootstrap)
    }

    @Test("The follower promotes after liveness of both channels failing, not one round earlier")
    func promotesAfterLiveness() {
        var harness = Self.follower()
        #expect(harness.machine.role == .follower)
        #expect(harness.rounds(for: .seconds(2.5), Self.ready, Self.dead).isEmpty)
        let actions = harness.rounds(for: .seconds(1), Self.ready, Self.dead)
        #expect(actions.count == 1)
        #expect(actions.allSatisfy(Self.isPromote))
        #expect(harness.machine.role == .leaderAlone)
        #expect(harness.machine.term == 2)
    }

    @Test("A leader whose kine is frozen but whose database answers is never replaced")
    func rpcDownSQLUp() {
        var harness = Self.follower()
        let frozen = HAObservation.Peer(status: nil, sqlOK: true)
        #expect(harness.rounds(for: .seconds(30), Self.ready, frozen).isEmpty)
        #expect(harness.machine.role == .follower)
        #expect(harness.machine.term == 1)
    }

    @Test("A link cut shorter than liveness promotes nothing")
    func shortCut() {
        var harness = Self.follower()
        for _ in 0..<5 {
            #expect(harness.rounds(for: .seconds(2), Self.ready, Self.dead).isEmpty)
            #expect(harness.rounds(for: .seconds(1), Self.ready, Self.leader()).isEmpty)
        }
        #expect(harness.machine.role == .follower)
    }

    @Test("A leader reporting its own PostgreSQL down is replaced after two rounds")
    func fastPath() {
        var harness = Self.follower()
        let sick = Self.leader(postgresUp: false)
        #expect(harness.round(Self.ready, HAObservation.Peer(status: sick.status, sqlOK: false)).isEmpty)
        let actions = harness.round(Self.ready, HAObservation.Peer(status: sick.status, sqlOK: false))
        #expect(actions.count == 1 && actions.allSatisfy(Self.isPromote))
    }

    @Test("Never promote while the copy is incomplete or inside the hold-down")
    func noPromotionWhileSyncing() {
        var syncing = Harness()
        _ = syncing.round(.init(), Self.leader())
        _ = syncing.rounds(for: .seconds(6), .init(copy: .syncing, copyComplete: false, subscribedTerm: 1), Self.leader())
        #expect(syncing.machine.role == .followerSyncing)
        #expect(syncing.rounds(for: .seconds(30), .init(copy: .syncing, copyComplete: false, subscribedTerm: 1), Self.dead).isEmpty)
        #expect(syncing.machine.term == 1)

        var fresh = Harness()
        _ = fresh.round(.init(), Self.leader())
        _ = fresh.round(Self.ready, Self.leader())
        // Leader dies 1 s after this node started following: promotion waits out the 5 s hold-down.
        let early = fresh.rounds(for: .seconds(3.5), Self.ready, Self.dead)
        #expect(early.isEmpty)
        let later = fresh.rounds(for: .seconds(2), Self.ready, Self.dead)
        #expect(later.count == 1 && later.allSatisfy(Self.isPromote))
    }

    @Test("A copy stopped by a lost connection still promotes; a copy that keeps stopping is re-made")
    func stoppedCopy() {
        var harness = Self.follower()
        let stopped = HAObservation.Local(copy: .disabled, copyComplete: true, subscribedTerm: 1)
        let resumes = (0..<3).flatMap { _ in harness.round(stopped, Self.leader()) }
        #expect(resumes.count == 3)
        #expect(resumes.allSatisfy { if case .resumeCopy = $0 { return true } else { return false } })
        #expect(harness.round(stopped, Self.leader()) == [.resync(reason: "the local copy stopped 3 times after resuming (a conflict)")])

        var promoting = Self.follower()
        let actions = promoting.rounds(for: .seconds(3.5), stopped, Self.dead)
        #expect(actions.count == 1 && actions.allSatisfy(Self.isPromote))
    }

    @Test("A ready copy lacking a table the leader publishes is refreshed; not while syncing, not while the leader is gone")
    func copyLackingTables() {
        var harness = Self.follower()
        let lacking = HAObservation.Local(copy: .ready, subscribedTerm: 1, copyLacksTables: true)
        #expect(
            harness.round(lacking, Self.leader()) == [
                .refreshCopy(reason: "the leader publishes tables the local copy does not subscribe to")
            ])
        // The new table's initial copy: the machine waits, and settles once every table is ready.
        #expect(
            harness.round(.init(copy: .syncing, copyComplete: false, subscribedTerm: 1), Self.leader())
                == [.persist(reason: "local copy catching up")])
        #expect(harness.round(Self.ready, Self.leader()) == [.persist(reason: "local copy ready")])
        #expect(harness.machine.role == .follower)

        var syncing = Self.follower()
        let stillCopying = HAObservation.Local(copy: .syncing, copyComplete: false, subscribedTerm: 1, copyLacksTables: true)
        #expect(!syncing.round(stillCopying, Self.leader()).contains { if case .refreshCopy = $0 { true } else { false } })

        var orphaned = Self.follower()
        let actions = orphaned.rounds(for: .seconds(3.5), lacking, Self.dead)
        #expect(actions.count == 1 && actions.allSatisfy(Self.isPromote))
    }

    @Test("The leader drops synchronous replication when the follower dies and restores it once caught up")
    func synchronousManagement() {
        var leader = Harness(node: "a", priority: .primary)
        _ = leader.round(.init(), .init(status: PeerStatus(node: "b", role: .bootstrap, term: 0), sqlOK: true))
        let caughtUp = HAObservation.Peer(status: PeerStatus(node: "b", role: .follower, term: 1, leader: "a", copy: .ready), sqlOK: true)
        let streaming = HAObservation.Local(followerStreaming: true)
        #expect(
            leader.round(streaming, caughtUp) == [
                .setSynchronous(true, reason: "follower caught up"), .persist(reason: "follower caught up"),
            ])
        #expect(leader.machine.role == .leader && leader.machine.synchronous)
        // The follower dies: its replication connection lingers (wal_sender_timeout), but both
        // channels fail, so after liveness the leader stops waiting for it.
        let dying = leader.rounds(for: .seconds(3.5), streaming, Self.dead)
        #expect(
            dying == [
                .setSynchronous(false, reason: "follower unreachable for 3.0 seconds"),
                .persist(reason: "follower unreachable for 3.0 seconds"),
            ])
        #expect(leader.machine.role == .leaderAlone && !leader.machine.synchronous)
        #expect(leader.round(streaming, caughtUp).first == .setSynchronous(true, reason: "follower caught up"))

        var async = Harness(node: "a", priority: .primary, mode: .async)
        _ = async.round(.init(), .init(status: PeerStatus(node: "b", role: .bootstrap, term: 0), sqlOK: true))
        #expect(async.round(streaming, caughtUp) == [.persist(reason: "follower caught up")])
        #expect(!async.machine.synchronous)
    }

    @Test("A returning old leader follows the newer term; a peer claiming an older term is ignored")
    func terms() {
        var old = Harness(node: "a", priority: .primary, lastRole: .leader, term: 1)
        #expect(old.round(.init(), Self.leader("b", term: 2)) == [.follow(leader: "b", term: 2, reason: "peer b leads at term 2")])
        #expect(old.machine.term == 2)

        var follower = Harness(node: "a", priority: .primary, lastRole: .follower, term: 2)
        _ = follower.round(.init(), Self.leader("b", term: 2))
        #expect(follower.machine.leader == "b")
        #expect(
            follower.round(.init(copy: .ready, subscribedTerm: 2), Self.leader("c", term: 1)).allSatisfy {
                if case .follow = $0 { return false } else { return true }
            })
        #expect(follower.machine.leader == "b")

        var leading = Harness(node: "b", lastRole: .leaderAlone, term: 2)
        _ = leading.rounds(for: .seconds(4), .init(), Self.dead)
        #expect(leading.machine.role == .leaderAlone)
        // Two leaders: the one with the higher term decides the reunion (HAReunionMachineTests).
        let meeting = leading.round(.init(), Self.leader("a", term: 1))
        #expect(meeting.count == 1)
        if case .decideReunion(let peer)? = meeting.first {
            #expect(peer.node == "a")
        } else {
            Issue.record("expected decideReunion, got \(meeting)")
        }
        #expect(leading.machine.role == .leaderAlone)
    }

    @Test("A failed action returns to the role before it and backs off the next resync")
    func failedAction() {
        var harness = Harness()
        _ = harness.round(.init(), Self.leader())
        #expect(harness.round(.init(), Self.leader()) == [.resync(reason: "no local copy")])
        harness.machine.failed(now: harness.now)
        #expect(harness.machine.role == .followerSyncing)
        #expect(harness.round(.init(), Self.leader()).isEmpty)  // backing off (1 s)
        _ = harness.round(.init(), Self.leader())
        #expect(harness.round(.init(), Self.leader()) == [.resync(reason: "no local copy")])
    }
}
