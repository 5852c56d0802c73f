"""Load and invariant checker for the two-node HA tests (design/HA.md R1-R6).

A Checker drives real clients through both nodes of an hanet.HALab while a test injects faults:

  writers   one or more threads per node, each a gRPC client doing Puts of fresh keys under
            /ha/<run>/ with short deadlines, moving on to a new key after any error (so every key
            is written at most once and an unknown outcome never turns into a second revision);
  etcdctl   one thread per node running `etcdctl put` (a second, independent client stack);
  readers   one thread per node doing linearizable Ranges, for header revisions (R2);
  watchers  one watch chain per node on the prefix with prev_kv: a chain is a series of watches;
            after a compaction cancel it re-creates the watch from compact_revision, after a
            broken stream (a killed kine) from the last revision it saw + 1, as kube-apiserver's
            reflector does.

Every acknowledged write (node, client, key, value, header revision, time), every error, every
watch event and cancel and every header revision is recorded; the check_* functions then assert
the invariants over the records. The workload only does single-key Puts, so a revision has
exactly one (key, value) and the watch checks can be exact.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import grpc

import etcdgrpc
import harness
import hanet

RETRYABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
COMPACTED_MESSAGE = "required revision has been compacted"
EPOCH_BUMP = 10 ** 9


def prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


class FastClient(etcdgrpc.Client):
    """etcdgrpc.Client with reconnect backoff capped at 0.5 s: gRPC's default (1 s growing to
    120 s) would keep a client away from a restarted kine long after it answers, and the
    failover times measured would be the client's, not kine's."""

    def __init__(self, endpoint: str, timeout: float = 2.0):  # noqa: super().__init__ not called on purpose
        rpc, rpc_grpc, _ = etcdgrpc.modules()
        self.pb = rpc
        self.endpoint = endpoint
        self.timeout = timeout
        self.channel = grpc.insecure_channel(endpoint, options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
        ])
        self.kv = rpc_grpc.KVStub(self.channel)
        self.maintenance = rpc_grpc.MaintenanceStub(self.channel)
        self.cluster = rpc_grpc.ClusterStub(self.channel)
        self.lease = rpc_grpc.LeaseStub(self.channel)
        self.watch = rpc_grpc.WatchStub(self.channel)


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Ack:
    node: str
    client: str
    via: str          # "grpc" or "etcdctl"
    key: str
    value: str
    revision: int
    t: float          # time.monotonic() when the response arrived


@dataclass(frozen=True)
class Failure:
    node: str
    client: str
    key: str
    code: str
    message: str
    t: float


@dataclass(frozen=True)
class Event:
    revision: int
    key: str
    value: str
    type: int         # 0 PUT, 1 DELETE
    t: float


@dataclass
class Segment:
    """One watch of a chain, from its create request to its end."""

    node: str
    chain: str
    requested: int                      # start_revision sent (0 = from now)
    t_start: float
    start: int = 0                      # first revision it must deliver
    created: bool = False
    events: list = field(default_factory=list)
    end: str = "open"                   # open | compacted | canceled | error | ended | closed
    compact_revision: int = 0
    reason: str = ""
    t_end: float = 0.0

    @property
    def last_revision(self) -> int:
        return self.events[-1].revision if self.events else 0


# --------------------------------------------------------------------------------------------
# The checker


class Checker:
    def __init__(self, lab: "hanet.HALab", nodes=("a", "b"), writers_per_node: int = 1,
                 etcdctl: bool = True, readers: bool = True, watchers: bool = True,
                 put_timeout: float = 2.0, write_interval: float = 0.02, run: str | None = None):
        self.lab = lab
        self.nodes = tuple(nodes)
        self.run = run or uuid.uuid4().hex[:8]
        self.prefix = f"/ha/{self.run}/"
        self.put_timeout = put_timeout
        self.write_interval = write_interval
        self._plan = (writers_per_node, etcdctl, readers, watchers)
        self._lock = threading.Lock()
        self._stop_writers = threading.Event()
        self.quiet_nodes: set[str] = set()  # nodes whose writers hold off (quiet(), loud())
        self._stop_watchers = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch_threads: list[threading.Thread] = []
        self._calls: dict[str, object] = {}
        self.acks: list[Ack] = []
        self.failures: list[Failure] = []
        self.headers: dict[str, list[tuple[float, int]]] = defaultdict(list)  # client -> (t, revision)
        self.segments: list[Segment] = []
        self.reads: list[tuple[str, str, int]] = []  # (key, value, mod_revision) from final reads
        self.t_started = 0.0
        self.running = False
        lab.checker = self  # the test fixture stops a checker a failing test left running

    # ---- lifecycle

    def start(self) -> "Checker":
        writers, ctl, readers, watchers = self._plan
        self.t_started = time.monotonic()
        self.running = True
        for node in self.nodes:
            if watchers:
                self._spawn(self._watch_chain, node, f"{node}-watch", watch=True)
            for i in range(writers):
                self._spawn(self._writer, node, f"{node}-w{i}")
            if ctl:
                self._spawn(self._etcdctl_writer, node, f"{node}-ctl")
            if readers:
                self._spawn(self._reader, node, f"{node}-r")
        if watchers:
            # Let the watches be created before the first writes, so their windows cover them.
            hanet.wait_for(lambda: all(self._chain_created(f"{n}-watch") for n in self.nodes), 10, 0.05)
        return self

    def stop(self, catch_up: float = 10.0) -> None:
        """Stop writing, give the live watches up to catch_up seconds to deliver every
        acknowledged write, then stop them."""
        if not self.running:
            return
        self.running = False
        self._stop_writers.set()
        for t in self._threads:
            t.join(timeout=15)
        hanet.wait_for(self._watchers_caught_up, catch_up, 0.1)
        time.sleep(0.3)  # a duplicate delivery would show up now
        self._stop_watchers.set()
        with self._lock:
            calls = list(self._calls.values())
        for c in calls:
            c.cancel()
        for t in self._watch_threads:
            t.join(timeout=10)

    def quiet(self, node: str) -> None:
        """The node's writers stop writing (a write in flight still completes) until loud()."""
        self.quiet_nodes.add(node)

    def loud(self, node: str) -> None:
        self.quiet_nodes.discard(node)

    def _spawn(self, fn, node: str, cid: str, watch: bool = False) -> None:
        t = threading.Thread(target=fn, args=(node, cid), name=f"hacheck-{cid}", daemon=True)
        (self._watch_threads if watch else self._threads).append(t)
        t.start()

    def _record_ack(self, ack: Ack) -> None:
        with self._lock:
            self.acks.append(ack)
            self.headers[ack.client].append((ack.t, ack.revision))

    def _record_failure(self, f: Failure) -> None:
        with self._lock:
            self.failures.append(f)

    # ---- clients

    def _writer(self, node: str, cid: str) -> None:
        client = FastClient(self.lab.node(node).endpoint, timeout=self.put_timeout)
        pb = client.pb
        seq = 0
        try:
            while not self._stop_writers.is_set():
                if node in self.quiet_nodes:
                    self._stop_writers.wait(0.05)
                    continue
                key, value = f"{self.prefix}{cid}/{seq:06d}", f"{cid}:{seq}:{self.run}"
                seq += 1
                try:
                    r = client.kv.Put(pb.PutRequest(key=key.encode(), value=value.encode()), timeout=self.put_timeout)
                except grpc.RpcError as e:
                    self._record_failure(Failure(node, cid, key, e.code().name, e.details() or "", time.monotonic()))
                    time.sleep(0.05)  # a short back-off, then a new key (the outcome of this one is unknown)
                    continue
                self._record_ack(Ack(node, cid, "grpc", key, value, r.header.revision, time.monotonic()))
                if self.write_interval:
                    time.sleep(self.write_interval)
        finally:
            client.close()

    def _etcdctl_writer(self, node: str, cid: str, interval: float = 0.3) -> None:
        seq = 0
        while not self._stop_writers.is_set():
            if node in self.quiet_nodes:
                self._stop_writers.wait(0.05)
                continue
            key, value = f"{self.prefix}{cid}/{seq:06d}", f"{cid}:{seq}:{self.run}"
            seq += 1
            r = etcdctl(self.lab, node, "put", key, value, "-w", "json")
            if r.returncode == 0:
                rev = json.loads(r.stdout)["header"]["revision"]
                self._record_ack(Ack(node, cid, "etcdctl", key, value, int(rev), time.monotonic()))
            else:
                last = (r.stderr.strip().splitlines() or ["?"])[-1]
                self._record_failure(Failure(node, cid, key, _etcdctl_code(last), last, time.monotonic()))
            self._stop_writers.wait(interval)

    def _reader(self, node: str, cid: str, interval: float = 0.05) -> None:
        client = FastClient(self.lab.node(node).endpoint, timeout=self.put_timeout)
        req = client.pb.RangeRequest(key=f"{self.prefix}probe".encode())
        try:
            while not self._stop_writers.is_set():
                try:
                    r = client.kv.Range(req, timeout=self.put_timeout)
                    with self._lock:
                        self.headers[cid].append((time.monotonic(), r.header.revision))
                except grpc.RpcError:
                    pass  # the writers record errors; readers only feed R2
                self._stop_writers.wait(interval)
        finally:
            client.close()

    # ---- watches

    def _chain_created(self, chain: str) -> bool:
        with self._lock:
            return any(s.chain == chain and s.created for s in self.segments)

    def _watch_chain(self, node: str, chain: str) -> None:
        client = FastClient(self.lab.node(node).endpoint, timeout=5)
        start = 0
        try:
            while not self._stop_watchers.is_set():
                seg = Segment(node=node, chain=chain, requested=start, t_start=time.monotonic())
                self._run_watch(client, seg)  # recorded in self.segments once created
                start = self._next_start(seg, start)
                if seg.end in ("error", "ended", "canceled"):
                    self._stop_watchers.wait(0.1)
        finally:
            client.close()

    @staticmethod
    def _next_start(seg: Segment, start: int) -> int:
        if seg.end == "compacted":
            return seg.compact_revision
        if seg.events:
            return seg.last_revision + 1
        return seg.start or start

    def _run_watch(self, client: FastClient, seg: Segment) -> None:
        pb = client.pb
        p = self.prefix.encode()
        q: queue.Queue = queue.Queue()
        q.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=p, range_end=prefix_end(p), prev_kv=True, start_revision=seg.requested)))

        def requests():
            while True:
                r = q.get()
                if r is None:
                    return
                yield r

        call = client.watch.Watch(requests())
        with self._lock:
            self._calls[seg.chain] = call
        try:
            for resp in call:
                self._on_watch_response(seg, resp)
                if seg.end != "open":
                    break
            else:
                seg.end = "ended"  # the server closed the stream without a cancel
        except grpc.RpcError as e:
            seg.end = "closed" if self._stop_watchers.is_set() else "error"
            seg.reason = f"{e.code().name}: {e.details()}"
        finally:
            q.put(None)
            call.cancel()
            seg.t_end = time.monotonic()
            if seg.end == "open":
                seg.end = "closed"

    def _on_watch_response(self, seg: Segment, resp) -> None:
        t = time.monotonic()
        with self._lock:
            if resp.header.revision:  # etcd sends 0 in a compaction cancel: no revision, not a step back
                self.headers[seg.chain].append((t, resp.header.revision))
            if resp.created and not seg.created:
                seg.created = True
                seg.start = seg.requested or resp.header.revision + 1
                self.segments.append(seg)
            for e in resp.events:
                seg.events.append(Event(e.kv.mod_revision, e.kv.key.decode(), e.kv.value.decode(), e.type, t))
            if resp.canceled:
                seg.end = "compacted" if resp.compact_revision else "canceled"
                seg.compact_revision = resp.compact_revision
                seg.reason = resp.cancel_reason

    def _watchers_caught_up(self) -> bool:
        """Every open watch has delivered every acknowledged write at or above its start."""
        with self._lock:
            open_segs = [s for s in self.segments if s.end == "open"]
            top = max((a.revision for a in self.acks), default=0)
            return all(s.last_revision >= top or not any(a.revision >= s.start for a in self.acks)
                       for s in open_segs)

    # ---- queries for tests

    def acks_through(self, node: str, after: float = 0.0, min_revision: int = 0) -> list[Ack]:
        with self._lock:
            return [a for a in self.acks if a.node == node and a.t > after and a.revision >= min_revision]

    def first_ack(self, node: str, after: float = 0.0, min_revision: int = 0) -> Ack | None:
        acks = self.acks_through(node, after, min_revision)
        return min(acks, key=lambda a: a.t) if acks else None

    def max_revision(self, before: float | None = None) -> int:
        with self._lock:
            return max((a.revision for a in self.acks if before is None or a.t < before), default=0)

    def longest_gap(self, node: str, t0: float, t1: float) -> float:
        """Longest time without an acknowledged write through node within [t0, t1]."""
        ts = sorted(a.t for a in self.acks_through(node) if t0 <= a.t <= t1)
        points = [t0] + ts + [t1]
        return max(b - a for a, b in zip(points, points[1:]))

    def segments_on(self, node: str) -> list[Segment]:
        with self._lock:
            return [s for s in self.segments if s.node == node]

    def describe_watches(self, node: str | None = None) -> str:
        """One line per watch: where it started, what it delivered, how it ended, when (seconds
        from the checker's start)."""
        lines = []
        for n in [node] if node else self.nodes:
            for s in self.segments_on(n):
                t_end = (s.t_end or time.monotonic()) - self.t_started
                lines.append(f"  {s.chain}: from {s.start} (asked {s.requested}) +{s.t_start - self.t_started:.2f}s"
                             f"..+{t_end:.2f}s, {len(s.events)} events up to {s.last_revision}, "
                             f"{s.end} {s.compact_revision or ''} {s.reason}")
        return "\n".join(lines)

    def summary(self) -> str:
        with self._lock:
            by = Counter((a.node, a.via) for a in self.acks)
            errs = Counter((f.node, f.code) for f in self.failures)
            segs = Counter((s.node, s.end) for s in self.segments)
            top = max((a.revision for a in self.acks), default=0)
        return (f"checker {self.prefix}: acks {dict(by)} (max revision {top}); errors {dict(errs)}; "
                f"watches {dict(segs)}")


