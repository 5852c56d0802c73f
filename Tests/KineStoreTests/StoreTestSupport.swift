import Foundation
import KineCore
import KinePostgres
import KineSQL
import KineStore
import Logging
import Testing

/// Integration tests need `KINE_TEST_POSTGRES_URL` (scripts/test.sh sets it).
enum StoreTestDB {
    static let url = ProcessInfo.processInfo.environment["KINE_TEST_POSTGRES_URL"]
    static var enabled: Bool { url != nil }

    static var logger: Logger {
        var logger = Logger(label: "kine.store.tests")
        logger.logLevel = .warning
        return logger
    }

    /// A fresh database, its client, dropped afterwards.
    static func withDatabase<T>(_ body: (PostgresClient) async throws -> T) async throws -> T {
        let name = "kine_store_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        let configuration = try PostgresConfiguration(endpoint: url ?? "").with(database: name)
        _ = await PostgresClient.ensureDatabaseExists(configuration, logger: logger)
        let client = try await PostgresClient.connect(configuration: configuration, logger: logger, timeout: .seconds(30))
        do {
            let result = try await body(client)
            await client.shutdown()
            await drop(name)
            return result
        } catch {
            await client.shutdown()
            await drop(name)
            throw error
        }
    }

    /// Opens a store on `client` with its Writer running for the duration of `body`.
    static func withStore<T>(
        _ client: PostgresClient, configuration: KineStore.Configuration = .init(), _ body: (KineStore) async throws -> T
    ) async throws -> T {
        let store = try await KineStore.open(client: client, configuration: configuration, logger: logger)
        let writer = Task { await store.run() }
        defer {
            store.stop()
            writer.cancel()
        }
        return try await body(store)
    }

    /// Two stores on the database of `client`, each with its own connections, as two kine
    /// processes would be.
    static func withTwoProcesses<T>(_ client: PostgresClient, _ body: (KineStore, KineStore) async throws -> T) async throws -> T {
        let other = try await PostgresClient.connect(configuration: client.configuration, logger: logger)
        defer { Task { await other.shutdown() } }
        return try await withStore(client) { first in
            try await withStore(other) { second in try await body(first, second) }
        }
    }

    private static func drop(_ database: String) async {
        guard let admin = try? PostgresConfiguration(endpoint: url ?? ""),
            let client = try? await PostgresClient.connect(configuration: admin, logger: logger, timeout: .seconds(10))
        else { return }
        _ = try? await client.query("DROP DATABASE IF EXISTS \"\(database)\" WITH (FORCE)")
        await client.shutdown()
    }
}

func bytes(_ text: String) -> Bytes { Array(text.utf8) }
