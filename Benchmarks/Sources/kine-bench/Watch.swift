import ArgumentParser
import Foundation
import Histogram
import KineCore
import KineHTTP2
import KineProto
import Synchronization

// Watch benchmarks of issue 3 that do not fit the one-operation-per-client Runner:
// `watch-fanout` (events/s delivered to many watchers, and whether each got every event) and
// `watch-memory` (server RSS per open watch). `watch-latency` (put→event) is a Runner scenario.

typealias LatencyHistogram = Histogram<UInt64>

func makeLatencyHistogram() -> LatencyHistogram {
    LatencyHistogram(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
}

func microseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
}

func milliseconds(_ duration: Duration) -> Int {
    Int(microseconds(duration) / 1000)
}

extension LatencySummary {
    /// Milliseconds from a histogram of microseconds; nil when it is empty.
    init?(_ histogram: LatencyHistogram) {
        guard histogram.totalCount > 0 else { return nil }
        func ms(_ micros: UInt64) -> Double { Double(micros) / 1000 }
        self.init(
            mean: histogram.mean / 1000, min: ms(histogram.min), p50: ms(histogram.valueAtPercentile(50)),
            p90: ms(histogram.valueAtPercentile(90)), p99: ms(histogram.valueAtPercentile(99)),
            p999: ms(histogram.valueAtPercentile(99.9)), max: ms(histogram.max))
    }
}

extension BenchResult {
    /// An empty result carrying the common options.
    init(scenario: String, options: CommonOptions, parameters: [String: String]) {
        self.init(
            scenario: scenario, label: options.label, endpoints: options.endpoints, available: true, reason: nil,
            conns: options.conns, clients: options.clients, total: options.total, rate: options.rate,
            keySize: options.keySize, valSize: options.valSize, keySpaceSize: options.keySpaceSize,
            succeeded: 0, errors: 0, errorSamples: [], durationSeconds: 0, requestsPerSecond: 0, latencyMs: nil,
            extra: [:], parameters: parameters)
    }
}

/// Prints the result and maps it to kine-bench's exit codes (3: not available, 1: nothing succeeded).
func finish(_ result: BenchResult, json: Bool) throws {
    try Report.print(result, json: json)
    if !result.available { throw ExitCode(3) }
    if result.succeeded == 0 { throw ExitCode(1) }
}

/// Reads the first watch response of a create and checks it is "created".
func expectCreated(
    _ iterator: inout AsyncThrowingStream<[UInt8], any Error>.AsyncIterator
) async throws -> WatchResponse {
    let bytes: [UInt8]?
    do {
        bytes = try await iterator.next()
    } catch let status as GRPCStatus where status.code == GRPCStatus.Code.unimplemented.rawValue {
        throw ServiceNotAvailable(path: EtcdPath.watch, message: status.message)
    }
    guard let bytes else { throw RequestFailure(description: "watch stream ended before 'created'") }
    let response = try ProtoDecode.watchResponse(bytes)
    guard response.created, !response.canceled else {
        throw RequestFailure(description: "expected a 'created' watch response, got \(response)")
    }
    return response
}

// MARK: watch-fanout

