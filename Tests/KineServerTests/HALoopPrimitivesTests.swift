import KineHA
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import KineServer

/// The HA loop's own primitives: the stop signal its pauses race, and the cleanup queue that owns
/// what the loop drops.
@Suite("HA loop primitives")
struct HALoopPrimitivesTests {
    @Test("A wait cancelled by its racing timer leaves the signal usable: the next wait still waits for stop")
    func stopSignalSurvivesCancelledWaits() async {
        let signal = StopSignal()
        // Ten pauses the timer wins, as between probe rounds: each must last its interval.
        for _ in 0..<10 {
            let started = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(for: .milliseconds(20)) }
                group.addTask { await signal.wait() }
                await group.next()
                group.cancelAll()
            }
            #expect(ContinuousClock.now - started >= .milliseconds(20))
        }
        #expect(!signal.isStopped)
    }

    @Test("stop() ends a wait in progress and every later one at once")
    func stopEndsWaits() async {
        let signal = StopSignal()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await signal.wait() }
            group.addTask { await signal.wait() }
            try? await Task.sleep(for: .milliseconds(20))
            signal.stop()
            await group.waitForAll()
        }
        await signal.wait()
        #expect(signal.isStopped)
    }

    @Test("The cleanup queue runs every job it was given and returns once finished; a job after finish runs in the caller")
    func cleanupQueue() async {
        let queue = CleanupQueue()
        let counter = Counter()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            for _ in 0..<5 { await queue.submit { counter.add() } }
            queue.finish()
        }
        #expect(counter.value == 5)
        await queue.submit { counter.add() }
        #expect(counter.value == 6)
    }

    @Test("A failed connect is classified for the peer's messages and the witness check (refused: the host answered)")
    func connectFailures() {
        typealias Failure = PeerRPCError.ConnectFailure
        #expect(Failure(IOError(errnoCode: ECONNREFUSED, reason: "connect")) == .refused)
        #expect(Failure(IOError(errnoCode: EHOSTUNREACH, reason: "connect")) == .unreachable)
        #expect(Failure(IOError(errnoCode: ETIMEDOUT, reason: "connect")) == .timedOut)
        #expect(Failure(ChannelError.connectTimeout(.milliseconds(400))) == .timedOut)
    }

    final class Counter: Sendable {
        private let count = Mutex(0)
        func add() { count.withLock { $0 += 1 } }
        var value: Int { count.withLock { $0 } }
    }
}
