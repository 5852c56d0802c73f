import Benchmark
import KineCore
import KineProto

/// protobuf-c <-> KineCore conversions on the hot paths: a kube-apiserver LIST page (a Range
/// response of 500 KVs) and a kube-apiserver update (Txn MOD == rev → Put, else → Range).
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions, .throughput],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 100_000
    )

    let page = Fixtures.rangeResponse(kvs: 500, valueSize: 512)
    let pageBytes = ProtoEncode.rangeResponse(page)
    Benchmark("Proto.encode.RangeResponse500") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProtoEncode.rangeResponse(page)) }
    }
    Benchmark("Proto.decode.RangeResponse500") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? ProtoDecode.rangeResponse(pageBytes)) }
    }

    let update = Fixtures.kubeUpdate(valueSize: 2048)
    let updateBytes = ProtoEncode.txnRequest(update)
    Benchmark("Proto.encode.TxnRequestKubeUpdate") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProtoEncode.txnRequest(update)) }
    }
    Benchmark("Proto.decode.TxnRequestKubeUpdate") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? ProtoDecode.txnRequest(updateBytes)) }
    }

    let txnResponse = TxnResponse(
        header: ResponseHeader(clusterID: 1, memberID: 2, revision: 123_456, raftTerm: 3), succeeded: true,
        responses: [.put(PutResponse(header: ResponseHeader(revision: 123_456)))])
    Benchmark("Proto.encode.TxnResponseKubeUpdate") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProtoEncode.txnResponse(txnResponse)) }
    }

    let put = PutRequest(key: Array("/registry/configmaps/default/cm-000001".utf8), value: Fixtures.value(256))
    let putBytes = ProtoEncode.putRequest(put)
    Benchmark("Proto.decode.PutRequest256") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? ProtoDecode.putRequest(putBytes)) }
    }
    let single = Fixtures.rangeResponse(kvs: 1, valueSize: 256)
    Benchmark("Proto.encode.RangeResponse1") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ProtoEncode.rangeResponse(single)) }
    }
}

enum Fixtures {
    static func value(_ size: Int) -> Bytes {
        (0..<size).map { UInt8(truncatingIfNeeded: 0x41 + $0 % 26) }
    }

    static func rangeResponse(kvs count: Int, valueSize: Int) -> RangeResponse {
        let kvs = (0..<count).map { index in
            KeyValue(
                key: Array("/registry/pods/default/pod-\(100_000 + index)".utf8), createRevision: Int64(1000 + index),
                modRevision: Int64(5000 + index), version: 3, value: value(valueSize), lease: 0)
        }
        return RangeResponse(
            header: ResponseHeader(clusterID: 1, memberID: 2, revision: 9999, raftTerm: 3), kvs: kvs, more: true,
            count: Int64(count * 2))
    }

    static func kubeUpdate(valueSize: Int) -> TxnRequest {
        let key = Array("/registry/pods/default/pod-123456".utf8)
        return TxnRequest(
            compare: [Compare(result: .equal, target: .mod, key: key, operand: .modRevision(123_455))],
            success: [.put(PutRequest(key: key, value: value(valueSize)))],
            failure: [.range(RangeRequest(key: key))])
    }
}
