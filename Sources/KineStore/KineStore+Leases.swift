public import KineCore
import KineSQL

/// etcd leases, kept in `kine_leases` with deadlines in the database's clock, so they survive
/// restarts and every process sees the same expiry. Revocation and expiry go through the Writer:
/// the keys are deleted in one revision under the write lock, so however many processes share the
/// database, each lease is expired exactly once.
extension KineStore {
    /// etcd's largest TTL (`lease.MaxLeaseTTL`).
    static let maxLeaseTTL: Int64 = 9_000_000_000
    /// etcd's smallest TTL with default election settings: ceil(1.5 × 1 s election timeout).
    static let minLeaseTTL: Int64 = 2

    public func leaseGrant(_ request: LeaseGrantRequest) async throws(EtcdError) -> LeaseGrantResponse {
        if request.ttl > Self.maxLeaseTTL { throw .leaseTTLTooLarge }
        let ttl = max(request.ttl, Self.minLeaseTTL)
        while true {
            // etcd picks a random positive 63-bit id when none is given.
            let id = request.id != 0 ? request.id : Int64.random(in: 1...Int64.max)
            let results = try await runSQL([
                SQLStatement(
                    "INSERT INTO kine_leases (id, ttl, expires_at) VALUES ($1, $2, now() + make_interval(secs => $2::float8)) ON CONFLICT (id) DO NOTHING",
                    [.int64(id), .int64(ttl)], name: "lease_grant"),
                StoreSQL.headerStatement,
            ])
            let revision = results[1].rows.first?.int64(0) ?? 0
            if results[0].affectedRows == 1 {
                statistics.count { $0.leasesGranted += 1 }
                return LeaseGrantResponse(header: ResponseHeader(revision: revision), id: id, ttl: ttl)
            }
            if request.id != 0 { throw .leaseExists }
        }
    }

    public func leaseRevoke(_ request: LeaseRevokeRequest) async throws(EtcdError) -> LeaseRevokeResponse {
        guard case .leaseRevoked(let response) = try await submit(.revokeLease(request.id)) else { throw Self.mismatch }
        statistics.count { $0.leasesRevoked += 1 }
        return response
    }

    /// Renews the lease to its full TTL; an unknown or expired lease answers TTL 0. Renewals
    /// arriving together are made by one statement (`keepAlives`).
    public func leaseKeepAlive(_ request: LeaseKeepAliveRequest) async throws(EtcdError) -> LeaseKeepAliveResponse {
        do {
            return try await keepAlives.submit(request.id)
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }

    /// One round of renewals. A renewal is not worth an fsync: it commits with
    /// `synchronous_commit = off` (etcd keeps renewals in memory only). A crash can lose the
    /// renewals of the final few hundred milliseconds; clients renew every TTL/3, so a live
    /// client's lease survives that.
    static func renew(_ ids: [Int64], client: any SQLClient) async throws(SQLError) -> [LeaseKeepAliveResponse] {
        let results = try await client.pipeline([
            SQLStatement("BEGIN", name: "lease_begin"),
            SQLStatement("SET LOCAL synchronous_commit = off", name: "lease_async"),
            StoreSQL.headerStatement,
            SQLStatement(
                "UPDATE kine_leases SET expires_at = now() + make_interval(secs => ttl::float8) WHERE id = ANY($1::int8[]) AND expires_at > now() RETURNING id, ttl",
                [.int64Array(ids)], name: "lease_keepalive"),
            SQLStatement("COMMIT", name: "lease_commit"),
        ])
        let header = ResponseHeader(revision: results[2].rows.first?.int64(0) ?? 0)
        var ttls: [Int64: Int64] = [:]
        for row in results[3].rows { ttls[row.int64(0)] = row.int64(1) }
        return ids.map { LeaseKeepAliveResponse(header: header, id: $0, ttl: ttls[$0] ?? 0) }
    }

    /// Remaining whole seconds and the granted TTL; an unknown lease answers TTL -1.
    public func leaseTimeToLive(_ request: LeaseTimeToLiveRequest) async throws(EtcdError) -> LeaseTimeToLiveResponse {
        var statements = [
            StoreSQL.headerStatement,
            SQLStatement(
                "SELECT ttl, GREATEST(FLOOR(EXTRACT(EPOCH FROM expires_at - now())), 0)::int8 FROM kine_leases WHERE id = $1",
                [.int64(request.id)], name: "lease_ttl"),
        ]
        if request.keys {
            statements.append(SQLStatement("""
                SELECT name FROM (SELECT DISTINCT ON (name) name, deleted, kv_lease FROM kine WHERE name IN \
                (SELECT name FROM kine WHERE kv_lease = $1) ORDER BY name, id DESC) AS kv \
                WHERE kv.deleted = 0 AND kv.kv_lease = $1 ORDER BY kv.name
                """, [.int64(request.id)], name: "lease_keys"))
        }
        let results = try await runSQL(statements)
        let header = ResponseHeader(revision: results[0].rows.first?.int64(0) ?? 0)
        guard let lease = results[1].rows.first else {
            return LeaseTimeToLiveResponse(header: header, id: request.id, ttl: -1)
        }
        let keys = request.keys ? results[2].rows.map { KeyMapping.clientKey(forName: $0.bytes(0)) } : []
        return LeaseTimeToLiveResponse(header: header, id: request.id, ttl: lease.int64(1), grantedTTL: lease.int64(0), keys: keys)
    }

    public func leaseLeases() async throws(EtcdError) -> LeaseLeasesResponse {
        let results = try await runSQL([
            StoreSQL.headerStatement,
            SQLStatement("SELECT id FROM kine_leases ORDER BY id", name: "lease_list"),
        ])
        return LeaseLeasesResponse(header: ResponseHeader(revision: results[0].rows.first?.int64(0) ?? 0), leaseIDs: results[1].rows.map { $0.int64(0) })
    }

    /// Revokes leases whose deadline passed; returns their ids. Cheap when none did.
    @discardableResult
    public func expireLeases() async throws(EtcdError) -> [Int64] {
        let due = try await runSQL([SQLStatement("SELECT 1 FROM kine_leases WHERE expires_at <= now() LIMIT 1", name: "lease_due")])
        guard !due[0].rows.isEmpty else { return [] }
        guard case .leasesExpired(let ids) = try await submit(.expireLeases) else { throw Self.mismatch }
        statistics.count { $0.leasesExpired += ids.count }
        return ids
    }
}
