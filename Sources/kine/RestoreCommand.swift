import ArgumentParser
import Foundation
import KineCore
import KineStore

/// `kine restore SNAPSHOT.db`: an etcd 3.5 snapshot into an empty kine database.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore", abstract: "Load an etcd 3.5 snapshot (etcdctl snapshot save) into an empty kine database.")

    @Argument(help: "The snapshot file.")
    var snapshot: String

    @OptionGroup var database: DatabaseOption

    @Flag(help: "Load a file without the SHA-256 trailer etcdctl appends (a bare backend file).")
    var skipHashCheck = false

    func run() async throws {
        guard let file = FileManager.default.contents(atPath: snapshot) else {
            throw ValidationError("cannot read \(snapshot)")
        }
        let summary = try await database.withClient(createDatabase: true) { client in
            do {
                return try await KineStore.restore(
                    snapshot: Array(file), into: client, skipHashCheck: skipHashCheck, logger: DatabaseOption.logger)
            } catch let error as EtcdError {
                throw ValidationError(error.message)
            }
        }
        print(
            "restored \(summary.changes) changes and \(summary.leases) leases; revision \(summary.revision), compacted at \(summary.compactRevision)"
        )
    }
}
