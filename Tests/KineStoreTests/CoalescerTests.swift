import KineSQL
import Synchronization
import Testing

@testable import KineStore

@Suite("Coalescer: concurrent requests answered in shared rounds")
struct CoalescerTests {
    /// Records each round's requests; a round can be held open to let others queue behind it.
    final class Rounds: Sendable {
        private let state = Mutex<(rounds: [[Int]], held: Bool)>(([], false))
        var rounds: [[Int]] { state.withLock { $0.rounds } }
        func hold(_ held: Bool) { state.withLock { $0.held = held } }

        func run(_ requests: [Int]) async throws(SQLError) -> [Int] {
            state.withLock { $0.rounds.append(requests) }
            while state.withLock({ $0.held }) { try? await Task.sleep(for: .milliseconds(1)) }
            if requests.contains(-1) { throw SQLError(kind: .connection, message: "round failed") }
            return requests.map { $0 * 10 }
        }
    }

    /// Runs `body` while the coalescer's rounds run in a child task, as its owner does.
    static func running<T: Sendable>(
        _ coalescer: Coalescer<Int, Int>, _ body: @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await coalescer.run() }
            defer { coalescer.finish() }
            return try await body()
        }
    }

    @Test("A lone request runs its own round")
    func lone() async throws {
        let rounds = Rounds()
        let coalescer = Coalescer<Int, Int> { requests throws(SQLError) in try await rounds.run(requests) }
        #expect(try await coalescer.submit(4) == 40)
        #expect(rounds.rounds == [[4]])
    }

    @Test("Requests arriving during a round share the next one, and each gets its own answer")
    func sharedRound() async throws {
        let rounds = Rounds()
        let coalescer = Coalescer<Int, Int> { requests throws(SQLError) in try await rounds.run(requests) }
        rounds.hold(true)
        try await Self.running(coalescer) {
            let first = Task { try await coalescer.submit(1) }
            while rounds.rounds.isEmpty { await Task.yield() }
            let others = (2...6).map { value in Task { try await coalescer.submit(value) } }
            // Every other request has queued behind the first round before it ends: a round that
            // started before them must not answer them.
            try await Task.sleep(for: .milliseconds(50))
            rounds.hold(false)
            #expect(try await first.value == 10)
            for (index, task) in others.enumerated() { #expect(try await task.value == (index + 2) * 10) }
        }
        #expect(rounds.rounds.count == 2)
        #expect(rounds.rounds.first == [1])
        #expect(rounds.rounds.last?.sorted() == [2, 3, 4, 5, 6])
    }

    @Test("A failed round fails every request in it, and the next round runs normally")
    func failure() async throws {
        let rounds = Rounds()
        let coalescer = Coalescer<Int, Int> { requests throws(SQLError) in try await rounds.run(requests) }
        await #expect(throws: SQLError.self) { try await coalescer.submit(-1) }
        #expect(try await coalescer.submit(2) == 20)
    }

    @Test("Under many concurrent callers every request is answered exactly once, by value")
    func manyCallers() async throws {
        let rounds = Rounds()
        let coalescer = Coalescer<Int, Int> { requests throws(SQLError) in try await rounds.run(requests) }
        let answers = try await Self.running(coalescer) {
            try await withThrowingTaskGroup(of: (Int, Int).self) { group in
                for value in 0..<500 { group.addTask { (value, try await coalescer.submit(value)) } }
                var answers: [Int: Int] = [:]
                for try await (value, answer) in group { answers[value] = answer }
                return answers
            }
        }
        #expect(answers.count == 500)
        #expect(answers.allSatisfy { $0.value == $0.key * 10 })
        #expect(rounds.rounds.flatMap { $0 }.sorted() == Array(0..<500))
    }

    @Test("Once its owner stops running rounds, queued callers fail instead of waiting forever; a lone caller still runs its own")
    func finished() async throws {
        let rounds = Rounds()
        let coalescer = Coalescer<Int, Int> { requests throws(SQLError) in try await rounds.run(requests) }
        rounds.hold(true)
        let (first, queued) = try await Self.running(coalescer) {
            let first = Task { try await coalescer.submit(1) }
            while rounds.rounds.isEmpty { await Task.yield() }
            return (first, Task { try await coalescer.submit(2) })
        }
        // run() has ended: the caller queued behind the held round is failed when it is handed over.
        rounds.hold(false)
        #expect(try await first.value == 10)
        await #expect(throws: SQLError.self) { try await queued.value }
        #expect(try await coalescer.submit(3) == 30)
    }
}