def etcdctl(lab: "hanet.HALab", node: str, *args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    """etcdctl 3.5 through the node's unix socket. The endpoint is relative (unix://kine.sock,
    run in the node's dir): with an absolute path (unix:///tmp/...) Go gRPC sends the path as
    the HTTP/2 :authority, which kine's HTTP/2 layer rejects (RST_STREAM PROTOCOL_ERROR)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    cmd = [harness.etcdctl35(), "--endpoints=unix://kine.sock", "--dial-timeout=1s", "--command-timeout=2s", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=lab.node(node).dir)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, -1, "", "etcdctl timed out: context deadline exceeded")


# etcd's UNAVAILABLE errors that etcdctl prints by message only (api/v3rpc/rpctypes/error.go).
_ETCD_UNAVAILABLE = ("etcdserver: no leader", "etcdserver: leader changed", "etcdserver: server stopped",
                     "etcdserver: request timed out", "etcdserver: unhealthy cluster", "etcdserver: not capable")


def _etcdctl_code(line: str) -> str:
    """The gRPC code behind etcdctl's last error line."""
    if any(m in line for m in _ETCD_UNAVAILABLE):
        return "UNAVAILABLE"
    if COMPACTED_MESSAGE in line:
        return "OUT_OF_RANGE"
    for code in ("Unavailable", "DeadlineExceeded", "OutOfRange", "Internal", "Unknown", "Canceled"):
        if f"code = {code}" in line:
            return {"Unavailable": "UNAVAILABLE", "DeadlineExceeded": "DEADLINE_EXCEEDED",
                    "OutOfRange": "OUT_OF_RANGE", "Internal": "INTERNAL", "Unknown": "UNKNOWN",
                    "Canceled": "CANCELLED"}[code]
    if "deadline exceeded" in line:
        return "DEADLINE_EXCEEDED"
    return "ETCDCTL"


# --------------------------------------------------------------------------------------------
# Reads after the fact


def read_all(lab: "hanet.HALab", node: str, prefix: str, timeout: float = 20) -> dict[str, tuple[str, int]] | None:
    """key -> (value, mod_revision) of every key under prefix, by a linearizable Range through
    node (retried while the node answers UNAVAILABLE); None if it never answered."""
    client = FastClient(lab.node(node).endpoint, timeout=5)
    pb = client.pb
    p = prefix.encode()
    try:
        def attempt():
            resp, err = client.call(client.kv.Range, pb.RangeRequest(key=p, range_end=prefix_end(p)))
            return resp if err is None else None
        resp = hanet.wait_for(attempt, timeout, 0.25)
        if resp is None:
            return None
        return {kv.key.decode(): (kv.value.decode(), kv.mod_revision) for kv in resp.kvs}
    finally:
        client.close()


def missing_acks(chk: Checker, node: str, timeout: float = 20) -> tuple[list[Ack], list[str]]:
    """(acknowledged writes not readable through node with their value and revision, problems)."""
    got = read_all(chk.lab, node, chk.prefix, timeout)
    if got is None:
        return list(chk.acks), [f"node {node} never answered a Range within {timeout}s"]
    with chk._lock:
        chk.reads.extend((k, v, r) for k, (v, r) in got.items())
        acks = list(chk.acks)
    missing = [a for a in acks if got.get(a.key) != (a.value, a.revision)]
    return missing, []


def lost_writes(chk: Checker, node: str) -> list[Ack]:
    """Async mode: the acknowledged writes the surviving node does not have (reported, not
    asserted: at most the replication lag is lost)."""
    missing, problems = missing_acks(chk, node)
    assert not problems, problems
    return missing


def compacted_probe(lab: "hanet.HALab", node: str, prefix: str, revision: int) -> dict:
    """A Range and a Watch at revision through node: after a promotion to epoch T, both must
    get etcd's compacted error for revision < T (R3)."""
    client = FastClient(lab.node(node).endpoint, timeout=5)
    pb = client.pb
    p = prefix.encode()
    try:
        _, err = client.call(client.kv.Range, pb.RangeRequest(key=p, range_end=prefix_end(p), revision=revision))
        stream = etcdgrpc.Stream(client.watch.Watch)
        stream.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=p, range_end=prefix_end(p), start_revision=revision)))
        stream.wait_for(lambda rs: any(m.canceled or m.events for _, m in rs), 5)
        stream.close()
        msgs = [m for _, m in stream.received]
        cancel = next((m for m in msgs if m.canceled), None)
        return {
            "range_error": err,
            "watch_canceled": cancel is not None,
            "watch_compact_revision": cancel.compact_revision if cancel is not None else 0,
            "watch_events": sum(len(m.events) for m in msgs),
            "watch_error": stream.error,
        }
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# Invariants. Each check returns a list of violations (strings); empty means it holds.


