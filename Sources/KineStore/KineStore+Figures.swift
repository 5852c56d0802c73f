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
    /// Bytes the kine table uses on disk, indexes included (etcd Status `dbSize`).
    public func databaseSize() async throws(EtcdError) -> Int64 {
        try await runSQL(StoreSQL.databaseSize)
    }

    public func storageFigures() async throws(EtcdError) -> StorageFigures {
        var pipeline = SQLPipeline()
        let header = pipeline.add(StoreSQL.header)
        let size = pipeline.add(StoreSQL.databaseSize)
        let leases = pipeline.add(StoreSQL.leaseCount)
        let results = try await runSQL(pipeline)
        return StorageFigures(
            currentRevision: results[header].currentRevision, compactRevision: results[header].compactRevision,
            databaseSize: results[size], leases: results[leases])
    }
}
