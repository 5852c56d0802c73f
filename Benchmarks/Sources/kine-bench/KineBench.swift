import ArgumentParser
import Foundation
import KineCore

/// A load generator for etcd v3 servers (kine and etcd alike), modelled on etcd's tools/benchmark.
@main
struct KineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kine-bench",
        abstract: "Load generator for etcd v3 gRPC servers (kine, etcd).",
        discussion: """
            Every subcommand prints throughput and latency percentiles (HdrHistogram), or one JSON
            object with --json. A scenario whose service the server lacks (gRPC UNIMPLEMENTED) is
            reported as not available and exits with status 3.
            """,
        subcommands: [
            PutCommand.self, RangeCommand.self, TxnPutCommand.self, TxnMixedCommand.self, ListCommand.self,
            CASCommand.self, WatchLatencyCommand.self, WatchFanoutCommand.self, WatchMemoryCommand.self,
            LeaseKeepAliveCommand.self,
        ]
    )
}

/// Runs a scenario, prints its result, exits 3 when not available and 1 when every request failed.
func execute<S: Scenario>(_ scenario: S, _ options: CommonOptions, parameters: [String: String] = [:]) async throws {
    let result = try await Runner.run(scenario, options: options, parameters: parameters)
    try Report.print(result, json: options.json)
    if !result.available { throw ExitCode(3) }
    if result.succeeded == 0 { throw ExitCode(1) }
}

func keyFactory(_ options: CommonOptions, defaultPrefix: String) -> KeyFactory {
    KeyFactory(prefix: options.keyPrefix ?? defaultPrefix, keySize: options.keySize, keySpaceSize: options.keySpaceSize)
}

struct PutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Put requests.")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let scenario = PutScenario(
            options: options, keys: keyFactory(options, defaultPrefix: "put/"), value: makeValue(size: options.valSize))
        try await execute(scenario, options)
    }
}

struct RangeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "range", abstract: "Range requests for one key (or [key, end)); the key is written first.")
    @OptionGroup var options: CommonOptions
    @Argument(help: "Key to read (default: 'range/key').") var key: String = "range/key"
    @Argument(help: "Range end (default: none, a single key).") var end: String = ""
    @Option(help: "l (linearizable) or s (serializable).") var consistency: String = "l"
    @Option(help: "Range limit (0 = none).") var limit: Int64 = 0

    func validate() throws {
        guard consistency == "l" || consistency == "s" else { throw ValidationError("--consistency is l or s") }
    }

    func run() async throws {
        let scenario = RangeScenario(
            name: consistency == "s" ? "range-s" : "range-l", key: Array(key.utf8), rangeEnd: Array(end.utf8),
            limit: limit, serializable: consistency == "s", value: makeValue(size: options.valSize))
        try await execute(scenario, options, parameters: ["consistency": consistency])
    }
}

struct TxnPutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn-put", abstract: "Txn requests with no compare and --txn-ops Puts.")
    @OptionGroup var options: CommonOptions
    @Option(help: "Puts per transaction.") var txnOps: Int = 1

    func run() async throws {
        let scenario = TxnPutScenario(
            options: options, keys: keyFactory(options, defaultPrefix: "txn/"), value: makeValue(size: options.valSize),
            txnOps: max(1, txnOps))
        try await execute(scenario, options, parameters: ["txn-ops": String(txnOps)])
    }
}

struct TxnMixedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn-mixed", abstract: "Txn requests wrapping either one Range (over the prefix) or one Put.")
    @OptionGroup var options: CommonOptions
    @Option(help: "Reads per write.") var rwRatio: Double = 1
    @Option(help: "Limit of each Range.") var limit: Int64 = 1000
    @Option(help: "l or s (Range inside Txn is always linearizable on etcd; kept for parity).") var consistency: String = "l"
    @Option(help: "Keys written before the run (at most --key-space-size).") var prepopulate: Int = 1000

    func run() async throws {
        let scenario = TxnMixedScenario(
            options: options, keys: keyFactory(options, defaultPrefix: "mix/"), value: makeValue(size: options.valSize),
            readRatio: rwRatio / (rwRatio + 1), limit: limit, serializable: consistency == "s", prepopulate: prepopulate)
        try await execute(scenario, options, parameters: ["rw-ratio": String(rwRatio), "limit": String(limit)])
    }
}

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "kube-apiserver-style paginated LIST of a prefix; one operation = one page (limit + count).")
    @OptionGroup var options: CommonOptions
    @Option(help: "Keys under the prefix.") var listKeys: Int = 1000
    @Option(help: "Page size (Range limit).") var pageSize: Int64 = 500
    @Option(help: "The prefix listed.") var prefix: String = "/registry/bench/pods/default/"

    func run() async throws {
        let scenario = ListScenario(
            options: options, prefix: Array(prefix.utf8), keyCount: max(1, listKeys), pageSize: max(1, pageSize),
            value: makeValue(size: options.valSize))
        try await execute(
            scenario, options, parameters: ["list-keys": String(listKeys), "page-size": String(pageSize)])
    }
}

struct CASCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cas",
        abstract: "kube-apiserver updates: Txn(MOD(key) == rev → Put, else → Range) on each client's own keys.")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        let count = max(options.keySpaceSize, options.clients)
        let scenario = CASScenario(
            options: options, keys: KeyFactory(prefix: options.keyPrefix ?? "cas/", keySize: options.keySize, keySpaceSize: count),
            value: makeValue(size: options.valSize), keyCount: count, revisions: .init())
        try await execute(scenario, options)
    }
}

struct WatchLatencyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch-latency",
        abstract: "One watcher per client on its own key; latency from sending a Put to receiving its event.",
        discussion: """
            With --put-endpoints the Puts go to other servers than the watches (--endpoints): e.g. a second
            kine process on the same database, to measure delivery of another process's writes.
            """)
    @OptionGroup var options: CommonOptions
    @Option(help: "Send the Puts here (host:port[,…]) instead of --endpoints; the watches stay on --endpoints.")
    var putEndpoints: String?

    func validate() throws {
        if let putEndpoints {
            var putOptions = options
            putOptions.endpoints = putEndpoints
            _ = try putOptions.parsedEndpoints()
        }
    }

    func run() async throws {
        var putClient: EtcdClient?
        if let putEndpoints {
            var putOptions = options
            putOptions.endpoints = putEndpoints
            putClient = try await EtcdClient.connect(putOptions)
        }
        let scenario = WatchLatencyScenario(
            keys: KeyFactory(prefix: options.keyPrefix ?? "watch/", keySize: options.keySize, keySpaceSize: options.clients),
            value: makeValue(size: options.valSize), putClient: putClient)
        do {
            try await execute(scenario, options, parameters: putEndpoints.map { ["put-endpoints": $0] } ?? [:])
        } catch {
            await putClient?.close()
            throw error
        }
        await putClient?.close()
    }
}

struct LeaseKeepAliveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease-keepalive",
        abstract: "One lease per client, kept alive over a LeaseKeepAlive stream; one operation = one keep-alive.")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await execute(LeaseKeepAliveScenario(), options)
    }
}