struct WatchFanoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch-fanout",
        abstract: "Many watchers on one prefix; writers Put --total keys under it. Events/s delivered, and loss.",
        discussion: """
            --watchers watches on the prefix, spread over --streams Watch streams on --conns connections;
            --clients writers on --put-conns connections of their own Put keys prefix+0 … prefix+(total-1)
            (--rate: puts/s, 0 = as fast as they can). Each value carries its send time, so every event gives
            a put→delivery latency. Events/s = events received / (first Put → last event). Every watcher
            must receive every put exactly once in revision order: misses, extra events and out-of-order
            events are counted (extra: events_missing, events_extra, out_of_order, watchers_incomplete).
            """)
    @OptionGroup var options: CommonOptions
    @Option(help: "Watchers, all on the scenario's prefix (--key-prefix, default 'fanout/').") var watchers: Int = 1000
    @Option(help: "Watch streams the watchers are spread over (streams are spread over --conns).") var streams: Int = 100
    @Option(help: "HTTP/2 connections of the writers (separate from the watchers').") var putConns: Int = 1
    @Option(help: "Seconds to wait after the last Put for every event to arrive.") var drainTimeout: Double = 20

    func validate() throws {
        guard watchers >= 1, streams >= 1, streams <= watchers else {
            throw ValidationError("need 1 ≤ --streams ≤ --watchers")
        }
        guard putConns >= 1, drainTimeout > 0 else { throw ValidationError("--put-conns ≥ 1, --drain-timeout > 0") }
    }

    func run() async throws {
        let fanout = WatchFanout(
            options: options, watchers: watchers, streams: streams, putConns: putConns,
            drainTimeout: .milliseconds(Int64(drainTimeout * 1000)))
        try finish(try await fanout.run(), json: options.json)
    }
}

/// State shared by the stream tasks and the driver.
final class FanoutShared: Sendable {
    let events = Atomic<Int>(0)
    let stopping = Atomic<Bool>(false)
    let calls = Mutex<[GRPCClientBidirectionalCall]>([])
    let failure = Mutex<(any Error)?>(nil)

    func register(_ call: GRPCClientBidirectionalCall) { calls.withLock { $0.append(call) } }

    func fail(_ error: any Error) { failure.withLock { if $0 == nil { $0 = error } } }

    var failed: (any Error)? { failure.withLock { $0 } }

    func stopAll() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        for call in calls.withLock({ $0 }) { call.cancel() }
    }
}

/// What one stream's watchers received.
struct FanoutStreamTally: Sendable {
    var counts: [Int]
    var outOfOrder = 0
    var canceled = 0
    var errors: [String] = []
    var lastEvent: ContinuousClock.Instant?
    var histogram = makeLatencyHistogram()
}

struct WatchFanout {
    let options: CommonOptions
    let watchers: Int
    let streams: Int
    let putConns: Int
    let drainTimeout: Duration

