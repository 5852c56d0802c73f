"""etcd's Lock and Election services (v3lockpb, v3electionpb) against etcd 3.5.1, differentially.

Each case is one script of raw gRPC calls run against the reference etcd 3.5 and the target at the
same time (one thread each), recorded and compared after normalisation: revisions relative to the
case's start, identities masked, lease IDs → L1, L2, ... in order of first appearance, also where
they are part of a key (etcd names a lock or candidate key `<name>/<lease in hex>`). A call that
should block is sent asynchronously; the script records whether it is still waiting after a pause
and what it answers once released. An Observe stream records every response in arrival order.

Plus one gateway call of each kind, and `etcdctl lock` / `etcdctl elect`: client-side recipes over
KV, Lease and Watch, which must work on the target as on etcd.

KINE_E2E_DUMP=1 (with -s) prints the reference's normalised record of each case.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import signal
import subprocess
import time
import uuid
import zlib

import grpc
import pytest

import harness
from cases import Cases, run_differential
from etcdgrpc import Client, Stream, to_dict
from normalize import assert_same, normalize, normalize_leases, pretty, rel

RUN = uuid.uuid4().hex[:6]
CASES = Cases()
case = CASES.case
# A lease ID no server hands out in this run.
MISSING_LEASE = 0x7E58_0000_0000 + (int(RUN, 16) << 8) + 0x42
BLOCK = 1.0     # how long a call that should block is given before it is recorded as waiting


class Pending:
    """A unary call sent without waiting for its answer."""

    def __init__(self, ctx: "ECtx", label: str, future, request):
        self.ctx, self.label, self.future, self.request = ctx, label, future, request

    def waiting(self, label: str = "", pause: float = BLOCK):
        """Record whether the call is still unanswered after `pause` seconds."""
        time.sleep(pause)
        self.ctx.records.append({"op": f"{self.label}: still waiting {label}".strip(), "value": not self.future.done()})
        return not self.future.done()

    def result(self, timeout: float = 10.0):
        try:
            resp = self.future.result(timeout=timeout)
            rec = to_dict(resp)
        except grpc.FutureTimeoutError:
            self.future.cancel()
            resp, rec = None, {"error": "no answer within %.0f s" % timeout}
            self.ctx.shortfalls.append(f"{self.label}: no answer")
        except grpc.RpcError as e:
            resp, rec = None, {"error": {"code": e.code().name, "message": e.details()}}
        self.ctx.records.append({"op": f"{self.label}: answer", "request": to_dict(self.request), "response": rec})
        return resp


class ECtx:
    def __init__(self, client: Client, name: str, server):
        self.cl = client
        self.pb = client.pb
        self.lockpb = client.lockpb
        self.epb = client.electionpb
        self.server = server
        self.prefix = f"/e2e-lock/{RUN}/{name}/".encode()
        self.base = client.current_revision()
        self.records: list = []
        self.shortfalls: list[str] = []
        self.leases: list[int] = []
        # Lease ids are chosen, not granted at random: the keys Lock and Campaign write end in
        # them, so their order under a prefix must be the same on both servers.
        self.next_lease = (int(RUN, 16) << 24 | (zlib.crc32(name.encode()) & 0xFFFF) << 8) & 0x3FFF_FFFF_FFFF_FF00
        self.streams: list[Stream] = []
        self.pending: list[Pending] = []

    def k(self, name="") -> bytes:
        return self.prefix + (name.encode() if isinstance(name, str) else name)

    def end(self, key: bytes) -> bytes:
        p = bytearray(key)
        p[-1] += 1
        return bytes(p)

    def note(self, label, value):
        self.records.append({"op": label, "value": value})

    def call(self, label, method, req, timeout=None):
        resp, err = self.cl.call(method, req, timeout=timeout)
        self.records.append({"op": label, "request": to_dict(req),
                             "response": {"error": err} if err is not None else to_dict(resp)})
        return resp

    def send(self, label, method, req, timeout=30.0) -> Pending:
        p = Pending(self, label, method.future(req, timeout=timeout), req)
        self.pending.append(p)
        return p

    # leases and keys
    def grant(self, ttl=60):
        self.next_lease += 1
        r = self.call("LeaseGrant", self.cl.lease.LeaseGrant, self.pb.LeaseGrantRequest(TTL=ttl, ID=self.next_lease))
        self.leases.append(r.ID)
        return r.ID

    def revoke(self, lid):
        return self.call("LeaseRevoke", self.cl.lease.LeaseRevoke, self.pb.LeaseRevokeRequest(ID=lid))

    def keys(self, prefix: bytes, label="Range"):
        return self.call(label, self.cl.kv.Range, self.pb.RangeRequest(key=prefix, range_end=self.end(prefix)))

    # Lock
    def LockReq(self, name: bytes, lease: int):
        return self.lockpb.LockRequest(name=name, lease=lease)

    def lock(self, name: bytes, lease: int, label="Lock", timeout=None):
        return self.call(label, self.cl.lock.Lock, self.LockReq(name, lease), timeout)

    def lock_async(self, name: bytes, lease: int, label="Lock (sent)") -> Pending:
        return self.send(label, self.cl.lock.Lock, self.LockReq(name, lease))

    def unlock(self, key: bytes, label="Unlock"):
        return self.call(label, self.cl.lock.Unlock, self.lockpb.UnlockRequest(key=key))

    # Election
    def campaign(self, name: bytes, lease: int, value: bytes, label="Campaign", timeout=None):
        return self.call(label, self.cl.election.Campaign,
                         self.epb.CampaignRequest(name=name, lease=lease, value=value), timeout)

    def campaign_async(self, name: bytes, lease: int, value: bytes, label="Campaign (sent)") -> Pending:
        return self.send(label, self.cl.election.Campaign, self.epb.CampaignRequest(name=name, lease=lease, value=value))

    def leader(self, name: bytes, label="Leader"):
        return self.call(label, self.cl.election.Leader, self.epb.LeaderRequest(name=name))

    def proclaim(self, leader, value: bytes, label="Proclaim"):
        return self.call(label, self.cl.election.Proclaim, self.epb.ProclaimRequest(leader=leader, value=value))

    def resign(self, leader, label="Resign"):
        return self.call(label, self.cl.election.Resign, self.epb.ResignRequest(leader=leader))

    def observe(self, name: bytes) -> Stream:
        s = Stream(self.cl.election.Observe, request=self.epb.LeaderRequest(name=name), timeout=60)
        self.streams.append(s)
        self.records.append({"op": "Observe", "request": {"name": name.decode()}})
        return s

    def expect(self, s: Stream, n: int, label: str, timeout=5.0):
        got = s.take(n, timeout)
        if len(got) < n:
            self.shortfalls.append(f"{label}: expected {n} responses, got {len(got)}")
        self.records.append({"op": f"Observe responses: {label}", "responses": [to_dict(m) for m in got]})
        return got

    def quiet(self, s: Stream, label: str, quiet=0.6):
        rest = s.drain(quiet)
        rec = {"op": f"Observe further responses: {label}", "responses": [to_dict(m) for m in rest]}
        if s.closed:
            rec["stream ended by the server"] = s.error or "OK"
        self.records.append(rec)

    def finish(self):
        for p in self.pending:
            p.future.cancel()
        for s in self.streams:
            s.close()
        for lid in self.leases:
            self.cl.call(self.cl.lease.LeaseRevoke, self.pb.LeaseRevokeRequest(ID=lid))


def _hex_leases(obj, mapping: dict):
    """Lease IDs in hex inside strings (keys `<name>/<lease hex>`) → <L1>, ... as mapped."""
    if isinstance(obj, dict):
        return {k: _hex_leases(v, mapping) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_hex_leases(x, mapping) for x in obj]
    if isinstance(obj, str):
        for lid, label in mapping.items():
            obj = re.sub(rf"(?<![0-9a-f]){lid:x}(?![0-9a-f])", f"<{label}>", obj)
        return obj
    return obj


def _leader_rev(obj, base: int):
    """LeaderKey.rev (the candidate key's create revision) relative, as normalize() does the rest."""
    if isinstance(obj, dict):
        return {k: rel(v, base) if k == "rev" and isinstance(v, int) else _leader_rev(v, base) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_leader_rev(x, base) for x in obj]
    return obj


def normalized(c: ECtx):
    mapping: dict = {}
    for lid in c.leases:                    # granted leases first, in grant order
        mapping.setdefault(lid, f"L{len(mapping) + 1}")
    out = normalize_leases(_leader_rev(normalize(c.records, c.base), c.base), mapping)
    return _hex_leases(out, mapping)


def run_pair(servers, clients, fn, name: str):
    ctxs = [ECtx(cl, name, s) for cl, s in zip(clients, servers)]
    return run_differential(servers, ctxs, fn, name, normalized, "case recorded nothing")


@pytest.mark.parametrize("fn", CASES)
def test_lock_election_differential(clients, servers, fn):
    run_pair(servers, clients, fn, fn.__name__)


# =============================================================================================
# Lock


@case
def case_lock_unlock(c: ECtx):
    name = c.k("lock")
    l1, l2 = c.grant(), c.grant()
    first = c.lock(name, l1)                       # key name/<lease hex>, at once
    c.keys(name)                                   # the key: empty value, attached to the lease
    c.lock(name, l1, label="Lock again with the same lease")   # already held by that lease: at once
    second = c.lock_async(name, l2)
    second.waiting("while the first holds the lock")
    c.keys(name)                                   # the waiter's key is there too
    c.unlock(first.key)
    got = second.result()
    c.keys(name)
    c.unlock(first.key, label="Unlock of a key already deleted")
    c.unlock(c.k("no-such-lock/1234"), label="Unlock of a key never locked")
    c.unlock(b"", label="Unlock of an empty key")
    c.unlock(got.key)
    c.keys(name)


@case
def case_lock_released_by_lease_revoke(c: ECtx):
    name = c.k("lock")
    l1, l2, l3 = c.grant(), c.grant(), c.grant()
    c.lock(name, l1)
    second = c.lock_async(name, l2, "Lock by the second lease (sent)")
    second.waiting()                               # (its key made before the third's: the queue's order)
    third = c.lock_async(name, l3, "Lock by the third lease (sent)")
    third.waiting()
    c.revoke(l1)                                   # the holder's lease goes: the next in line gets it
    s = second.result()
    third.waiting("while the second holds the lock")
    c.revoke(l2)
    third.result()
    c.keys(name)
    c.note("the second got the lock key of its lease", s is not None and s.key.endswith(b"%x" % l2))


@case
def case_lock_errors(c: ECtx):
    name = c.k("lock")
    c.lock(name, MISSING_LEASE, label="Lock with a lease that does not exist")
    l1 = c.grant()
    c.revoke(l1)
    c.lock(name, l1, label="Lock with a revoked lease")
    c.keys(name)
    l2 = c.grant()
    held = c.lock(name, l2)
    l3 = c.grant()
    waiter = c.lock_async(name, l3, "Lock that is given up (sent)")
    waiter.waiting()
    waiter.future.cancel()                         # the client gives up
    time.sleep(0.5)
    c.keys(name, label="Range after the waiter gave up (its key removed)")
    c.unlock(held.key)
    c.lock(c.k(""), l3, label="Lock with the name of the case's prefix")
    c.keys(c.k(""))


@case
def case_lock_without_lease(c: ECtx):
    """Lease 0: the server makes a lease of its own for the lock (a session with the default TTL)."""
    name = c.k("lock")
    got = c.lock(name, 0, label="Lock with lease 0")
    r = c.keys(name)
    lease = r.kvs[0].lease if r and r.kvs else 0
    c.note("the key's lease is a new one", lease not in c.leases and lease > 0)
    if lease:
        c.leases.append(lease)                     # labelled and revoked at the end
        ttl = c.cl.lease.LeaseTimeToLive(c.pb.LeaseTimeToLiveRequest(ID=lease), timeout=10)
        c.note("its granted TTL", ttl.grantedTTL)
    c.unlock(got.key)


# =============================================================================================
# Election


@case
def case_election(c: ECtx):
    name = c.k("election")
    c.leader(name, label="Leader of an election without candidates")
    obs = c.observe(name)
    c.quiet(obs, "no leader yet")
    l1, l2 = c.grant(), c.grant()
    lead = c.campaign(name, l1, b"one")
    c.expect(obs, 1, "the first leader")
    c.leader(name)
    c.keys(name)
    c.proclaim(lead.leader, b"one, proclaimed")
    c.expect(obs, 1, "the proclaimed value")
    c.leader(name)
    pb = c.epb
    c.proclaim(pb.LeaderKey(name=name, key=name + b"/%x" % l2, rev=lead.leader.rev, lease=l2), b"x",
               label="Proclaim by a key that is not the leader's")
    c.proclaim(pb.LeaderKey(name=name, key=lead.leader.key, rev=lead.leader.rev + 1000, lease=l1), b"x",
               label="Proclaim with the leader's key and another revision")
    c.proclaim(None, b"x", label="Proclaim without a leader key")
    second = c.campaign_async(name, l2, b"two")
    second.waiting("while the first leads")
    c.keys(name)
    c.resign(lead.leader)
    second.result()
    c.expect(obs, 1, "the second leader")
    c.leader(name)
    c.resign(lead.leader, label="Resign of the former leader again")
    c.proclaim(lead.leader, b"x", label="Proclaim by the former leader")
    c.resign(None, label="Resign without a leader key")
    c.revoke(l2)                                   # the leader's lease goes: no leader
    c.leader(name, label="Leader after the leader's lease was revoked")
    c.quiet(obs, "after the leader's lease was revoked")
    c.keys(name)


@case
def case_campaign_twice_with_one_lease(c: ECtx):
    name = c.k("election")
    l1 = c.grant()
    obs = c.observe(name)
    first = c.campaign(name, l1, b"one")
    c.expect(obs, 1, "the leader")
    c.campaign(name, l1, b"one again", label="Campaign again with the same lease (the value changes)")
    c.expect(obs, 1, "the new value")
    c.leader(name)
    c.resign(first.leader)
    c.leader(name)
    c.quiet(obs, "after resign")


@case
def case_leadership_passes_in_order(c: ECtx):
    """Three candidates: the leader's lease revoked, then the next resigns; Observe (started while
    a leader exists) sends the current leader first, then each new one."""
    name = c.k("election")
    l1, l2, l3 = c.grant(), c.grant(), c.grant()
    first = c.campaign(name, l1, b"a")
    second = c.campaign_async(name, l2, b"b", "Campaign b (sent)")
    second.waiting()
    third = c.campaign_async(name, l3, b"c", "Campaign c (sent)")
    third.waiting()
    obs = c.observe(name)
    c.expect(obs, 1, "the current leader")
    c.revoke(l1)
    b = second.result()
    c.expect(obs, 1, "b leads")
    third.waiting("while b leads")
    c.resign(b.leader)
    third.result()
    c.expect(obs, 1, "c leads")
    c.leader(name)
    c.note("first leader key", first.leader.key == name + b"/%x" % l1)


@case
def case_campaign_errors(c: ECtx):
    name = c.k("election")
    c.campaign(name, MISSING_LEASE, b"v", label="Campaign with a lease that does not exist")
    c.leader(name)
    got = c.campaign(name, 0, b"v", label="Campaign with lease 0")
    r = c.keys(name)
    lease = r.kvs[0].lease if r and r.kvs else 0
    c.note("the candidate key's lease is a new one", lease not in c.leases and lease > 0)
    if lease:
        c.leases.append(lease)
    if got is not None:
        c.resign(got.leader)


# =============================================================================================
# The gateway


def _gw(server, path, body):
    host, port = server.endpoint.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        conn.request("POST", path, json.dumps(body))
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def test_lock_election_gateway(servers, clients):
    """One gateway call of each kind (the Observe stream: its first line)."""
    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    answers = []
    for s, cl in zip(servers, clients):
        c = ECtx(cl, "gateway", s)
        name, ename = c.k("lock"), c.k("election")
        lid = c.grant()
        out = []

        def post(label, path, body):
            status, data = _gw(s, path, body)
            out.append({"op": label, "status": status, "body": data})
            return data

        try:
            got = post("lock", "/v3/lock/lock", {"name": b64(name), "lease": str(lid)})
            key = got.get("key", "") if isinstance(got, dict) else ""
            post("unlock", "/v3/lock/unlock", {"key": key})
            post("lock, missing lease", "/v3/lock/lock", {"name": b64(name), "lease": str(MISSING_LEASE)})
            post("leader, none", "/v3/election/leader", {"name": b64(ename)})
            lead = post("campaign", "/v3/election/campaign", {"name": b64(ename), "lease": str(lid), "value": b64(b"v")})
            leader = lead.get("leader") if isinstance(lead, dict) else None
            post("leader", "/v3/election/leader", {"name": b64(ename)})
            post("proclaim", "/v3/election/proclaim", {"leader": leader, "value": b64(b"w")})
            host, port = s.endpoint.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                conn.request("POST", "/v3/election/observe", json.dumps({"name": b64(ename)}))
                r = conn.getresponse()
                line = r.readline()
                out.append({"op": "observe, first line", "status": r.status,
                            "body": json.loads(line) if line.strip() else line.decode()})
            finally:
                conn.close()
            post("resign", "/v3/election/resign", {"leader": leader})
            post("leader after resign", "/v3/election/leader", {"name": b64(ename)})
        finally:
            c.finish()
        mapping = {lid: "L1"}
        norm = _hex_leases(_gw_norm(out, c.base, mapping), mapping)
        answers.append(norm)
    if os.environ.get("KINE_E2E_DUMP") == "1":
        print(f"--- gateway\n{pretty(answers[0])}")
    assert_same(answers[0], answers[1], "lock and election over the gateway", servers[0].name, servers[1].name)


def _gw_norm(obj, base, mapping):
    """Gateway JSON: int64s are strings; keys base64. Decode keys, revisions relative, leases labelled."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("cluster_id", "member_id", "raft_term"):
                out[k] = "<id>"
            elif k in ("revision", "create_revision", "mod_revision", "rev") and isinstance(v, str) and v.isdigit():
                out[k] = f"base{int(v) - base:+d}"
            elif k == "lease" and isinstance(v, str) and v.isdigit():
                out[k] = mapping.get(int(v), v)
            elif k in ("key", "name", "value") and isinstance(v, str):
                try:
                    out[k] = base64.b64decode(v).decode()
                except Exception:
                    out[k] = v
            else:
                out[k] = _gw_norm(v, base, mapping)
        return out
    if isinstance(obj, list):
        return [_gw_norm(x, base, mapping) for x in obj]
    return obj


# =============================================================================================
# etcdctl lock / elect (client-side recipes over KV, Lease and Watch)


class Ctl:
    """A long-running etcdctl (lock / elect) whose output is read line by line."""

    def __init__(self, server, *args):
        cmd = [harness.etcdctl35(), f"--endpoints={server.endpoint}", "--dial-timeout=2s", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        self.buf = b""

    def _read(self, timeout: float) -> bool:
        """Whatever stdout has within `timeout`; False at end of file."""
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        if not ready:
            return True
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        self.buf += chunk
        return bool(chunk)

    def lines(self, n: int, timeout: float = 10.0) -> list[str]:
        """The next n lines of output (fewer if they do not come within timeout)."""
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < n and time.monotonic() < deadline:
            if not self._read(deadline - time.monotonic()):
                break
        parts = self.buf.split(b"\n")
        k = min(n, len(parts) - 1)
        got, self.buf = parts[:k], b"\n".join(parts[k:])
        return [x.decode(errors="replace") for x in got]

    def rest(self) -> list[str]:
        """Every line until the process ends."""
        while self._read(10.0):
            pass
        out, self.buf = self.buf, b""
        return out.decode(errors="replace").splitlines()

    def interrupt(self, timeout: float = 10.0) -> int:
        """SIGINT (etcdctl unlocks / resigns on it), then the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _ctl_norm(lines: list[str], name: str) -> list[str]:
    """`<name>/<lease hex>` → `<name>/<lease>`; a revision printed by ETCD_LOCK_REV → <rev>."""
    out = []
    for line in lines:
        line = re.sub(re.escape(name) + r"/[0-9a-f]+", name + "/<lease>", line)
        out.append(line)
    return out


def test_etcdctl_lock(servers):
    results = []
    for s in servers:
        name = f"/e2e-lock/{RUN}/ctl-lock"
        rec = {}
        holder = Ctl(s, "lock", name)
        try:
            rec["holder prints its key"] = _ctl_norm(holder.lines(1), name)
            t0 = time.monotonic()
            waiter = Ctl(s, "lock", name, "--", "sh", "-c", 'echo "got $ETCD_LOCK_KEY"')
            time.sleep(BLOCK)
            rec["waiter still waiting"] = waiter.proc.poll() is None
            rec["holder exit on SIGINT"] = holder.interrupt()
            out = waiter.rest()
            rec["waiter"] = {"rc": waiter.proc.wait(timeout=10), "stdout": _ctl_norm(out, name)}
            rec["waiter waited for the holder"] = time.monotonic() - t0 >= BLOCK
            r = harness.etcdctl(s, "get", name, "--prefix", "--keys-only")
            rec["keys left"] = r.stdout.split()
        finally:
            holder.kill()
        results.append(rec)
    assert results[0]["waiter"]["rc"] == 0, results[0]
    if os.environ.get("KINE_E2E_DUMP") == "1":
        print(f"--- etcdctl lock\n{pretty(results[0])}")
    assert_same(results[0], results[1], "etcdctl lock", servers[0].name, servers[1].name)


def test_etcdctl_elect(servers):
    results = []
    for s in servers:
        name = f"/e2e-lock/{RUN}/ctl-elect"
        rec = {}
        observer = Ctl(s, "elect", "-l", name)
        a = Ctl(s, "elect", name, "alpha")
        b = None
        try:
            rec["a prints leadership"] = _ctl_norm(a.lines(2), name)
            rec["observer sees a"] = _ctl_norm(observer.lines(2), name)
            b = Ctl(s, "elect", name, "beta")
            time.sleep(BLOCK)
            rec["b prints nothing while a leads"] = b.lines(1, timeout=0.2)
            rec["a exit on SIGINT"] = a.interrupt()
            rec["b prints leadership"] = _ctl_norm(b.lines(2), name)
            rec["observer sees b"] = _ctl_norm(observer.lines(2), name)
            rec["b exit on SIGINT"] = b.interrupt()
            time.sleep(0.3)
            rec["observer after b resigned"] = observer.lines(1, timeout=0.5)
            r = harness.etcdctl(s, "get", name, "--prefix", "--keys-only")
            rec["keys left"] = r.stdout.split()
        finally:
            for p in (observer, a, b):
                if p is not None:
                    p.kill()
        results.append(rec)
    assert results[0]["b prints leadership"], results[0]
    if os.environ.get("KINE_E2E_DUMP") == "1":
        print(f"--- etcdctl elect\n{pretty(results[0])}")
    assert_same(results[0], results[1], "etcdctl elect", servers[0].name, servers[1].name)
