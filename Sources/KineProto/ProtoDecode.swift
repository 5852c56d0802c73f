internal import CEtcdProto
internal import CProtobufC
public import KineCore

/// Protobuf bytes → KineCore values, for every etcd request the server receives and every
/// response our client, benchmarks and tests read back.
///
/// Each decoder parses with protobuf-c, copies everything into Swift values and frees the C
/// message before returning. Any input — truncated, random, hostile — either decodes or throws
/// `ProtoError`; none traps. Unknown fields are skipped, as proto3 requires. `bytes` fields
/// (keys, values) are exact; `string` fields are read as C strings, so a string containing a NUL
/// byte is cut there (etcd's strings — versions, names, URLs, reasons — never contain one).
public enum ProtoDecode {}

// MARK: - KV requests

extension ProtoDecode {
    public static func rangeRequest(_ bytes: [UInt8]) throws(ProtoError) -> RangeRequest {
        try CMessage.decode(bytes, "RangeRequest", etcdserverpb__range_request__unpack, etcdserverpb__range_request__free_unpacked) {
            (c) throws(ProtoError) in try RangeRequest(c)
        }
    }

    public static func putRequest(_ bytes: [UInt8]) throws(ProtoError) -> PutRequest {
        try CMessage.decode(bytes, "PutRequest", etcdserverpb__put_request__unpack, etcdserverpb__put_request__free_unpacked) {
            PutRequest($0)
        }
    }

    public static func deleteRangeRequest(_ bytes: [UInt8]) throws(ProtoError) -> DeleteRangeRequest {
        try CMessage.decode(
            bytes, "DeleteRangeRequest", etcdserverpb__delete_range_request__unpack,
            etcdserverpb__delete_range_request__free_unpacked
        ) { DeleteRangeRequest($0) }
    }

    /// Nested txns are followed to any depth up to `TxnNestingGuard.limit` (64); deeper input
    /// throws `.nestingTooDeep` without being parsed.
    public static func txnRequest(_ bytes: [UInt8]) throws(ProtoError) -> TxnRequest {
        try TxnNestingGuard.check(bytes, path: .request)
        return try CMessage.decode(bytes, "TxnRequest", etcdserverpb__txn_request__unpack, etcdserverpb__txn_request__free_unpacked) {
            (c) throws(ProtoError) in try TxnRequest(c)
        }
    }

    public static func compactionRequest(_ bytes: [UInt8]) throws(ProtoError) -> CompactionRequest {
        try CMessage.decode(
            bytes, "CompactionRequest", etcdserverpb__compaction_request__unpack,
            etcdserverpb__compaction_request__free_unpacked
        ) { CompactionRequest($0) }
    }
}

// MARK: - Watch and Lease requests

extension ProtoDecode {
    /// One message of the Watch bidi stream; no oneof member set gives `.empty`.
    public static func watchRequest(_ bytes: [UInt8]) throws(ProtoError) -> WatchRequest {
        try CMessage.decode(bytes, "WatchRequest", etcdserverpb__watch_request__unpack, etcdserverpb__watch_request__free_unpacked) {
            WatchRequest($0)
        }
    }

    public static func leaseGrantRequest(_ bytes: [UInt8]) throws(ProtoError) -> LeaseGrantRequest {
        try CMessage.decode(
            bytes, "LeaseGrantRequest", etcdserverpb__lease_grant_request__unpack,
            etcdserverpb__lease_grant_request__free_unpacked
        ) { LeaseGrantRequest($0) }
    }

    public static func leaseRevokeRequest(_ bytes: [UInt8]) throws(ProtoError) -> LeaseRevokeRequest {
        try CMessage.decode(
            bytes, "LeaseRevokeRequest", etcdserverpb__lease_revoke_request__unpack,
            etcdserverpb__lease_revoke_request__free_unpacked
        ) { LeaseRevokeRequest($0) }
    }