    func run() async throws -> BenchResult {
        var result = BenchResult(
            scenario: "watch-fanout", options: options,
            parameters: ["watchers": String(watchers), "streams": String(streams), "put-conns": String(putConns)])
        let prefix = options.keyPrefix ?? "fanout/"
        let keys = KeyFactory(prefix: prefix, keySize: options.keySize, keySpaceSize: options.total)
        let watchClient = try await EtcdClient.connect(options)
        var putOptions = options
        putOptions.conns = putConns
        let putClient = try await EtcdClient.connect(putOptions)
        let origin = ContinuousClock.now
        let shared = FanoutShared()
        let ready = Barrier(parties: streams + 1)
        let create = ProtoEncode.watchRequest(.create(WatchCreateRequest(key: keys.prefix, rangeEnd: keys.prefixEnd)))

        let (write, tallies) = try await withThrowingTaskGroup(of: FanoutStreamTally.self) { group in
            for stream in 0..<streams {
                let count = watchers / streams + (stream < watchers % streams ? 1 : 0)
                let connection = watchClient.connection(for: stream)
                group.addTask {
                    await Self.stream(
                        connection: connection, watchers: count, create: create, origin: origin, shared: shared, ready: ready)
                }
            }
            await ready.arrive {}
            var write = WriteTally()
            if shared.failed == nil {
                write = await Self.write(
                    client: putClient, keys: keys, options: options, origin: origin)
                let expected = write.succeeded * watchers
                let deadline = ContinuousClock.now + drainTimeout
                while shared.events.load(ordering: .relaxed) < expected, ContinuousClock.now < deadline,
                    shared.failed == nil
                {
                    try await Task.sleep(for: .milliseconds(2))
                }
                // A little longer, to catch events beyond the expected ones (duplicates).
                try await Task.sleep(for: .milliseconds(200))
            }
            shared.stopAll()
            var tallies: [FanoutStreamTally] = []
            for try await tally in group { tallies.append(tally) }
            return (write, tallies)
        }
        await watchClient.close()
        await putClient.close()

        if let failure = shared.failed {
            if let unavailable = failure as? ServiceNotAvailable {
                result.available = false
                result.reason = unavailable.description
                return result
            }
            result.errorSamples.append(String(describing: failure))
        }
        var histogram = makeLatencyHistogram()
        var received = 0
        var missing = 0
        var extraEvents = 0
        var incomplete = 0
        var outOfOrder = 0
        var canceled = 0
        var streamErrors = 0
        var lastEvent: ContinuousClock.Instant?
        for tally in tallies {
            histogram.add(tally.histogram)
            for count in tally.counts {
                received += count
                if count < write.succeeded {
                    missing += write.succeeded - count
                    incomplete += 1
                }
                if count > write.succeeded { extraEvents += count - write.succeeded }
            }
            outOfOrder += tally.outOfOrder
            canceled += tally.canceled
            streamErrors += tally.errors.count
            for error in tally.errors where result.errorSamples.count < 5 { result.errorSamples.append(error) }
            if let last = tally.lastEvent, lastEvent.map({ last > $0 }) ?? true { lastEvent = last }
        }
        result.errorSamples.append(contentsOf: write.samples.prefix(max(0, 5 - result.errorSamples.count)))
        let span = lastEvent.map { $0 - write.start } ?? .zero
        result.succeeded = received
        result.errors = write.errors + streamErrors + (shared.failed == nil ? 0 : 1)
        result.durationSeconds = span / .seconds(1)
        result.requestsPerSecond = result.durationSeconds > 0 ? Double(received) / result.durationSeconds : 0
        result.latencyMs = LatencySummary(histogram)
        let putSeconds = (write.end - write.start) / .seconds(1)
        result.extra = [
            "watchers": watchers, "streams": streams, "puts": write.succeeded, "put_errors": write.errors,
            "put_phase_ms": milliseconds(write.end - write.start),
            "puts_per_second": putSeconds > 0 ? Int(Double(write.succeeded) / putSeconds) : 0,
            "drain_ms": lastEvent.map { milliseconds($0 - write.end) } ?? -1,
            "events_expected": write.succeeded * watchers, "events_received": received, "events_missing": missing,
            "events_extra": extraEvents, "watchers_incomplete": incomplete, "out_of_order": outOfOrder,
            "watches_canceled": canceled,
        ]
        return result
    }

    /// One Watch stream with `watchers` watches on the prefix; counts events per watch until stopped.
    static func stream(
        connection: GRPCClientConnection, watchers: Int, create: [UInt8], origin: ContinuousClock.Instant,
        shared: FanoutShared, ready: Barrier
    ) async -> FanoutStreamTally {
        var tally = FanoutStreamTally(counts: Array(repeating: 0, count: watchers))
        var lastRevision = [Int64](repeating: 0, count: watchers)
        var slots: [Int64: Int] = [:]
        let call = connection.openBidirectional(path: EtcdPath.watch)
        shared.register(call)
        var iterator = call.responses.makeAsyncIterator()
        do {
            for _ in 0..<watchers { try await call.send(create) }
            while slots.count < watchers {
                let response = try await expectCreated(&iterator)
                slots[response.watchID] = slots.count
            }
        } catch {
            shared.fail(error)
            await ready.arrive {}
            return tally
        }
        await ready.arrive {}
        do {
            while let bytes = try await iterator.next() {
                let now = ContinuousClock.now
                let response = try ProtoDecode.watchResponse(bytes)
                if response.canceled {
                    tally.canceled += 1
                    if tally.errors.count < 3 { tally.errors.append("watch canceled: \(response.cancelReason)") }
                    continue
                }
                guard !response.events.isEmpty, let slot = slots[response.watchID] else { continue }
                for event in response.events {
                    tally.counts[slot] += 1
                    if event.kv.modRevision <= lastRevision[slot] { tally.outOfOrder += 1 }
                    lastRevision[slot] = event.kv.modRevision
                    if let sent = decodeSendTime(event.kv.value) {
                        _ = tally.histogram.record(UInt64(max(microseconds(now - (origin + sent)), 1)))
                    }
                }
                tally.lastEvent = now
                shared.events.add(response.events.count, ordering: .relaxed)
            }
        } catch {
            if !shared.stopping.load(ordering: .sequentiallyConsistent), tally.errors.count < 3 {
                tally.errors.append("watch stream: \(error)")
            }
        }
        return tally
    }

