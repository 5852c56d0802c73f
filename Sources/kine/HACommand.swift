import ArgumentParser
import Foundation
import KineCore
import KineHTTP2
import KineProto
import KineServer

/// `kine ha …`: talks to a running node's HA port.
struct HACommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ha", abstract: "Two-node HA administration (docs/ha.md).",
        subcommands: [
            HAStatusCommand.self, HAPauseCommand.self, HAResumeCommand.self, HAHandoverCommand.self, HASplitWritesCommand.self,
        ])
}

/// `kine ha status`: both nodes as this node sees them: role, term, leader, mode, copy, lag, probes.
struct HAStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show this node's and its peer's HA state.")

    @OptionGroup var node: HAAddressOption

    @Flag(help: "Print one JSON object (for scripts).")
    var json = false

    func run() async throws {
        let status = try await node.call("/kine.ha.v1.Peer/Status", ProtoEncode.haStatusRequest(HAStatusRequest()))
        print(json ? HAStatusFormat.json(status) : HAStatusFormat.text(status))
    }
}

/// The two renderings of `kine ha status`.
enum HAStatusFormat {
    static func json(_ status: HAStatus) -> String {
        var object: [String: Any] = [
            "node": status.node, "role": status.role, "term": status.term, "leader": status.leader,
            "replication": status.replication, "syncActive": status.syncActive, "maxRevision": status.maxRevision,
            "highestServed": status.highestServed, "epochStart": status.epochStart, "subscription": status.subscription,
            "lagRevisions": status.lagRevisions, "postgresUp": status.postgresUp, "paused": status.paused,
            "localMaxID": status.localMaxID, "priority": status.priority, "clockUnixMs": status.clockUnixMilliseconds,
            "pausedUntilUnixMs": status.pausedUntilUnixMilliseconds, "reunionWinner": status.reunionWinner,
            "reunionForkID": status.reunionForkID, "witness": status.witness, "witnessLost": status.witnessLost,
            "handoverTo": status.handoverTo, "lastWriteUnixMs": status.lastWriteUnixMilliseconds, "serving": status.serving,
        ]
        if let peer = status.peer {
            object["peer"] =
                [
                    "node": peer.node, "rpcOK": peer.rpcOK, "sqlOK": peer.sqlOK, "role": peer.role, "term": peer.term,
                    "failedRounds": peer.failedRounds, "lastProbeUnixMs": peer.lastProbeUnixMilliseconds, "error": peer.error,
                ] as [String: Any]
        }
        // try?: the object holds only strings and numbers, which always serialize.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func text(_ status: HAStatus) -> String {
        var lines = [
            "node \(status.node): \(status.role), term \(status.term), leader \(status.leader.isEmpty ? "(none)" : status.leader)",
            "  replication \(status.replication)\(status.syncActive ? " (synchronous now)" : ""), revision \(status.maxRevision), "
                + "epoch start \(status.epochStart), highest served \(status.highestServed)",
            "  local PostgreSQL \(status.postgresUp ? "up" : "DOWN"), copy \(status.subscription), lag \(status.lagRevisions) revisions",
        ]
        if !status.serving { lines.append("  not serving clients now (bootstrapping, stepped down, or waiting for the leader's term)") }
        if status.paused {
            let end = Date(timeIntervalSince1970: Double(status.pausedUntilUnixMilliseconds) / 1000)
            lines.append("  PAUSED until \(ISO8601DateFormatter().string(from: end)): no automatic promotion")
        }
        if !status.handoverTo.isEmpty { lines.append("  handing over to \(status.handoverTo)") }
        if !status.reunionWinner.isEmpty {
            lines.append("  reunion after a split: \(status.reunionWinner) keeps leading (fork at id \(status.reunionForkID))")
        }
        if !status.witness.isEmpty { lines.append("  witness \(status.witness)\(status.witnessLost ? " (lost during the split)" : "")") }
        if let peer = status.peer {
            lines.append(
                "peer \(peer.node.isEmpty ? "(not yet seen)" : peer.node): \(peer.role.isEmpty ? "unknown" : peer.role), term \(peer.term)")
            lines.append("  last probe: HA port \(peer.rpcOK ? "ok" : "FAILED"), PostgreSQL \(peer.sqlOK ? "ok" : "FAILED")")
            if !peer.error.isEmpty { lines.append("  \(peer.error)") }
        }
        return lines.joined(separator: "\n")
    }
}
