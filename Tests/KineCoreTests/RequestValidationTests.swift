import Testing

@testable import KineCore

@Suite("Request validation (etcd's check*Request and checkIntervals)")
struct RequestValidationTests {
    private func b(_ s: String) -> Bytes { Array(s.utf8) }
    private func put(_ key: String) -> RequestOp { .put(PutRequest(key: Array(key.utf8), value: [1])) }
    private func del(_ key: String, _ end: String = "") -> RequestOp {
        .deleteRange(DeleteRangeRequest(key: Array(key.utf8), rangeEnd: Array(end.utf8)))
    }

    @Test("Empty keys and ignore flags")
    func putChecks() {
        #expect(throws: EtcdError.emptyKey) { try RequestValidation.validate(PutRequest()) }
        #expect(throws: EtcdError.valueProvided) { try RequestValidation.validate(PutRequest(key: b("k"), value: [1], ignoreValue: true)) }
        #expect(throws: EtcdError.leaseProvided) { try RequestValidation.validate(PutRequest(key: b("k"), lease: 5, ignoreLease: true)) }
        #expect(throws: EtcdError.emptyKey) { try RequestValidation.validate(RangeRequest()) }
        #expect(throws: EtcdError.emptyKey) { try RequestValidation.validate(DeleteRangeRequest()) }
    }

    @Test("More than 128 ops in any list is rejected; nested txns share the budget")
    func tooManyOps() throws {
        let ops = (0..<129).map { put("k\($0)") }
        #expect(throws: EtcdError.tooManyOps) { try RequestValidation.validate(TxnRequest(success: ops)) }
        try RequestValidation.validate(TxnRequest(success: Array(ops.prefix(128))))
        let inner = TxnRequest(success: (0..<64).map { put("i\($0)") })
        let outer = TxnRequest(success: (0..<64).map { put("o\($0)") } + [.txn(inner)])
        #expect(throws: EtcdError.tooManyOps) { try RequestValidation.validate(outer) }
    }

    @Test("Empty RequestOp and compare without key")
    func emptyOps() {
        #expect(throws: EtcdError.keyNotFound) { try RequestValidation.validate(TxnRequest(success: [.empty])) }
        #expect(throws: EtcdError.emptyKey) { try RequestValidation.validate(TxnRequest(compare: [Compare()])) }
    }

    @Test("Duplicate key rule")
    func duplicates() throws {
        #expect(throws: EtcdError.duplicateKey) { try RequestValidation.validate(TxnRequest(success: [put("a"), put("a")])) }
        #expect(throws: EtcdError.duplicateKey) { try RequestValidation.validate(TxnRequest(success: [del("a", "c"), put("b")])) }
        #expect(throws: EtcdError.duplicateKey) { try RequestValidation.validate(TxnRequest(failure: [put("b"), del("b")])) }
        // The same key in different branches, overlapping deletes, and a from-key delete are allowed.
        try RequestValidation.validate(TxnRequest(success: [put("a")], failure: [put("a")]))
        try RequestValidation.validate(TxnRequest(success: [del("a", "c"), del("b", "d")]))
        try RequestValidation.validate(TxnRequest(success: [del("a", "\0"), put("b")]))
        // Nested: a nested put against an outer put, and both branches of one nested txn.
        let nested = TxnRequest(success: [put("x")], failure: [put("x")])
        try RequestValidation.validate(TxnRequest(success: [.txn(nested)]))
        #expect(throws: EtcdError.duplicateKey) { try RequestValidation.validate(TxnRequest(success: [.txn(nested), put("x")])) }
        #expect(throws: EtcdError.duplicateKey) {
            try RequestValidation.validate(TxnRequest(success: [del("w", "y"), .txn(TxnRequest(success: [put("x")]))]))
        }
    }
}
