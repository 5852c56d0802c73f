import Benchmark
import KineCore

/// KineCore's pure hot paths: key encoding for the `name` column and request validation.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions, .throughput],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    let plainKeys = (0..<1000).map { Array("/registry/pods/default/pod-\(100_000 + $0)".utf8) }
    // etcdctl check perf style keys: varint bytes with NULs and high bytes.
    let binaryKeys = (0..<1000).map { index -> [UInt8] in
        var key: [UInt8] = [0x00, 0x01, 0xFF, 0x80]
        var value = UInt64(index) &* 0x9E37_79B9
        for _ in 0..<8 {
            key.append(UInt8(truncatingIfNeeded: value))
            value >>= 8
        }
        return key
    }
    let encodedBinary = binaryKeys.map(KeyEncoding.encode)

    Benchmark("KeyEncoding.encode.plain1000") { benchmark in
        for _ in benchmark.scaledIterations {
            for key in plainKeys { blackHole(KeyEncoding.encode(key)) }
        }
    }
    Benchmark("KeyEncoding.decode.plain1000") { benchmark in
        for _ in benchmark.scaledIterations {
            for key in plainKeys { blackHole(KeyEncoding.decode(key)) }
        }
    }
    Benchmark("KeyEncoding.encode.binary1000") { benchmark in
        for _ in benchmark.scaledIterations {
            for key in binaryKeys { blackHole(KeyEncoding.encode(key)) }
        }
    }
    Benchmark("KeyEncoding.decode.binary1000") { benchmark in
        for _ in benchmark.scaledIterations {
            for key in encodedBinary { blackHole(KeyEncoding.decode(key)) }
        }
    }

    let key = Array("/registry/pods/default/pod-123456".utf8)
    let update = TxnRequest(
        compare: [Compare(result: .equal, target: .mod, key: key, operand: .modRevision(123_455))],
        success: [.put(PutRequest(key: key, value: Array(repeating: 0x41, count: 2048)))],
        failure: [.range(RangeRequest(key: key))])
    Benchmark("RequestValidation.txn.kubeUpdate") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? RequestValidation.validate(update)) }
    }

    // The largest transaction etcd accepts by default: 128 puts on distinct keys.
    let wide = TxnRequest(
        success: (0..<RequestValidation.defaultMaxTxnOps).map { index in
            .put(PutRequest(key: Array("/bench/key-\(index)".utf8), value: [0x42]))
        })
    Benchmark("RequestValidation.txn.put128") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? RequestValidation.validate(wide)) }
    }

    let stored = [KeyValue(key: key, createRevision: 100, modRevision: 123_455, version: 7, value: [0x41], lease: 0)]
    Benchmark("CompareEvaluation.modEqual") { benchmark in
        for _ in benchmark.scaledIterations {
            for compare in update.compare { blackHole(CompareEvaluation.evaluate(compare, against: stored)) }
        }
    }
}
