import KineCore
import KineSQL
import Logging

/// Creates or adopts the kine table (the DDL is in `StoreSQL+Schema.swift`).
enum Schema {
    /// Applies the DDL (idempotent) and returns whether `name` still has a non-byte collation.
    static func prepare(_ client: any SQLClient, migrationLevel: Int, logger: Logger) async throws(SQLError) -> Bool {
        // DDL under the writers' lock, so two processes starting together do not race.
        var pipeline = SQLPipeline([StoreSQL.begin, StoreSQL.lock] + StoreSQL.createTables)
        for migration in StoreSQL.migrations.prefix(max(0, migrationLevel)) {
            for statement in migration { pipeline.add(statement) }
        }
        let collationSlot = pipeline.add(StoreSQL.nameCollation)
        pipeline.add(StoreSQL.commit)
        let collation = try await client.withSessionPipeline(pipeline)[collationSlot]
        let legacy = collation != "C" && collation != "POSIX"
        if legacy {
            logger.warning(
                "kine.name does not use the C collation; queries add COLLATE \"C\" (slower). Set KINE_SCHEMA_MIGRATION=2 to migrate.")
        }
        return legacy
    }

    /// Go kine's bookkeeping rows and leases for its TTL keys (`StoreSQL.bookkeepingRows`).
    static func ensureBookkeepingRows(_ client: any SQLClient) async throws(SQLError) {
        _ = try await client.withSessionPipeline(
            SQLPipeline([StoreSQL.begin, StoreSQL.lock] + StoreSQL.bookkeepingRows + [StoreSQL.commit]))
    }
}

extension SQLClient {
    /// A pipeline that must run on one connection (it holds BEGIN…COMMIT).
    func withSessionPipeline(_ pipeline: SQLPipeline) async throws(SQLError) -> SQLPipelineResults {
        do {
            return try await withSession { session in try await session.run(pipeline) }
        } catch let error as SQLError {
            throw error
        } catch {
            throw SQLError(kind: .cancelled, message: "\(error)")
        }
    }
}
