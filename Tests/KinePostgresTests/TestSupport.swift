import Foundation
import KinePostgres
import KineSQL
import Logging
import Testing

enum TestDB {
    static let url = ProcessInfo.processInfo.environment["KINE_TEST_POSTGRES_URL"]
    static var enabled: Bool { url != nil }

    static var logger: Logger {
        var logger = Logger(label: "kine.postgres.tests")
        logger.logLevel = ProcessInfo.processInfo.environment["KINE_TEST_LOG"] == nil ? .warning : .trace
        return logger
    }

    static func configuration() throws -> PostgresConfiguration {
        try PostgresConfiguration(endpoint: url ?? "")
    }

    static func uniqueName(_ prefix: String) -> String {
        prefix + "_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
    }

    /// A client on the test server's database, shut down after `body`.
    static func withClient<T>(
        _ configuration: PostgresConfiguration? = nil,
        options: PostgresClient.Options = .init(),
        _ body: (PostgresClient) async throws -> T
    ) async throws -> T {
        let client = try await PostgresClient.connect(
            configuration: configuration ?? self.configuration(), options: options, logger: logger, timeout: .seconds(30))
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// A fresh database (dropped afterwards) and its configuration.
    static func withDatabase<T>(_ body: (PostgresConfiguration) async throws -> T) async throws -> T {
        let name = uniqueName("kine_test")
        let config = try configuration().with(database: name)
        let created = await PostgresClient.ensureDatabaseExists(config, logger: logger)
        #expect(created)
        do {
            let result = try await body(config)
            await drop(name)
            return result
        } catch {
            await drop(name)
            throw error
        }
    }

    static func drop(_ database: String) async {
        _ = try? await withClient { client in
            try await client.query("DROP DATABASE IF EXISTS \"\(database)\" WITH (FORCE)")
        }
    }

    /// A unique table `name (id int8 primary key, v text unique)`, dropped afterwards.
    static func withTable<T>(_ client: PostgresClient, _ body: (String) async throws -> T) async throws -> T {
        let table = uniqueName("t")
        _ = try await client.query("CREATE TABLE \(table) (id int8 PRIMARY KEY, v text CONSTRAINT \(table)_v_key UNIQUE)")
        do {
            let result = try await body(table)
            _ = try? await client.query("DROP TABLE \(table)")
            return result
        } catch {
            _ = try? await client.query("DROP TABLE \(table)")
            throw error
        }
    }
}
