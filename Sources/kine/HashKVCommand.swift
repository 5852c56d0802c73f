import ArgumentParser
import Foundation
import KineCore
import KinePostgres
import KineStore
import Logging

/// `kine hashkv`: etcd's HashKV computed straight from a database, reading only, so the two
/// copies of an HA pair can be compared (docs/ha.md).
struct HashKVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hashkv", abstract: "Print etcd's HashKV of the kine table in a PostgreSQL database (reads only).")

    @Option(help: "The database (KINE_ENDPOINT), e.g. postgres://kine@nodeB/kine.")
    var endpoint: String?

    @Option(help: "The revision to hash up to; 0, the default, is the current revision.")
    var rev: Int64 = 0

    @Flag(help: "Print the HashKV response as JSON.")
    var json = false

    func run() async throws {
        let text = endpoint ?? ProcessInfo.processInfo.environment["KINE_ENDPOINT"] ?? ""
        var logger = Logger(label: "kine")
        logger.logLevel = .warning
        let database: PostgresConfiguration
        do {
            database = try PostgresConfiguration(endpoint: text)
        } catch {
            throw ValidationError("\(error)")
        }
        let client = try await PostgresClient.connect(configuration: database, options: .init(poolSize: 1), logger: logger)
        let response: HashKVResponse
        do {
            response = try await KineStore.hashKV(client: client, revision: rev)
        } catch {
            await client.shutdown()
            throw ValidationError(error.message)
        }
        await client.shutdown()
        if json {
            print(#"{"hash":\#(response.hash),"compact_revision":\#(response.compactRevision),"hash_revision":\#(response.hashRevision),"revision":\#(response.header.revision)}"#)
        } else {
            print("\(database.host ?? "local")/\(database.database), \(response.hash) (rev \(response.hashRevision))")
        }
    }
}
