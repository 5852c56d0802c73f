import Testing

@testable import KineHA

/// Split, reunion, witness, pause and handover transitions of the role machine, round by round.
@Suite("HA role machine: splits, witness, pause, handover")
struct HAReunionMachineTests {
    typealias Harness = HARoleMachineTests.Harness
    static let timing = HARoleMachineTests.timing

    static func status(
        _ node: String, _ role: HARole, term: UInt64, leader: String? = nil, copy: CopyState = .none, maxRevision: Int64 = 0,
        maxID: Int64 = 0, winner: String = "", fork: Int64 = 0, handoverTo: String = ""
    ) -> HAObservation.Peer {
        HAObservation.Peer(
            status: PeerStatus(
                node: node, role: role, term: term, leader: leader ?? node, copy: copy, maxRevision: maxRevision,
                highestServed: maxRevision,
                maxID: maxID, reunionWinner: winner, reunionForkID: fork, handoverTo: handoverTo),
            sqlOK: true)
    }

    /// A node leading alone at `term` (its peer silent long enough), with `epochStart` served.
    static func leaderAlone(_ node: String, term: UInt64, epochStart: Int64 = 0, witness: Bool? = nil) -> Harness {
        var harness = Harness(node: node, lastRole: .leaderAlone, term: term)
        _ = harness.rounds(for: .seconds(4), .init(epochStart: epochStart, witness: witness), HARoleMachineTests.dead)
        return harness
    }

    static func decision(_ winner: String, _ loser: String) -> ReunionDecision {
        ReunionDecision(winner: winner, loser: loser, rule: .newest)
    }

    @Test("The higher term decides; a winning decider above the loser's revisions keeps its epoch, the loser follows its verdict")
    func deciderWins() {
        var b = Self.leaderAlone("b", term: 2, epochStart: 1_000_000_100)
        let peerA = Self.status("a", .leaderAlone, term: 1, maxRevision: 150)
        guard case .decideReunion(let seen)? = b.round(.init(epochStart: 1_000_000_100), peerA).first else {
            Issue.record("b must decide")
            return
        }
        let actions = b.machine.reunionDecided(Self.decision("b", "a"), forkID: 100, peer: seen, now: b.now)
        #expect(actions.count == 1)
        if case .persist? = actions.first {} else { Issue.record("no re-promotion needed: \(actions)") }
        #expect(b.machine.verdict == ReunionVerdict(winner: "b", forkID: 100) && b.machine.term == 2)
        // Decided once: later rounds wait for the loser.
        #expect(b.round(.init(epochStart: 1_000_000_100), peerA).isEmpty)

        // a (term 1) waits for b's verdict, then steps down and follows at b's term.
        var a = Self.leaderAlone("a", term: 1)
        // While it waits, a stops taking writes (R4), once.
        #expect(
            a.round(.init(), Self.status("b", .leaderAlone, term: 2)) == [
                .stepDown(reason: "peer b leads at term 2: waiting for its reunion verdict")
            ])
        #expect(!a.machine.servesClients)
        #expect(a.round(.init(), Self.status("b", .leaderAlone, term: 2)).isEmpty)
        let follow = a.round(.init(), Self.status("b", .leaderAlone, term: 2, winner: "b", fork: 100))
        #expect(follow.first == .stepDown(reason: "reunion: b keeps leading"))
        #expect(follow.last == .follow(leader: "b", term: 2, reason: "reunion: b won and leads at term 2"))
        #expect(a.machine.role == .followerSyncing && a.machine.leader == "b")

