public import KineCore
import KineSQL

/// What `/metrics` reads from the database when scraped, in one round trip.
public struct StorageFigures: Sendable, Equatable {
    public var currentRevision: Int64
    public var compactRevision: Int64
    /// Bytes the kine table uses on disk, indexes included (etcd's `dbSize`).
    public var databaseSize: Int64
    /// Leases granted and not yet revoked or expired.
    public var leases: Int64

    public init(currentRevision: Int64, compactRevision: Int64, databaseSize: Int64, leases: Int64) {
        self.currentRevision = currentRevision
        self.compactRevision = compactRevision
        self.databaseSize = databaseSize
        self.leases = leases
    }
}

extension KineStore {
    static let databaseSizeStatement = SQLStatement("SELECT pg_total_relation_size('kine')", name: "db_size")

    /// Bytes the kine table uses on disk, indexes included (etcd Status `dbSize`).
    public func databaseSize() async throws(EtcdError) -> Int64 {
        try await runSQL([Self.databaseSizeStatement])[0].rows.first?.int64(0) ?? 0
    }

    public func storageFigures() async throws(EtcdError) -> StorageFigures {
        let results = try await runSQL([
            StoreSQL.headerStatement, Self.databaseSizeStatement, SQLStatement("SELECT count(*) FROM kine_leases", name: "lease_count"),
        ])
        let header = results[0].rows.first
        return StorageFigures(
            currentRevision: header?.int64(0) ?? 0, compactRevision: header?.int64(1) ?? 0,
            databaseSize: results[1].rows.first?.int64(0) ?? 0, leases: results[2].rows.first?.int64(0) ?? 0)
    }
}
