import Testing

@testable import KineHA

/// The decisions the controller used to make itself: the start-up tie-break, the reunion's
/// fork and candidates, the promotion's epoch, the served ledger, the copy's problems.
@Suite("HA decisions")
struct HADecisionTests {
    typealias Candidate = StartupTieBreak.Candidate

    @Test("Start-up tie-break: data, then term, then the node that led last, then priority, then name; exactly one side wins")
    func startupTieBreak() {
        let base = Candidate(node: "b", hasData: false, term: 0, ledLast: false, priority: .secondary)
        let cases: [(Candidate, Candidate, winner: String)] = [
            (Candidate(node: "b", hasData: true, term: 0, ledLast: false, priority: .secondary), base.with("a", priority: .primary), "b"),
            (
                Candidate(node: "b", hasData: true, term: 3, ledLast: false, priority: .secondary),
                Candidate(node: "a", hasData: true, term: 2, ledLast: true, priority: .primary), "b"
            ),
            (
                Candidate(node: "b", hasData: true, term: 2, ledLast: true, priority: .secondary),
                Candidate(node: "a", hasData: true, term: 2, ledLast: false, priority: .primary), "b"
            ),
            (base, base.with("a", priority: .primary), "a"),
            (base, base.with("a"), "a"),
        ]
        for (first, second, winner) in cases {
            #expect(StartupTieBreak.wins(first, over: second) == (first.node == winner), "\(first) vs \(second)")
            #expect(StartupTieBreak.wins(second, over: first) == (second.node == winner), "\(second) vs \(first)")
        }
        // What a starting peer publishes: its leader is itself when it led last.
        let peer = PeerStatus(node: "a", role: .bootstrap, term: 2, leader: "a", hasData: true, priority: .primary)
        #expect(Candidate(peer) == Candidate(node: "a", hasData: true, term: 2, ledLast: true, priority: .primary))
    }

    @Test("Reunion: the higher term decides, the smaller name on a tie")
    func decider() {
        #expect(ReunionDecider.decides("b", term: 3, over: "a", term: 2))
        #expect(!ReunionDecider.decides("a", term: 2, over: "b", term: 3))
        #expect(ReunionDecider.decides("a", term: 2, over: "b", term: 2))
        #expect(!ReunionDecider.decides("b", term: 2, over: "a", term: 2))
    }

    @Test("Reunion fork: the higher term's promotion's fork; on equal terms the later one; the same from either side")
    func fork() {
        let cases: [(HAEpoch, HAEpoch, Int64)] = [
            (HAEpoch(term: 3, forkID: 40), HAEpoch(term: 2, forkID: 70), 40),
            (HAEpoch(term: 2, forkID: 70), HAEpoch(term: 3, forkID: 40), 40),
            (HAEpoch(term: 2, forkID: 40), HAEpoch(term: 2, forkID: 70), 70),
            (HAEpoch(term: 0, forkID: 0), HAEpoch(term: 1, forkID: 12), 12),
        ]
        for (local, peer, fork) in cases {
            #expect(Reunion.fork(local: local, peer: peer) == fork)
            #expect(Reunion.fork(local: peer, peer: local) == fork)
        }
    }

    @Test("Reunion candidates: the newest write counts only with writes since the fork; the witness only when configured")
    func candidates() {
        let wrote = ReunionCandidate(
            node: "a", term: 2, priority: .primary, writesSinceFork: 5, newestWriteUnixMilliseconds: 1_700, witnessConfigured: true,
            lostWitness: true)
        #expect(wrote.lastWriteUnixMilliseconds == 1_700 && wrote.reachedWitness == false)
        let idle = ReunionCandidate(
            node: "b", term: 3, priority: .secondary, writesSinceFork: 0, newestWriteUnixMilliseconds: 1_900, witnessConfigured: false,
            lostWitness: true)
        #expect(idle.lastWriteUnixMilliseconds == 0 && idle.reachedWitness == nil)
        #expect(Reunion.decide(wrote, idle, policy: .newest) == ReunionDecision(winner: "a", loser: "b", rule: .onlyOneWrote))
    }

    @Test(
        "Promotion: the epoch starts a bump above the local copy, what this node served and what the peer served; the fork is the copy's newest id unless a reunion gave one"
    )
    func promotion() {
        let plain = Promotion(localNewestID: 500, highestServed: 480, peerMaxRevision: 0, bump: 1_000_000_000, forkID: nil)
        #expect(plain == Promotion(localNewestID: 500, highestServed: 0, peerMaxRevision: 0, bump: 1_000_000_000, forkID: 500))
        #expect(plain.epochStart == 1_000_000_500 && plain.forkID == 500)
        #expect(Promotion(localNewestID: 500, highestServed: 900, peerMaxRevision: 0, bump: 10, forkID: nil).epochStart == 910)
        let reunion = Promotion(localNewestID: 500, highestServed: 900, peerMaxRevision: 1_000_000_300, bump: 10, forkID: 100)
        #expect(reunion.epochStart == 1_000_000_310 && reunion.forkID == 100)
    }

