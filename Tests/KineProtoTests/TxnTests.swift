import KineCore
import KineProto
import Testing

/// Transactions: every Compare operand, every RequestOp/ResponseOp kind, nesting and its limit.
@Suite struct TxnTests {
    @Test func txnRequestRoundTrip() throws {
        #expect(try ProtoDecode.txnRequest(ProtoEncode.txnRequest(Sample.txnRequest)) == Sample.txnRequest)
    }

    @Test func txnResponseRoundTrip() throws {
        #expect(try ProtoDecode.txnResponse(ProtoEncode.txnResponse(Sample.txnResponse)) == Sample.txnResponse)
    }

    /// A zero operand is still "set", distinct from an absent oneof.
    @Test(arguments: [
        Compare.Operand.version(0), .createRevision(0), .modRevision(0), .value([]), .lease(0),
    ])
    func zeroOperandStaysPresent(operand: Compare.Operand) throws {
        let request = TxnRequest(compare: [Compare(target: .mod, key: [1], operand: operand)])
        let decoded = try ProtoDecode.txnRequest(ProtoEncode.txnRequest(request))
        #expect(decoded.compare.first?.operand == operand)
    }

    @Test func absentOperandDecodesAsNil() throws {
        // TxnRequest{compare: [Compare{key: "a"}]}
        let decoded = try ProtoDecode.txnRequest([0x0A, 0x03, 0x1A, 0x01, 0x61])
        #expect(decoded.compare == [Compare(key: [0x61], operand: nil)])
    }

    @Test func emptyRequestOpDecodesAsEmpty() throws {
        // TxnRequest{success: [RequestOp{}], failure: [RequestOp{}]}
        let decoded = try ProtoDecode.txnRequest([0x12, 0x00, 0x1A, 0x00])
        #expect(decoded == TxnRequest(success: [.empty], failure: [.empty]))
    }

    @Test func nestedTxnThreeLevels() throws {
        let inner = TxnRequest(compare: [Compare(operand: .version(1))], success: [.put(PutRequest(key: [1], value: [2]))])
        let middle = TxnRequest(success: [.txn(inner)], failure: [.txn(inner), .range(RangeRequest(key: [3]))])
        let outer = TxnRequest(compare: Sample.txnRequest.compare, success: [.txn(middle)], failure: [.empty])
        #expect(try ProtoDecode.txnRequest(ProtoEncode.txnRequest(outer)) == outer)

        let innerResponse = TxnResponse(header: Sample.header, succeeded: true, responses: [.put(PutResponse(header: Sample.header))])
        let outerResponse = TxnResponse(header: Sample.header, responses: [.txn(TxnResponse(responses: [.txn(innerResponse)]))])
        #expect(try ProtoDecode.txnResponse(ProtoEncode.txnResponse(outerResponse)) == outerResponse)
    }

    static func nested(depth: Int) -> TxnRequest {
        var request = TxnRequest(success: [.put(PutRequest(key: [1]))])
        for _ in 1..<depth { request = TxnRequest(success: [.txn(request)]) }
        return request
    }

    @Test func nestingAtLimitDecodes() throws {
        let request = Self.nested(depth: 64)
        #expect(try ProtoDecode.txnRequest(ProtoEncode.txnRequest(request)) == request)
    }

    @Test func nestingPastLimitThrows() {
        let bytes = ProtoEncode.txnRequest(Self.nested(depth: 65))
        #expect(throws: ProtoError.nestingTooDeep(limit: 64)) { try ProtoDecode.txnRequest(bytes) }
    }

    /// A hostile payload nesting 100 000 levels must be refused quickly, not overflow the stack.
    @Test func hostileDeepNestingThrows() {
        // TxnRequest{success: [RequestOp{request_txn: TxnRequest{...}}]}, built inside out in
        // reverse so each level is an append.
        var reversed: [UInt8] = []
        for _ in 0..<100_000 {
            reversed += varint(reversed.count).reversed()
            reversed.append(0x22)
            reversed += varint(reversed.count).reversed()
            reversed.append(0x12)
        }
        let bytes = Array(reversed.reversed())
        #expect(throws: ProtoError.nestingTooDeep(limit: 64)) { try ProtoDecode.txnRequest(bytes) }
    }

    @Test func responseOpWithoutMemberThrows() {
        // TxnResponse{responses: [ResponseOp{}]}
        #expect(throws: ProtoError.self) { try ProtoDecode.txnResponse([0x1A, 0x00]) }
    }

    @Test func unknownCompareResultIsRejected() {
        // TxnRequest{compare: [Compare{result: 7}]}
        #expect(throws: ProtoError.unknownEnumValue(field: "Compare.result", value: 7)) {
            try ProtoDecode.txnRequest([0x0A, 0x02, 0x08, 0x07])
        }
    }
}

private func varint(_ value: Int) -> [UInt8] {
    var value = UInt64(value)
    var out: [UInt8] = []
    while value >= 0x80 {
        out.append(UInt8(value & 0x7F) | 0x80)
        value >>= 7
    }
    out.append(UInt8(value))
    return out
}
