import Foundation
import KinePostgres
import KineSQL
public import Logging

/// One row a node wrote during a split that its reunion's winner did not have: saved on the
/// winner before the loser's copy was re-made (`kine_ha_split_writes`, replicated to both).
public struct SplitWrite: Sendable, Equatable {
    /// The node that wrote it (the reunion's loser).
    public var node: String
    /// The revision the loser's client was given.
    public var revision: Int64
    public var key: String
    public var value: [UInt8]
    /// A delete (the value is then the deleted value, as kine keeps it).
    public var deleted: Bool
    public var createRevision: Int64
    public var prevRevision: Int64
    public var lease: Int64
    /// The commit time on the loser (Unix ms; nil without `track_commit_timestamp`).
    public var committedUnixMilliseconds: Int64?
    public var savedUnixMilliseconds: Int64
    /// Where the two histories forked, the winner's term, and why the loser resynced.
    public var forkID: Int64
    public var leaderTerm: Int64
    public var reason: String

    /// One JSON object (`kine ha split-writes export`): the value in base64, times in Unix ms.
    public var jsonLine: String {
        var object: [String: Any] = [
            "node": node, "revision": revision, "key": key, "value": Data(value).base64EncodedString(), "deleted": deleted,
            "createRevision": createRevision, "prevRevision": prevRevision, "lease": lease, "savedUnixMs": savedUnixMilliseconds,
            "forkID": forkID, "leaderTerm": leaderTerm, "reason": reason,
        ]
        if let committedUnixMilliseconds { object["committedUnixMs"] = committedUnixMilliseconds }
        let data =
            // try?: the object holds only strings and numbers, which always serialize.
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

public enum SplitWrites {
    /// Every saved split write in the database at `endpoint` (either node's: the table is replicated).
    public static func read(endpoint: String, logger: Logger) async throws -> [SplitWrite] {
        let configuration = try PostgresConfiguration(endpoint: endpoint)
        let client = try await PostgresClient.connect(configuration: configuration, options: .init(poolSize: 1), logger: logger)
        do {
            let rows = try await read(client)
            await client.shutdown()
            return rows
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private static func read(_ client: PostgresClient) async throws -> [SplitWrite] {
        guard try await client.run(HASQL.splitWritesTableExists) else { return [] }
        return try await client.run(HASQL.listSplitWrites)
    }
}