def check_r1(chk: Checker) -> list[str]:
    """R1: no revision with two different (key, value) across every ack, event and read; and
    (every key is written once) no write seen at two revisions."""
    by_rev: dict[int, set] = defaultdict(set)
    by_key: dict[str, set] = defaultdict(set)
    with chk._lock:
        obs = [(a.revision, a.key, a.value, f"ack {a.node}/{a.via}") for a in chk.acks]
        obs += [(e.revision, e.key, e.value, f"event {s.node}") for s in chk.segments for e in s.events if e.type == 0]
        obs += [(r, k, v, "read") for k, v, r in chk.reads]
    for rev, key, value, _ in obs:
        by_rev[rev].add((key, value))
        by_key[key].add(rev)
    out = [f"R1: revision {rev} has {sorted(kv)}" for rev, kv in by_rev.items() if len(kv) > 1]
    out += [f"R1: key {k} seen at revisions {sorted(rs)}" for k, rs in by_key.items() if len(rs) > 1]
    return out


def check_r2(chk: Checker) -> list[str]:
    """R2: each client's header revisions never decrease (writers, readers, watch chains)."""
    out = []
    with chk._lock:
        series = {c: list(h) for c, h in chk.headers.items()}
    for client, hs in series.items():
        for (t0, r0), (t1, r1) in zip(hs, hs[1:]):
            if r1 < r0:
                out.append(f"R2: client {client} saw revision {r1} after {r0} "
                           f"(+{t1 - chk.t_started:.2f}s after +{t0 - chk.t_started:.2f}s)")
                break
    return out


