"""Events that travel in the NOTIFY (`CommitNoticePayload`): kine processes A and B on ONE
PostgreSQL database, etcd 3.5 alongside.

While another kine process listens, each commit's `NOTIFY kine` carries the committed events when
they fit in PostgreSQL's 8000-byte payload (each byte as two hex digits), and a receiving watch
hub publishes them without reading the table when they directly follow what it has published,
taking each event's previous value from its read cache. Bigger commits carry the revision alone
and the receiver reads the table.

The same steps run through A (kine) and through etcd, each watched with `prev_kv` (on kine
through B): put, overwrite, a txn of two puts, delete, re-create, a put with a lease, a
DeleteRange of two keys, a put of 6000 bytes (too big for the payload), then a small put after
it. The events (types, keys, values, versions, revisions relative to the first step's,
previous values) must be the same. B's `kine_watch_hub_revisions_total` shows where its events
came from: each step waits for the event on B before the next, so every small step's revision is
published from the notification except those the hub's 1 s poll may read first (at most one per
poll, so at most two over the run); the big one comes from the table.
"""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest

import harness
from etcdgrpc import Client, Stream

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:6]
PREFIX = f"/e2e-notice-events/{RUN}/".encode()


def prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


def hub_revisions(address: str) -> dict:
    """{source: count} of kine_watch_hub_revisions_total from http://address/metrics."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("kine_watch_hub_revisions_total{"):
            source = line.split('source="')[1].split('"')[0]
            out[source] = int(float(line.rsplit(" ", 1)[1]))
    return out


class Side:
    """Writes through one server and a prev_kv watch on the prefix through another (or the same)."""

    def __init__(self, write_endpoint: str, watch_endpoint: str):
        self.w = Client(write_endpoint)
        self.pb = self.w.pb
        self.watch_client = Client(watch_endpoint)
        self.stream = Stream(self.watch_client.watch.Watch)
        self.stream.send(self.pb.WatchRequest(create_request=self.pb.WatchCreateRequest(
            key=PREFIX, range_end=prefix_end(PREFIX), prev_kv=True)))
        got = self.stream.take(1, 10)
        assert got and got[0].created, f"watch not created on {watch_endpoint}: {got}"
        self.base = None

    def events(self) -> list:
        return [e for _, m in list(self.stream.received)[1:] for e in m.events]

    def wait_events(self, n: int, timeout: float = 10) -> None:
        assert self.stream.wait_for(lambda r: sum(len(m.events) for _, m in r[1:]) >= n, timeout), (
            f"the watch saw {len(self.events())} events, expected {n}")

    def close(self) -> None:
        self.stream.close()
        self.w.close()
        self.watch_client.close()


def steps(side: Side) -> None:
    """The same writes on either side; each waits for its events on the watch before the next."""
    pb, kv = side.pb, side.w.kv
    k = [PREFIX + f"k{i}".encode() for i in range(4)]
    count = 0

    def put(key, value, lease=0):
        r = kv.Put(pb.PutRequest(key=key, value=value, lease=lease), timeout=10)
        if side.base is None:
            side.base = r.header.revision
        return 1

    count += put(k[0], b"v1")
    side.wait_events(count)
    count += put(k[0], b"v2")
    side.wait_events(count)
    kv.Txn(pb.TxnRequest(success=[pb.RequestOp(request_put=pb.PutRequest(key=k[1], value=b"t1")),
                                  pb.RequestOp(request_put=pb.PutRequest(key=k[2], value=b"t2"))]), timeout=10)
    count += 2
    side.wait_events(count)
    kv.DeleteRange(pb.DeleteRangeRequest(key=k[0]), timeout=10)
    count += 1
    side.wait_events(count)
    count += put(k[0], b"v3")
    side.wait_events(count)
    lease = side.w.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=600), timeout=10).ID
    count += put(k[3], b"leased", lease)
    side.wait_events(count)
    kv.DeleteRange(pb.DeleteRangeRequest(key=k[1], range_end=k[3]), timeout=10)
    count += 2
    side.wait_events(count)
    count += put(k[2], bytes(range(256)) * 24 + b"x" * 144)  # 6000 bytes: too big for the payload
    side.wait_events(count)
    count += put(k[2], b"small again")
    side.wait_events(count)


def normalized(side: Side) -> list:
    def kv(x, rel=True):
        if x is None or (not x.key and not x.mod_revision):
            return None
        return {"key": x.key, "value": x.value, "version": x.version, "lease": x.lease != 0,
                "create": x.create_revision - side.base if x.create_revision else 0,
                "mod": x.mod_revision - side.base}
    return [{"type": e.type, "kv": kv(e.kv), "prev": kv(e.prev_kv) if e.HasField("prev_kv") else None}
            for e in side.events()]


@pytest.fixture(scope="module")
def servers(server_factory):
    url = server_factory.database("notice_events")
    a = server_factory.kine("kine-a", url)
    port = harness.free_port()
    b = server_factory.kine("kine-b", url, ["--metrics-bind-address", f"127.0.0.1:{port}"])
    b.extra["metrics"] = f"127.0.0.1:{port}"
    etcd = server_factory.etcd("etcd-notice-events")
    yield a, b, etcd


def test_events_from_the_notification_match_etcd(servers):
    a, b, etcd = servers
    # A notifies once it has heard B's hello: wait until a put through A reaches a watch on B
    # within the poll interval, several times in a row.
    warm = Side(a.endpoint, b.endpoint)
    try:
        for i in range(5):
            t0 = time.monotonic()
            warm.w.kv.Put(warm.pb.PutRequest(key=PREFIX + b"warm", value=str(i).encode()), timeout=10)
            warm.wait_events(i + 1)
            if time.monotonic() - t0 > 0.5:
                time.sleep(0.5)
    finally:
        warm.close()

    before = hub_revisions(b.extra["metrics"])
    kine_side = Side(a.endpoint, b.endpoint)
    etcd_side = Side(etcd.endpoint, etcd.endpoint)
    try:
        steps(kine_side)
        steps(etcd_side)
        after = hub_revisions(b.extra["metrics"])
        got, want = normalized(kine_side), normalized(etcd_side)
        assert got == want, f"events through B (kine) differ from etcd's:\nkine {got}\netcd {want}"
    finally:
        kine_side.close()
        etcd_side.close()

    notices = after.get("notification", 0) - before.get("notification", 0)
    table = after.get("table", 0) - before.get("table", 0)
    revisions = 9  # steps: 8 small revisions (the lease grant writes no row) and the big put
    print(f"[notice-events] B's hub: {notices} revisions from notifications, {table} from the table")
    assert table >= 1, "the 6000-byte put cannot travel in a NOTIFY: B must have read it from the table"
    assert notices >= revisions - 1 - 2, (
        f"only {notices} of the {revisions - 1} small revisions reached B's watchers from their NOTIFY "
        f"({table} were read from the table)")
    assert notices + table >= revisions
