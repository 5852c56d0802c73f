import Foundation
import Histogram
import Synchronization

/// One client's part of a scenario: created (untimed) inside the client's task, then asked to
/// perform operations. Not Sendable: it lives in one task.
protocol ScenarioWorker {
    /// Performs operation `op`. Returns the latency to record when it is not the wall time of the
    /// call (watch-latency records put→event), else nil.
    mutating func perform(op: Int) async throws -> Duration?
    /// Counters to add to the result's `extra` (e.g. CAS failures); also releases resources.
    mutating func finish() async -> [String: Int]
}

extension ScenarioWorker {
    mutating func finish() async -> [String: Int] { [:] }
}

protocol Scenario: Sendable {
    associatedtype Worker: ScenarioWorker
    var name: String { get }
    /// Untimed preparation (keys to read, leases, ...). Returns values for `extra`.
    func setup(_ client: EtcdClient) async throws -> [String: Int]
    func makeWorker(client index: Int, etcd: EtcdClient) async throws -> Worker
}

extension Scenario {
    func setup(_ client: EtcdClient) async throws -> [String: Int] { [:] }
}

/// Hands out operation numbers and, with a rate, the time each may start.
final class Schedule: Sendable {
    let total: Int
    let start: ContinuousClock.Instant
    let interval: Duration?
    private let next = Atomic<Int>(0)

    init(total: Int, rate: Int) {
        self.total = total
        self.start = .now
        self.interval = rate > 0 ? .nanoseconds(Int64(1_000_000_000 / rate)) : nil
    }

    /// The next operation and when it is due (nil: now), or nil when all are taken.
    func take() -> (op: Int, due: ContinuousClock.Instant?)? {
        let op = next.wrappingAdd(1, ordering: .relaxed).oldValue
        guard op < total else { return nil }
        return (op, interval.map { start + $0 * op })
    }
}

struct LatencySummary: Codable {
    var mean: Double
    var min: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double
}

struct BenchResult: Codable {
    var scenario: String
    var label: String
    var endpoints: String
    var available: Bool
    var reason: String?
    var conns: Int
    var clients: Int
    var total: Int
    var rate: Int
    var keySize: Int
    var valSize: Int
    var keySpaceSize: Int
    var succeeded: Int
    var errors: Int
    var errorSamples: [String]
    var durationSeconds: Double
    var requestsPerSecond: Double
    /// Milliseconds.
    var latencyMs: LatencySummary?
    var extra: [String: Int]
    var parameters: [String: String]
}

/// Per-client tallies, merged at the end.
private struct ClientTally: Sendable {
    var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
    var succeeded = 0
    var errors = 0
    var samples: [String] = []
    var extra: [String: Int] = [:]
}

enum Runner {
    static func run<S: Scenario>(
        _ scenario: S, options: CommonOptions, parameters: [String: String] = [:]
    ) async throws -> BenchResult {
        var result = BenchResult(
            scenario: scenario.name, label: options.label, endpoints: options.endpoints, available: true, reason: nil,
            conns: options.conns, clients: options.clients, total: options.total, rate: options.rate,
            keySize: options.keySize, valSize: options.valSize, keySpaceSize: options.keySpaceSize,
            succeeded: 0, errors: 0, errorSamples: [], durationSeconds: 0, requestsPerSecond: 0, latencyMs: nil,
            extra: [:], parameters: parameters)
        let etcd = try await EtcdClient.connect(options)
        do {
            let setupExtra = try await scenario.setup(etcd)
            result.extra.merge(setupExtra) { $1 }
            let tally = try await measure(
                scenario, etcd: etcd, clients: options.clients, total: options.total, rate: options.rate, result: &result)
            result.succeeded = tally.succeeded
            result.errors = tally.errors
            result.errorSamples = tally.samples
            result.extra.merge(tally.extra) { $0 + $1 }
            let histogram = tally.histogram
            if histogram.totalCount > 0 {
                func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
                result.latencyMs = LatencySummary(
                    mean: histogram.mean / 1000, min: ms(histogram.min),
                    p50: ms(histogram.valueAtPercentile(50)), p90: ms(histogram.valueAtPercentile(90)),
                    p99: ms(histogram.valueAtPercentile(99)), p999: ms(histogram.valueAtPercentile(99.9)),
                    max: ms(histogram.max))
            }
        } catch let error as ServiceNotAvailable {
            result.available = false
            result.reason = error.description
        }
        await etcd.close()
        return result
    }

