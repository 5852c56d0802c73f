public import KineCore
import KineSQL

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
        // Abandonable: a scrape gives up on a database that does not answer (HTTPEndpoints).
        let results = try await reader.runAbandonable(pipeline)
        return StorageFigures(
            currentRevision: results[header].currentRevision, compactRevision: results[header].compactRevision,
            databaseSize: results[size], leases: results[leases])
    }
}
