import KineCore
import KineProto
import Testing

/// Hand-written wire bytes, independent of protobuf-c, prove the field numbers and wire types in
/// Protos/ match etcd's.
@Suite struct WireFormatTests {
    @Test func rangeRequestKnownBytes() throws {
        let bytes: [UInt8] = [0x0A, 0x01, 0x61, 0x12, 0x01, 0x62, 0x18, 0x05]
        let request = RangeRequest(key: [0x61], rangeEnd: [0x62], limit: 5)
        #expect(ProtoEncode.rangeRequest(request) == bytes)
        #expect(try ProtoDecode.rangeRequest(bytes) == request)
    }

    /// kube-apiserver's "key must not exist" guard: the zero mod_revision is on the wire (field 6).
    @Test func compareModRevisionZeroKnownBytes() throws {
        let bytes: [UInt8] = [0x22, 0x09, 0x0A, 0x07, 0x10, 0x02, 0x1A, 0x01, 0x61, 0x30, 0x00]
        let txn = TxnRequest(compare: [Compare(result: .equal, target: .mod, key: [0x61], operand: .modRevision(0))])
        #expect(ProtoEncode.txnRequest(TxnRequest(compare: txn.compare)) == [0x0A, 0x07, 0x10, 0x02, 0x1A, 0x01, 0x61, 0x30, 0x00])
        // Wrapped in a RequestOp (field 4 = request_txn) and decoded as a whole txn's success op.
        let outer: [UInt8] = [0x12, UInt8(bytes.count)] + bytes
        let decoded = try ProtoDecode.txnRequest(outer)
        #expect(decoded == TxnRequest(success: [.txn(txn)]))
    }

    @Test func compareRangeEndUsesFieldSixtyFour() throws {
        // Compare{key: "a", range_end: "b"}: field 64, wire type 2 → key varint 0x82 0x04.
        let compare: [UInt8] = [0x1A, 0x01, 0x61, 0x82, 0x04, 0x01, 0x62]
        let txn: [UInt8] = [0x0A, UInt8(compare.count)] + compare
        #expect(try ProtoDecode.txnRequest(txn) == TxnRequest(compare: [Compare(key: [0x61], rangeEnd: [0x62])]))
    }

    @Test func watchResponseEventsAreFieldEleven() throws {
        // WatchResponse{watch_id: 1, events: [Event{type: DELETE, kv: {key: "k"}}]}
        let bytes: [UInt8] = [0x10, 0x01, 0x5A, 0x07, 0x08, 0x01, 0x12, 0x03, 0x0A, 0x01, 0x6B]
        let expected = WatchResponse(watchID: 1, events: [Event(type: .delete, kv: KeyValue(key: [0x6B]))])
        #expect(try ProtoDecode.watchResponse(bytes) == expected)
    }

    @Test func leaseGrantRequestKnownBytes() throws {
        let bytes: [UInt8] = [0x08, 0x3C, 0x10, 0x07]
        #expect(ProtoEncode.leaseGrantRequest(LeaseGrantRequest(ttl: 60, id: 7)) == bytes)
        #expect(try ProtoDecode.leaseGrantRequest(bytes) == LeaseGrantRequest(ttl: 60, id: 7))
    }

    @Test func healthCheckResponseServing() throws {
        #expect(ProtoEncode.healthCheckResponse(.serving) == [0x08, 0x01])
        #expect(try ProtoDecode.healthCheckResponse([0x08, 0x01]) == .serving)
        #expect(ProtoEncode.healthCheckRequest(service: "etcd") == [0x0A, 0x04, 0x65, 0x74, 0x63, 0x64])
    }

    @Test func watchCancelAndProgressKnownBytes() throws {
        #expect(try ProtoDecode.watchRequest([0x12, 0x02, 0x08, 0x05]) == .cancel(watchID: 5))
        #expect(try ProtoDecode.watchRequest([0x1A, 0x00]) == .progress)
        #expect(ProtoEncode.watchRequest(.progress) == [0x1A, 0x00])
    }

    @Test func unknownFieldsAreSkipped() throws {
        // RangeRequest{key: "a"} plus unknown field 99 (varint) and unknown field 100 (bytes).
        let bytes: [UInt8] = [0x0A, 0x01, 0x61, 0x98, 0x06, 0x01, 0xA2, 0x06, 0x02, 0xAA, 0xBB]
        #expect(try ProtoDecode.rangeRequest(bytes) == RangeRequest(key: [0x61]))
    }

    @Test func negativeInt64IsTenByteVarint() throws {
        let encoded = ProtoEncode.compactionRequest(CompactionRequest(revision: -1))
        #expect(encoded == [0x08] + [UInt8](repeating: 0xFF, count: 9) + [0x01])
        #expect(try ProtoDecode.compactionRequest(encoded) == CompactionRequest(revision: -1))
    }
}
