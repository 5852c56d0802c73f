import KineCore
import Testing

@testable import KineStore

@Suite("TxnExecutor: etcd write semantics without a database")
struct TxnExecutorTests {
    private func b(_ s: String) -> Bytes { Array(s.utf8) }

    /// Runs requests one after another like one Writer batch, from revision `start`.
    private func run(_ requests: [WriteRequest], space: inout KeySpace) throws(EtcdError) -> [(WriteResponse, [PendingRow])] {
        var results: [(WriteResponse, [PendingRow])] = []
        for request in requests {
            results.append(try TxnExecutor.run(request, space: &space))
        }
        return results
    }

    @Test("Put creates with version 1, updates bump version and keep create_revision, prev_kv")
    func putVersions() throws {
        var space = KeySpace(currentRevision: 10, compactRevision: 0)
        let results = try run(
            [.put(PutRequest(key: b("k"), value: b("1"))), .put(PutRequest(key: b("k"), value: b("2"), prevKV: true))], space: &space)
        guard case .put(let second) = results[1].0 else {
            Issue.record("wrong response")
            return
        }
        #expect(second.header.revision == 12)
        #expect(second.prevKV?.value == b("1") && second.prevKV?.version == 1)
        let kv = try #require(space.live(b("k")))
        #expect(kv.createRevision == 11 && kv.modRevision == 12 && kv.version == 2)
        let row = results[1].1[0]
        #expect(row.id == 12 && row.prevRevision == 11 && !row.created && row.value == b("2"))
    }

    @Test("Delete resets version; re-create points prev_revision at the tombstone")
    func deleteAndRecreate() throws {
        var space = KeySpace(currentRevision: 0, compactRevision: 0)
        let results = try run(
            [
                .put(PutRequest(key: b("k"), value: b("1"))), .deleteRange(DeleteRangeRequest(key: b("k"), prevKV: true)),
                .put(PutRequest(key: b("k"), value: b("2"))),
            ], space: &space)
        guard case .deleteRange(let deleted) = results[1].0 else {
            Issue.record("wrong response")
            return
        }
        #expect(deleted.deleted == 1 && deleted.prevKVs.first?.value == b("1") && deleted.header.revision == 2)
        let recreated = results[2].1[0]
        #expect(recreated.created && recreated.prevRevision == 2 && recreated.version == 1)
        #expect(space.live(b("k"))?.createRevision == 3)
    }

