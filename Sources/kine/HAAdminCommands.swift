import ArgumentParser
import Foundation
import KineCore
import KineHTTP2
import KineProto
import KineServer
import Logging

/// The node's HA port, as `kine ha …` commands find it.
struct HAAddressOption: ParsableArguments {
    @Option(help: "The node's HA port, HOST:PORT (KINE_HA_LISTEN_ADDRESS). Default 127.0.0.1:2380.")
    var address: String?

    @Option(help: "With mutual TLS on the HA port: a certificate from its trusted CA, PEM (KINE_HA_CERT_FILE).")
    var haCertFile: String?
    @Option(help: "Its private key (KINE_HA_KEY_FILE).")
    var haKeyFile: String?
    @Option(help: "The CA the node's certificate comes from (KINE_HA_TRUSTED_CA_FILE).")
    var haTrustedCaFile: String?

    /// Calls `path` on the node and decodes its status answer.
    func call(_ path: String, _ request: [UInt8]) async throws -> HAStatus {
        let text = address ?? ProcessInfo.processInfo.environment["KINE_HA_LISTEN_ADDRESS"] ?? "127.0.0.1:2380"
        guard case .tcp(var host, let port) = try KineConfiguration.parseListenAddress(text) else {
            throw ValidationError("--address must be HOST:PORT")
        }
        if host == "0.0.0.0" { host = "127.0.0.1" }
        let environment = ProcessInfo.processInfo.environment
        let tls = try HAOptions.peerTLS(
            cert: haCertFile ?? environment["KINE_HA_CERT_FILE"], key: haKeyFile ?? environment["KINE_HA_KEY_FILE"],
            ca: haTrustedCaFile ?? environment["KINE_HA_TRUSTED_CA_FILE"])
        let connection: GRPCClientConnection
        do {
            connection = try await GRPCClientConnection.connect(host: host, port: port, connectTimeout: .seconds(3), tls: tls)
        } catch {
            throw ValidationError("cannot reach the node's HA port: \(describeConnectFailure(error, address: "\(host):\(port)"))")
        }
        do {
            let bytes = try await connection.unary(path: path, request: request, timeout: .seconds(30))
            await connection.close()
            return try ProtoDecode.haStatus(bytes)
        } catch let status as GRPCStatus {
            await connection.close()
            throw ValidationError(status.message.isEmpty ? "\(status)" : status.message)
        } catch {
            await connection.close()
            throw ValidationError("the HA port at \(host):\(port) answered badly: \(error)")
        }
    }
}

/// `kine ha pause --for 30m`: no automatic role change on either node until the pause ends
/// (by itself at its expiry, or with `kine ha resume`).
struct HAPauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause automatic promotion on both nodes (maintenance, upgrades).")

    @Option(name: .customLong("for"), help: "How long the pause lasts, e.g. 30m, 2h (it ends by itself).")
    var duration: String

    @OptionGroup var node: HAAddressOption

    func run() async throws {
        guard let length = ServeCommand.parseDuration(duration), length > .zero else { throw ValidationError("invalid --for \(duration)") }
        let until = Int64(Date().timeIntervalSince1970 * 1000) + length.wholeMilliseconds
        let status = try await node.call("/kine.ha.v1.Peer/Pause", ProtoEncode.haPauseRequest(HAPauseRequest(untilUnixMilliseconds: until)))
        let end = Date(timeIntervalSince1970: Double(status.pausedUntilUnixMilliseconds) / 1000)
        print("paused until \(ISO8601DateFormatter().string(from: end)) on \(status.node) (its peer adopts it at its next probe)")
    }
}

/// `kine ha resume`: ends the pause on both nodes.
struct HAResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "End a maintenance pause on both nodes.")

    @OptionGroup var node: HAAddressOption

    func run() async throws {
        let status = try await node.call("/kine.ha.v1.Peer/Pause", ProtoEncode.haPauseRequest(HAPauseRequest(untilUnixMilliseconds: 0)))
        print("resumed on \(status.node) (its peer adopts it at its next probe)")
    }
}

