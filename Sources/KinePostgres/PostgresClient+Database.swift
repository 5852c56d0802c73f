import Foundation
import KineSQL
import KineSync
public import Logging

extension PostgresClient {
    /// Creates the configuration's database if it does not exist, as Go kine does before opening:
    /// connects to database `postgres` on the same server, checks
    /// `SELECT 1 FROM pg_database WHERE datname = $1`, and issues `CREATE DATABASE "<name>"`.
    /// Failures are logged as warnings, never thrown. Returns true if it created the database.
    /// Runs on a short-lived thread of its own (libpq blocks).
    @discardableResult
    public static func ensureDatabaseExists(_ configuration: PostgresConfiguration, logger: Logger) async -> Bool {
        await Completion<Bool>.wait { done in
            let thread = Thread {
                done.complete(ensureDatabaseExistsBlocking(configuration, logger: logger))
            }
            thread.name = "kine-pg-bootstrap"
            thread.start()
        }
    }

    private static func ensureDatabaseExistsBlocking(_ configuration: PostgresConfiguration, logger: Logger) -> Bool {
        let name = configuration.database
        let metadata = Logger.Metadata([.database: "\(name)", .target: "\(configuration.with(database: "postgres"))"])
        let connection: PGConnection
        switch PGConnection.open(configuration.with(database: "postgres"), generation: 0, pipelined: false, logger: logger) {
        case .success(let opened): connection = opened
        case .failure(let error):
            logger.warning(
                "cannot check database exists", metadata: metadata.merging([PostgresMetadataKey.error.rawValue: "\(error.message)"]) { $1 })
            return false
        }
        defer { connection.close() }
        switch connection.exec("SELECT 1 FROM pg_database WHERE datname = $1", [.text(name)]) {
        case .success(let result) where !result.rows.isEmpty:
            return false
        case .success:
            break
        case .failure(let error):
            logger.warning(
                "cannot check database exists", metadata: metadata.merging([PostgresMetadataKey.error.rawValue: "\(error.message)"]) { $1 })
            return false
        }
        switch connection.exec("CREATE DATABASE " + quoteIdentifier(name)) {
        case .success:
            logger.info("created database", metadata: metadata)
            return true
        case .failure(let error) where error.sqlState == "42P04" || error.sqlState == "23505":
            // Created concurrently by another process.
            return false
        case .failure(let error):
            logger.warning(
                "cannot create database", metadata: metadata.merging([PostgresMetadataKey.error.rawValue: "\(error.message)"]) { $1 })
            return false
        }
    }
}