    @Test("Deleting nothing does not create a revision")
    func deleteNothing() throws {
        var space = KeySpace(currentRevision: 7, compactRevision: 0)
        let results = try run([.deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("z")))], space: &space)
        guard case .deleteRange(let response) = results[0].0 else {
            Issue.record("wrong response")
            return
        }
        #expect(response.deleted == 0 && response.header.revision == 7 && results[0].1.isEmpty)
    }

    @Test("A multi-key write is one revision: one row per key, consecutive ids, the same revision")
    func multiRowRevision() throws {
        var space = KeySpace(currentRevision: 0, compactRevision: 0)
        _ = try run([.put(PutRequest(key: b("a"), value: b("1"))), .put(PutRequest(key: b("b"), value: b("1")))], space: &space)
        let results = try run([.deleteRange(DeleteRangeRequest(key: b("a"), rangeEnd: b("c")))], space: &space)
        #expect(results[0].1.map(\.id) == [3, 4])
        #expect(results[0].1.allSatisfy { $0.revision == 3 })
        #expect(space.currentRevision == 3 && space.nextRowID == 5)
        let txn = TxnRequest(success: [.put(PutRequest(key: b("x"), value: b("1"))), .put(PutRequest(key: b("y"), value: b("1")))])
        let txnResult = try run([.txn(txn)], space: &space)
        guard case .txn(let response) = txnResult[0].0 else {
            Issue.record("wrong response")
            return
        }
        #expect(response.header.revision == 4)
        #expect(txnResult[0].1.map(\.id) == [5, 6])
        #expect(space.live(b("x"))?.modRevision == 4 && space.live(b("y"))?.modRevision == 4)
    }

    @Test("Later ops in a txn see earlier writes; compares see the state before the txn")
    func txnOrdering() throws {
        var space = KeySpace(currentRevision: 0, compactRevision: 0)
        _ = try run([.put(PutRequest(key: b("k"), value: b("old")))], space: &space)
        let txn = TxnRequest(
            compare: [Compare(result: .equal, target: .value, key: b("k"), operand: .value(b("old")))],
            success: [
                .put(PutRequest(key: b("k"), value: b("new"))), .range(RangeRequest(key: b("k"))),
                .txn(
                    TxnRequest(
                        compare: [Compare(result: .equal, target: .value, key: b("k"), operand: .value(b("old")))],
                        success: [.range(RangeRequest(key: b("k")))])),
            ])
        let result = try run([.txn(txn)], space: &space)
        guard case .txn(let response) = result[0].0 else {
            Issue.record("wrong response")
            return
        }
        #expect(response.succeeded)
        guard case .range(let range) = response.responses[1], case .txn(let nested) = response.responses[2] else {
            Issue.record("wrong responses")
            return
        }
        #expect(range.kvs.first?.value == b("new") && range.header.revision == 2)
        // The nested compare saw "old" (pre-txn state), so it took its success branch.
        #expect(nested.succeeded && nested.header.revision == 0)
    }

    @Test("Failure branch of kube-apiserver's update returns the current value without a new revision")
    func kubeUpdateConflict() throws {
        var space = KeySpace(currentRevision: 0, compactRevision: 0)
        _ = try run([.put(PutRequest(key: b("/registry/x"), value: b("v1")))], space: &space)
        let txn = TxnRequest(
            compare: [Compare(result: .equal, target: .mod, key: b("/registry/x"), operand: .modRevision(99))],
            success: [.put(PutRequest(key: b("/registry/x"), value: b("v2")))],
            failure: [.range(RangeRequest(key: b("/registry/x")))])
        let result = try run([.txn(txn)], space: &space)
        guard case .txn(let response) = result[0].0, case .range(let range) = response.responses.first else {
            Issue.record("wrong response")
            return
        }
        #expect(!response.succeeded && response.header.revision == 1 && range.kvs.first?.value == b("v1"))
        #expect(result[0].1.isEmpty)
    }

    @Test("Runtime checks abort the txn before any write")
    func runtimeChecks() {
        var space = KeySpace(currentRevision: 5, compactRevision: 3)
        let before = space.currentRevision
        #expect(throws: EtcdError.keyNotFound) {
            try run(
                [
                    .txn(
                        TxnRequest(success: [
                            .put(PutRequest(key: b("a"), value: b("1"))), .put(PutRequest(key: b("m"), ignoreValue: true)),
                        ]))
                ], space: &space)
        }
        #expect(throws: EtcdError.leaseNotFound) { try run([.put(PutRequest(key: b("a"), lease: 7))], space: &space) }
        #expect(throws: EtcdError.futureRevision) {
            try run([.txn(TxnRequest(success: [.range(RangeRequest(key: b("a"), revision: 6))]))], space: &space)
        }
        #expect(throws: EtcdError.compacted) {
            try run([.txn(TxnRequest(success: [.range(RangeRequest(key: b("a"), revision: 2))]))], space: &space)
        }
        #expect(space.currentRevision == before && space.live(b("a")) == nil)
    }

    @Test("kube-apiserver's compact_rev_key is stored as Go kine stores it")
    func compactRevKey() throws {
        var space = KeySpace(currentRevision: 0, compactRevision: 0)
        let txn = TxnRequest(
            compare: [Compare(result: .equal, target: .version, key: b("compact_rev_key"), operand: .version(0))],
            success: [.put(PutRequest(key: b("compact_rev_key"), value: b("1")))])
        let result = try run([.txn(txn)], space: &space)
        let row = result[0].1[0]
        #expect(row.name == b("compact_rev_key_apiserver") && row.value == b("1|1"))
        #expect(space.live(b("compact_rev_key"))?.version == 1)
    }
}