    struct WriteTally {
        var start = ContinuousClock.now
        var end = ContinuousClock.now
        var succeeded = 0
        var errors = 0
        var samples: [String] = []
    }

    /// `--clients` writers Put keys 0..<total (each value starts with its send time).
    static func write(
        client: EtcdClient, keys: KeyFactory, options: CommonOptions, origin: ContinuousClock.Instant
    ) async -> WriteTally {
        let schedule = Schedule(total: options.total, rate: options.rate)
        let padding = max(0, options.valSize - 8)
        let parts = await withTaskGroup(of: WriteTally.self) { group in
            for writer in 0..<options.clients {
                group.addTask {
                    var tally = WriteTally()
                    let clock = ContinuousClock()
                    while let (op, due) = schedule.take() {
                        if let due { try? await clock.sleep(until: due) }
                        let value = encodeSendTime(clock.now - origin) + repeatElement(UInt8(ascii: "v"), count: padding)
                        do {
                            _ = try await client.put(writer, PutRequest(key: keys.key(op), value: value))
                            tally.succeeded += 1
                        } catch {
                            tally.errors += 1
                            if tally.samples.count < 3 { tally.samples.append(String(describing: error)) }
                        }
                    }
                    tally.end = clock.now
                    return tally
                }
            }
            var merged = WriteTally()
            merged.start = schedule.start
            merged.end = schedule.start
            for await part in group {
                merged.succeeded += part.succeeded
                merged.errors += part.errors
                merged.samples.append(contentsOf: part.samples)
                if part.end > merged.end { merged.end = part.end }
            }
            return merged
        }
        return parts
    }
}

/// 8 bytes, little endian: nanoseconds since the run's origin.
func encodeSendTime(_ elapsed: Duration) -> [UInt8] {
    let nanos = UInt64(max(0, microseconds(elapsed))) &* 1000
    return (0..<8).map { UInt8(truncatingIfNeeded: nanos >> (8 * $0)) }
}

func decodeSendTime(_ value: Bytes) -> Duration? {
    guard value.count >= 8 else { return nil }
    var nanos: UInt64 = 0
    for index in 0..<8 { nanos |= UInt64(value[index]) << (8 * index) }
    return .nanoseconds(Int64(truncatingIfNeeded: nanos))
}

// MARK: watch-memory

