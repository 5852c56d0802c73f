import KineCore
import KineProto
import Testing

/// proto3 empty payloads: zero bytes decode to all-default values, default requests encode to
/// zero bytes, and default responses carry just an empty header (etcd always sends one).
@Suite struct EmptyMessageTests {
    @Test func emptyBytesDecodeToDefaults() throws {
        #expect(try ProtoDecode.rangeRequest([]) == RangeRequest())
        #expect(try ProtoDecode.putRequest([]) == PutRequest())
        #expect(try ProtoDecode.deleteRangeRequest([]) == DeleteRangeRequest())
        #expect(try ProtoDecode.txnRequest([]) == TxnRequest())
        #expect(try ProtoDecode.compactionRequest([]) == CompactionRequest())
        #expect(try ProtoDecode.watchRequest([]) == .empty)
        #expect(try ProtoDecode.leaseGrantRequest([]) == LeaseGrantRequest())
        #expect(try ProtoDecode.leaseRevokeRequest([]) == LeaseRevokeRequest())
        #expect(try ProtoDecode.leaseKeepAliveRequest([]) == LeaseKeepAliveRequest())
        #expect(try ProtoDecode.leaseTimeToLiveRequest([]) == LeaseTimeToLiveRequest())
        try ProtoDecode.leaseLeasesRequest([])
        try ProtoDecode.statusRequest([])
        #expect(try ProtoDecode.alarmRequest([]) == AlarmRequest())
        try ProtoDecode.defragmentRequest([])
        #expect(try ProtoDecode.memberListRequest([]) == false)
        #expect(try ProtoDecode.hashKVRequest([]) == 0)
        #expect(try ProtoDecode.healthCheckRequest([]) == "")

        #expect(try ProtoDecode.rangeResponse([]) == RangeResponse())
        #expect(try ProtoDecode.putResponse([]) == PutResponse())
        #expect(try ProtoDecode.deleteRangeResponse([]) == DeleteRangeResponse())
        #expect(try ProtoDecode.txnResponse([]) == TxnResponse())
        #expect(try ProtoDecode.compactionResponse([]) == CompactionResponse())
        #expect(try ProtoDecode.watchResponse([]) == WatchResponse())
        #expect(try ProtoDecode.leaseGrantResponse([]) == LeaseGrantResponse())
        #expect(try ProtoDecode.leaseRevokeResponse([]) == LeaseRevokeResponse())
        #expect(try ProtoDecode.leaseKeepAliveResponse([]) == LeaseKeepAliveResponse())
        #expect(try ProtoDecode.leaseTimeToLiveResponse([]) == LeaseTimeToLiveResponse())
        #expect(try ProtoDecode.leaseLeasesResponse([]) == LeaseLeasesResponse())
        #expect(try ProtoDecode.statusResponse([]) == StatusResponse())
        #expect(try ProtoDecode.alarmResponse([]) == AlarmResponse())
        #expect(try ProtoDecode.defragmentResponse([]) == ResponseHeader())
        #expect(try ProtoDecode.memberListResponse([]) == MemberListResponse())
        #expect(try ProtoDecode.hashKVResponse([]) == HashKVResponse())
        #expect(try ProtoDecode.healthCheckResponse([]) == .unknown)
    }

    @Test func defaultRequestsEncodeToNothing() {
        #expect(ProtoEncode.rangeRequest(RangeRequest()) == [])
        #expect(ProtoEncode.putRequest(PutRequest()) == [])
        #expect(ProtoEncode.deleteRangeRequest(DeleteRangeRequest()) == [])
        #expect(ProtoEncode.txnRequest(TxnRequest()) == [])
        #expect(ProtoEncode.compactionRequest(CompactionRequest()) == [])
        #expect(ProtoEncode.watchRequest(.empty) == [])
        #expect(ProtoEncode.leaseGrantRequest(LeaseGrantRequest()) == [])
        #expect(ProtoEncode.alarmRequest(AlarmRequest()) == [])
        #expect(ProtoEncode.hashKVRequest(revision: 0) == [])
        #expect(ProtoEncode.healthCheckRequest() == [])
        #expect(ProtoEncode.healthCheckResponse(.unknown) == [])
    }

    @Test func defaultResponsesCarryAnEmptyHeader() {
        let emptyHeader: [UInt8] = [0x0A, 0x00]
        #expect(ProtoEncode.rangeResponse(RangeResponse()) == emptyHeader)
        #expect(ProtoEncode.putResponse(PutResponse()) == emptyHeader)
        #expect(ProtoEncode.txnResponse(TxnResponse()) == emptyHeader)
        #expect(ProtoEncode.compactionResponse(CompactionResponse()) == emptyHeader)
        #expect(ProtoEncode.watchResponse(WatchResponse()) == emptyHeader)
        #expect(ProtoEncode.leaseRevokeResponse(LeaseRevokeResponse()) == emptyHeader)
        #expect(ProtoEncode.statusResponse(StatusResponse()) == emptyHeader)
        #expect(ProtoEncode.defragmentResponse(header: ResponseHeader()) == emptyHeader)
    }
}