def check_r3(chk: Checker) -> list[str]:
    """R3: every watch delivers its events in revision order without duplicates, nothing below
    its start, and every acknowledged write of its window exactly once. The window of a watch
    that was cancelled (compaction) or broke ends at its last event; one still open when the
    checker stopped (after the catch-up wait) covers every acknowledged write above its start."""
    out = []
    with chk._lock:
        segments = list(chk.segments)
        acks = sorted(chk.acks, key=lambda a: a.revision)
    for s in segments:
        name = f"R3: watch {s.chain} from {s.start} ({s.end}{' ' + str(s.compact_revision) if s.compact_revision else ''})"
        revs = [e.revision for e in s.events]
        pairs = [(e.revision, e.key) for e in s.events]
        if any(b < a for a, b in zip(revs, revs[1:])):
            out.append(f"{name}: events out of revision order")
        dup = [p for p, n in Counter(pairs).items() if n > 1]
        if dup:
            out.append(f"{name}: duplicate events {dup[:5]}")
        early = [r for r in revs if r < s.start]
        if early:
            out.append(f"{name}: events below its start revision: {early[:5]}")
        hi = float("inf") if s.end == "closed" else s.last_revision
        seen = set(pairs)
        gaps = [a for a in acks if s.start <= a.revision <= hi and (a.revision, a.key) not in seen]
        if gaps:
            out.append(f"{name}: {len(gaps)} acknowledged writes missing, first {[(a.revision, a.key) for a in gaps[:5]]}")
    return out


