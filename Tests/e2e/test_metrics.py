"""/metrics (issue 11): scraped around a known load and parsed with the Prometheus client
library's text-format parser; the gRPC and SQL counters match what the test sent, histograms have
buckets, names follow Prometheus conventions; `--metrics-bind-address` serves it on its own port,
and `0` turns kine's metrics off."""

from __future__ import annotations

import re
import time
import urllib.request
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

import harness
from etcdgrpc import Client, Stream

pytestmark = pytest.mark.needs_kine

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def scrape(address: str) -> dict:
    """{family name: family} from http://address/metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict, name: str, sample: str | None = None, **labels) -> float:
    """The sum of the samples named `sample` (default: the family's own) matching labels."""
    family = families.get(name)
    if family is None:
        return 0.0
    want = sample or (name + "_total" if family.type == "counter" and not name.endswith("_total") else name)
    return sum(s.value for s in family.samples
               if s.name == want and all(s.labels.get(k) == v for k, v in labels.items()))


def kv(method: str, code: str = "OK") -> dict:
    return {"grpc_service": "etcdserverpb.KV", "grpc_method": method, "grpc_type": "unary", "grpc_code": code}


@pytest.fixture(scope="module")
def kine_metrics(postgres_url):
    dbname = harness.unique_db_name("metrics")
    harness.drop_database(postgres_url, dbname)
    port = harness.free_port()
    srv = harness.start_kine("kine-metrics", harness.db_url(postgres_url, dbname), ["--metrics-bind-address", f"127.0.0.1:{port}", "--debug"])
    srv.extra["metrics"] = f"127.0.0.1:{port}"
    srv.extra["db"] = harness.db_url(postgres_url, dbname)
    yield srv
    srv.stop()


def test_counters_match_a_known_load(kine_metrics):
    before = scrape(kine_metrics.endpoint)
    c = Client(kine_metrics.endpoint)
    puts, ranges = 37, 23
    try:
        for i in range(puts):
            _, err = c.call(c.kv.Put, c.pb.PutRequest(key=f"/metrics/{i:03d}".encode(), value=b"v"))
            assert err is None, err
        for i in range(ranges):
            _, err = c.call(c.kv.Range, c.pb.RangeRequest(key=f"/metrics/{i:03d}".encode()))
            assert err is None, err
        _, err = c.call(c.kv.Range, c.pb.RangeRequest(key=b"/metrics/000", revision=10 ** 9))
        assert err and err["code"] == "OUT_OF_RANGE", err
    finally:
        c.close()
    after = scrape(kine_metrics.endpoint)

    def delta(name, sample=None, **labels):
        return value(after, name, sample, **labels) - value(before, name, sample, **labels)

    assert delta("grpc_server_handled", **kv("Put")) == puts
    assert delta("grpc_server_handled", **kv("Range")) == ranges
    assert delta("grpc_server_handled", **kv("Range", "OutOfRange")) == 1
    started = {k: v for k, v in kv("Put").items() if k != "grpc_code"}
    assert delta("grpc_server_started", **started) == puts
    # The histogram counted each Put once, with buckets up to +Inf.
    assert delta("grpc_server_handling_seconds", "grpc_server_handling_seconds_count", **started) == puts
    buckets = sorted((float(s.labels["le"]), s.value) for s in after["grpc_server_handling_seconds"].samples
                     if s.name.endswith("_bucket") and all(s.labels.get(k) == v for k, v in started.items()))
    assert len(buckets) >= 10 and buckets[-1][0] == float("inf"), buckets
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "buckets are not cumulative"
    assert buckets[-1][1] == value(after, "grpc_server_handling_seconds", "grpc_server_handling_seconds_count", **started)
    # Every Put is at least one SQL statement (sequential puts: no batching across them).
    sql = delta("kine_sql", error_code="")
    assert sql >= puts, f"kine_sql_total grew by {sql} for {puts} puts"
    assert delta("kine_sql_time_seconds", "kine_sql_time_seconds_count", error_code="") == sql
    # One group commit per sequential Put, each in the Writer's histograms.
    assert delta("kine_writer_commit_seconds", "kine_writer_commit_seconds_count") == puts
    assert delta("kine_writer_batch_requests", "kine_writer_batch_requests_sum") == puts
    assert value(after, "etcd_server_has_leader") == 1
    assert value(after, "etcd_mvcc_db_total_size_in_bytes") > 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_store_families_follow_watches_leases_and_compaction(kine_metrics):
    """Watch streams and watchers, events sent, a catch-up, leases and a compaction, each seen in
    its family with the figure the test caused."""
    c = Client(kine_metrics.endpoint)
    streams = []
    try:
        before = scrape(kine_metrics.endpoint)
        for i in range(3):
            _, err = c.call(c.kv.Put, c.pb.PutRequest(key=f"/store/{i}".encode(), value=b"0123456789"))
            assert err is None, err
        start = c.current_revision() - 2
        # Two streams: one with two live watchers, one watcher replaying history (a catch-up).
        live = Stream(c.watch.Watch)
        streams.append(live)
        for prefix in (b"/store/", b"/store/1"):
            live.send(c.pb.WatchRequest(create_request=c.pb.WatchCreateRequest(key=prefix, range_end=prefix[:-1] + bytes([prefix[-1] + 1]))))
        assert len(live.take(2)) == 2
        behind = Stream(c.watch.Watch)
        streams.append(behind)
        behind.send(c.pb.WatchRequest(create_request=c.pb.WatchCreateRequest(key=b"/store/", range_end=b"/store0", start_revision=start)))
        replay = behind.take(2)
        assert replay[1].events and len(replay[1].events) == 3, replay
        grant, err = c.call(c.lease.LeaseGrant, c.pb.LeaseGrantRequest(TTL=60))
        assert err is None, err
        _, err = c.call(c.lease.LeaseGrant, c.pb.LeaseGrantRequest(TTL=60))
        assert err is None, err
        _, err = c.call(c.kv.Put, c.pb.PutRequest(key=b"/store/1", value=b"x", lease=grant.ID))
        assert err is None, err
        assert len(live.take(2)) == 2  # the put reaches both live watchers
        ka = Stream(c.lease.LeaseKeepAlive)
        streams.append(ka)
        ka.send(c.pb.LeaseKeepAliveRequest(ID=grant.ID))
        assert ka.take(1)[0].TTL > 0
        _, err = c.call(c.lease.LeaseRevoke, c.pb.LeaseRevokeRequest(ID=grant.ID))
        assert err is None, err
        assert len(live.take(2)) == 2  # the revoke deleted /store/1
        assert len(behind.take(2)) == 2  # the put and the delete, after the replay
        _, err = c.call(c.kv.Compact, c.pb.CompactionRequest(revision=c.current_revision()))
        assert err is None, err
        after = scrape(kine_metrics.endpoint)

        def delta(name, sample=None, **labels):
            return value(after, name, sample, **labels) - value(before, name, sample, **labels)

        assert delta("etcd_debugging_mvcc_watch_stream_total") == 2
        assert delta("etcd_debugging_mvcc_watcher_total") == 3
        # 3 replayed, then the leased put and the revoke's delete to each of the 3 watchers.
        assert delta("etcd_debugging_mvcc_events") == 3 + 3 * 2
        assert delta("kine_watch_catch_ups", source="memory") + delta("kine_watch_catch_ups", source="database") >= 1
        assert delta("kine_leases") == 1
        assert delta("etcd_debugging_lease_granted") == 2
        assert delta("etcd_debugging_lease_renewed") == 1
        assert delta("etcd_debugging_lease_revoked") == 1
        assert delta("kine_compact", result="success") == 1
        assert delta("etcd_debugging_mvcc_db_compaction_keys") >= 1
        assert value(after, "etcd_debugging_mvcc_compact_revision") == value(after, "etcd_debugging_mvcc_current_revision")
        assert value(after, "kine_read_cache_keys") >= 2 and value(after, "kine_read_cache_bytes") >= 2 * len(b"/store/0123456789")
    finally:
        for stream in streams:
            stream.close()
        c.close()
    # Closed streams leave the gauges.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if value(scrape(kine_metrics.endpoint), "etcd_debugging_mvcc_watch_stream_total") == value(before, "etcd_debugging_mvcc_watch_stream_total"):
            break
        time.sleep(0.1)
    final = scrape(kine_metrics.endpoint)
    assert value(final, "etcd_debugging_mvcc_watch_stream_total") == value(before, "etcd_debugging_mvcc_watch_stream_total")
    assert value(final, "etcd_debugging_mvcc_watcher_total") == value(before, "etcd_debugging_mvcc_watcher_total")


def test_names_follow_prometheus_conventions(kine_metrics):
    families = scrape(kine_metrics.endpoint)
    for name, family in families.items():
        assert NAME.match(name), name
        assert family.documentation, f"{name} has no HELP"
        assert family.type in {"counter", "gauge", "histogram", "summary"}, (name, family.type)
        if family.type == "counter":
            assert all(s.name.endswith("_total") or s.name.endswith("_created") for s in family.samples), name
        if family.type == "histogram":
            assert any(s.name.endswith("_bucket") for s in family.samples) or not family.samples, name
            assert name.endswith(("_seconds", "_bytes", "_requests")), f"histogram {name} without a unit"
    for want in ("grpc_server_started", "grpc_server_handled", "grpc_server_handling_seconds", "kine_sql", "kine_sql_time_seconds",
                 "process_cpu_seconds", "process_open_fds", "process_start_time_seconds", "etcd_server_is_leader",
                 "kine_writer_commit_seconds", "kine_writer_batch_requests"):
        assert want in families, f"{want} missing; have {sorted(families)}"


def test_metrics_bind_address_serves_only_metrics(kine_metrics):
    families = scrape(kine_metrics.extra["metrics"])
    assert "grpc_server_handled" in families
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{kine_metrics.extra['metrics']}/health", timeout=5)
    assert e.value.code == 404


def test_metrics_off(postgres_url):
    dbname = harness.unique_db_name("nometrics")
    harness.drop_database(postgres_url, dbname)
    srv = harness.start_kine("kine-nometrics", harness.db_url(postgres_url, dbname), ["--metrics-bind-address", "0"])
    try:
        harness.etcdctl(srv, "put", "/x", "y")
        families = scrape(srv.endpoint)
        assert "process_resident_memory_bytes" in families
        assert not [n for n in families if n.startswith("grpc_") or n.startswith("kine_sql")], sorted(families)
    finally:
        srv.stop()


def test_request_logs_and_slow_request_warning(kine_metrics):
    """Each call is logged at debug level with method, code and duration; a call slower than
    100 ms also gets etcd's "apply request took too long" warning (kine's database sessions are
    frozen for 300 ms while a Put waits)."""
    import os
    import signal
    import threading
    import time

    c = Client(kine_metrics.endpoint)
    try:
        _, err = c.call(c.kv.Put, c.pb.PutRequest(key=b"/log/fast", value=b"v"))
        assert err is None
        pids = [int(p) for p in harness.psql(kine_metrics.extra["db"], "SELECT pid FROM pg_stat_activity "
                "WHERE application_name = 'kine' AND datname = current_database() AND pid <> pg_backend_pid()").split()]
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            done = threading.Thread(target=lambda: c.call(c.kv.Put, c.pb.PutRequest(key=b"/log/slow", value=b"v")))
            done.start()
            time.sleep(0.3)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        done.join(10)
    finally:
        c.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = kine_metrics.log_path.read_text()
        if "apply request took too long" in text:
            break
        time.sleep(0.2)
    lines = kine_metrics.log_path.read_text().splitlines()
    assert any("grpc request" in l and "/etcdserverpb.KV/Put" in l and "grpc.code=OK" in l for l in lines), lines[-20:]
    slow = [l for l in lines if "apply request took too long" in l]
    assert slow and "/etcdserverpb.KV/Put" in slow[-1] and "grpc.expectedDuration=100.000ms" in slow[-1], lines[-20:]