        // The pair is whole once a's copy is ready: the verdict is withdrawn.
        _ = b.round(.init(epochStart: 1_000_000_100), Self.status("a", .follower, term: 2, leader: "b", copy: .ready))
        #expect(b.machine.verdict == nil)
    }

    @Test("A winning decider below what the loser served, or at an equal term, promotes again above it")
    func deciderWinsWithBump() {
        var b = Self.leaderAlone("b", term: 2, epochStart: 50)
        let peer = PeerStatus(node: "a", role: .leaderAlone, term: 1, maxRevision: 80, highestServed: 80)
        _ = b.round(.init(epochStart: 50), .init(status: peer, sqlOK: true))
        let actions = b.machine.reunionDecided(Self.decision("b", "a"), forkID: 40, peer: peer, now: b.now)
        #expect(actions.count == 1)
        if case .promote(let term, let peerMax, let fork, _)? = actions.first {
            #expect(term == 3 && peerMax == 80 && fork == 40)
        } else {
            Issue.record("expected a promotion, got \(actions)")
        }

        // Equal terms: the smaller name decides, and a win needs a newer term for the loser to follow.
        var a = Self.leaderAlone("a", term: 2, epochStart: 1_000_000_000)
        let peerB = PeerStatus(node: "b", role: .leaderAlone, term: 2)
        guard case .decideReunion? = a.round(.init(epochStart: 1_000_000_000), .init(status: peerB, sqlOK: true)).first else {
            Issue.record("a decides on a tie")
            return
        }
        let again = a.machine.reunionDecided(Self.decision("a", "b"), forkID: 7, peer: peerB, now: a.now)
        if case .promote(let term, _, let fork, _)? = again.first { #expect(term == 3 && fork == 7) } else { Issue.record("\(again)") }
        var b2 = Self.leaderAlone("b", term: 2)
        // b does not decide; it stops taking writes while a does.
        #expect(
            b2.round(.init(), .init(status: peerB.with(node: "a"), sqlOK: true)) == [
                .stepDown(reason: "peer a leads at term 2: waiting for its reunion verdict")
            ])
    }

    @Test("A losing decider steps down and follows at max(term) + 1; the winner takes that term with the fork; the loser waits for it")
    func deciderLoses() {
        var b = Self.leaderAlone("b", term: 2, epochStart: 1_000_000_100)
        let peerA = Self.status("a", .leaderAlone, term: 1, maxRevision: 150)
        _ = b.round(.init(epochStart: 1_000_000_100), peerA)
        let actions = b.machine.reunionDecided(Self.decision("a", "b"), forkID: 100, peer: peerA.status!, now: b.now)
        #expect(actions.first == .stepDown(reason: "reunion lost to a (newest write; fork at id 100)"))
        #expect(actions.last == .persist(reason: "reunion lost to a: following it once it leads at term 3"))
        #expect(b.machine.verdict?.winner == "a" && b.machine.term == 3 && b.machine.leader == "a")
        #expect(!b.machine.servesClients)  // not routed to a before a's revisions are above b's (R2)
        // While a still leads at term 1, b neither follows back nor resyncs.
        #expect(b.round(.init(copy: .ready, subscribedTerm: 2), Self.status("a", .leaderAlone, term: 1)).isEmpty)

        // a sees b follow it at term 3: a promotes to term 3 with b's fork (the bump above b's revisions).
        var a = Self.leaderAlone("a", term: 1)
        let promoted = a.round(.init(), Self.status("b", .followerSyncing, term: 3, leader: "a", maxRevision: 1_000_000_300, fork: 100))
        if case .promote(let term, let peerMax, let fork, _)? = promoted.first {
            #expect(term == 3 && peerMax == 1_000_000_300 && fork == 100)
        } else {
            Issue.record("expected a promotion, got \(promoted)")
        }
        // Once a leads at term 3, b routes to it, then re-makes its copy from it.
        #expect(
            b.round(.init(copy: .none), Self.status("a", .leaderAlone, term: 3)) == [
                .follow(leader: "a", term: 3, reason: "reunion: a leads at term 3")
            ])
        #expect(b.machine.servesClients)
        #expect(b.round(.init(copy: .none), Self.status("a", .leaderAlone, term: 3)) == [.resync(reason: "no local copy")])
    }

    @Test(
        "With a witness: no promotion without it; a leader without peer and witness stops taking writes, and serves again when either returns"
    )
    func witness() {
        var follower = HARoleMachineTests.follower()
        let unreachable = HAObservation.Local(copy: .ready, subscribedTerm: 1, witness: false)
        #expect(!follower.rounds(for: .seconds(10), unreachable, HARoleMachineTests.dead).contains(where: HARoleMachineTests.isPromote))
        #expect(follower.machine.witnessLost)
        let reachable = HAObservation.Local(copy: .ready, subscribedTerm: 1, witness: true)
        #expect(follower.round(reachable, HARoleMachineTests.dead).contains(where: HARoleMachineTests.isPromote))

        var leader = Harness(node: "a", lastRole: .leader, term: 1)
        _ = leader.round(.init(witness: true), Self.status("b", .follower, term: 1, leader: "a", copy: .ready))
        #expect(leader.machine.role.isLeading)
        let isolated = leader.rounds(for: .seconds(4), .init(witness: false), HARoleMachineTests.dead)
        #expect(isolated.contains { if case .stepDown = $0 { return true } else { return false } })
        #expect(leader.machine.fence == .lostPeerAndWitness && !leader.machine.servesClients)
        #expect(leader.rounds(for: .seconds(2), .init(witness: false), HARoleMachineTests.dead).isEmpty)
        let back = leader.round(.init(witness: true), HARoleMachineTests.dead)
        #expect(back == [.lead(term: 1, reason: "witness reachable again")])
        #expect(leader.machine.fence == nil && leader.machine.servesClients)
    }

    @Test("Paused: a follower whose leader died does not promote until the pause ends")
    func pause() {
        var follower = HARoleMachineTests.follower()
        let paused = HAObservation.Local(copy: .ready, subscribedTerm: 1, paused: true)
        #expect(!follower.rounds(for: .seconds(20), paused, HARoleMachineTests.dead).contains(where: HARoleMachineTests.isPromote))
        #expect(follower.machine.role == .follower)
        #expect(follower.round(HARoleMachineTests.ready, HARoleMachineTests.dead).contains(where: HARoleMachineTests.isPromote))
    }

    @Test(
        "Handover: only a leader with a ready follower; the follower promotes once its copy holds the leader's newest id; the old leader follows"
    )
    func handover() throws {
        var lone = Self.leaderAlone("a", term: 1)
        #expect(throws: HandoverRefused.self) { try lone.machine.requestHandover(now: lone.now, timeout: .seconds(5)) }

        var a = Harness(node: "a", lastRole: .leader, term: 1)
        let following = Self.status("b", .follower, term: 1, leader: "a", copy: .ready)
        _ = a.round(.init(followerStreaming: true), following)
        _ = a.round(.init(followerStreaming: true), following)
        #expect(a.machine.role == .leader)
        let start = try a.machine.requestHandover(now: a.now, timeout: .seconds(5))
        #expect(start.count == 1 && a.machine.handingOverTo == "b" && !a.machine.servesClients)
        #expect(throws: HandoverRefused.self) { try a.machine.requestHandover(now: a.now, timeout: .seconds(5)) }

        var b = HARoleMachineTests.follower()
        let asking = Self.status("a", .leader, term: 1, maxID: 500, handoverTo: "b")
        #expect(b.round(.init(copy: .ready, subscribedTerm: 1, maxID: 499), asking).isEmpty)  // still catching up
        let promoted = b.round(.init(copy: .ready, subscribedTerm: 1, maxID: 500), asking)
        #expect(promoted.contains(where: HARoleMachineTests.isPromote) && b.machine.term == 2)

        // While a still shows itself leading (handing over to b, fenced), b does not take it for a split.
        #expect(b.round(.init(copy: .none), Self.status("a", .leader, term: 1, maxID: 500, handoverTo: "b")).isEmpty)
        let follow = a.round(.init(), Self.status("b", .leaderAlone, term: 2))
        #expect(follow == [.follow(leader: "b", term: 2, reason: "handover: b took over at term 2")])
        #expect(a.machine.handingOverTo == nil)
    }

    @Test("A handover the follower does not complete ends with the leader serving again")
    func handoverTimeout() throws {
        var a = Harness(node: "a", lastRole: .leader, term: 1)
        let following = Self.status("b", .follower, term: 1, leader: "a", copy: .ready)
        _ = a.round(.init(followerStreaming: true), following)
        _ = a.round(.init(followerStreaming: true), following)
        _ = try a.machine.requestHandover(now: a.now, timeout: .seconds(2))
        let actions = a.rounds(for: .seconds(3), .init(followerStreaming: true), following)
        // Leading again (open for writes), then synchronous again since the follower is still attached.
        #expect(actions.first == .lead(term: 1, reason: "handover to b did not complete in time: leading again"))
        #expect(actions.dropFirst().allSatisfy { if case .lead = $0 { return false } else { return true } })
        #expect(a.machine.servesClients && a.machine.role == .leader)
    }

    @Test("Flapping: a node that stepped down does not promote again within the hold-down")
    func holdDownAfterStepDown() {
        var a = Self.leaderAlone("a", term: 1)
        _ = a.round(.init(), Self.status("b", .leaderAlone, term: 2, winner: "b"))
        #expect(a.machine.role == .followerSyncing)
        // Its copy becomes ready, then the link drops again at once.
        _ = a.round(.init(copy: .ready, subscribedTerm: 2), Self.status("b", .leaderAlone, term: 2))
        let ready = HAObservation.Local(copy: .ready, subscribedTerm: 2)
        let early = a.rounds(for: Self.timing.holdDown - .seconds(1), ready, HARoleMachineTests.dead)
        #expect(!early.contains(where: HARoleMachineTests.isPromote))
        #expect(a.rounds(for: .seconds(3), ready, HARoleMachineTests.dead).contains(where: HARoleMachineTests.isPromote))
    }
}

extension PeerStatus {
    func with(node: String) -> PeerStatus {
        var copy = self
        copy.node = node
        copy.leader = node
        return copy
    }
}