struct WatchMemoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch-memory",
        abstract: "Server RSS per open watch: opens --watches watches over --streams streams, samples /proc/PID/status.",
        discussion: """
            Samples the server's VmRSS (--server-pid; the server must run on this machine) idle, after opening
            --streams Watch streams with one watch each, and after opening the rest (one key each,
            '--key-prefix' default 'watchmem/'), each time after --settle seconds; then cancels the streams
            and samples once more. extra: rss_*_kb, bytes_per_watch (all watches, their streams included),
            bytes_per_stream (a stream with its first watch), bytes_per_extra_watch (each further watch on an
            open stream). requests/s = watches created per second in the second step.
            """)
    @OptionGroup var options: CommonOptions
    @Option(help: "Watches to open.") var watches: Int = 10000
    @Option(help: "Watch streams they are spread over (over --conns connections).") var streams: Int = 100
    @Option(help: "PID of the server process, to read /proc/PID/status.") var serverPid: Int
    @Option(help: "Seconds to wait before each RSS sample.") var settle: Double = 2

    func validate() throws {
        guard watches >= 1, streams >= 1, streams <= watches else { throw ValidationError("need 1 ≤ --streams ≤ --watches") }
        guard settle >= 0 else { throw ValidationError("--settle must not be negative") }
        guard rssKB(pid: serverPid) != nil else { throw ValidationError("cannot read VmRSS of pid \(serverPid)") }
    }

    func run() async throws {
        var result = BenchResult(
            scenario: "watch-memory", options: options,
            parameters: ["watches": String(watches), "streams": String(streams)])
        let settleTime = Duration.milliseconds(Int64(settle * 1000))
        let keys = KeyFactory(prefix: options.keyPrefix ?? "watchmem/", keySize: options.keySize, keySpaceSize: watches)
        func sample() async throws -> Int {
            try await Task.sleep(for: settleTime)
            guard let kb = rssKB(pid: serverPid) else { throw RequestFailure(description: "server \(serverPid) is gone") }
            return kb
        }
        let idle = try await sample()
        let client = try await EtcdClient.connect(options)
        var calls: [GRPCClientBidirectionalCall] = []
        var iterators: [AsyncThrowingStream<[UInt8], any Error>.AsyncIterator] = []
        var perStream = [Int](repeating: watches / streams, count: streams)
        for stream in 0..<(watches % streams) { perStream[stream] += 1 }
        var next = 0
        func create() -> [UInt8] {
            defer { next += 1 }
            return ProtoEncode.watchRequest(.create(WatchCreateRequest(key: keys.key(next))))
        }
        do {
            // Step 1: the streams, one watch each.
            for stream in 0..<streams {
                let call = client.connection(for: stream).openBidirectional(path: EtcdPath.watch)
                calls.append(call)
                iterators.append(call.responses.makeAsyncIterator())
                try await call.send(create())
                _ = try await expectCreated(&iterators[stream])
            }
            let withStreams = try await sample()
            // Step 2: the other watches, sent on every stream first, then their responses read.
            let begin = ContinuousClock.now
            for stream in 0..<streams {
                for _ in 1..<perStream[stream] { try await calls[stream].send(create()) }
            }
            for stream in 0..<streams {
                for _ in 1..<perStream[stream] { _ = try await expectCreated(&iterators[stream]) }
            }
            let openTime = ContinuousClock.now - begin
            let withWatches = try await sample()
            for call in calls { call.cancel() }
            await client.close()
            let afterClose = try await sample()
            let extraWatches = watches - streams
            result.succeeded = watches
            result.durationSeconds = openTime / .seconds(1)
            result.requestsPerSecond = result.durationSeconds > 0 ? Double(extraWatches) / result.durationSeconds : 0
            result.extra = [
                "watches": watches, "streams": streams, "rss_idle_kb": idle, "rss_streams_kb": withStreams,
                "rss_watches_kb": withWatches, "rss_after_cancel_kb": afterClose,
                "bytes_per_watch": (withWatches - idle) * 1024 / watches,
                "bytes_per_stream": (withStreams - idle) * 1024 / streams,
                "bytes_per_extra_watch": extraWatches > 0 ? (withWatches - withStreams) * 1024 / extraWatches : 0,
                "open_ms": milliseconds(openTime),
            ]
        } catch let error as ServiceNotAvailable {
            for call in calls { call.cancel() }
            await client.close()
            result.available = false
            result.reason = error.description
        }
        try finish(result, json: options.json)
    }
}

/// VmRSS of a process in kB, from /proc/PID/status.
func rssKB(pid: Int) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { Int($0) }
    }
    return nil
}
