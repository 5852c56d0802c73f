"""Leases: differential cases over gRPC against etcd 3.5, plus etcdctl lease end to end.

Same machinery as test_watch.py (both servers run a case at the same time; records normalised:
revisions relative to the case's start, identities masked, lease IDs → L1, L2, ... in order of
first appearance). Timing-dependent values are compared by shape: a LeaseTimeToLive TTL becomes
"ok" when 0 < TTL <= grantedTTL and grantedTTL - TTL <= 2 (the raw value otherwise), and its key
list is sorted (etcd returns it in map order).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid

import pytest

import harness
from cases import Cases
from etcdgrpc import Stream, to_dict
from normalize import assert_same, normalize, normalize_text
from test_watch import WCtx, compare, run_pair

RUN = uuid.uuid4().hex[:6]
CASES = Cases()
case = CASES.case
# Explicit lease IDs of this run (the same on both servers): unlikely to collide with server-chosen ones.
ID_BASE = 0x7E58_0000_0000 + (int(RUN, 16) << 8)


class LCtx(WCtx):
    def __init__(self, client, name, server):
        super().__init__(client, name, server)
        self.prefix = f"/e2e-lease/{RUN}/{name}/".encode()

    def revoke(self, lid: int, label="LeaseRevoke"):
        return self._call(label, self.cl.lease.LeaseRevoke, self.pb.LeaseRevokeRequest(ID=lid))

    def ttl(self, lid: int, keys: bool = False, label="LeaseTimeToLive"):
        req = self.pb.LeaseTimeToLiveRequest(ID=lid, keys=keys)
        resp, err = self.cl.call(self.cl.lease.LeaseTimeToLive, req)
        rec = {"error": err} if err else to_dict(resp)
        if resp is not None:
            if resp.TTL > 0 and resp.TTL <= resp.grantedTTL and resp.grantedTTL - resp.TTL <= 2:
                rec["TTL"] = "ok"
            rec["keys"] = sorted(rec["keys"])
        self.records.append({"op": label, "request": to_dict(req), "response": rec})
        return resp

    def lease_list(self, label="LeaseLeases"):
        """LeaseLeases, restricted to leases this case granted (the server holds others')."""
        resp, err = self.cl.call(self.cl.lease.LeaseLeases, self.pb.LeaseLeasesRequest())
        if err:
            self.records.append({"op": label, "response": {"error": err}})
            return None
        mine = {x.ID for x in resp.leases}
        rec = to_dict(resp)
        # Only this case's leases, in grant order (etcd lists in map order).
        rec["leases"] = [{"ID": i} for i in self.leases if i in mine]
        self.records.append({"op": label, "response": rec})
        return resp

    def keepalive_stream(self) -> Stream:
        s = Stream(self.cl.lease.LeaseKeepAlive)
        self._ka = getattr(self, "_ka", [])
        self._ka.append(s)
        return s

    def keepalive(self, s: Stream, lid: int, label="LeaseKeepAlive"):
        s.send(self.pb.LeaseKeepAliveRequest(ID=lid))
        got = s.take(1, 5.0)
        if not got:
            self.shortfalls.append(f"{label}: no keep-alive response")
        self.records.append({"op": label, "request": {"ID": lid},
                             "response": to_dict(got[0]) if got else None, "stream error": s.error})
        return got[0] if got else None

    def finish(self):
        for s in getattr(self, "_ka", []):
            s.close()
        super().finish()


def _run(servers, clients, fn, name):
    return run_pair(servers, clients, fn, name, ctx_class=LCtx)


@pytest.mark.parametrize("fn", CASES)
def test_lease_differential(clients, servers, fn):
    ctxs = _run(servers, clients, fn, fn.__name__)
    compare(servers, ctxs, fn.__name__)


# =============================================================================================
# Cases


@case
def case_grant_server_chosen_id(c: LCtx):
    a = c.grant(60)
    b = c.grant(60)
    c.note("IDs positive and distinct", a.ID > 0 and b.ID > 0 and a.ID != b.ID)
    c.ttl(a.ID)
    c.ttl(b.ID, keys=True)


@case
def case_grant_explicit_and_duplicate(c: LCtx):
    lid = ID_BASE + 1
    c.grant(30, lid)
    c.grant(30, lid)                           # "etcdserver: lease already exists"
    c.grant(90, lid)
    c.ttl(lid)
    c.revoke(lid)
    c.grant(30, lid)                           # free again after revoke
    c.ttl(lid)


@case
def case_grant_negative_id(c: LCtx):
    lid = -(ID_BASE + 5)
    c.grant(30, lid)
    c.put(c.k("n"), b"v", lease=lid)
    c.ttl(lid, keys=True)
    c.revoke(lid)
    c.range(c.k("n"))


@case
def case_zero_id(c: LCtx):
    c.revoke(0)
    c.ttl(0)
    s = c.keepalive_stream()
    c.keepalive(s, 0)
    c.put(c.k("z"), b"v", lease=0)              # lease 0 = no lease
    short = c.grant(1)
    c.keepalive(s, short.ID, label="LeaseKeepAlive of a lease granted below the minimum")


@case
def case_grant_ttl_limits(c: LCtx):
    for ttl in (1, 0, -3, 2, 3):               # below etcd's minimum (2 s) → raised to it
        c.grant(ttl)
    c.grant(9_000_000_001)                     # "etcdserver: too large lease TTL"
    c.grant(9_000_000_000)                     # the maximum is allowed
    c.grant(2**62)


@case
def case_put_with_lease_time_to_live_keys(c: LCtx):
    a = c.grant(600)
    b = c.grant(300)
    for n in ("b", "a", "c", "d"):
        c.put(c.k(n), n.encode(), lease=a.ID)
    c.range(c.k(""), c.end())
    c.ttl(a.ID, keys=True)
    c.ttl(a.ID)                                # keys not asked for
    c.put(c.k("c"), b"moved", lease=b.ID)       # moves c to b
    c.put(c.k("d"), b"detached")               # no lease: detaches d
    c.put(c.k("a"), b"kept", ignore_lease=True)  # keeps lease a
    c.delete(c.k("b"))                         # delete detaches
    c.range(c.k(""), c.end())
    c.ttl(a.ID, keys=True)
    c.ttl(b.ID, keys=True)
    c.put(c.k("b"), b"again", lease=a.ID)      # re-created, attached again
    c.ttl(a.ID, keys=True)
    c.txn([c.pb.PutRequest(key=c.k("t1"), value=b"1", lease=b.ID),
           c.pb.PutRequest(key=c.k("t2"), value=b"1", lease=b.ID)])
    c.ttl(b.ID, keys=True)


@case
def case_time_to_live_unknown(c: LCtx):
    c.ttl(ID_BASE + 99)
    c.ttl(ID_BASE + 99, keys=True)


@case
def case_keep_alive(c: LCtx):
    a = c.grant(30)
    s = c.keepalive_stream()
    c.keepalive(s, a.ID)                       # TTL = granted TTL
    c.keepalive(s, a.ID)
    c.ttl(a.ID)
    c.keepalive(s, ID_BASE + 98)               # unknown → TTL 0, no error
    c.revoke(a.ID)
    c.keepalive(s, a.ID, label="LeaseKeepAlive after revoke")
    b = c.grant(5)
    c.keepalive(s, b.ID, label="LeaseKeepAlive after more responses on the stream")


@case
def case_revoke(c: LCtx):
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.expect(1, "created")
    a = c.grant(600)
    for n in ("b", "a", "c"):
        c.put(c.k(n), n.encode(), lease=a.ID)
    c.put(c.k("plain"), b"no lease")
    w.expect(4, "puts")
    c.revoke(a.ID)                             # one revision, DELETE events in key order
    w.expect(1, "deletes of one revision")
    c.range(c.k(""), c.end())
    c.ttl(a.ID)
    c.revoke(a.ID, label="LeaseRevoke again")  # "etcdserver: requested lease not found"
    c.revoke(ID_BASE + 97, label="LeaseRevoke unknown")
    empty = c.grant(600)
    c.revoke(empty.ID, label="LeaseRevoke without keys (no new revision)")
    c.put(c.k("marker"), b"")
    w.expect(1, "marker")


@case
def case_leases_list(c: LCtx):
    a = c.grant(600)
    b = c.grant(600, ID_BASE + 3)
    c.grant(600)
    c.lease_list()
    c.revoke(a.ID)
    c.revoke(b.ID)
    c.lease_list(label="LeaseLeases after revoking two")


@case
def case_put_unknown_lease(c: LCtx):
    c.put(c.k("x"), b"v", lease=ID_BASE + 96)
    c.txn([c.pb.PutRequest(key=c.k("y"), value=b"v", lease=ID_BASE + 96)])
    a = c.grant(600)
    c.revoke(a.ID)
    c.put(c.k("z"), b"v", lease=a.ID, )         # revoked lease
    c.range(c.k(""), c.end())


@case
def case_expiry(c: LCtx):
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.expect(1, "created")
    short = c.grant(2)
    kept = c.grant(2)
    c.put(c.k("s/1"), b"1", lease=short.ID)
    c.put(c.k("s/2"), b"2", lease=short.ID)
    c.put(c.k("k/1"), b"1", lease=kept.ID)
    w.expect(3, "puts")
    t0 = time.monotonic()
    s = c.keepalive_stream()
    # Keep `kept` alive every 0.5 s while `short` expires.
    deleted = []
    while time.monotonic() - t0 < 6 and not deleted:
        s.send(c.pb.LeaseKeepAliveRequest(ID=kept.ID))
        deleted = w.stream.take(1, 0.5)
    elapsed = time.monotonic() - t0
    c.records.append({"op": "expiry of short: deletes of one revision, with prev_kv",
                      "responses": [to_dict(m) for m in deleted]})
    c.note("short expired within TTL + 1.5 s", bool(deleted) and elapsed <= 3.5)
    ka = s.drain(0.2)
    c.note("keep-alive responses all TTL 2", all(m.TTL == 2 and m.ID == kept.ID for m in ka))
    c.range(c.k(""), c.end())
    c.ttl(short.ID, keys=True)
    c.ttl(kept.ID, keys=True)
    # Now let `kept` expire as well.
    w.expect(1, "expiry of kept", timeout=5.0)
    c.range(c.k(""), c.end())
    c.keepalive(s, kept.ID, label="LeaseKeepAlive after expiry")


# =============================================================================================
# etcdctl lease end to end


def test_etcdctl_lease(servers, clients):
    def script(c: LCtx):
        ids: list[str] = []   # hex IDs etcdctl printed, in order
        ctl_records = []

        def norm_json(obj):
            if "ID" in obj and args_now[:2] == ["lease", "grant"]:
                ids.append(f"{obj['ID']:016x}")
                c.leases.append(obj["ID"])
            for f in ("ID", "id"):
                if isinstance(obj.get(f), int) and f"{obj[f]:016x}" in ids:
                    obj[f] = f"L{ids.index(f'{obj[f]:016x}') + 1}"
            if isinstance(obj.get("ttl"), int) and 0 < obj["ttl"] <= obj.get("granted-ttl", 0):
                obj["ttl"] = "<=granted"
            if isinstance(obj.get("keys"), list):
                obj["keys"] = sorted(base64.b64decode(k).decode() for k in obj["keys"])
            return normalize(obj, c.base)

        def ctl(*args):
            args_now[:] = list(args)
            a = [x.format(*ids) for x in args]
            r = harness.etcdctl(c.server, *a)
            lines = []
            for line in r.stdout.splitlines():
                if line.startswith("{"):
                    lines.append(norm_json(json.loads(line)))
                    continue
                m = re.match(r"lease ([0-9a-f]+) granted with", line)
                if m and args[:2] == ("lease", "grant"):
                    ids.append(f"{int(m.group(1), 16):016x}")
                    c.leases.append(int(m.group(1), 16))
                for i, h in enumerate(ids):
                    line = re.sub(rf"\b{h}\b", f"L{i + 1}", line)
                line = re.sub(r"remaining\((\d+)s\)", "remaining(<ttl>)", line)
                line = re.sub(r"attached keys\(\[(.*)\]\)",
                              lambda m: "attached keys([" + " ".join(sorted(m.group(1).split())) + "])", line)
                lines.append(line)
            err = [normalize_text(l, c.server.endpoint) for l in r.stderr.splitlines() if l.startswith("Error")]
            ctl_records.append({"args": list(args), "rc": r.returncode, "stdout": lines, "errors": err})
            return r

        args_now: list = []
        ctl("lease", "grant", "600")
        ctl("lease", "grant", "1")
        ctl("lease", "grant", "300", "-w", "json")
        ctl("put", c.k("a").decode(), "1", "--lease={0}")
        ctl("put", c.k("b").decode(), "2", "--lease={0}")
        ctl("put", c.k("c").decode(), "3", "--lease=1234abcd")
        ctl("lease", "keep-alive", "--once", "{0}")
        ctl("lease", "keep-alive", "--once", "1234abcd")
        ctl("lease", "timetolive", "{0}")
        ctl("lease", "timetolive", "{0}", "--keys")
        ctl("lease", "timetolive", "{2}", "--keys", "-w", "json")
        ctl("lease", "timetolive", "1234abcd")
        r = harness.etcdctl(c.server, "lease", "list")
        listed = [f"{int(l.strip(), 16):016x}" for l in r.stdout.splitlines()[1:] if l.strip()]
        ctl_records.append({"args": ["lease", "list"], "rc": r.returncode,
                            "this test's leases listed": [f"L{i + 1}" for i, h in enumerate(ids) if h in listed],
                            "first line": re.sub(r"\d+", "N", r.stdout.splitlines()[0]) if r.stdout else ""})
        ctl("lease", "revoke", "{0}")
        ctl("get", c.k().decode(), "--prefix")
        ctl("lease", "revoke", "{0}")
        ctl("lease", "revoke", "1234abcd")
        ctl("lease", "timetolive", "{0}")
        for rec in ctl_records:
            c.records.append({"op": "etcdctl", **rec})

    ctxs = _run(servers, clients, script, "etcdctl-lease")
    compare(servers, ctxs, "etcdctl lease")
