import Foundation
import KineStore
import Testing

@testable import KineServer

/// The I/O-free parts of TLS, metrics and logging.
@Suite("Operations: datastore TLS, metric labels, JSON log lines")
struct OperationsUnitTests {
    @Test("Go kine's datastore TLS flags become libpq parameters; what the endpoint sets wins")
    func datastoreTLS() {
        #expect(DatastoreTLS().parameters(existing: [:]).isEmpty)
        let all = DatastoreTLS(caFile: "/ca", certFile: "/c", keyFile: "/k")
        #expect(all.parameters(existing: [:]) == ["sslrootcert": "/ca", "sslcert": "/c", "sslkey": "/k", "sslmode": "verify-full"])
        #expect(DatastoreTLS(caFile: "/ca", skipVerify: true).parameters(existing: [:]) == ["sslrootcert": "/ca", "sslmode": "require"])
        #expect(all.parameters(existing: ["sslmode": "verify-ca", "sslrootcert": "/mine"]) == ["sslcert": "/c", "sslkey": "/k"])
    }

    @Test("gRPC paths and codes as go-grpc-prometheus labels them")
    func grpcLabels() {
        #expect(KineMetrics.split("/etcdserverpb.KV/Range") == ("etcdserverpb.KV", "Range"))
        #expect(KineMetrics.split("/kine.ha.v1.Peer/Status") == ("kine.ha.v1.Peer", "Status"))
        #expect(KineMetrics.codeName(0) == "OK" && KineMetrics.codeName(1) == "Canceled" && KineMetrics.codeName(14) == "Unavailable")
        #expect(KineMetrics.codeName(99) == "Code(99)")
    }

    @Test("Recorded calls and statements appear in the exposition with buckets")
    func exposition() {
        let metrics = KineMetrics()
        metrics.callStarted(path: "/etcdserverpb.KV/Put", streaming: false)
        metrics.callHandled(path: "/etcdserverpb.KV/Put", streaming: false, code: 0, duration: .milliseconds(3))
        metrics.statementCompleted(name: "w_insert", errorCode: "", duration: .microseconds(700))
        metrics.statementCompleted(name: "w_insert", errorCode: "40001", duration: .milliseconds(2))
        let text = metrics.render()
        #expect(
            text.contains(
                #"grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="OK"} 1"#))
        #expect(
            text.contains(
                #"grpc_server_handling_seconds_bucket{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",le="0.005"} 1"#))
        #expect(text.contains(#"kine_sql_total{name="w_insert",error_code="40001"} 1"#))
        #expect(text.contains("# TYPE kine_sql_time_seconds histogram"))
    }

    @Test("Store figures render as etcd's and kine's families, one HELP and TYPE each")
    func storeFamilies() {
        var counters = StoreCounters()
        counters.watchers = 3
        counters.compactionsSucceeded = 2
        counters.compactionMicroseconds = 1_500_000
        let text = StoreMetrics.render(
            counters: counters, storage: StorageFigures(currentRevision: 42, compactRevision: 7, databaseSize: 8192, leases: 5),
            cache: ReadCacheFigures(keys: 10, tombstones: 1, bytes: 300))
        for line in [
            "etcd_debugging_mvcc_watcher_total 3", "etcd_debugging_mvcc_current_revision 42", "etcd_debugging_mvcc_compact_revision 7",
            "etcd_mvcc_db_total_size_in_bytes 8192", "kine_leases 5", "kine_read_cache_keys 10", "kine_read_cache_bytes 300",
            #"kine_compact_total{result="success"} 2"#, "kine_compaction_seconds_total 1.5", "# TYPE kine_compact_total counter",
        ] {
            #expect(text.split(separator: "\n").contains(Substring(line)), "\(line) missing")
        }
        let helps = text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] }
        #expect(Set(helps).count == helps.count)
        // Without a database answer or a loaded cache, those families are left out, not zero.
        let bare = StoreMetrics.render(counters: counters, storage: nil, cache: nil)
        #expect(!bare.contains("kine_read_cache_keys") && !bare.contains("etcd_mvcc_db_total_size_in_bytes"))
    }

    @Test("JSON log strings are escaped as RFC 8259 says")
    func jsonQuote() throws {
        let quoted = JSONLogHandler.quote("a \"b\" \\ c\nd\u{01}é")
        #expect(quoted == #""a \"b\" \\ c\nd\u0001é""#)
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(quoted)]".utf8)) as? [String]
        #expect(decoded == ["a \"b\" \\ c\nd\u{01}é"])
    }
}

@Suite("Request log")
struct RequestLogTests {
    @Test("Durations in etcd's millisecond style")
    func milliseconds() {
        #expect(RequestLog.milliseconds(.microseconds(1_234_567)) == "1234.567")
        #expect(RequestLog.milliseconds(.microseconds(5)) == "0.005")
        #expect(RequestLog.milliseconds(.milliseconds(100)) == "100.000")
    }
}
