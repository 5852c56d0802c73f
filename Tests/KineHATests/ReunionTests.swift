import Testing

@testable import KineHA

/// Every rule of the reunion decision, in order, and its symmetry.
@Suite("HA reunion decision")
struct ReunionTests {
    /// a led before the split (term 1, primary); b was promoted during it (term 2).
    static func pair(
        aWrites: Int64 = 10, bWrites: Int64 = 10, aLast: Int64 = 100_000, bLast: Int64 = 100_000, aWitness: Bool? = nil,
        bWitness: Bool? = nil, aPriority: HAPriority = .primary, bPriority: HAPriority = .secondary
    ) -> (ReunionCandidate, ReunionCandidate) {
        (
            ReunionCandidate(
                node: "a", term: 1, priority: aPriority, writesSinceFork: aWrites, lastWriteUnixMilliseconds: aLast,
                reachedWitness: aWitness),
            ReunionCandidate(
                node: "b", term: 2, priority: bPriority, writesSinceFork: bWrites, lastWriteUnixMilliseconds: bLast,
                reachedWitness: bWitness)
        )
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var a: ReunionCandidate
        var b: ReunionCandidate
        var policy: ReunionPolicy
        var winner: String
        var rule: ReunionDecision.Rule
        var testDescription: String { name }
    }

    static let cases: [Case] = {
        var cases: [Case] = []
        func add(
            _ name: String, _ pair: (ReunionCandidate, ReunionCandidate), _ policy: ReunionPolicy, _ winner: String,
            _ rule: ReunionDecision.Rule
        ) {
            cases.append(Case(name: name, a: pair.0, b: pair.1, policy: policy, winner: winner, rule: rule))
        }
        for policy in ReunionPolicy.allCases {
            add("\(policy): a was down (no writes) loses", pair(aWrites: 0), policy, "b", .onlyOneWrote)
            add("\(policy): b was down loses", pair(bWrites: 0, bLast: 999_999), policy, "a", .onlyOneWrote)
            add("\(policy): the side without the witness loses", pair(aWitness: false, bWitness: true), policy, "b", .witness)
            add("\(policy): witness beats the policy", pair(aLast: 900_000, aWitness: true, bWitness: false), policy, "a", .witness)
        }
        add("newest: a's write is 5 s newer", pair(aLast: 105_000), .newest, "a", .newest)
        add("newest: b's write is 5 s newer", pair(bLast: 105_000), .newest, "b", .newest)
        add("newest: 1.5 s apart is inside the skew bound: priority decides", pair(bLast: 101_500), .newest, "a", .priority)
        add(
            "newest: inside the bound, b primary", pair(bLast: 101_500, aPriority: .secondary, bPriority: .primary), .newest, "b", .priority
        )
        add("incumbent: a led before the split", pair(bLast: 900_000), .incumbent, "a", .incumbent)
        add("promoted: b was promoted", pair(aLast: 900_000), .promoted, "b", .promoted)
        add("both witnessed: the policy decides", pair(aWitness: true, bWitness: true), .promoted, "b", .promoted)
        add("neither wrote: priority", pair(aWrites: 0, bWrites: 0), .newest, "a", .priority)
        return cases
    }()

    @Test("Each rule in HA.md's order", arguments: cases)
    func rules(_ test: Case) {
        let decision = Reunion.decide(test.a, test.b, policy: test.policy)
        #expect(decision.winner == test.winner)
        #expect(decision.rule == test.rule)
        #expect(decision.loser == (test.winner == "a" ? "b" : "a"))
        // Both nodes compute it; the order they pass the sides in must not matter.
        #expect(Reunion.decide(test.b, test.a, policy: test.policy) == decision)
    }

    @Test("Same priority and term: the smaller name wins")
    func names() {
        let a = ReunionCandidate(node: "a", term: 2, priority: .secondary, writesSinceFork: 3)
        let b = ReunionCandidate(node: "b", term: 2, priority: .secondary, writesSinceFork: 3)
        #expect(Reunion.decide(a, b, policy: .incumbent) == ReunionDecision(winner: "a", loser: "b", rule: .name))
    }

    @Test("incumbent and promoted ignore the clocks entirely")
    func clockSkew() {
        for skew in [Int64(-3_600_000), -10_000, 0, 10_000, 3_600_000] {
            let (a, b) = Self.pair(aLast: 100_000 + skew)
            #expect(Reunion.decide(a, b, policy: .incumbent).winner == "a")
            #expect(Reunion.decide(a, b, policy: .promoted).winner == "b")
        }
    }
}
