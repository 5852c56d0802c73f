import KineCore
import KineSQL

/// `kine_leases`, and the keys attached to leases.
extension StoreSQL {
    /// A new lease unless the id is taken or NOSPACE or CORRUPT is active; answers whether it was
    /// created.
    static func grantLease(id: Int64, ttl: Int64) -> SQLQuery<Bool> {
        SQLQuery(
            SQLStatement(
                """
                INSERT INTO kine_leases (id, ttl, expires_at) SELECT $1, $2, now() + make_interval(secs => $2::float8) \
                WHERE NOT EXISTS (SELECT 1 FROM kine_alarms WHERE alarm IN (1, 2)) ON CONFLICT (id) DO NOTHING
                """,
                [.int64(id), .int64(ttl)], name: "lease_grant")
        ) { $0.affectedRows == 1 }
    }

    /// A renewal is not worth an fsync: the renewals commit with `synchronous_commit = off`.
    static let beginRenewals = [
        SQLStatement("BEGIN", name: "lease_begin"), SQLStatement("SET LOCAL synchronous_commit = off", name: "lease_async"),
    ]
    static let commitRenewals = SQLStatement("COMMIT", name: "lease_commit")

    /// Renews the live leases among `ids` to their full TTL; answers the TTL of each one renewed.
    static func renewLeases(_ ids: [Int64]) -> SQLQuery<[Int64: Int64]> {
        SQLQuery(
            SQLStatement(
                "UPDATE kine_leases SET expires_at = now() + make_interval(secs => ttl::float8) WHERE id = ANY($1::int8[]) AND expires_at > now() RETURNING id, ttl",
                [.int64Array(ids)], name: "lease_keepalive")
        ) { result in
            Dictionary(result.rows.map { ($0.int64(0), $0.int64(1)) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Sets each lease's deadline to the database's now + the given time left, never earlier than
    /// it already is (another process may have renewed it since); answers the TTL of each lease
    /// still live. Renewals answered from memory are stored this way (`LeaseKeepAlives`).
    static func storeLeaseDeadlines(_ writes: [(id: Int64, remaining: Duration)]) -> SQLQuery<[Int64: Int64]> {
        SQLQuery(
            SQLStatement(
                """
                UPDATE kine_leases AS l SET expires_at = GREATEST(l.expires_at, now() + make_interval(secs => w.us::float8 / 1000000)) \
                FROM unnest($1::int8[], $2::int8[]) AS w(id, us) WHERE l.id = w.id AND l.expires_at > now() RETURNING l.id, l.ttl
                """,
                [.int64Array(writes.map(\.id)), .int64Array(writes.map { $0.remaining.wholeMicroseconds })], name: "lease_store_deadlines")
        ) { result in
            Dictionary(result.rows.map { ($0.int64(0), $0.int64(1)) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// The lease's granted TTL and whole seconds left; nil for an unknown lease.
    static func leaseRemaining(_ id: Int64) -> SQLQuery<LeaseRemaining?> {
        .firstRow(
            SQLStatement(
                "SELECT ttl, GREATEST(FLOOR(EXTRACT(EPOCH FROM expires_at - now())), 0)::int8 FROM kine_leases WHERE id = $1",
                [.int64(id)], name: "lease_ttl")
        ) { row in row.map { LeaseRemaining(grantedTTL: $0.int64(0), remaining: $0.int64(1)) } }
    }

    /// The client keys whose latest version is live and attached to lease `id`, in key order.
    static func keysOfLease(_ id: Int64) -> SQLQuery<[Bytes]> {
        SQLQuery(
            SQLStatement(
                """
                SELECT name FROM (SELECT DISTINCT ON (name) name, deleted, kv_lease FROM kine WHERE name IN \
                (SELECT name FROM kine WHERE kv_lease = $1) ORDER BY name, id DESC) AS kv \
                WHERE kv.deleted = 0 AND kv.kv_lease = $1 ORDER BY kv.name
                """, [.int64(id)], name: "lease_keys")
        ) { result in result.rows.map { KeyMapping.clientKey(forName: $0.bytes(0)) } }
    }

    static let leaseIDs = SQLQuery(SQLStatement("SELECT id FROM kine_leases ORDER BY id", name: "lease_list")) { result in
        result.rows.map { $0.int64(0) }
    }

    /// Whether any lease's deadline has passed.
    static let anyLeaseDue = SQLQuery(SQLStatement("SELECT 1 FROM kine_leases WHERE expires_at <= now() LIMIT 1", name: "lease_due")) {
        !$0.rows.isEmpty
    }

    static let leaseCount = SQLQuery.scalar(SQLStatement("SELECT count(*) FROM kine_leases", name: "lease_count"))

    /// Leases a write batch refers to and, if `includeExpired`, every expired lease.
    static func leases(_ ids: [Int64], includeExpired: Bool) -> SQLQuery<[LeaseRow]> {
        SQLQuery(
            SQLStatement(
                "SELECT id, ttl, expires_at <= now() FROM kine_leases WHERE id = ANY($1::int8[]) OR ($2::bool AND expires_at <= now())",
                [.int64Array(ids), .bool(includeExpired)], name: "w_leases")
        ) { result in
            result.rows.map { LeaseRow(id: $0.int64(0), ttl: $0.int64(1), expired: $0.bool(2)) }
        }
    }

    /// Live keys attached to the leases `ids` or, if `includeExpired`, to any expired lease. The
    /// lease ids are computed once (an InitPlan array), so `kine_kv_lease_index` finds the rows.
    static func leasedKeys(_ ids: [Int64], includeExpired: Bool) -> SQLQuery<[StoredRow]> {
        storedRows(
            SQLStatement(
                """
                SELECT \(rowColumns()) FROM (SELECT DISTINCT name FROM kine WHERE kv_lease = ANY(ARRAY( \
                SELECT id FROM kine_leases WHERE id = ANY($1::int8[]) OR ($2::bool AND expires_at <= now())))) AS n \
                CROSS JOIN LATERAL (SELECT \(innerColumns) FROM kine WHERE kine.name = n.name ORDER BY id DESC LIMIT 1) AS kv \
                WHERE kv.deleted = 0 AND kv.kv_lease IS NOT NULL
                """, [.int64Array(ids), .bool(includeExpired)], name: "w_leased_keys"))
    }

    static func deleteLeases(_ ids: [Int64]) -> SQLStatement {
        SQLStatement("DELETE FROM kine_leases WHERE id = ANY($1::int8[])", [.int64Array(ids)], name: "w_delete_leases")
    }
}