def check_errors(chk: Checker) -> list[str]:
    """Clients only see retryable errors (UNAVAILABLE, DEADLINE_EXCEEDED) while nodes change
    roles: what a non-leading node that cannot route must answer."""
    with chk._lock:
        bad = Counter((f.node, f.code, f.message[:120]) for f in chk.failures if f.code not in RETRYABLE)
    return [f"errors: {n} x {code} from {node}: {msg}" for (node, code, msg), n in bad.most_common(5)]


def check_r5(chk: Checker, node: str) -> list[str]:
    """R5: every acknowledged write is readable through node (the survivor) afterwards."""
    missing, problems = missing_acks(chk, node)
    out = [f"R5: {p}" for p in problems]
    if missing and not problems:
        out.append(f"R5: {len(missing)} of {len(chk.acks)} acknowledged writes not readable through {node}, "
                   f"first {[(a.revision, a.key, a.node) for a in missing[:5]]}")
    return out


def wait_tables_equal(lab: "hanet.HALab", timeout: float = 15) -> dict:
    """R6: both nodes' replicated tables have the same count and checksum within timeout;
    returns the state, or fails with both."""
    last = {}

    def equal():
        last["a"], last["b"] = lab.table_state("a"), lab.table_state("b")
        return last["a"] is not None and last["a"] == last["b"] and last["a"]
    state = hanet.wait_for(equal, timeout, 0.5)
    assert state, f"R6: tables differ after {timeout}s: a={last.get('a')} b={last.get('b')}\n{lab.diagnostics()}"
    return state


