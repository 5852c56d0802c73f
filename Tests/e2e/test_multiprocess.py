"""Two kine processes on ONE PostgreSQL database (the two-node HA shape).

* Racing CAS writers through both processes (Range, then Txn MOD == mod_revision → Put on a few
  shared keys) while a prefix watcher on EACH process collects events: every committed write is
  seen exactly once by each watcher, in revision order, within 1 s of the writer's response;
  revisions of both processes are unique and dense; nothing stalls.
* Lease expiry with two processes: each lease expires exactly once (one DELETE event per key,
  one revision per lease, no extra revisions).

kine only (etcd has no such mode); the latencies measured are printed (run with -s to see them).
"""

from __future__ import annotations

import random
import statistics
import sys
import threading
import time
import uuid

import pytest

from etcdgrpc import Client, Stream

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:6]
WRITES = 200
THREADS = 4
KEYS = 5
MAX_LATENCY = 1.0


@pytest.fixture(scope="module")
def two_kines(server_factory):
    url = server_factory.database("mp")
    a = server_factory.kine("kine-a", url)
    b = server_factory.kine("kine-b", url)
    yield a, b


def prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


class Watcher:
    """A prefix watch on one process; `events` = (receive time, revision, type, key, value)."""

    def __init__(self, endpoint: str, prefix: bytes):
        self.client = Client(endpoint)
        pb = self.client.pb
        self.stream = Stream(self.client.watch.Watch)
        self.stream.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), prev_kv=True)))
        got = self.stream.take(1, 10)
        assert got and got[0].created and not got[0].canceled, f"watch not created on {endpoint}: {got}"
        self.created_revision = got[0].header.revision

    def events(self):
        out = []
        for t, m in list(self.stream.received)[1:]:
            revs = {e.kv.mod_revision for e in m.events}
            for e in m.events:
                out.append((t, e.kv.mod_revision, e.type, e.kv.key, e.kv.value, m.header.revision, len(revs)))
        return out

    def wait_revision(self, rev: int, timeout: float) -> bool:
        return self.stream.wait_for(
            lambda r: any(e.kv.mod_revision >= rev for _, m in r for e in m.events), timeout)

    def close(self):
        self.stream.close()
        self.client.close()


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def test_racing_cas_writers_two_processes(two_kines):
    a, b = two_kines
    prefix = f"/e2e-mp/{RUN}/cas/".encode()
    keys = [prefix + f"k{i}".encode() for i in range(KEYS)]
    watchers = {"kine-a": Watcher(a.endpoint, prefix), "kine-b": Watcher(b.endpoint, prefix)}
    start_rev = max(w.created_revision for w in watchers.values())

    lock = threading.Lock()
    committed: list = []     # (response time, revision, key, value, process)
    failures = {"cas_failed": 0}
    errors: list = []
    stop = threading.Event()

    def writer(tid: int, server):
        cl = Client(server.endpoint)
        pb = cl.pb
        rnd = random.Random(tid)
        n = 0
        try:
            while not stop.is_set():
                key = rnd.choice(keys)
                r = cl.kv.Range(pb.RangeRequest(key=key), timeout=10)
                mod = r.kvs[0].mod_revision if r.kvs else 0
                value = f"t{tid}-{n}".encode()
                n += 1
                resp = cl.kv.Txn(pb.TxnRequest(
                    compare=[pb.Compare(key=key, target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=mod)],
                    success=[pb.RequestOp(request_put=pb.PutRequest(key=key, value=value))]), timeout=10)
                t = time.monotonic()
                if resp.succeeded:
                    with lock:
                        if len(committed) >= WRITES:
                            # Over the target: still committed, so still recorded.
                            pass
                        committed.append((t, resp.header.revision, key, value, server.name))
                        if len(committed) >= WRITES:
                            stop.set()
                else:
                    with lock:
                        failures["cas_failed"] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"writer {tid} on {server.name}: {e!r}")
            stop.set()
        finally:
            cl.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=writer, args=(i, a if i % 2 == 0 else b)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    write_secs = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "writers stalled (still running after 120 s)"
    assert not errors, errors

    committed.sort(key=lambda x: x[1])
    revs = [c[1] for c in committed]
    assert len(set(revs)) == len(revs), f"duplicate revisions across processes: {sorted(revs)}"
    assert revs == list(range(start_rev + 1, start_rev + 1 + len(revs))), (
        f"revisions are not dense from {start_rev + 1}: missing "
        f"{sorted(set(range(revs[0], revs[-1] + 1)) - set(revs))[:20]}")
    last = revs[-1]

    try:
        report = []
        for name, w in watchers.items():
            assert w.wait_revision(last, 5.0), (
                f"watcher on {name} stalled: last revision {last}, saw up to "
                f"{max([e[1] for e in w.events()] or [0])}")
            time.sleep(0.2)  # anything extra (a duplicate) would arrive now
            evs = w.events()
            seen = [(e[1], e[3], e[4]) for e in evs]
            want = [(c[1], c[2], c[3]) for c in committed]
            if seen != want:
                dup = len(seen) - len(set(seen))
                missing = [x for x in want if x not in set(seen)]
                extra = [x for x in seen if x not in set(want)]
                order = seen == sorted(seen)
                pytest.fail(f"watcher on {name}: {len(seen)} events for {len(want)} committed writes; "
                            f"duplicates {dup}, missing {missing[:10]}, unexpected {extra[:10]}, "
                            f"in revision order: {order}")
            assert all(e[2] == 0 for e in evs), f"watcher on {name}: non-PUT events"
            assert all(e[6] == 1 for e in evs), f"watcher on {name}: a response mixes revisions"
            by_rev = {e[1]: e[0] for e in evs}
            lat_local, lat_remote = [], []
            for t_resp, rev, _, _, proc in committed:
                d = by_rev[rev] - t_resp
                (lat_local if proc == name else lat_remote).append(d)
            worst = max(lat_local + lat_remote)
            report.append(f"{name}: local writes p50 {_pct(lat_local, 50) * 1000:.1f} ms "
                          f"p99 {_pct(lat_local, 99) * 1000:.1f} ms max {max(lat_local) * 1000:.1f} ms; "
                          f"writes through the other process p50 {_pct(lat_remote, 50) * 1000:.1f} ms "
                          f"p99 {_pct(lat_remote, 99) * 1000:.1f} ms max {max(lat_remote) * 1000:.1f} ms")
            assert worst <= MAX_LATENCY, (
                f"watcher on {name}: an event arrived {worst:.3f} s after its write's response "
                f"(limit {MAX_LATENCY} s)\n" + "\n".join(report))
        print(f"\n[multiprocess] {len(committed)} CAS writes ({failures['cas_failed']} lost races) in "
              f"{write_secs:.1f} s through 2 processes; watch latency (receive - writer's response):\n  "
              + "\n  ".join(report), file=sys.stderr)
    finally:
        for w in watchers.values():
            w.close()


