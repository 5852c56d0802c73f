import ArgumentParser
import Foundation
import KineCore
import KinePostgres
import KineStore
import Logging

/// `kine restore SNAPSHOT.db`: an etcd 3.5 snapshot into an empty kine database.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Load an etcd 3.5 snapshot (etcdctl snapshot save) into an empty kine database.")

    @Argument(help: "The snapshot file.")
    var snapshot: String

    @Option(help: "The database to load it into (KINE_ENDPOINT); created if missing, refused if it holds data.")
    var endpoint: String?

    @Flag(help: "Load a file without the SHA-256 trailer etcdctl appends (a bare backend file).")
    var skipHashCheck = false

    func run() async throws {
        guard let file = FileManager.default.contents(atPath: snapshot) else {
            throw ValidationError("cannot read \(snapshot)")
        }
        let text = endpoint ?? ProcessInfo.processInfo.environment["KINE_ENDPOINT"] ?? ""
        var logger = Logger(label: "kine")
        logger.logLevel = .warning
        let database: PostgresConfiguration
        do {
            database = try PostgresConfiguration(endpoint: text)
        } catch {
            throw ValidationError("\(error)")
        }
        _ = await PostgresClient.ensureDatabaseExists(database, logger: logger)
        let client = try await PostgresClient.connect(configuration: database, options: .init(poolSize: 1), logger: logger)
        let summary: KineStore.RestoreSummary
        do {
            summary = try await KineStore.restore(snapshot: Array(file), into: client, skipHashCheck: skipHashCheck, logger: logger)
        } catch {
            await client.shutdown()
            throw ValidationError(error.message)
        }
        await client.shutdown()
        print("restored \(summary.changes) changes and \(summary.leases) leases; revision \(summary.revision), compacted at \(summary.compactRevision)")
    }
}
