import ArgumentParser
import Foundation
import KinePostgres
import Logging

/// `--endpoint` for the commands that work on a database directly (`kine hashkv`, `kine restore`):
/// Go kine's flag and `KINE_ENDPOINT`, a quiet logger, one connection.
struct DatabaseOption: ParsableArguments {
    @Option(help: "The PostgreSQL database (KINE_ENDPOINT), e.g. postgres://kine@nodeB/kine.")
    var endpoint: String?

    var configuration: PostgresConfiguration {
        get throws {
            do {
                return try PostgresConfiguration(endpoint: endpoint ?? ProcessInfo.processInfo.environment["KINE_ENDPOINT"] ?? "")
            } catch {
                throw ValidationError("\(error)")
            }
        }
    }

    static var logger: Logger {
        var logger = Logger(label: "kine")
        logger.logLevel = .warning
        return logger
    }

    /// Runs `body` with a client of the database, shut down afterwards whatever happens.
    func withClient<T>(createDatabase: Bool = false, _ body: (PostgresClient) async throws -> T) async throws -> T {
        let database = try configuration
        if createDatabase { _ = await PostgresClient.ensureDatabaseExists(database, logger: Self.logger) }
        let client = try await PostgresClient.connect(configuration: database, options: .init(poolSize: 1), logger: Self.logger)
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }
}
