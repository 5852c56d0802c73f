import KineSQL

/// The sole-writer lock (`SoleWriter`): a session-level advisory lock that a kine process alone
/// on its database holds exclusively on its Writer's session, and that every write transaction
/// of every kine process tries to take shared. While one process holds it, no other process can
/// commit a revision, so that process may answer linearizable reads from memory.
extension StoreSQL {
    /// "kinf": next to the write lock's "kine".
    static let soleWriterKey: Int64 = 0x6B69_6E66

    /// Tries to take the lock exclusively (false: another session holds it, shared or not).
    static let trySoleWriter = SQLQuery.firstRow(
        SQLStatement("SELECT pg_try_advisory_lock($1)", [.int64(soleWriterKey)], name: "w_sole_try")
    ) { $0?.bool(0) ?? false }

    /// The newest row id, read after the lock was taken: every commit of another process is at or
    /// below it, since later ones could not take the shared lock.
    static let newestIDNow = SQLQuery.scalar(SQLStatement("SELECT \(newestID)", name: "w_sole_newest"))

    static let releaseSoleWriter = SQLStatement("SELECT pg_advisory_unlock($1)", [.int64(soleWriterKey)], name: "w_sole_release")

    /// A round trip that shows the session (and with it the lock) is still there.
    static let confirmSoleWriter = SQLStatement("SELECT 1", name: "w_sole_confirm")

    /// A write transaction's admission: the lock taken shared until the transaction ends; false
    /// while another process holds it exclusively. (The holder's own session always gets it.)
    static let sharedSoleWriterCall = "pg_try_advisory_xact_lock_shared(\(soleWriterKey))"
    static let admitWrite = SQLQuery.firstRow(SQLStatement("SELECT \(sharedSoleWriterCall)", name: "w_sole_shared")) {
        $0?.bool(0) ?? false
    }

    /// Ends the session holding the lock exclusively (a holder that has not let go for
    /// `SoleWriter.holderPatience` while refused writers kept saying hello: frozen or cut off from
    /// its listener); answers how many sessions were ended.
    static let endSoleWriterHolder = SQLQuery.scalar(
        SQLStatement(
            """
            SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
            WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
            AND classid = ($1::int8 >> 32)::oid AND objid = ($1::int8 & 4294967295)::oid AND objsubid = 1 \
            AND mode = 'ExclusiveLock' AND granted AND pid <> pg_backend_pid()
            """, [.int64(soleWriterKey)], name: "w_sole_end_holder"))
}
