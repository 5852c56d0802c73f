public import KineCore
import KineSQL
import Synchronization

/// etcd's alarms, kept in `kine_alarms` so every kine process on the database and both nodes of
/// an HA pair see the same ones. The Writer reads them under the write lock with each batch it
/// cannot take from the read cache (the cache path's guard steps aside while any is active),
/// so an alarm takes effect for every process with its next write.
extension KineStore {
    /// etcd's Alarm RPC. GET lists every alarm of the type asked for (NONE: all), whatever the
    /// member; ACTIVATE and DEACTIVATE answer the one member they changed (DEACTIVATE of an
    /// alarm that is not active answers none); ACTIVATE NONE does nothing. Changes take the write
    /// lock, so they fall between two group commits of every process.
    public func alarm(_ request: AlarmRequest) async throws(EtcdError) -> AlarmResponse {
        guard let action = AlarmRequest.Action(rawValue: request.action) else {
            throw EtcdError(.invalidArgument, "etcdserver: unknown alarm action \(request.action)")
        }
        guard let type = AlarmType(rawValue: request.alarm) else {
            // etcd 3.5 stores such an alarm and then panics; refuse it instead.
            throw EtcdError(.invalidArgument, "etcdserver: unknown alarm type \(request.alarm)")
        }
        let member = AlarmMember(memberID: request.memberID, alarm: request.alarm)
        switch action {
        case .get:
            var pipeline = SQLPipeline()
            let header = pipeline.add(StoreSQL.header)
            let alarms = pipeline.add(StoreSQL.alarms)
            let results = try await runSQL(pipeline)
            let listed = results[alarms].filter { type == .none || $0.alarm == type.rawValue }
            return AlarmResponse(header: ResponseHeader(revision: results[header].currentRevision), alarms: listed)
        case .activate:
            if type == .none { return AlarmResponse(header: ResponseHeader(revision: try await revisions().current)) }
            let revision = try await changeAlarms { pipeline in pipeline.add(StoreSQL.activateAlarm(member)) }
            return AlarmResponse(header: ResponseHeader(revision: revision), alarms: [member])
        case .deactivate:
            var removed: SQLSlot<Bool>?
            let results = try await changeAlarmsReturning { pipeline in removed = pipeline.add(StoreSQL.deactivateAlarm(member)) }
            let wasActive = removed.map { results.results[$0] } ?? false
            return AlarmResponse(header: ResponseHeader(revision: results.revision), alarms: wasActive ? [member] : [])
        }
    }

    /// Every active alarm (Status `errors`, `/health`).
    public func activeAlarms() async throws(EtcdError) -> [AlarmMember] {
        try await runSQL(StoreSQL.alarms)
    }

    /// Runs `change` under the write lock in a transaction of its own; answers the current revision.
    private func changeAlarms(_ change: (inout SQLPipeline) -> Void) async throws(EtcdError) -> Int64 {
        try await changeAlarmsReturning(change).revision
    }

    private func changeAlarmsReturning(
        _ change: (inout SQLPipeline) -> Void
    ) async throws(EtcdError) -> (results: SQLPipelineResults, revision: Int64) {
        var pipeline = SQLPipeline([StoreSQL.begin, StoreSQL.lock])
        change(&pipeline)
        let header = pipeline.add(StoreSQL.header)
        pipeline.add(StoreSQL.commit)
        do {
            let results = try await client.withSessionPipeline(pipeline)
            return (results, results[header].currentRevision)
        } catch {
            throw StoreError.etcdError(for: error)
        }
    }

    // MARK: Space quota

    /// etcd's quota check (`--quota-backend-bytes`), before a Put, a Txn or a LeaseGrant: when the
    /// database size last sampled plus what the request adds reaches the quota, NOSPACE is raised
    /// for this member and the request is refused, as etcd does at its quota. Every Txn is
    /// checked, read-only ones too, as in etcd.
    func checkQuota(cost: Int) async throws(EtcdError) {
        guard let quota = configuration.quota, quota.bytes > 0 else { return }
        let size = sampledDatabaseSize.withLock { $0 }
        guard size + Int64(cost) >= quota.bytes else { return }
        _ = try await changeAlarms { pipeline in
            pipeline.add(StoreSQL.activateAlarm(AlarmMember(memberID: quota.memberID, alarm: AlarmType.noSpace.rawValue)))
        }
        throw .noSpace
    }

    /// etcd's costs: 256 bytes plus key and value for a put, the larger branch's top-level puts
    /// for a txn, 64 for a lease grant.
    static func quotaCost(_ request: PutRequest) -> Int { 256 + request.key.count + request.value.count }

    static func quotaCost(_ txn: TxnRequest) -> Int {
        func cost(_ ops: [RequestOp]) -> Int {
            ops.reduce(0) { total, op in if case .put(let put) = op { total + quotaCost(put) } else { total } }
        }
        return max(cost(txn.success), cost(txn.failure))
    }

    static let leaseGrantCost = 64

    /// Samples the database size for the quota check while the store runs (etcd's check reads a
    /// size that also lags its commits a little).
    func sampleDatabaseSize(every interval: Duration) async {
        while !Task.isCancelled && !isStopped {
            // try?: a failed sample keeps the previous size; the next sample retries.
            if let size = try? await databaseSize() { sampledDatabaseSize.withLock { $0 = size } }
            // try?: cancellation ends the sampler; the loop checks it.
            try? await Task.sleep(for: interval)
        }
    }
}
