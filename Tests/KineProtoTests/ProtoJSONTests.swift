import KineCore
import Testing

@testable import KineProto

/// The JSON mapping of etcd's gateway; the expected texts are etcd 3.5.1's answers
/// (docs/research/etcd-snapshot-and-gateway.md, part B).
@Suite("Proto JSON mapping")
struct ProtoJSONTests {
    private func schema(_ name: String) throws -> MessageSchema {
        try #require(ProtoSchemaSet.etcd["etcdserverpb.\(name)"])
    }

    private func wire(_ json: String, _ message: String) throws -> [UInt8] {
        var values = JSONValueStream(limit: 1 << 20)
        values.append(Array(json.utf8))
        guard case .value(let document) = values.next(endOfBody: true) else {
            Issue.record("no value in \(json)")
            return []
        }
        return try ProtoJSON.wire(from: document, as: try schema(message))
    }

    private func failure(_ json: String, _ message: String) throws -> String {
        var values = JSONValueStream(limit: 1 << 20)
        values.append(Array(json.utf8))
        switch values.next(endOfBody: true) {
        case .failure(let text): return text
        case .value(let document):
            let target = try schema(message)
            do {
                _ = try ProtoJSON.wire(from: document, as: target)
                return "accepted"
            } catch {
                return error.description
            }
        default: return "no value"
        }
    }

    private func json(_ bytes: [UInt8], _ message: String) throws -> String {
        String(decoding: try ProtoJSON.json(fromWire: bytes, as: try schema(message)), as: UTF8.self)
    }