    public static func leaseKeepAliveRequest(_ bytes: [UInt8]) throws(ProtoError) -> LeaseKeepAliveRequest {
        try CMessage.decode(
            bytes, "LeaseKeepAliveRequest", etcdserverpb__lease_keep_alive_request__unpack,
            etcdserverpb__lease_keep_alive_request__free_unpacked
        ) { LeaseKeepAliveRequest($0) }
    }

    public static func leaseTimeToLiveRequest(_ bytes: [UInt8]) throws(ProtoError) -> LeaseTimeToLiveRequest {
        try CMessage.decode(
            bytes, "LeaseTimeToLiveRequest", etcdserverpb__lease_time_to_live_request__unpack,
            etcdserverpb__lease_time_to_live_request__free_unpacked
        ) { LeaseTimeToLiveRequest($0) }
    }

    /// `LeaseLeasesRequest` has no fields; this only validates the payload.
    public static func leaseLeasesRequest(_ bytes: [UInt8]) throws(ProtoError) {
        try CMessage.decode(
            bytes, "LeaseLeasesRequest", etcdserverpb__lease_leases_request__unpack,
            etcdserverpb__lease_leases_request__free_unpacked
        ) { _ in () }
    }
}

// MARK: - Maintenance, Cluster and Health requests

extension ProtoDecode {
    /// `StatusRequest` has no fields; this only validates the payload.
    public static func statusRequest(_ bytes: [UInt8]) throws(ProtoError) {
        try CMessage.decode(bytes, "StatusRequest", etcdserverpb__status_request__unpack, etcdserverpb__status_request__free_unpacked) {
            _ in ()
        }
    }

    public static func alarmRequest(_ bytes: [UInt8]) throws(ProtoError) -> AlarmRequest {
        try CMessage.decode(bytes, "AlarmRequest", etcdserverpb__alarm_request__unpack, etcdserverpb__alarm_request__free_unpacked) {
            AlarmRequest($0)
        }
    }

    /// `DefragmentRequest` has no fields; this only validates the payload.
    public static func defragmentRequest(_ bytes: [UInt8]) throws(ProtoError) {
        try CMessage.decode(
            bytes, "DefragmentRequest", etcdserverpb__defragment_request__unpack,
            etcdserverpb__defragment_request__free_unpacked
        ) { _ in () }
    }

    /// - Returns: `linearizable`, the request's only field.
    public static func memberListRequest(_ bytes: [UInt8]) throws(ProtoError) -> Bool {
        try CMessage.decode(
            bytes, "MemberListRequest", etcdserverpb__member_list_request__unpack,
            etcdserverpb__member_list_request__free_unpacked
        ) { CValues.bool($0.linearizable) }
    }

    /// SnapshotRequest has no fields; this only checks the bytes decode.
    public static func snapshotRequest(_ bytes: [UInt8]) throws(ProtoError) {
        try CMessage.decode(bytes, "SnapshotRequest", etcdserverpb__snapshot_request__unpack, etcdserverpb__snapshot_request__free_unpacked)
        { _ in () }
    }

    /// HashRequest has no fields; this only checks the bytes decode.
    public static func hashRequest(_ bytes: [UInt8]) throws(ProtoError) {
        try CMessage.decode(bytes, "HashRequest", etcdserverpb__hash_request__unpack, etcdserverpb__hash_request__free_unpacked) { _ in () }
    }

    /// - Returns: `revision`, the request's only field (0 = latest).
    public static func hashKVRequest(_ bytes: [UInt8]) throws(ProtoError) -> Int64 {
        try CMessage.decode(bytes, "HashKVRequest", etcdserverpb__hash_kvrequest__unpack, etcdserverpb__hash_kvrequest__free_unpacked) {
            $0.revision
        }
    }

    /// - Returns: `service`, the request's only field ("" = the whole server).
    public static func healthCheckRequest(_ bytes: [UInt8]) throws(ProtoError) -> String {
        try CMessage.decode(
            bytes, "HealthCheckRequest", grpc__health__v1__health_check_request__unpack,
            grpc__health__v1__health_check_request__free_unpacked
        ) { CValues.string($0.service) }
    }
}
