import Synchronization
import Testing

@testable import KineSync

@Suite("Completion: the one-shot wait every component parks on")
struct CompletionTests {
    @Test("A completion completed inside register returns its value")
    func completedDuringRegister() async {
        let value = await Completion<Int>.wait { $0.complete(7) }
        #expect(value == 7)
    }

    @Test("The first complete wins; later ones are ignored")
    func firstWins() async {
        let stored = Mutex<Completion<String>?>(nil)
        async let value = Completion<String>.wait { completion in stored.withLock { $0 = completion } }
        // Whoever runs first (the waiter registering or this loop), the first value delivered wins.
        var completion: Completion<String>?
        while completion == nil {
            completion = stored.withLock { $0 }
            await Task.yield()
        }
        #expect(completion?.isCompleted == false)
        completion?.complete("first")
        completion?.complete("second")
        #expect(await value == "first")
        #expect(completion?.isCompleted == true)
    }

    @Test("Completing from many tasks at once resumes the waiter exactly once")
    func racingCompleters() async {
        for _ in 0..<200 {
            let value = await Completion<Int>.wait { completion in
                for index in 0..<8 {
                    Task { completion.complete(index) }
                }
            }
            #expect((0..<8).contains(value))
        }
    }

    @Test("A callback completion calls back once, with the first value")
    func callback() {
        let received = Mutex<[Int]>([])
        let completion = Completion<Int> { value in received.withLock { $0.append(value) } }
        completion.complete(1)
        completion.complete(2)
        #expect(received.withLock { $0 } == [1])
    }

    @Test("Void completions complete without an argument")
    func voidCompletion() async {
        await Completion<Void>.wait { completion in
            Task { completion.complete() }
        }
    }
}
