internal import CEtcdProto
internal import CProtobufC
public import KineCore

/// Request encoders: what an etcd client sends. Used by the benchmark client and by tests that
/// feed the server real wire bytes.
extension ProtoEncode {
    public static func rangeRequest(_ request: RangeRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 256 + request.key.count + request.rangeEnd.count, etcdserverpb__range_request__get_packed_size,
            etcdserverpb__range_request__pack
        ) { request.toC(&$0) }
    }

    public static func putRequest(_ request: PutRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 256 + request.key.count + request.value.count, etcdserverpb__put_request__get_packed_size,
            etcdserverpb__put_request__pack
        ) { request.toC(&$0) }
    }

    public static func deleteRangeRequest(_ request: DeleteRangeRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 256 + request.key.count + request.rangeEnd.count, etcdserverpb__delete_range_request__get_packed_size,
            etcdserverpb__delete_range_request__pack
        ) { request.toC(&$0) }
    }

    public static func txnRequest(_ request: TxnRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 1024, etcdserverpb__txn_request__get_packed_size, etcdserverpb__txn_request__pack
        ) { request.toC(&$0) }
    }

    public static func compactionRequest(_ request: CompactionRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__compaction_request__get_packed_size, etcdserverpb__compaction_request__pack
        ) { request.toC(&$0) }
    }

    public static func watchRequest(_ request: WatchRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 512, etcdserverpb__watch_request__get_packed_size, etcdserverpb__watch_request__pack
        ) { request.toC(&$0) }
    }

    public static func leaseGrantRequest(_ request: LeaseGrantRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__lease_grant_request__get_packed_size, etcdserverpb__lease_grant_request__pack
        ) { request.toC(&$0) }
    }

    public static func leaseRevokeRequest(_ request: LeaseRevokeRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__lease_revoke_request__get_packed_size, etcdserverpb__lease_revoke_request__pack
        ) { request.toC(&$0) }
    }

    public static func leaseKeepAliveRequest(_ request: LeaseKeepAliveRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__lease_keep_alive_request__get_packed_size,
            etcdserverpb__lease_keep_alive_request__pack
        ) { request.toC(&$0) }
    }

    public static func leaseTimeToLiveRequest(_ request: LeaseTimeToLiveRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__lease_time_to_live_request__get_packed_size,
            etcdserverpb__lease_time_to_live_request__pack
        ) { request.toC(&$0) }
    }

    /// Always empty on the wire; provided so callers need not know that.
    public static func leaseLeasesRequest() -> [UInt8] {
        CMessage.encode(
            capacity: 64, etcdserverpb__lease_leases_request__get_packed_size, etcdserverpb__lease_leases_request__pack
        ) { $0.message(etcdserverpb__lease_leases_request__init) }
    }

    /// Always empty on the wire.
    public static func statusRequest() -> [UInt8] {
        CMessage.encode(
            capacity: 64, etcdserverpb__status_request__get_packed_size, etcdserverpb__status_request__pack
        ) { $0.message(etcdserverpb__status_request__init) }
    }

    public static func alarmRequest(_ request: AlarmRequest) -> [UInt8] {
        CMessage.encode(
            capacity: 128, etcdserverpb__alarm_request__get_packed_size, etcdserverpb__alarm_request__pack
        ) { request.toC(&$0) }
    }

    /// Always empty on the wire.
    public static func defragmentRequest() -> [UInt8] {
        CMessage.encode(
            capacity: 64, etcdserverpb__defragment_request__get_packed_size, etcdserverpb__defragment_request__pack
        ) { $0.message(etcdserverpb__defragment_request__init) }
    }

    public static func memberListRequest(linearizable: Bool = false) -> [UInt8] {
        CMessage.encode(
            capacity: 64, etcdserverpb__member_list_request__get_packed_size, etcdserverpb__member_list_request__pack
        ) { arena in
            let c = arena.message(etcdserverpb__member_list_request__init)
            c.pointee.linearizable = CValues.cBool(linearizable)
            return c
        }
    }

    public static func hashRequest() -> [UInt8] { [] }

    public static func snapshotRequest() -> [UInt8] { [] }

    public static func hashKVRequest(revision: Int64) -> [UInt8] {
        CMessage.encode(
            capacity: 64, etcdserverpb__hash_kvrequest__get_packed_size, etcdserverpb__hash_kvrequest__pack
        ) { arena in
            let c = arena.message(etcdserverpb__hash_kvrequest__init)
            c.pointee.revision = revision
            return c
        }
    }

    public static func healthCheckRequest(service: String = "") -> [UInt8] {
        CMessage.encode(
            capacity: 64 + service.utf8.count, grpc__health__v1__health_check_request__get_packed_size,
            grpc__health__v1__health_check_request__pack
        ) { arena in
            let c = arena.message(grpc__health__v1__health_check_request__init)
            if let service = arena.cString(service) { c.pointee.service = service }
            return c
        }
    }
}
