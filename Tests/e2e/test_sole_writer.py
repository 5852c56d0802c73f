"""The sole-writer lock (`SoleWriter`, Sources/KineStore/SoleWriter.swift): a kine process alone on
its database answers linearizable reads from memory, with kine processes A and B on ONE
PostgreSQL database and a real etcd 3.5 side by side where a behaviour has an etcd counterpart.

The rules: the sole-writer lock is the advisory lock 0x6B696E66 (in pg_locks: locktype
'advisory', classid 0, objid 1802071654, objsubid 1).
- Every write transaction of every kine process first takes it shared
  (`pg_try_advisory_xact_lock_shared`); while another process holds it exclusively the
  transaction writes nothing, the writer sends `NOTIFY kine, 'hello 0'`, waits 2..50 ms and
  retries; after 4 s of refusals it ends the holder's session with pg_terminate_backend (logged
  "ended the session of another kine process that held the sole-writer lock and did not let go",
  `kine.writer.endedSessions`).
- A process that finds itself alone (every 2 s it counts the other sessions whose last query is
  exactly `LISTEN "kine"`; it starts as not alone) takes the lock exclusively, session-level, on
  its Writer's session (the store looks every 250 ms, attempts at most every 2 s), then answers
  linearizable Range, read-only Txn and watch-create-from-now with no read barrier query.
- A notification it did not cause (a newcomer's hello) stops the memory reads at once and the
  lock is released before its next write batch; the newcomer's listener keeps the count non-zero,
  so it stays released while another kine listens; once the other process is gone it is taken
  again. Memory reads also stop when the Writer session's last round trip is older than 2 s (it
  confirms with `SELECT 1` every 1 s while holding) or the listener session changed.

How it is seen from outside: pg_locks (psycopg2) shows the exclusive holder, matched to a kine
process through the client ports of its TCP sockets (/proc/<pid>/fd and /proc/<pid>/net/tcp*);
A's /metrics (client port) counts its read barriers, `kine_sql_total{name="barrier"}`; the
database's `xact_commit` (pg_stat_database) counts every transaction of every session. On
PostgreSQL 15+ a backend's counters reach pg_stat_database at its first idle moment >= 1 s after
its last report, or 10 s after it went idle: `xact_commit` is read before the reads (after
flushing this probe's own counters) and 10 + 1 s after the last read, nothing else running.
Checked here:

1. alone: A on a fresh database holds the lock exclusively within 10 s of its start, on one of
   its own backends (not its listener); while it holds it, 300 linearizable gets of a key written
   through A return its value, A makes no read barrier (its barrier count does not move), and
   `xact_commit` grows by < 100 over the reads plus the 11 s settle (a barrier per read would add
   >= 300; A's background loops (Writer confirmation 1/s, hub poll, listener count every 2 s,
   lease expiry, ...) make a few transactions a second, printed; the count starts 11 s after A
   was ready, once its start-up transactions have been counted);
2. a newcomer writes, A reads, 3 times: with A holding the lock a fresh B starts; as soon as it
   answers, a put through B succeeds, and then at once a linearizable get, a read-only Txn (one
   range op, no compares) and a linearizable prefix Range through A all see B's value, each
   through a read barrier (A's count grows by >= 3); the same puts and reads on etcd give the
   same values (keys, values and counts compared); B stops; A holds the lock again within 15 s
   (it counts every 2 s and tries every 2 s) before the next round;
3. continuous: with A holding the lock, a thread puts 200 keys through B one after another as
   soon as B is up, and after each acknowledged put a linearizable get through A must return its
   value: no stale read, zero misses; pg_locks, sampled meanwhile, shows no exclusive holder once
   B's first put is acknowledged while B runs; the final prefix matches etcd after the same puts;
4. watch from now: with A holding the lock, B starts, a put of K through B is acknowledged, then
   a watch on A for K from now (start_revision 0) is created and K is put again through B: the
   watch receives the second put only (created at a revision >= the first put's), as etcd does
   for the same steps;
5. a frozen holder: A holds the lock; SIGSTOP A; B starts; a put through B succeeds within 20 s,
   not before B's 4 s of patience (the lock held it back until then), and B's log has the "ended
   the session" line with kine.writer.endedSessions=1; A's holding backend is gone; SIGCONT A;
   a linearizable get through A returns B's value, and a put through A then succeeds (its Writer
   reconnects) and is seen through B;
6. B leaves: B stops; A holds the lock again within 15 s of B's exit and the memory reads resume:
   200 gets as in 1, no barrier, `xact_commit` < 100 over the reads plus the 11 s settle.

Bounds come from the rules above plus slack for a loaded 2-core machine, never from measured
latencies (they are printed; run with -s). Everything started here (kine processes, the probe
session, clients, threads) is stopped, a SIGSTOPped process continued, and the database dropped
when the module ends, pass or fail.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from etcdgrpc import Client, Stream

psycopg2 = pytest.importorskip("psycopg2", reason="the probe session needs psycopg2 (Tests/e2e/requirements.txt)")

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:6]
PREFIX = f"/e2e-solewriter/{RUN}/".encode()

# The rules (Sources/KineStore/SoleWriter.swift, KineStore.swift, StoreSQL+SoleWriter.swift).
LOCK_CLASSID, LOCK_OBJID = 0, 0x6B696E66  # the bigint key 0x6B696E66: high and low 32 bits
HOLDER_PATIENCE = 4.0   # a refused writer ends the holder's session after this
ENDED_LINE = "ended the session of another kine process that held the sole-writer lock and did not let go"
# Bounds: the rules (look every 2 s, try every 2 s, tend every 250 ms) plus slack.
ALONE_WITHIN = 10.0     # A on a fresh database holds the lock within this of its start
AGAIN_WITHIN = 15.0     # ... and again within this of the other process's exit
FROZEN_PUT_WITHIN = 20.0
STATS_SETTLE = 11.0     # PostgreSQL 15+: pending counters reach pg_stat_database within 10 s
COMMIT_BOUND = 100      # xact_commit growth allowed over memory reads plus STATS_SETTLE


def log(msg: str) -> None:
    print(f"[sole-writer] {msg}", file=sys.stderr, flush=True)


def prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


def pct(xs: list, p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def local_ports(pid: int) -> set:
    """Local ports of the TCP sockets process `pid` has open (its PostgreSQL sessions' client ports)."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Probe:
    """A psycopg2 session on the database (autocommit): pg_locks, pg_stat_activity, xact_commit."""

    def __init__(self, url: str):
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True
        self.version = self.conn.server_version

    def rows(self, sql: str, args: tuple = ()) -> list:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def lock_rows(self) -> list:
        """(pid, mode, granted) of every session holding or waiting for the sole-writer lock."""
        return self.rows(
            "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s AND objsubid = 1 ORDER BY pid", (LOCK_CLASSID, LOCK_OBJID))

    def exclusive_holders(self) -> list:
        return [pid for pid, mode, granted in self.lock_rows() if mode == "ExclusiveLock" and granted]

    def backends(self, server) -> dict:
        """{backend pid: last query} of the sessions of kine process `server` on the database."""
        ports = local_ports(server.proc.pid)
        return {pid: q for pid, port, q in self.rows(
            "SELECT pid, client_port, query FROM pg_stat_activity WHERE datname = current_database()")
            if port in ports}

    def alive_pids(self) -> set:
        return {r[0] for r in self.rows("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")}

    def xact_commit(self) -> int:
        if self.version >= 150000:
            # This session's own pending counters first (it polled pg_locks until now).
            self.rows("SELECT pg_stat_force_next_flush()")
        return self.rows("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0]

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass


class Conn:
    """A gRPC client of one server (kine or etcd) with the calls this suite makes."""

    def __init__(self, server):
        self.name = server.name
        self.cl = Client(server.endpoint)
        self.pb = self.cl.pb

    def put(self, key: bytes, value: bytes, timeout: float = 10.0) -> int:
        r, err = self.cl.call(self.cl.kv.Put, self.pb.PutRequest(key=key, value=value), timeout=timeout)
        assert err is None, f"put {key!r} through {self.name} failed: {err}"
        return r.header.revision

    def get(self, key: bytes):
        """Linearizable get: the value, or None."""
        r, err = self.cl.call(self.cl.kv.Range, self.pb.RangeRequest(key=key))
        assert err is None, f"get {key!r} through {self.name} failed: {err}"
        return r.kvs[0].value if r.kvs else None

    def txn_get(self, key: bytes) -> tuple:
        """A read-only Txn (one range op, no compares): (succeeded, [(key, value)], count)."""
        pb = self.pb
        req = pb.TxnRequest(success=[pb.RequestOp(request_range=pb.RangeRequest(key=key))])
        r, err = self.cl.call(self.cl.kv.Txn, req)
        assert err is None, f"read-only txn through {self.name} failed: {err}"
        rr = r.responses[0].response_range
        return r.succeeded, [(kv.key, kv.value) for kv in rr.kvs], rr.count

    def prefix(self, p: bytes) -> tuple:
        """Linearizable prefix Range: ([(key, value)], count)."""
        r, err = self.cl.call(self.cl.kv.Range, self.pb.RangeRequest(key=p, range_end=prefix_end(p)))
        assert err is None, f"prefix range through {self.name} failed: {err}"
        return [(kv.key, kv.value) for kv in r.kvs], r.count

    def close(self) -> None:
        self.cl.close()


def barriers(server) -> int:
    """kine_sql_total{name="barrier"} of a kine process: the read barriers it has made."""
    with urllib.request.urlopen(f"http://{server.endpoint}/metrics", timeout=10) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        m = re.match(r'^kine_sql_total\{([^}]*)\}\s+(\S+)$', line)
        if m and re.search(r'(^|,)name="barrier"', m.group(1)):
            total += int(float(m.group(2)))
    return total


def assert_alive(*servers) -> None:
    for s in servers:
        assert s.alive(), f"{s.name} died (exit {s.proc.returncode}):\n{s.log_tail()}"


class World:
    """The module's database, process A (started at `a_started`), the probe session and a client
    of A; `b` is the second process while one runs."""

    def __init__(self, url, a, a_started, probe):
        self.url, self.a, self.a_started, self.probe = url, a, a_started, probe
        self.ca = Conn(a)
        self.b = None
        self.cb = None
        self.b_exited = None  # when the last B exited (monotonic), if one did

    def wait_holder(self, server, timeout: float, since: float | None = None) -> tuple:
        """Polls pg_locks every 0.1 s until one of `server`'s backends holds the lock exclusively:
        (seconds from `since` (or the call), holder pid, its last query, that process's backends)."""
        start = since if since is not None else time.monotonic()
        deadline = start + timeout
        last = None
        while True:
            holders = self.probe.exclusive_holders()
            mine = self.probe.backends(server)
            last = (self.probe.lock_rows(), mine)
            for pid in holders:
                if pid in mine:
                    return time.monotonic() - start, pid, mine[pid], mine
            if time.monotonic() >= deadline:
                pytest.fail(f"{server.name} did not hold the sole-writer lock exclusively within {timeout} s: lock "
                            f"rows (pid, mode, granted) {last[0]}; its backends {last[1]}\n{server.log_tail(30)}")
            assert_alive(server)
            time.sleep(0.1)

    def start_b(self, server_factory, name: str):
        self.stop_b()
        t0 = time.monotonic()
        self.b = server_factory.kine(name, self.url)
        self.cb = Conn(self.b)
        return time.monotonic() - t0

    def stop_b(self) -> float | None:
        """Stops B (SIGTERM, as harness.Server.stop); the monotonic time it had exited, or None."""
        if self.cb is not None:
            self.cb.close()
            self.cb = None
        if self.b is None:
            return None
        b, self.b = self.b, None
        b.stop()
        return time.monotonic()

    def close(self) -> None:
        if self.cb is not None:
            self.cb.close()
        self.ca.close()
        self.probe.close()


@pytest.fixture(scope="module")
def world(server_factory):
    url = server_factory.database("solewriter")
    started = time.monotonic()
    a = server_factory.kine("kine-a", url)  # kine creates the database
    w = World(url, a, started, Probe(url))
    w.a_ready = time.monotonic()
    try:
        yield w
    finally:
        # A may be SIGSTOPped if test 5 failed half-way; the kine processes and the database:
        # server_factory.
        try:
            os.killpg(a.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        w.close()


def memory_reads(w: World, key: bytes, value: bytes, n: int, tag: str) -> None:
    """n linearizable gets of `key` through A while it holds the lock: all `value`, no barrier,
    and xact_commit grows by < COMMIT_BOUND over the reads plus STATS_SETTLE."""
    b0 = barriers(w.a)
    x0 = w.probe.xact_commit()
    t0 = time.monotonic()
    wrong = []
    for i in range(n):
        got = w.ca.get(key)
        if got != value:
            wrong.append((i, got))
    t1 = time.monotonic()
    b1 = barriers(w.a)
    time.sleep(STATS_SETTLE)  # nothing on the database from here but kine's background loops
    x1 = w.probe.xact_commit()
    window = time.monotonic() - t0
    holders = w.probe.exclusive_holders()
    mine = w.probe.backends(w.a)
    log(f"{tag}: {n} linearizable gets through A in {t1 - t0:.3f} s ({(t1 - t0) / n * 1000:.2f} ms each); "
        f"A's read barriers {b0} -> {b1}; xact_commit +{x1 - x0} over {window:.1f} s "
        f"({(x1 - x0) / window:.1f}/s; the bound is {COMMIT_BOUND}, a barrier per read would add >= {n})")
    assert not wrong, f"linearizable gets through A returned other than {value!r}: {wrong[:10]} ({len(wrong)})"
    assert b1 == b0, f"A made {b1 - b0} read barriers for {n} linearizable gets while it held the sole-writer lock"
    assert x1 - x0 < COMMIT_BOUND, (
        f"xact_commit grew by {x1 - x0} over {n} linearizable gets through A and {STATS_SETTLE} s: a query per "
        f"read? (bound {COMMIT_BOUND})")
    assert any(p in mine for p in holders), (
        f"A no longer holds the sole-writer lock after the reads: exclusive holders {holders}, A's backends {mine}")


def test_alone_memory_reads(world):
    w = world
    took, pid, query, mine = w.wait_holder(w.a, ALONE_WITHIN, since=w.a_started)
    log(f"test 1: A holds the lock {took:.2f} s after its start (bound {ALONE_WITHIN} s), backend {pid} "
        f"(last query {query!r}); A's backends {({pid: q[:40] for pid, q in mine.items()})}; lock rows "
        f"{w.probe.lock_rows()}")
    assert query != 'LISTEN "kine"', f"the lock is held by A's listening session {pid}, not its Writer's"
    assert len(w.probe.lock_rows()) == 1, f"lock rows {w.probe.lock_rows()}"
    key, value = PREFIX + b"t1/key", f"a-{RUN}".encode()
    w.ca.put(key, value)
    # A's start-up transactions reach pg_stat_database within STATS_SETTLE of its start too: the
    # count starts after that.
    time.sleep(max(0.0, w.a_ready + STATS_SETTLE - time.monotonic()))
    memory_reads(w, key, value, 300, "test 1")
    assert_alive(w.a)


def test_newcomer_write_then_read_through_a(world, server_factory, ref):
    w = world
    ce = Conn(ref)
    p = PREFIX + b"t2/"
    try:
        for rnd in range(3):
            took, pid, _, _ = w.wait_holder(w.a, AGAIN_WITHIN, since=w.b_exited)
            b0 = barriers(w.a)
            ready = w.start_b(server_factory, f"kine-b{rnd}")
            key, value = p + f"{rnd}".encode(), f"b{rnd}-{RUN}".encode()
            t0 = time.monotonic()
            rev = w.cb.put(key, value)
            t1 = time.monotonic()
            got = w.ca.get(key)
            t2 = time.monotonic()
            txn = w.ca.txn_get(key)
            rng = w.ca.prefix(p)
            b1 = barriers(w.a)
            # etcd: the same puts, the same reads.
            ce.put(key, value)
            e_got, e_txn, e_rng = ce.get(key), ce.txn_get(key), ce.prefix(p)
            log(f"test 2 round {rnd + 1}: A held the lock again after {took:.2f} s (backend {pid}); B ready in "
                f"{ready:.2f} s; put through B (revision {rev}) {(t1 - t0) * 1000:.1f} ms; get through A "
                f"{(t2 - t1) * 1000:.1f} ms -> {got!r} (etcd {e_got!r}); A's read barriers +{b1 - b0}; "
                f"lock rows now {w.probe.lock_rows()}")
            assert rev > 0
            assert got == value, (f"round {rnd + 1}: a linearizable get through A right after B's acknowledged put "
                                  f"returned {got!r}, not {value!r} (stale read)")
            assert got == e_got
            assert txn == e_txn and txn[1] == [(key, value)], (
                f"round {rnd + 1}: read-only txn through A {txn}, etcd {e_txn}")
            assert rng == e_rng and (key, value) in rng[0], (
                f"round {rnd + 1}: prefix range through A {rng}, etcd {e_rng}")
            assert b1 - b0 >= 3, (f"round {rnd + 1}: A made {b1 - b0} read barriers for 3 linearizable reads with B "
                                  "on the database (memory reads must stop once B says hello)")
            assert_alive(w.a, w.b)
            w.b_exited = w.stop_b()
    finally:
        ce.close()


def test_continuous_puts_through_b_reads_through_a(world, server_factory, ref):
    w = world
    took, _, _, _ = w.wait_holder(w.a, AGAIN_WITHIN, since=w.b_exited)
    p = PREFIX + b"t3/"
    n = 200
    results: list = []  # (i, put acknowledged at, put latency, get latency, value got)
    errors: list = []
    samples: list = []  # (monotonic time, exclusive holders)
    go = threading.Event()
    stop = threading.Event()
    done = threading.Event()

    def run():
        try:
            go.wait(60)
            for i in range(n):
                if stop.is_set():
                    return
                key, value = p + f"{i:04d}".encode(), f"v{i}-{RUN}".encode()
                t0 = time.monotonic()
                w.cb.put(key, value)
                t1 = time.monotonic()
                got = w.ca.get(key)
                results.append((i, t1, t1 - t0, time.monotonic() - t1, got))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            done.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    try:
        w.start_b(server_factory, "kine-b-continuous")
        go.set()
        while not done.wait(0.1):
            samples.append((time.monotonic(), w.probe.exclusive_holders()))
        th.join(timeout=30)
        assert not th.is_alive(), "put/get thread stuck"
        samples.append((time.monotonic(), w.probe.exclusive_holders()))
        assert not errors, f"puts through B / gets through A failed: {errors}"
        misses = [(i, got) for i, _, _, _, got in results if got != f"v{i}-{RUN}".encode()]
        puts = [d for _, _, d, _, _ in results]
        gets = [d for _, _, _, d, _ in results]
        first_ack = results[0][1] if results else time.monotonic()
        held = [(round(t - first_ack, 2), h) for t, h in samples if t > first_ack and h]
        log(f"test 3: A held the lock after {took:.2f} s; {len(results)} puts through B, first "
            f"{puts[0] * 1000:.1f} ms, p50 {pct(puts, 50) * 1000:.1f} ms, max {max(puts) * 1000:.1f} ms; gets "
            f"through A p50 {pct(gets, 50) * 1000:.1f} ms, max {max(gets) * 1000:.1f} ms; misses {len(misses)}; "
            f"{len(samples)} pg_locks samples, exclusive holders after the first ack {held}")
        assert len(results) == n
        assert not misses, f"linearizable gets through A after acknowledged puts through B were stale: {misses[:10]}"
        assert not held, (f"the sole-writer lock was held exclusively while B ran (s after B's first acknowledged "
                          f"put, holders): {held}")
        assert_alive(w.a, w.b)
    finally:
        stop.set()
        go.set()
        th.join(timeout=30)
        w.b_exited = w.stop_b()
    # etcd: the same puts; the prefix through A is etcd's.
    ce = Conn(ref)
    try:
        for i in range(n):
            ce.put(p + f"{i:04d}".encode(), f"v{i}-{RUN}".encode())
        e_rng, a_rng = ce.prefix(p), w.ca.prefix(p)
    finally:
        ce.close()
    log(f"test 3: the prefix after the same {n} puts: {a_rng[1]} keys through A, {e_rng[1]} on etcd")
    assert a_rng == e_rng and a_rng[1] == n, (
        f"prefix through A {a_rng[1]} keys, etcd {e_rng[1]}; equal {a_rng == e_rng}")


class Watch:
    """One watch of one key from now (start_revision 0) on one server."""

    def __init__(self, server, key: bytes):
        self.cl = Client(server.endpoint)
        pb = self.cl.pb
        self.stream = Stream(self.cl.watch.Watch)
        self.stream.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, start_revision=0)))
        got = self.stream.take(1, 10)
        assert got and got[0].created and not got[0].canceled, f"watch not created on {server.name}: {got}"
        self.created_revision = got[0].header.revision

    def events(self, wait_for: int, timeout: float = 5.0, quiet: float = 1.0) -> list:
        """(type, key, value, mod_revision) of the events received: waits for `wait_for` of them,
        then `quiet` s more for any extra."""
        self.stream.wait_for(lambda r: sum(len(m.events) for _, m in r[1:]) >= wait_for, timeout)
        time.sleep(quiet)
        return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for _, m in list(self.stream.received)[1:]
                for e in m.events]

    def close(self) -> None:
        self.stream.close()
        self.cl.close()