def test_lease_expiry_two_processes(two_kines):
    a, b = two_kines
    procs = [a, b]
    prefix = f"/e2e-mp/{RUN}/lease/".encode()
    clients = [Client(a.endpoint), Client(b.endpoint)]
    pb = clients[0].pb
    watchers = {"kine-a": Watcher(a.endpoint, prefix), "kine-b": Watcher(b.endpoint, prefix)}
    try:
        rev0 = clients[0].current_revision()
        leases = {}
        n_leases, per_lease = 6, 3
        for i in range(n_leases):
            g = clients[i % 2].lease.LeaseGrant(pb.LeaseGrantRequest(TTL=2), timeout=10)
            leases[g.ID] = [prefix + f"l{i}/k{j}".encode() for j in range(per_lease)]
            for j, k in enumerate(leases[g.ID]):
                clients[(i + j) % 2].kv.Put(pb.PutRequest(key=k, value=b"v", lease=g.ID), timeout=10)
        t_granted = time.monotonic()
        puts = n_leases * per_lease
        want_last = rev0 + puts + n_leases
        for name, w in watchers.items():
            ok = w.wait_revision(want_last, 8.0)
            assert ok, f"watcher on {name}: not every lease expired within 8 s ({w.events()[-3:]})"
        time.sleep(1.5)  # a second expiry of the same lease would show up now
        took = time.monotonic() - t_granted

        seqs = {}
        for name, w in watchers.items():
            dels = [(e[1], e[3]) for e in w.events() if e[2] == 1]
            by_key: dict = {}
            for rev, key in dels:
                by_key.setdefault(key, []).append(rev)
            twice = {k: v for k, v in by_key.items() if len(v) != 1}
            assert not twice, f"watcher on {name}: keys deleted more than once: {twice}"
            assert set(by_key) == {k for ks in leases.values() for k in ks}, f"watcher on {name}: missing deletes"
            lease_revs = []
            for lid, ks in leases.items():
                rs = {by_key[k][0] for k in ks}
                assert len(rs) == 1, f"watcher on {name}: keys of lease {lid:x} deleted in revisions {rs}"
                lease_revs.append(rs.pop())
            assert len(set(lease_revs)) == n_leases, f"watcher on {name}: leases share revisions: {lease_revs}"
            seqs[name] = dels
        assert seqs["kine-a"] == seqs["kine-b"], "the two processes' watchers saw different deletes"

        for cl, p in zip(clients, procs):
            rev = cl.current_revision()
            assert rev == want_last, (
                f"{p.name}: current revision {rev}, expected {want_last} ({puts} puts + one revision "
                f"per expired lease from {rev0}): a lease expired more than once or wrote extra rows")
            r = cl.kv.Range(pb.RangeRequest(key=prefix, range_end=prefix_end(prefix)), timeout=10)
            assert r.count == 0, f"{p.name}: keys left after expiry: {[kv.key for kv in r.kvs]}"
            for lid in leases:
                t = cl.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lid), timeout=10)
                assert t.TTL == -1, f"{p.name}: lease {lid:x} still there: TTL {t.TTL}"
        print(f"\n[multiprocess] {n_leases} leases (TTL 2 s) expired once each; all gone "
              f"{took - 1.5:.2f} s after the last grant", file=sys.stderr)
    finally:
        for w in watchers.values():
            w.close()
        for cl in clients:
            cl.close()
