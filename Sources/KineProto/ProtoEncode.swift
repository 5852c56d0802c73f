internal import CEtcdProto
internal import CProtobufC
public import KineCore

/// KineCore values → protobuf bytes, for every response the server sends (and, in
/// `ProtoEncode+Requests.swift`, every request our client sends).
///
/// Each encoder builds the C message in one `Arena` sized from the value, packs it into a single
/// exactly-sized array and frees the arena: a 500-key RangeResponse costs a handful of
/// allocations, not one per field.
public enum ProtoEncode {}

// MARK: - KV responses

extension ProtoEncode {
    public static func rangeResponse(_ response: RangeResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__range_response__get_packed_size, etcdserverpb__range_response__pack
        ) { response.toC(&$0) }
    }

    public static func putResponse(_ response: PutResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__put_response__get_packed_size, etcdserverpb__put_response__pack
        ) { response.toC(&$0) }
    }

    public static func deleteRangeResponse(_ response: DeleteRangeResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__delete_range_response__get_packed_size,
            etcdserverpb__delete_range_response__pack
        ) { response.toC(&$0) }
    }

    public static func txnResponse(_ response: TxnResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__txn_response__get_packed_size, etcdserverpb__txn_response__pack
        ) { response.toC(&$0) }
    }

    public static func compactionResponse(_ response: CompactionResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 256, etcdserverpb__compaction_response__get_packed_size, etcdserverpb__compaction_response__pack
        ) { response.toC(&$0) }
    }
}

// MARK: - Watch and Lease responses

extension ProtoEncode {
    public static func watchResponse(_ response: WatchResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__watch_response__get_packed_size, etcdserverpb__watch_response__pack
        ) { response.toC(&$0) }
    }

    public static func leaseGrantResponse(_ response: LeaseGrantResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 256 + response.error.utf8.count, etcdserverpb__lease_grant_response__get_packed_size,
            etcdserverpb__lease_grant_response__pack
        ) { response.toC(&$0) }
    }

    public static func leaseRevokeResponse(_ response: LeaseRevokeResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 256, etcdserverpb__lease_revoke_response__get_packed_size, etcdserverpb__lease_revoke_response__pack
        ) { response.toC(&$0) }
    }

    public static func leaseKeepAliveResponse(_ response: LeaseKeepAliveResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 256, etcdserverpb__lease_keep_alive_response__get_packed_size,
            etcdserverpb__lease_keep_alive_response__pack
        ) { response.toC(&$0) }
    }

    public static func leaseTimeToLiveResponse(_ response: LeaseTimeToLiveResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__lease_time_to_live_response__get_packed_size,
            etcdserverpb__lease_time_to_live_response__pack
        ) { response.toC(&$0) }
    }

    public static func leaseLeasesResponse(_ response: LeaseLeasesResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.arenaEstimate, etcdserverpb__lease_leases_response__get_packed_size,
            etcdserverpb__lease_leases_response__pack
        ) { response.toC(&$0) }
    }
}

// MARK: - Maintenance, Cluster and Health responses

extension ProtoEncode {
    public static func statusResponse(_ response: StatusResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 1024, etcdserverpb__status_response__get_packed_size, etcdserverpb__status_response__pack
        ) { response.toC(&$0) }
    }

    public static func alarmResponse(_ response: AlarmResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 256 + response.alarms.count * 64, etcdserverpb__alarm_response__get_packed_size,
            etcdserverpb__alarm_response__pack
        ) { response.toC(&$0) }
    }

    /// `DefragmentResponse` carries only a header.
    public static func defragmentResponse(header: ResponseHeader) -> [UInt8] {
        CMessage.encode(
            capacity: 256, etcdserverpb__defragment_response__get_packed_size, etcdserverpb__defragment_response__pack
        ) { arena in
            let c = arena.message(etcdserverpb__defragment_response__init)
            c.pointee.header = CValues.cHeader(header, &arena)
            return c
        }
    }

    public static func memberListResponse(_ response: MemberListResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 1024, etcdserverpb__member_list_response__get_packed_size, etcdserverpb__member_list_response__pack
        ) { response.toC(&$0) }
    }

    public static func hashKVResponse(_ response: HashKVResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 256, etcdserverpb__hash_kvresponse__get_packed_size, etcdserverpb__hash_kvresponse__pack
        ) { response.toC(&$0) }
    }

    public static func snapshotResponse(_ response: SnapshotResponse) -> [UInt8] {
        CMessage.encode(
            capacity: response.blob.count + 32, etcdserverpb__snapshot_response__get_packed_size, etcdserverpb__snapshot_response__pack
        ) { response.toC(&$0) }
    }

    public static func hashResponse(_ response: HashResponse) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__hash_response__get_packed_size, etcdserverpb__hash_response__pack
        ) { response.toC(&$0) }
    }

    /// `grpc.health.v1.HealthCheckResponse{status}`.
    public static func healthCheckResponse(_ status: HealthServingStatus) -> [UInt8] {
        CMessage.encode(
            capacity: 64, grpc__health__v1__health_check_response__get_packed_size,
            grpc__health__v1__health_check_response__pack
        ) { arena in
            let c = arena.message(grpc__health__v1__health_check_response__init)
            c.pointee.status = Grpc__Health__V1__HealthCheckResponse__ServingStatus(rawValue: CValues.cRaw(status.rawValue))
            return c
        }
    }
}