def test_watch_from_now_on_a(world, server_factory, ref):
    w = world
    took, _, _, _ = w.wait_holder(w.a, AGAIN_WITHIN, since=w.b_exited)
    key = PREFIX + b"t4/k"
    # etcd: put, watch from now, put again.
    ce = Conn(ref)
    try:
        ce.put(key, b"first")
        ew = Watch(ref, key)
        try:
            e_rev = ce.put(key, b"second")
            e_events = ew.events(1)
        finally:
            ew.close()
    finally:
        ce.close()
    try:
        w.start_b(server_factory, "kine-b-watch")
        rev1 = w.cb.put(key, b"first")
        aw = Watch(w.a, key)
        try:
            rev2 = w.cb.put(key, b"second")
            events = aw.events(1)
        finally:
            aw.close()
        log(f"test 4: A held the lock after {took:.2f} s; put 1 through B revision {rev1}, watch on A created at "
            f"revision {aw.created_revision}, put 2 revision {rev2}; events on A {events}; on etcd {e_events} "
            f"(put 2 at {e_rev})")
        assert aw.created_revision >= rev1, (
            f"A's watch from now was created at revision {aw.created_revision}, before B's acknowledged put "
            f"{rev1}: A's 'now' was stale")
        assert [(t, k, v) for t, k, v, _ in events] == [(t, k, v) for t, k, v, _ in e_events], (
            f"watch from now on A received {events}; etcd's for the same steps {e_events}")
        assert [r for *_, r in events] == [rev2], f"watch from now on A: {events}, expected only the put at {rev2}"
        assert_alive(w.a, w.b)
    finally:
        w.b_exited = w.stop_b()