def assert_invariants(chk: Checker, survivor: str | None = None, r3: bool = True, errors: bool = True) -> None:
    """R1, R2 (always), R3 (unless r3=False), error codes, and R5 through survivor if given."""
    problems = check_r5(chk, survivor) if survivor else []  # first: R1 then covers what it read too
    problems += check_r1(chk) + check_r2(chk)
    if r3:
        problems += check_r3(chk)
    if errors:
        problems += check_errors(chk)
    assert not problems, "\n".join(problems[:30]) + "\n" + chk.summary()


# --------------------------------------------------------------------------------------------
# Role sampling (R4 and "no promotion" checks)


class RoleRecorder:
    """Samples both nodes' `kine ha status` in rounds until stopped: rounds[i] = (t, {node:
    status or None})."""

    def __init__(self, lab: "hanet.HALab", interval: float = 0.3):
        self.lab = lab
        self.interval = interval
        self.rounds: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hacheck-roles", daemon=True)

    def __enter__(self) -> "RoleRecorder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rounds.append((time.monotonic(), {n: self.lab.ha_status(n, timeout=2) for n in ("a", "b")}))
            self._stop.wait(self.interval)

    def roles(self, node: str, unanswered: bool = False) -> list[str | None]:
        """The node's roles in order, consecutive repeats collapsed; rounds it did not answer
        are left out (a status call timing out is not a role change) unless unanswered."""
        out: list = []
        for _, st in self.rounds:
            r = st[node]["role"] if st[node] else None
            if r is None and not unanswered:
                continue
            if not out or out[-1] != r:
                out.append(r)
        return out

    def terms(self, node: str) -> set:
        return {st[node]["term"] for _, st in self.rounds if st[node]}

    def both_leading(self) -> list[float]:
        """R4: rounds in which both nodes could take writes: a leader role, serving clients, with
        its PostgreSQL up (a kine whose database died may still report its old role, and a leader
        that stepped down keeps its role while it waits for the reunion's verdict; neither takes
        writes)."""
        lead = {"leader", "leader-alone"}
        return [t for t, st in self.rounds
                if all(st[n] and st[n].get("role") in lead and st[n].get("postgresUp") and st[n]["serving"]
                       for n in ("a", "b"))]
