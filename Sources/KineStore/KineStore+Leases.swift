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
        try await checkQuota(cost: Self.leaseGrantCost)
        let ttl = max(request.ttl, Self.minLeaseTTL)
        while true {
            // etcd picks a random positive 63-bit id when none is given.
            let id = request.id != 0 ? request.id : Int64.random(in: 1...Int64.max)
            var pipeline = SQLPipeline()
            let sentAt = ContinuousClock.now
            let granted = pipeline.add(StoreSQL.grantLease(id: id, ttl: ttl))
            // Read after the insert, so an alarm that kept the insert out is seen.
            let alarms = pipeline.add(StoreSQL.alarmState)
            let header = pipeline.add(StoreSQL.header)
            let results = try await runSQL(pipeline)
            if !results[granted] {
                // The insert is conditional on no NOSPACE or CORRUPT alarm (etcd refuses it then).
                if results[alarms].corrupt { throw .corrupt }
                if results[alarms].noSpace { throw .noSpace }
            }
            if results[granted] {
                keepAlives.granted(id, ttl: ttl, sentAt: sentAt)
                statistics.count { $0.leasesGranted += 1 }
                return LeaseGrantResponse(header: ResponseHeader(revision: results[header].currentRevision), id: id, ttl: ttl)
            }
            if request.id != 0 { throw .leaseExists }
        }
    }

    public func leaseRevoke(_ request: LeaseRevokeRequest, authorize: Authorization? = nil) async throws(EtcdError) -> LeaseRevokeResponse {
        var authGeneration: UInt64?
        if let authorize {
            let state = try await auth.current()
            try authorize(state)
            authGeneration = state.generation
        }
        guard case .leaseRevoked(let response) = try await writer(.revokeLease(request.id), authGeneration: authGeneration) else {
            throw Self.mismatch
        }
        keepAlives.forget([request.id])
        statistics.count { $0.leasesRevoked += 1 }
        return response
    }

    /// Renews the lease to its full TTL; an unknown or expired lease answers TTL 0. A lease
    /// this process renewed or granted lately is renewed in memory and stored soon after
    /// (`LeaseKeepAlives`).
    public func leaseKeepAlive(_ request: LeaseKeepAliveRequest) async throws(EtcdError) -> LeaseKeepAliveResponse {
        do {
            return try await keepAlives.renew(request.id)
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }

    /// Remaining whole seconds and the granted TTL; an unknown lease answers TTL -1.
    public func leaseTimeToLive(_ request: LeaseTimeToLiveRequest) async throws(EtcdError) -> LeaseTimeToLiveResponse {
        // Renewals answered from memory first, so the time left is the one they promised.
        await keepAlives.writeRenewals(all: true)
        var pipeline = SQLPipeline()
        let headerSlot = pipeline.add(StoreSQL.header)
        let remaining = pipeline.add(StoreSQL.leaseRemaining(request.id))
        let keysSlot = request.keys ? pipeline.add(StoreSQL.keysOfLease(request.id)) : nil
        let results = try await runSQL(pipeline)
        let header = ResponseHeader(revision: results[headerSlot].currentRevision)
        guard let lease = results[remaining] else {
            return LeaseTimeToLiveResponse(header: header, id: request.id, ttl: -1)
        }
        let keys = keysSlot.map { results[$0] } ?? []
        return LeaseTimeToLiveResponse(header: header, id: request.id, ttl: lease.remaining, grantedTTL: lease.grantedTTL, keys: keys)
    }

    public func leaseLeases() async throws(EtcdError) -> LeaseLeasesResponse {
        var pipeline = SQLPipeline()
        let header = pipeline.add(StoreSQL.header)
        let ids = pipeline.add(StoreSQL.leaseIDs)
        let results = try await runSQL(pipeline)
        return LeaseLeasesResponse(header: ResponseHeader(revision: results[header].currentRevision), leaseIDs: results[ids])
    }

    /// Revokes leases whose deadline passed; returns their ids. Cheap when none did.
    @discardableResult
    public func expireLeases() async throws(EtcdError) -> [Int64] {
        guard try await runSQL(StoreSQL.anyLeaseDue) else { return [] }
        guard case .leasesExpired(let ids) = try await submit(.expireLeases) else { throw Self.mismatch }
        keepAlives.forget(ids)
        statistics.count { $0.leasesExpired += ids.count }
        return ids
    }
}