    @Test func requestBecomesTheBytesAGRPCClientSends() throws {
        let bytes = try wire(#"{"key":"L3g=","rangeEnd":"L3k=","limit":"2","sort_order":2,"keys_only":true}"#, "RangeRequest")
        let request = try ProtoDecode.rangeRequest(bytes)
        #expect(request.key == Array("/x".utf8))
        #expect(request.rangeEnd == Array("/y".utf8))
        #expect(request.limit == 2)
        #expect(request.sortOrder == .descend)
        #expect(request.keysOnly)
    }

    @Test func txnWithOneofsAndNestedMessages() throws {
        let bytes = try wire(
            #"{"compare":[{"target":"VERSION","key":"L3g=","result":"EQUAL","version":"0"}],"#
                + #""success":[{"request_put":{"key":"L3Qx","value":"b25l"}}],"failure":[{"request_range":{"key":"L3g="}}]}"#,
            "TxnRequest")
        let txn = try ProtoDecode.txnRequest(bytes)
        #expect(txn.compare.count == 1)
        // A oneof member set to zero is still set.
        #expect(txn.compare.first?.operand == .version(0))
        #expect(txn.success.count == 1)
        #expect(txn.failure.count == 1)
    }

    @Test func responseAsEtcdWritesIt() throws {
        var response = RangeResponse()
        response.header = ResponseHeader(
            clusterID: 14_930_912_536_174_976_129, memberID: 3_211_106_759_432_434_375, revision: 12, raftTerm: 2)
        response.kvs = [
            KeyValue(key: Array("/x".utf8), createRevision: 11, modRevision: 12, version: 2, value: Array("world".utf8), lease: 0)
        ]
        response.count = 1
        #expect(
            try json(ProtoEncode.rangeResponse(response), "RangeResponse")
                == #"{"header":{"cluster_id":"14930912536174976129","member_id":"3211106759432434375","revision":"12","raft_term":"2"},"#
                + #""kvs":[{"key":"L3g=","create_revision":"11","mod_revision":"12","version":"2","value":"d29ybGQ="}],"count":"1"}"#)
        // Zero values and empty lists are left out; an empty but present sub-message is {}.
        #expect(try json([0x0A, 0x00], "RangeResponse") == #"{"header":{}}"#)
        #expect(try json([], "RangeResponse") == "{}")
    }

    @Test func enumsNegativeNumbersAndStrings() throws {
        var response = WatchResponse()
        response.watchID = -1
        response.events = [Event(type: .delete, kv: KeyValue(key: [0xFF], modRevision: 20))]
        response.cancelReason = "a <b> & \"c\"\n"
        let text = try json(ProtoEncode.watchResponse(response), "WatchResponse")
        #expect(text.contains(#""watch_id":"-1""#))
        #expect(text.contains(#""events":[{"type":"DELETE","kv":{"key":"/w==","mod_revision":"20"}}]"#))
        #expect(text.contains(#""cancel_reason":"a \u003cb\u003e \u0026 \"c\"\n""#))
    }

    @Test(arguments: [
        (#"{"key":"#, "unexpected EOF"),
        ("not json", "invalid character 'o' in literal null (expecting 'u')"),
        ("[]", "json: cannot unmarshal array into Go value of type map[string]json.RawMessage"),
        (#"{"key":123}"#, "json: cannot unmarshal number into Go value of type []uint8"),
        (#"{"serializable":"yes"}"#, "json: cannot unmarshal string into Go value of type bool"),
        (#"{"limit":"abc"}"#, "invalid character 'a' looking for beginning of value"),
        (#"{"limit":1.5}"#, "json: cannot unmarshal number 1.5 into Go value of type int64"),
        (#"{"key":"***"}"#, "illegal base64 data at input byte 0"),
        (#"{"key":"L3g"}"#, "illegal base64 data at input byte 0"),
        (#"{"key":"L3o_"}"#, "illegal base64 data at input byte 3"),
        (#"{"sort_order":"SIDEWAYS"}"#, #"unknown value "\"SIDEWAYS\"" for enum etcdserverpb.RangeRequest.SortOrder"#),
        (#"{"key":"L3g=",}"#, "invalid character '}' looking for beginning of object key string"),
        (#"{"key" "L3g="}"#, "invalid character '\"' after object key"),
        (#"{"a":1 "b":2}"#, "invalid character '\"' after object key:value pair"),
        (#"{"a":[1 2]}"#, "invalid character '2' after array element"),
        (#"{"a":-x}"#, "invalid character 'x' in numeric literal"),
        (#"{"a":"\q"}"#, "invalid character 'q' in string escape code"),
        ("{\"a\":\"\t\"}", #"invalid character '\t' in string literal"#),
        (#"{"limit":"9223372036854775808"}"#, "json: cannot unmarshal number 9223372036854775808 into Go value of type int64"),
        (#"{"limit":true}"#, "json: cannot unmarshal bool into Go value of type int64"),
        (#"{"limit":""}"#, "unexpected end of JSON input"),
    ])
    func goErrors(input: String, expected: String) throws {
        #expect(try failure(input, "RangeRequest") == expected)
    }

    @Test func lenientInput() throws {
        // Unknown fields ignored, null leaves a field unset, lowerCamel beats the .proto name,
        // 64-bit numbers as numbers or strings, trailing values after the first ignored.
        let bytes = try wire(
            #"{"key":"L3g=","bogus":{"x":[1]},"limit":null,"count_only":false,"countOnly":true,"revision":7} {"#, "RangeRequest")
        let request = try ProtoDecode.rangeRequest(bytes)
        #expect(request.key == Array("/x".utf8))
        #expect(request.countOnly)
        #expect(request.revision == 7)
        #expect(request.limit == 0)
        #expect(try wire("null", "RangeRequest").isEmpty)
    }

    @Test func base64AsGoDecodesIt() {
        #expect(GoJSONText.decodeBase64(Array("aGVsbG8=".utf8)) == .success(Array("hello".utf8)))
        #expect(GoJSONText.decodeBase64(Array("aGVs\nbG8=".utf8)) == .success(Array("hello".utf8)))
        #expect(GoJSONText.decodeBase64(Array("".utf8)) == .success([]))
        #expect(GoJSONText.decodeBase64(Array("aGVsbG8".utf8)) == .failure(.init(offset: 4)))
        #expect(GoJSONText.decodeBase64(Array("aGVsbG8=x".utf8)) == .failure(.init(offset: 8)))
        #expect(GoJSONText.decodeBase64(Array("aG=x".utf8)) == .failure(.init(offset: 2)))
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 * 37 + 5) }
            var text: [UInt8] = []
            GoJSONText.appendBase64(bytes, to: &text)
            #expect(GoJSONText.decodeBase64(text) == .success(bytes))
        }
    }

    @Test func streamOfValues() {
        var values = JSONValueStream(limit: 64)
        values.append(Array(#" {"a":1}{"b""#.utf8))
        guard case .value = values.next(endOfBody: false) else {
            Issue.record("first value")
            return
        }
        guard case .needMoreBytes = values.next(endOfBody: false) else {
            Issue.record("partial")
            return
        }
        values.append(Array(#":2} 12"#.utf8))
        guard case .value = values.next(endOfBody: false) else {
            Issue.record("second value")
            return
        }
        // A number at the end of what arrived may continue.
        guard case .needMoreBytes = values.next(endOfBody: false) else {
            Issue.record("number")
            return
        }
        guard case .value(let number) = values.next(endOfBody: true), number.node == .number("12") else {
            Issue.record("number at end")
            return
        }
        guard case .endOfInput = values.next(endOfBody: true) else {
            Issue.record("end")
            return
        }
        values.append(Array("{".utf8) + Array(repeating: UInt8(ascii: " "), count: 100))
        guard case .failure = values.next(endOfBody: false) else {
            Issue.record("over the limit")
            return
        }
    }

    @Test func everyGatewayMessageResolves() {
        // Every etcd message type is reachable, including those only nested (mvccpb.KeyValue).
        for name in ["etcdserverpb.RangeRequest", "etcdserverpb.WatchResponse", "mvccpb.KeyValue", "mvccpb.Event", "authpb.Permission"] {
            #expect(ProtoSchemaSet.etcd[name] != nil, "\(name)")
        }
    }
}