    @Test("Split writes are saved only when following a newer term than the local epoch's")
    func splitWrites() {
        #expect(HAEpoch(term: 2, forkID: 0).mustSaveSplitWrites(beforeFollowingTerm: 3))
        #expect(!HAEpoch(term: 3, forkID: 0).mustSaveSplitWrites(beforeFollowingTerm: 3))
        #expect(!HAEpoch(term: -1, forkID: 0).mustSaveSplitWrites(beforeFollowingTerm: 0))
    }

    @Test("Served ledger: the highest revision and, while leading, the newest write; what failed to persist is offered again")
    func ledger() {
        var ledger = ServedLedger(highestServed: 100, lastWriteUnixMilliseconds: 0)
        #expect(ledger.unpersisted == nil)
        // The first round records where the epoch is: no write of this node's yet.
        ledger.record(served: 1_000, epochStart: 1_000, leading: true, clock: 5_000)
        #expect(ledger.highestServed == 1_000 && ledger.lastWriteUnixMilliseconds == 0)
        #expect(ledger.unpersisted == ServedLedger.Update(highestServed: 1_000, lastWriteUnixMilliseconds: nil))
        // A write: the served revision grew past the epoch's start while leading.
        ledger.record(served: 1_003, epochStart: 1_000, leading: true, clock: 6_000)
        #expect(ledger.lastWriteUnixMilliseconds == 6_000)
        let update = ledger.unpersisted
        #expect(update == ServedLedger.Update(highestServed: 1_003, lastWriteUnixMilliseconds: 6_000))
        // The write failed: the same update is offered again next round.
        ledger.record(served: 1_003, epochStart: 1_000, leading: true, clock: 7_000)
        #expect(ledger.unpersisted == update)
        if let update { ledger.persisted(update) }
        #expect(ledger.unpersisted == nil)
        // Following: revisions grow through the leader's writes, which are not this node's.
        ledger.record(served: 1_010, epochStart: 0, leading: false, clock: 8_000)
        #expect(ledger.lastWriteUnixMilliseconds == 6_000 && ledger.highestServed == 1_010)
        // Nothing served (no store installed) never lowers the highest.
        ledger.record(served: 0, epochStart: 0, leading: false, clock: 9_000)
        #expect(ledger.highestServed == 1_010)
    }

    @Test("A copy is re-made when missing, when its slot is lost, when it is from another term, or when it keeps stopping")
    func copyProblems() {
        let ready = HAObservation.Local(copy: .ready, subscribedTerm: 2)
        #expect(CopyProblem(ready, slotLost: false, leaderTerm: 2, resumes: 0) == nil)
        #expect(CopyProblem(.init(copy: .none), slotLost: false, leaderTerm: 2, resumes: 0) == .noCopy)
        #expect(CopyProblem(ready, slotLost: true, leaderTerm: 2, resumes: 0) == .slotLost)
        #expect(CopyProblem(ready, slotLost: false, leaderTerm: 3, resumes: 0) == .otherTerm(copy: 2, leader: 3))
        let stopped = HAObservation.Local(copy: .disabled, copyComplete: true, subscribedTerm: 2)
        #expect(CopyProblem(stopped, slotLost: false, leaderTerm: 2, resumes: 2) == nil)
        #expect(
            CopyProblem(stopped, slotLost: false, leaderTerm: 2, resumes: 3)?.description
                == "the local copy stopped 3 times after resuming (a conflict)")
    }

    @Test("Pause: a change is newer than the setting it replaces even on a clock that did not move; the newer of two settings wins")
    func pause() {
        let set = HAPause(untilUnixMilliseconds: 9_000, setUnixMilliseconds: 1_000)
        let resumed = set.replaced(untilUnixMilliseconds: 0, nowUnixMilliseconds: 1_000)
        #expect(resumed == HAPause(untilUnixMilliseconds: 0, setUnixMilliseconds: 1_001))
        #expect(set.superseded(by: resumed) == resumed && resumed.superseded(by: set) == nil)
        #expect(set.inForce(atUnixMilliseconds: 8_999) && !set.inForce(atUnixMilliseconds: 9_000))
    }

    @Test("Peer errors read as an operator needs them")
    func peerErrors() {
        #expect(PeerRPCError.connect(address: "10.77.0.1:2380", .refused).description.hasPrefix("connection refused by 10.77.0.1:2380"))
        #expect(
            PeerRPCError.connect(address: "10.77.0.1:2380", .unreachable).description
                == "10.77.0.1:2380 is unreachable (no route to the peer)")
        #expect(PeerRPCError.call(address: "h:1", code: 14, message: "down").description == "peer HA port h:1: down (gRPC code 14)")
        #expect(
            HandoverRefused.notLeading(role: .leaderAlone).description
                == "this node is leader-alone; only a leader with a caught-up follower hands over")
    }
}

extension StartupTieBreak.Candidate {
    func with(_ node: String, priority: HAPriority? = nil) -> Self {
        var copy = self
        copy.node = node
        if let priority { copy.priority = priority }
        return copy
    }
}