    private static func measure<S: Scenario>(
        _ scenario: S, etcd: EtcdClient, clients: Int, total: Int, rate: Int, result: inout BenchResult
    ) async throws -> ClientTally {
        // Workers are created first (untimed); the schedule starts once all are ready.
        let ready = Barrier(parties: clients)
        let scheduleBox = ScheduleBox()
        let tally = try await withThrowingTaskGroup(of: ClientTally.self) { group in
            for index in 0..<clients {
                group.addTask {
                    var worker = try await scenario.makeWorker(client: index, etcd: etcd)
                    await ready.arrive {
                        scheduleBox.set(Schedule(total: total, rate: rate))
                    }
                    guard let schedule = scheduleBox.get() else { return ClientTally() }
                    var tally = ClientTally()
                    let clock = ContinuousClock()
                    while let (op, due) = schedule.take() {
                        if let due { try await clock.sleep(until: due) }
                        let begin = clock.now
                        do {
                            let reported = try await worker.perform(op: op)
                            let elapsed = reported ?? (clock.now - begin)
                            let micros = elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000
                            _ = tally.histogram.record(UInt64(max(micros, 1)))
                            tally.succeeded += 1
                        } catch let error as ServiceNotAvailable {
                            throw error
                        } catch {
                            tally.errors += 1
                            if tally.samples.count < 3 { tally.samples.append(String(describing: error)) }
                        }
                    }
                    tally.extra = await worker.finish()
                    return tally
                }
            }
            var merged = ClientTally()
            for try await part in group {
                merged.histogram.add(part.histogram)
                merged.succeeded += part.succeeded
                merged.errors += part.errors
                if merged.samples.count < 5 { merged.samples.append(contentsOf: part.samples.prefix(5 - merged.samples.count)) }
                merged.extra.merge(part.extra) { $0 + $1 }
            }
            return merged
        }
        let measuredStart = scheduleBox.get()?.start ?? .now
        let seconds = (ContinuousClock.now - measuredStart) / .seconds(1)
        result.durationSeconds = seconds
        result.requestsPerSecond = seconds > 0 ? Double(tally.succeeded) / seconds : 0
        return tally
    }
}

/// The schedule, created when the last worker is ready.
final class ScheduleBox: Sendable {
    private let value = Mutex<Schedule?>(nil)
    func set(_ schedule: Schedule) { value.withLock { $0 = schedule } }
    func get() -> Schedule? { value.withLock { $0 } }
}

/// Lets `parties` tasks wait for each other; the last to arrive runs `last` before releasing all.
final class Barrier: Sendable {
    private struct State {
        var remaining: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state: Mutex<State>

    init(parties: Int) { state = Mutex(State(remaining: parties)) }

    func arrive(last: @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let release = state.withLock { state -> [CheckedContinuation<Void, Never>]? in
                state.remaining -= 1
                state.waiters.append(continuation)
                guard state.remaining == 0 else { return nil }
                defer { state.waiters = [] }
                return state.waiters
            }
            if let release {
                last()
                for waiter in release { waiter.resume() }
            }
        }
    }
}

enum Report {
    static func print(_ result: BenchResult, json: Bool) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(result)
            Swift.print(String(decoding: data, as: UTF8.self))
            return
        }
        let label = result.label.isEmpty ? "" : " [\(result.label)]"
        Swift.print("\(result.scenario)\(label) against \(result.endpoints)")
        guard result.available else {
            Swift.print("  not available: \(result.reason ?? "")")
            return
        }
        Swift.print(
            "  conns \(result.conns), clients \(result.clients), total \(result.total), rate \(result.rate == 0 ? "unlimited" : String(result.rate))"
        )
        Swift.print(String(format: "  Total:        %.4f s", result.durationSeconds))
        Swift.print(String(format: "  Requests/sec: %.1f", result.requestsPerSecond))
        Swift.print("  Succeeded:    \(result.succeeded), errors: \(result.errors)")
        if let latency = result.latencyMs {
            Swift.print("  Latency (ms):")
            Swift.print(String(format: "    mean %.3f  min %.3f  max %.3f", latency.mean, latency.min, latency.max))
            Swift.print(
                String(
                    format: "    p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f", latency.p50, latency.p90, latency.p99,
                    latency.p999))
        }
        for (key, value) in result.extra.sorted(by: { $0.key < $1.key }) { Swift.print("  \(key): \(value)") }
        for sample in result.errorSamples { Swift.print("  error: \(sample)") }
    }
}
