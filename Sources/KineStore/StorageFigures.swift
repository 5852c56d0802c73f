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
