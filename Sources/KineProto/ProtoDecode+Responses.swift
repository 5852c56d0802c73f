internal import CEtcdProto
internal import CProtobufC
public import KineCore

/// Response decoders: what an etcd client reads. The server never needs them; the benchmark
/// client and the round-trip tests do.
extension ProtoDecode {
    public static func rangeResponse(_ bytes: [UInt8]) throws(ProtoError) -> RangeResponse {
        try CMessage.decode(bytes, "RangeResponse", etcdserverpb__range_response__unpack, etcdserverpb__range_response__free_unpacked) {
            (c) throws(ProtoError) in try RangeResponse(c)
        }
    }

    public static func putResponse(_ bytes: [UInt8]) throws(ProtoError) -> PutResponse {
        try CMessage.decode(bytes, "PutResponse", etcdserverpb__put_response__unpack, etcdserverpb__put_response__free_unpacked) {
            PutResponse($0)
        }
    }

    public static func deleteRangeResponse(_ bytes: [UInt8]) throws(ProtoError) -> DeleteRangeResponse {
        try CMessage.decode(
            bytes, "DeleteRangeResponse", etcdserverpb__delete_range_response__unpack,
            etcdserverpb__delete_range_response__free_unpacked
        ) { (c) throws(ProtoError) in try DeleteRangeResponse(c) }
    }

    /// A `ResponseOp` with no member set throws: KineCore's `ResponseOp` cannot represent it.
    public static func txnResponse(_ bytes: [UInt8]) throws(ProtoError) -> TxnResponse {
        try TxnNestingGuard.check(bytes, path: .response)
        return try CMessage.decode(bytes, "TxnResponse", etcdserverpb__txn_response__unpack, etcdserverpb__txn_response__free_unpacked) {
            (c) throws(ProtoError) in try TxnResponse(c)
        }
    }

    public static func compactionResponse(_ bytes: [UInt8]) throws(ProtoError) -> CompactionResponse {
        try CMessage.decode(
            bytes, "CompactionResponse", etcdserverpb__compaction_response__unpack,
            etcdserverpb__compaction_response__free_unpacked
        ) { CompactionResponse($0) }
    }

    public static func watchResponse(_ bytes: [UInt8]) throws(ProtoError) -> WatchResponse {
        try CMessage.decode(bytes, "WatchResponse", etcdserverpb__watch_response__unpack, etcdserverpb__watch_response__free_unpacked) {
            (c) throws(ProtoError) in try WatchResponse(c)
        }
    }

    public static func leaseGrantResponse(_ bytes: [UInt8]) throws(ProtoError) -> LeaseGrantResponse {
        try CMessage.decode(
            bytes, "LeaseGrantResponse", etcdserverpb__lease_grant_response__unpack,
            etcdserverpb__lease_grant_response__free_unpacked
        ) { LeaseGrantResponse($0) }
    }

    public static func leaseRevokeResponse(_ bytes: [UInt8]) throws(ProtoError) -> LeaseRevokeResponse {
        try CMessage.decode(
            bytes, "LeaseRevokeResponse", etcdserverpb__lease_revoke_response__unpack,
            etcdserverpb__lease_revoke_response__free_unpacked
        ) { LeaseRevokeResponse($0) }
    }

    public static func leaseKeepAliveResponse(_ bytes: [UInt8]) throws(ProtoError) -> LeaseKeepAliveResponse {
        try CMessage.decode(
            bytes, "LeaseKeepAliveResponse", etcdserverpb__lease_keep_alive_response__unpack,
            etcdserverpb__lease_keep_alive_response__free_unpacked
        ) { LeaseKeepAliveResponse($0) }
    }

    public static func leaseTimeToLiveResponse(_ bytes: [UInt8]) throws(ProtoError) -> LeaseTimeToLiveResponse {
        try CMessage.decode(
            bytes, "LeaseTimeToLiveResponse", etcdserverpb__lease_time_to_live_response__unpack,
            etcdserverpb__lease_time_to_live_response__free_unpacked
        ) { LeaseTimeToLiveResponse($0) }
    }

    public static func leaseLeasesResponse(_ bytes: [UInt8]) throws(ProtoError) -> LeaseLeasesResponse {
        try CMessage.decode(
            bytes, "LeaseLeasesResponse", etcdserverpb__lease_leases_response__unpack,
            etcdserverpb__lease_leases_response__free_unpacked
        ) { (c) throws(ProtoError) in try LeaseLeasesResponse(c) }
    }

    public static func statusResponse(_ bytes: [UInt8]) throws(ProtoError) -> StatusResponse {
        try CMessage.decode(bytes, "StatusResponse", etcdserverpb__status_response__unpack, etcdserverpb__status_response__free_unpacked) {
            StatusResponse($0)
        }
    }

    public static func alarmResponse(_ bytes: [UInt8]) throws(ProtoError) -> AlarmResponse {
        try CMessage.decode(bytes, "AlarmResponse", etcdserverpb__alarm_response__unpack, etcdserverpb__alarm_response__free_unpacked) {
            (c) throws(ProtoError) in try AlarmResponse(c)
        }
    }

    /// - Returns: the header, `DefragmentResponse`'s only field.
    public static func defragmentResponse(_ bytes: [UInt8]) throws(ProtoError) -> ResponseHeader {
        try CMessage.decode(
            bytes, "DefragmentResponse", etcdserverpb__defragment_response__unpack,
            etcdserverpb__defragment_response__free_unpacked
        ) { CValues.header($0.header) }
    }

    public static func memberListResponse(_ bytes: [UInt8]) throws(ProtoError) -> MemberListResponse {
        try CMessage.decode(
            bytes, "MemberListResponse", etcdserverpb__member_list_response__unpack,
            etcdserverpb__member_list_response__free_unpacked
        ) { (c) throws(ProtoError) in try MemberListResponse(c) }
    }

    public static func hashKVResponse(_ bytes: [UInt8]) throws(ProtoError) -> HashKVResponse {
        try CMessage.decode(bytes, "HashKVResponse", etcdserverpb__hash_kvresponse__unpack, etcdserverpb__hash_kvresponse__free_unpacked) {
            HashKVResponse($0)
        }
    }

    public static func snapshotResponse(_ bytes: [UInt8]) throws(ProtoError) -> SnapshotResponse {
        try CMessage.decode(
            bytes, "SnapshotResponse", etcdserverpb__snapshot_response__unpack, etcdserverpb__snapshot_response__free_unpacked
        ) {
            SnapshotResponse($0)
        }
    }

    public static func hashResponse(_ bytes: [UInt8]) throws(ProtoError) -> HashResponse {
        try CMessage.decode(bytes, "HashResponse", etcdserverpb__hash_response__unpack, etcdserverpb__hash_response__free_unpacked) {
            HashResponse($0)
        }
    }

    public static func healthCheckResponse(_ bytes: [UInt8]) throws(ProtoError) -> HealthServingStatus {
        try CMessage.decode(
            bytes, "HealthCheckResponse", grpc__health__v1__health_check_response__unpack,
            grpc__health__v1__health_check_response__free_unpacked
        ) { (c) throws(ProtoError) in try CValues.closedEnum(c.status.rawValue, "HealthCheckResponse.status") }
    }
}