/// `kine ha handover`: a planned switchover with no acknowledged write lost.
struct HAHandoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handover",
        abstract: "Hand leadership to the follower: the leader stops taking writes, the follower catches up and takes over.")

    @Option(
        help:
            "Give up (the leader serves again) if the follower has not taken over within this, e.g. 10s. Default: the node's --ha-handover-timeout."
    )
    var timeout: String?

    @Flag(help: "Return once the handover started instead of waiting for the follower to lead.")
    var noWait = false

    @OptionGroup var node: HAAddressOption

    func run() async throws {
        var milliseconds: Int64 = 0
        if let timeout {
            guard let parsed = ServeCommand.parseDuration(timeout), parsed > .zero else {
                throw ValidationError("invalid --timeout \(timeout)")
            }
            milliseconds = parsed.wholeMilliseconds
        }
        let started = try await node.call(
            "/kine.ha.v1.Peer/Handover", ProtoEncode.haHandoverRequest(HAHandoverRequest(timeoutMilliseconds: milliseconds)))
        print("handover from \(started.node) started")
        guard !noWait else { return }
        let deadline = ContinuousClock.now + .milliseconds(milliseconds > 0 ? milliseconds : 60_000) + .seconds(5)
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            // try?: a node that does not answer one poll is polled again until the deadline.
            guard let status = try? await node.call("/kine.ha.v1.Peer/Status", ProtoEncode.haStatusRequest(HAStatusRequest())) else {
                continue
            }
            if status.leader != started.node && !status.leader.isEmpty && status.term > started.term {
                print("\(status.leader) leads at term \(status.term); \(status.node) is \(status.role)")
                return
            }
            if status.handoverTo.isEmpty && status.role.hasPrefix("leader") && status.term == started.term {
                throw ValidationError("the handover did not complete in time; \(status.node) leads again")
            }
        }
        throw ValidationError("no new leader reported in time; see kine ha status")
    }
}

/// `kine ha split-writes list|export`: what reunions saved of the losing side's writes.
struct HASplitWritesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "split-writes", abstract: "Show the writes a node lost in a reunion after a split (docs/ha.md).",
        subcommands: [List.self, Export.self])

    struct Database: ParsableArguments {
        @Option(help: "Either node's PostgreSQL (KINE_ENDPOINT): the saved writes are replicated to both.")
        var endpoint: String?

        func read() async throws -> [SplitWrite] {
            let endpoint = endpoint ?? ProcessInfo.processInfo.environment["KINE_ENDPOINT"] ?? ""
            var logger = Logger(label: "kine")
            logger.logLevel = .warning
            do {
                return try await SplitWrites.read(endpoint: endpoint, logger: logger)
            } catch {
                throw ValidationError("cannot read the split writes: \(error)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "One line per saved write.")
        @OptionGroup var database: Database
        @Flag(help: "JSON Lines, as export writes them.")
        var json = false

        func run() async throws {
            let rows = try await database.read()
            if json {
                for row in rows { print(row.jsonLine) }
                return
            }
            print("\(rows.count) saved split write\(rows.count == 1 ? "" : "s")")
            for row in rows {
                let value = String(decoding: row.value.prefix(60), as: UTF8.self).replacingOccurrences(of: "\n", with: "\\n")
                print(
                    "\(row.node)\t\(row.revision)\t\(row.deleted ? "DELETE" : "PUT")\t\(row.key)\t\(value)\(row.value.count > 60 ? "…" : "")\tlease=\(row.lease)"
                )
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export", abstract: "JSON Lines, values in base64 (for re-applying with etcdctl).")
        @OptionGroup var database: Database
        @Flag(help: "JSON Lines (the only format; accepted for scripts that ask for it).")
        var json = false

        func run() async throws {
            for row in try await database.read() { print(row.jsonLine) }
        }
    }
}
