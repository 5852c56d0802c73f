import KineCore
import KineProto
import Testing

/// encode → decode must give back the same value for every KV message.
@Suite struct KVRoundTripTests {
    @Test func rangeRequest() throws {
        #expect(try ProtoDecode.rangeRequest(ProtoEncode.rangeRequest(Sample.rangeRequest)) == Sample.rangeRequest)
    }

    @Test func rangeResponse() throws {
        #expect(try ProtoDecode.rangeResponse(ProtoEncode.rangeResponse(Sample.rangeResponse)) == Sample.rangeResponse)
    }

    /// The hot path: 500 keys with 1 KiB values must survive byte for byte.
    @Test func largeRangeResponse() throws {
        let response = RangeResponse(header: Sample.header, kvs: (0..<500).map { Sample.kv($0, valueSize: 1024) }, count: 500)
        let bytes = ProtoEncode.rangeResponse(response)
        #expect(bytes.count > 500 * 1024)
        #expect(try ProtoDecode.rangeResponse(bytes) == response)
    }

    @Test func putRequest() throws {
        #expect(try ProtoDecode.putRequest(ProtoEncode.putRequest(Sample.putRequest)) == Sample.putRequest)
    }

    @Test(arguments: [nil, Sample.kv(3)])
    func putResponse(prevKV: KeyValue?) throws {
        let response = PutResponse(header: Sample.header, prevKV: prevKV)
        #expect(try ProtoDecode.putResponse(ProtoEncode.putResponse(response)) == response)
    }

    @Test func deleteRangeRequest() throws {
        let request = Sample.deleteRangeRequest
        #expect(try ProtoDecode.deleteRangeRequest(ProtoEncode.deleteRangeRequest(request)) == request)
    }

    @Test func deleteRangeResponse() throws {
        let response = DeleteRangeResponse(header: Sample.header, deleted: 3, prevKVs: [Sample.kv(0), Sample.kv(1)])
        #expect(try ProtoDecode.deleteRangeResponse(ProtoEncode.deleteRangeResponse(response)) == response)
    }

    @Test func compactionRequestAndResponse() throws {
        let request = CompactionRequest(revision: 12345, physical: true)
        #expect(try ProtoDecode.compactionRequest(ProtoEncode.compactionRequest(request)) == request)
        let response = CompactionResponse(header: Sample.header)
        #expect(try ProtoDecode.compactionResponse(ProtoEncode.compactionResponse(response)) == response)
    }

    /// Keys and values are bytes, not C strings: NULs, 0xFF and invalid UTF-8 pass through intact.
    @Test func binaryKeysWithNULBytes() throws {
        let kv = KeyValue(key: Sample.binaryKey, createRevision: 1, modRevision: 1, version: 1, value: [0, 0, 0])
        let response = RangeResponse(header: Sample.header, kvs: [kv, KeyValue(key: [0])], count: 2)
        let decoded = try ProtoDecode.rangeResponse(ProtoEncode.rangeResponse(response))
        #expect(decoded.kvs.first?.key == Sample.binaryKey)
        #expect(decoded == response)
        let request = RangeRequest(key: [0], rangeEnd: [0])
        #expect(try ProtoDecode.rangeRequest(ProtoEncode.rangeRequest(request)) == request)
    }

    /// Header always present in responses, with exact 64-bit values.
    @Test func headerExtremes() throws {
        let header = ResponseHeader(clusterID: .max, memberID: 0, revision: .max, raftTerm: .max)
        let response = CompactionResponse(header: header)
        #expect(try ProtoDecode.compactionResponse(ProtoEncode.compactionResponse(response)).header == header)
    }

    @Test func unknownSortOrderIsRejected() {
        // RangeRequest{sort_order: 9}
        #expect(throws: ProtoError.unknownEnumValue(field: "RangeRequest.sort_order", value: 9)) {
            try ProtoDecode.rangeRequest([0x28, 0x09])
        }
    }
}
