import ArgumentParser
import KineCore
import KinePostgres
import KineStore

/// `kine hashkv`: etcd's HashKV computed straight from a database, reading only, so the two
/// copies of an HA pair can be compared (docs/ha.md).
struct HashKVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hashkv", abstract: "Print etcd's HashKV of the kine table in a PostgreSQL database (reads only).")

    @OptionGroup var database: DatabaseOption

    @Option(help: "The revision to hash up to; 0, the default, is the current revision.")
    var rev: Int64 = 0

    @Flag(help: "Print the HashKV response as JSON.")
    var json = false

    func run() async throws {
        let response = try await database.withClient { client in
            do {
                return try await KineStore.hashKV(client: client, revision: rev)
            } catch let error as EtcdError {
                throw ValidationError(error.message)
            }
        }
        if json {
            print(
                #"{"hash":\#(response.hash),"compact_revision":\#(response.compactRevision),"hash_revision":\#(response.hashRevision),"revision":\#(response.header.revision)}"#
            )
        } else {
            let target = try database.configuration
            print("\(target.host ?? "local")/\(target.database), \(response.hash) (rev \(response.hashRevision))")
        }
    }
}
