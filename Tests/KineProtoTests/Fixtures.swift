import KineCore
import KineProto

/// Sample values with every field set to something non-default, so a dropped or swapped field
/// shows up as an inequality.
enum Sample {
    static let header = ResponseHeader(clusterID: 0xDEAD_BEEF_0000_0001, memberID: 42, revision: 1_000_123, raftTerm: 7)
    /// A binary key: NUL bytes, 0xFF and a non-UTF-8 sequence.
    static let binaryKey: Bytes = [0x00, 0x61, 0x00, 0xFF, 0xC3, 0x28, 0x00]

    static func kv(_ index: Int, valueSize: Int = 16) -> KeyValue {
        KeyValue(
            key: Array("/registry/pods/default/pod-\(index)".utf8), createRevision: Int64(index) + 1,
            modRevision: Int64(index) * 3 + 2, version: Int64(index % 5) + 1,
            value: (0..<valueSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }, lease: Int64(index % 3)
        )
    }

    static let rangeRequest = RangeRequest(
        key: Array("/registry/".utf8), rangeEnd: Array("/registry0".utf8), limit: 500, revision: 99,
        sortOrder: .descend, sortTarget: .mod, serializable: true, keysOnly: true, countOnly: true,
        minModRevision: 1, maxModRevision: 2, minCreateRevision: 3, maxCreateRevision: 4
    )

    static let putRequest = PutRequest(
        key: binaryKey, value: [1, 2, 3, 0], lease: 0x7FFF_FFFF_FFFF_FFFF, prevKV: true, ignoreValue: true, ignoreLease: true
    )

    static let deleteRangeRequest = DeleteRangeRequest(key: Array("a".utf8), rangeEnd: [0], prevKV: true)

    /// kube-apiserver's create: "mod_revision == 0" then put, else range.
    static let txnRequest = TxnRequest(
        compare: [
            Compare(result: .equal, target: .mod, key: Array("/registry/a".utf8), operand: .modRevision(0)),
            Compare(result: .notEqual, target: .value, key: binaryKey, rangeEnd: [0], operand: .value([0, 9])),
            Compare(result: .greater, target: .version, key: [1], operand: .version(3)),
            Compare(result: .less, target: .create, key: [2], operand: .createRevision(-1)),
            Compare(result: .equal, target: .lease, key: [3], operand: .lease(77)),
            Compare(result: .equal, target: .version, key: [4], operand: nil),
        ],
        success: [.put(putRequest), .deleteRange(deleteRangeRequest), .empty],
        failure: [.range(rangeRequest), .txn(TxnRequest(success: [.range(RangeRequest(key: [5]))]))]
    )

    static let rangeResponse = RangeResponse(header: header, kvs: (0..<5).map { kv($0) }, more: true, count: 1234)

    static let txnResponse = TxnResponse(
        header: header, succeeded: true,
        responses: [
            .put(PutResponse(header: header, prevKV: kv(1))),
            .range(rangeResponse),
            .deleteRange(DeleteRangeResponse(header: header, deleted: 2, prevKVs: [kv(2), kv(3)])),
            .txn(TxnResponse(header: header, succeeded: false, responses: [.put(PutResponse(header: header))])),
        ]
    )

    static let watchResponse = WatchResponse(
        header: header, watchID: 9, created: true, canceled: true, compactRevision: 55,
        cancelReason: "etcdserver: mvcc: required revision has been compacted", fragment: true,
        events: [
            Event(type: .put, kv: kv(1), prevKV: kv(0)),
            Event(type: .delete, kv: KeyValue(key: binaryKey, modRevision: 10)),
        ]
    )

    static let statusResponse = StatusResponse(
        header: header, version: "3.5.13", dbSize: 1 << 30, leader: 42, raftIndex: 5, raftTerm: 6,
        raftAppliedIndex: 7, errors: ["NOSPACE", "", "ünïcode"], dbSizeInUse: 1 << 20, isLearner: true
    )

    static let memberListResponse = MemberListResponse(
        header: header,
        members: [
            Member(id: 42, name: "kine", peerURLs: ["http://127.0.0.1:2380"], clientURLs: ["http://127.0.0.1:2379", ""], isLearner: false),
            Member(id: 43, name: "", peerURLs: [], clientURLs: [], isLearner: true),
        ]
    )
}
