import KineSQL

/// What `/metrics` and Status read about the table itself.
extension StoreSQL {
    /// Bytes the kine table uses on disk, indexes included (etcd Status `dbSize`).
    static let databaseSize = SQLQuery.scalar(SQLStatement("SELECT pg_total_relation_size('kine')", name: "db_size"))
}
