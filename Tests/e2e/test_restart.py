"""kine killed with SIGKILL while leases are live, then restarted on the same database.

Deadlines live in PostgreSQL (docs/compatibility.md, "Restart and leases": kept as they were,
where etcd would extend every lease to its full TTL), so after the restart:
  * the long lease's keys remain and LeaseTimeToLive reports what is left of the original TTL
    (not a fresh full TTL);
  * the short leases' keys are deleted by max(grant + TTL, restart) + 1 s, one revision per lease,
    whether they ran out while kine was down or after it came back;
  * a watch from before the kill replays exactly the history written before it, then the
    expiries (events survive the restart).

kine only.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid

import pytest

from etcdgrpc import Client, Stream

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:6]


def prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


def kill9(srv) -> None:
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=10)


def test_sigkill_with_live_leases(server_factory):
    url = server_factory.database("restart")
    k1 = server_factory.kine("kine-before-kill", url)
    cl = Client(k1.endpoint)
    pb = cl.pb
    p = f"/e2e-restart/{RUN}/".encode()
    k = lambda n: p + n.encode()  # noqa: E731

    rev0 = cl.current_revision()
    cl.kv.Put(pb.PutRequest(key=k("plain"), value=b"1"))                       # rev0+1
    t_grant = time.monotonic()
    short = cl.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=3)).ID
    mid = cl.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=2)).ID                  # may run out while kine is down
    long_ = cl.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=60)).ID
    plan = [("s/1", short), ("s/2", short), ("m/1", mid), ("l/1", long_), ("l/2", long_)]
    for name, lid in plan:                                                    # rev0+2 .. rev0+6
        cl.kv.Put(pb.PutRequest(key=k(name), value=name.encode(), lease=lid))
    cl.kv.Put(pb.PutRequest(key=k("plain"), value=b"2"))                       # rev0+7
    rev_kill = cl.current_revision()
    assert rev_kill == rev0 + 7
    cl.close()

    t_kill = time.monotonic()
    kill9(k1)
    time.sleep(1.0)
    k2 = server_factory.kine("kine-after-kill", url)
    t_ready = time.monotonic()
    cl = Client(k2.endpoint)
    watch = Stream(cl.watch.Watch)
    try:
        # A watch from before the kill: replays the history, then sees the expiries.
        watch.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=p, range_end=prefix_end(p), start_revision=rev0 + 1, prev_kv=True)))

        # The long lease: keys there, remaining TTL continues from the original grant.
        r = cl.kv.Range(pb.RangeRequest(key=k("l/"), range_end=prefix_end(k("l/"))))
        assert [kv.key for kv in r.kvs] == [k("l/1"), k("l/2")], f"long lease's keys after restart: {r.kvs}"
        ttl = cl.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=long_, keys=True))
        elapsed = time.monotonic() - t_grant
        assert ttl.grantedTTL == 60
        assert sorted(ttl.keys) == [k("l/1"), k("l/2")]
        assert 60 - elapsed - 2 <= ttl.TTL <= 60 - elapsed + 0.5, (
            f"long lease TTL after restart is {ttl.TTL}, {elapsed:.2f} s after the grant: expected about "
            f"{60 - elapsed:.1f} (a TTL near 60 means the deadline was reset by the restart)")

        # The short leases: gone by max(grant + TTL, restart) + 1 s.
        gone = {}
        deadline = {short: max(t_grant + 3, t_ready) + 1.0, mid: max(t_grant + 2, t_ready) + 1.0}
        keys_of = {short: [k("s/1"), k("s/2")], mid: [k("m/1")]}
        while len(gone) < 2 and time.monotonic() < max(deadline.values()) + 3:
            for lid, ks in keys_of.items():
                if lid not in gone:
                    rr = cl.kv.Range(pb.RangeRequest(key=ks[0], range_end=ks[-1] + b"\x00", count_only=True))
                    if rr.count == 0:
                        gone[lid] = time.monotonic()
            time.sleep(0.05)
        for lid, name, ttl_s in ((short, "short (3 s)", 3), (mid, "mid (2 s)", 2)):
            assert lid in gone, f"{name} lease's keys still there {time.monotonic() - t_grant:.1f} s after the grant"
            late = gone[lid] - deadline[lid]
            assert late <= 0, (
                f"{name} lease's keys deleted {gone[lid] - t_grant:.2f} s after the grant "
                f"(kine was killed at +{t_kill - t_grant:.2f} s, ready again at +{t_ready - t_grant:.2f} s): "
                f"{late:.2f} s later than max(grant + TTL, restart) + 1 s")
            t = cl.lease.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=lid))
            assert t.TTL == -1, f"{name} lease still exists after its keys were deleted: TTL {t.TTL}"

        # The watch: exactly the history, then one revision per expired lease.
        assert watch.wait_for(lambda rs: sum(len(m.events) for _, m in rs) >= 10, 5.0), \
            f"watch from before the kill: {[(m.created, len(m.events)) for _, m in watch.received]}"
        time.sleep(0.3)
        resps = [m for _, m in watch.received]
        assert resps[0].created and not resps[0].canceled, resps[0]
        events = [(e.type, e.kv.key, e.kv.mod_revision - rev0, e.kv.value, e.kv.lease,
                   e.prev_kv.value if e.HasField("prev_kv") else None)
                  for m in resps[1:] for e in m.events]
        PUT, DELETE = 0, 1
        want_history = [(PUT, k("plain"), 1, b"1", 0, None)]
        want_history += [(PUT, k(n), 2 + i, n.encode(), lid, None) for i, (n, lid) in enumerate(plan)]
        want_history += [(PUT, k("plain"), 7, b"2", 0, b"1")]
        assert events[:7] == want_history, (
            "history replayed after the restart differs:\n"
            + "\n".join(f"  got {g}\n want {w}" for g, w in zip(events[:7], want_history) if g != w)
            + f"\n  (got {len(events[:7])} of 7)")
        tail = events[7:]
        by_rev: dict = {}
        for typ, key, rel, *_ in tail:
            assert typ == DELETE, f"unexpected event after the history: {tail}"
            by_rev.setdefault(rel, []).append(key)
        assert sorted(by_rev) == [8, 9], f"expiry revisions (relative) {sorted(by_rev)}, expected 8 and 9: {tail}"
        assert sorted(map(sorted, by_rev.values())) == sorted([sorted(keys_of[short]), sorted(keys_of[mid])]), \
            f"keys per expiry revision: {by_rev}"
        assert all(e[5] is not None for e in tail), f"expiry DELETE events without prev_kv: {tail}"

        # The long lease still works: keep-alive renews to the full TTL, revoke deletes its keys.
        ka = Stream(cl.lease.LeaseKeepAlive)
        ka.send(pb.LeaseKeepAliveRequest(ID=long_))
        got = ka.take(1, 5)
        ka.close()
        assert got and got[0].TTL == 60, f"keep-alive of the long lease after restart: {got}"
        cl.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=long_))
        assert cl.kv.Range(pb.RangeRequest(key=k("l/"), range_end=prefix_end(k("l/")), count_only=True)).count == 0
        print(f"\n[restart] killed at +{t_kill - t_grant:.2f} s, ready at +{t_ready - t_grant:.2f} s; "
              f"long lease TTL {ttl.TTL} at +{elapsed:.2f} s; mid (2 s) gone at +{gone[mid] - t_grant:.2f} s, "
              f"short (3 s) gone at +{gone[short] - t_grant:.2f} s", file=sys.stderr)
    finally:
        watch.close()
        cl.close()
