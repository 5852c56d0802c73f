import KineSQL

/// What `kine restore` writes besides the rows (`StoreSQL.insert`).
extension StoreSQL {
    /// Rows and leases already in the database (a restore needs both at 0).
    static let tableCounts = SQLQuery.firstRow(
        SQLStatement(
            "SELECT (SELECT count(*) FROM kine), (SELECT count(*) FROM kine_leases)", name: "restore_counts")
    ) { row in
        (rows: row?.int64(0) ?? 0, leases: row?.int64(1) ?? 0)
    }

    /// Go kine's `compact_rev_key` row holding the compacted revision, at id 0 so it takes no
    /// revision of etcd's.
    static func compactMarkRow(compactRevision: Int64) -> SQLStatement {
        SQLStatement(
            """
            INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value, kv_version) \
            VALUES (0, 'compact_rev_key', 1, 0, 0, $1, 0, ''::bytea, NULL, 1)
            """, [.int64(compactRevision)], name: "restore_compact_mark")
    }

    /// A lease restored with its full TTL from now, as etcd restarts lease deadlines.
    static func restoreLease(id: Int64, ttl: Int64) -> SQLStatement {
        SQLStatement(
            "INSERT INTO kine_leases (id, ttl, expires_at) VALUES ($1, $2, now() + make_interval(secs => $2::float8))",
            [.int64(id), .int64(ttl)], name: "restore_lease")
    }
}