def test_frozen_holder(world, server_factory):
    w = world
    a = w.a
    took, holder, query, _ = w.wait_holder(a, AGAIN_WITHIN, since=w.b_exited)
    key = PREFIX + b"t5/k"
    os.killpg(a.proc.pid, signal.SIGSTOP)
    t_stop = time.monotonic()
    try:
        ready = w.start_b(server_factory, "kine-b-frozen")
        t0 = time.monotonic()
        rev = w.cb.put(key, b"from-b", timeout=FROZEN_PUT_WITHIN)
        put_took = time.monotonic() - t0
        gone = holder not in w.probe.alive_pids()
        holders = w.probe.exclusive_holders()
    finally:
        os.killpg(a.proc.pid, signal.SIGCONT)
    t_cont = time.monotonic()
    ended = [ln for ln in w.b.log_path.read_text(errors="replace").splitlines() if ENDED_LINE in ln]
    log(f"test 5: A held the lock after {took:.2f} s (backend {holder}, last query {query!r}); SIGSTOP; B ready "
        f"in {ready:.2f} s; put through B (revision {rev}) took {put_took:.2f} s (A stopped for "
        f"{t_cont - t_stop:.2f} s); holder backend gone {gone}; exclusive holders then {holders}; B's log: {ended}")
    assert put_took >= HOLDER_PATIENCE - 0.1, (
        f"the put through B succeeded {put_took:.2f} s after it was sent, while the frozen A held the sole-writer "
        f"lock: B must be refused for {HOLDER_PATIENCE} s before it ends A's session")
    assert gone, f"A's holding backend {holder} is still there after B's put"
    assert len(ended) == 1 and "kine.writer.endedSessions=1" in ended[0], (
        f"B's log should have one '{ENDED_LINE}' line with kine.writer.endedSessions=1: {ended}\n{w.b.log_tail(30)}")
    t1 = time.monotonic()
    got = w.ca.get(key)
    t2 = time.monotonic()
    rev_a = w.ca.put(key, b"from-a", timeout=FROZEN_PUT_WITHIN)
    t3 = time.monotonic()
    got_b = w.cb.get(key)
    reconnect = [ln for ln in a.log_path.read_text(errors="replace").splitlines() if "writer session failed" in ln]
    log(f"test 5: after SIGCONT: get through A {(t2 - t1) * 1000:.1f} ms -> {got!r}; put through A (revision "
        f"{rev_a}) {(t3 - t2) * 1000:.1f} ms; get through B -> {got_b!r}; A's log: {reconnect[-1:]}")
    assert got == b"from-b", f"a linearizable get through A after SIGCONT returned {got!r}, not B's value (stale read)"
    assert rev_a > rev
    assert got_b == b"from-a"
    assert_alive(a, w.b)


def test_b_leaves_memory_reads_resume(world, server_factory):
    w = world
    if w.b is None:  # test 5 did not leave B running
        w.start_b(server_factory, "kine-b-leaving")
        w.cb.put(PREFIX + b"t6/b", b"b")
    exited = w.stop_b()
    took, pid, query, _ = w.wait_holder(w.a, AGAIN_WITHIN, since=exited)
    log(f"test 6: A holds the lock {took:.2f} s after B's exit (bound {AGAIN_WITHIN} s), backend {pid} "
        f"(last query {query!r})")
    key, value = PREFIX + b"t6/key", f"a6-{RUN}".encode()
    w.ca.put(key, value)
    memory_reads(w, key, value, 200, "test 6")
    assert_alive(w.a)
