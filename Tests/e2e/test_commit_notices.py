"""Commit notices (`CommitNotices`): a kine process leaves `NOTIFY kine` out of its commits while
it is alone on its database, with kine processes A and B on ONE PostgreSQL database.

The rules: a process starts as "others listen"; once its listener is active it sends
`NOTIFY kine, 'hello <its listener backend pid>'`, then every 2 s counts the sessions on the
database whose last query is exactly `LISTEN "kine"` (other kine processes' listeners), other
than its own listener; none -> it stops notifying. Any notification it did not cause (another
process's hello, or a revision it has not published) turns notifying back on at once.

A probe session (psycopg2) runs `LISTEN kine`, unquoted: a non-kine session that kine does not
count, so it sees what kine sends without changing it. Checked here:

1. alone: A on a fresh database (created empty first, so that the probe listens before A starts)
   says hello (the probe sees `hello <pid>`, pid the one session whose last query is
   `LISTEN "kine"`); 3 s after the hello (its first look follows the hello) puts through A send
   no notification;
2. a second process B starts: the probe sees B's hello (another `LISTEN "kine"` session); from
   then on every put through A is notified with its revision as the payload's first word, and a watch through
   B sees 20 puts through A (50 ms apart) all, in order, p90 delay < 0.5 s and max < 1 s after
   the put's response (without notices B's hub would find them by its 1 s poll);
3. B stops (SIGTERM, at a random moment of A's 2 s look cycle): within 6 s of its exit A stops
   notifying (puts through A every 200 ms from the SIGTERM on, until five in a row send nothing),
   and once quiet it stays quiet (the times of B's listener leaving pg_stat_activity, of B's exit
   and of the first quiet put are printed);
4. a newcomer during continuous writes: a thread puts through A every 20 ms while B2 starts; a
   watch through B2 created right after B2 is ready ("from now") and one from A's revision before
   B2 started both receive every put after their start, none missing, none extra, in order, each
   within 1.5 s of its put (or of the watch's creation); puts through A answered more than 0.5 s
   after the probe saw B2's hello are all notified.

This is a kine design with no etcd counterpart, so nothing is compared with etcd (needs_kine).
Bounds come from the rules plus slack for a loaded 2-core machine, never from measured latencies
(they are printed; run with -s). Everything started here (kine processes, the probe, threads) is
stopped and the database dropped when the module ends, pass or fail.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sys
import threading
import time
import urllib.parse
import uuid

import pytest

import harness
from etcdgrpc import Client, Stream

psycopg2 = pytest.importorskip("psycopg2", reason="the probe session needs psycopg2 (Tests/e2e/requirements.txt)")

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:6]
PREFIX = f"/e2e-notices/{RUN}/".encode()
LOOK_INTERVAL = 2.0   # every process counts the other listeners this often
POLL_INTERVAL = 1.0   # a watch hub reads the table at least this often without notifications
SETTLE = 0.5          # a notification reaches the probe within this of the commit (loopback)


def log(msg: str) -> None:
    print(f"[commit-notices] {msg}", file=sys.stderr, flush=True)


class Probe:
    """A non-kine session on the database running `LISTEN kine` (unquoted: not counted by kine).
    `got` holds (monotonic receive time, sending backend pid, payload) of every notification."""

    def __init__(self, url: str):
        self.conn = psycopg2.connect(url)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("LISTEN kine")
        self.pid = self.conn.get_backend_pid()
        self.got: list = []
        self.error = None
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self.conn], [], [], 0.1)
                if not ready:
                    continue
                self.conn.poll()
                t = time.monotonic()
                with self._cv:
                    while self.conn.notifies:
                        n = self.conn.notifies.pop(0)
                        self.got.append((t, n.pid, n.payload))
                    self._cv.notify_all()
        except Exception as e:  # noqa: BLE001 - reported by the tests
            with self._cv:
                self.error = repr(e)
                self._cv.notify_all()

    def snapshot(self) -> list:
        with self._cv:
            assert self.error is None, f"probe session failed: {self.error}"
            return list(self.got)

    def wait_for(self, pred, timeout: float):
        """The first notification matching pred(payload), waiting up to timeout; else None."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                assert self.error is None, f"probe session failed: {self.error}"
                for n in self.got:
                    if pred(n[2]):
                        return n
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)

    def payloads(self) -> set:
        """The notifications' first words: the revision of a commit's (its events may follow), or
        `hello`."""
        return {p.split(" ", 1)[0] for _, _, p in self.snapshot()}

    def hellos(self) -> list:
        return [(t, int(p.split()[1])) for t, _, p in self.snapshot() if p.startswith("hello ")]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass


def kine_listeners(url: str) -> set:
    """Backend pids of the sessions on the database whose last query is `LISTEN "kine"`."""
    out = harness.psql(url, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND query = 'LISTEN \"kine\"'")
    return {int(x) for x in out.split()}


class World:
    """The module's database, process A, the probe and A's client; `b` is the second process
    while one runs."""

    def __init__(self, url, a, probe):
        self.url, self.a, self.probe = url, a, probe
        self.ca = Client(a.endpoint)
        self.pb = self.ca.pb
        self.b = None
        self.n = 0

    def put_a(self, tag: str) -> tuple:
        """A put through A: (monotonic send time, response time, revision)."""
        self.n += 1
        t0 = time.monotonic()
        r = self.ca.kv.Put(self.pb.PutRequest(key=PREFIX + f"{tag}/{self.n:06d}".encode(), value=b"v"), timeout=10)
        return t0, time.monotonic(), r.header.revision


def notified(probe: Probe, puts: list) -> list:
    """(send time, response time, revision, notified?) of each put (call SETTLE after the last)."""
    seen = probe.payloads()
    return [(t0, t1, rev, str(rev) in seen) for t0, t1, rev in puts]


def until_quiet(w: World, tag: str, limit: float, every: float = 0.2, quiet_run: int = 5, each=None) -> list:
    """Puts through A every `every` s until the last `quiet_run` settled ones sent no notification,
    or `limit` s passed; then the classified puts (`notified`). `each()` runs after every put."""
    puts: list = []
    end = time.monotonic() + limit
    while time.monotonic() < end:
        puts.append(w.put_a(tag))
        if each:
            each()
        time.sleep(every)
        now = time.monotonic()
        settled = [p for p in notified(w.probe, puts) if p[1] <= now - SETTLE]
        if len(settled) >= quiet_run and not any(p[3] for p in settled[-quiet_run:]):
            break
    time.sleep(SETTLE)
    return notified(w.probe, puts)


def prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


class Watcher:
    """A prefix watch through one process; `events()` = (receive time, revision, key)."""

    def __init__(self, endpoint: str, prefix: bytes, start_revision: int = 0):
        self.client = Client(endpoint)
        pb = self.client.pb
        self.stream = Stream(self.client.watch.Watch)
        self.stream.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=prefix, range_end=prefix_end(prefix), start_revision=start_revision)))
        got = self.stream.take(1, 10)
        assert got and got[0].created and not got[0].canceled, f"watch not created on {endpoint}: {got}"
        self.created_at = time.monotonic()
        self.created_revision = got[0].header.revision

    def events(self) -> list:
        return [(t, e.kv.mod_revision, e.kv.key) for t, m in list(self.stream.received)[1:] for e in m.events]

    def wait_revision(self, rev: int, timeout: float) -> bool:
        return self.stream.wait_for(lambda r: any(e.kv.mod_revision >= rev for _, m in r[1:] for e in m.events),
                                    timeout)

    def close(self) -> None:
        self.stream.close()
        self.client.close()


def pct(xs: list, p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


@pytest.fixture(scope="module")
def world(server_factory):
    url = server_factory.database("notices")
    # Created here (kine would create it), so that the probe listens before A starts.
    u = urllib.parse.urlsplit(url)
    harness.create_database(server_factory.postgres_url(), u.path.lstrip("/"))
    probe = Probe(url)
    w = None
    try:
        a = server_factory.kine("kine-a", url)
        w = World(url, a, probe)
        yield w
    finally:
        if w is not None:
            w.ca.close()
        probe.close()
        # the kine processes and the database: server_factory


def assert_alive(*servers) -> None:
    for s in servers:
        assert s.alive(), f"{s.name} died (exit {s.proc.returncode}):\n{s.log_tail()}"


def test_alone_no_notifications(world):
    w = world
    hello = w.probe.wait_for(lambda p: p.startswith("hello "), 10)
    assert hello is not None, f"A never said hello on the channel kine; probe got {w.probe.snapshot()}"
    a_listener = int(hello[2].split()[1])
    listeners = kine_listeners(w.url)
    log(f"test 1: A's hello {hello[2]!r}; sessions with last query LISTEN \"kine\": {sorted(listeners)}; "
        f"probe pid {w.probe.pid}")
    assert listeners == {a_listener}, (f"A's hello names listener {a_listener}, but the sessions whose last query is "
                                       f'LISTEN "kine" are {sorted(listeners)}')
    assert w.probe.pid not in listeners
    # A's first look follows its hello at once; wait for it (and a second one) to be sure.
    time.sleep(max(0.0, hello[0] + LOOK_INTERVAL + 1.0 - time.monotonic()))
    before = len(w.probe.snapshot())
    puts = [w.put_a("t1") for _ in range(10)]
    time.sleep(SETTLE + 0.5)
    after = w.probe.snapshot()[before:]
    log(f"test 1: 10 puts through A alone (revisions {puts[0][2]}..{puts[-1][2]}): notifications {after}")
    assert not after, f"puts through A alone on its database were notified: {after}"
    assert_alive(w.a)


def test_second_process_turns_notifying_on(world, server_factory):
    w = world
    known = {pid for _, pid in w.probe.hellos()}
    w.b = server_factory.kine("kine-b", w.url)
    hello = w.probe.wait_for(lambda p: p.startswith("hello ") and int(p.split()[1]) not in known, 10)
    assert hello is not None, f"B never said hello; probe got {w.probe.snapshot()}"
    b_listener = int(hello[2].split()[1])
    listeners = kine_listeners(w.url)
    log(f"test 2: B's hello {hello[2]!r} {time.monotonic() - hello[0]:.3f} s ago; LISTEN \"kine\" sessions "
        f"{sorted(listeners)}")
    assert b_listener in listeners and len(listeners) == 2, (
        f"B's hello names {b_listener}; LISTEN \"kine\" sessions {sorted(listeners)}")
    time.sleep(0.1)  # A hears B's hello when the probe does; a put may already be under way

    wb = Watcher(w.b.endpoint, PREFIX + b"t2/")
    try:
        puts = []
        for _ in range(20):
            puts.append(w.put_a("t2"))
            time.sleep(0.05)
        got_all = wb.wait_revision(puts[-1][2], 5)
        time.sleep(SETTLE)
        classified = notified(w.probe, puts)
        missing = [rev for _, _, rev, ok in classified if not ok]
        log(f"test 2: {len(puts)} puts through A after B's hello, revisions {puts[0][2]}..{puts[-1][2]}; "
            f"not notified: {missing}")
        assert not missing, (f"puts through A with B listening sent no NOTIFY with their revision: {missing} "
                             f"(probe payloads {sorted(w.probe.payloads())})")
        events = wb.events()
        revs = [r for _, r, _ in events]
        want = [rev for _, _, rev in puts]
        assert got_all and revs == want, (f"watch through B: revisions {revs}, expected {want} "
                                          "(all, in order, once)")
        delays = [t - t1 for (t, _, _), (_, t1, _) in zip(events, puts)]
        p50, p90, mx = pct(delays, 50), pct(delays, 90), max(delays)
        log(f"test 2: watch through B, delay after the put's response: p50 {p50 * 1000:.1f} ms, "
            f"p90 {p90 * 1000:.1f} ms, max {mx * 1000:.1f} ms")
        assert p90 < 0.5 and mx < POLL_INTERVAL, (
            f"A's puts reached a watch through B late (p90 {p90:.3f} s, max {mx:.3f} s; the notice should beat "
            f"the hub's {POLL_INTERVAL} s poll): delays {[round(d, 3) for d in delays]}")
    finally:
        wb.close()
    assert_alive(w.a, w.b)


def test_alone_again_after_the_other_stops(world, server_factory):
    w = world
    if w.b is None or not w.b.alive():  # test 2 did not leave B running
        w.b = server_factory.kine("kine-b", w.url)
        time.sleep(0.5)
    before = [w.put_a("t3-before") for _ in range(3)]
    time.sleep(SETTLE)
    assert all(ok for *_, ok in notified(w.probe, before)), (
        f"puts through A with B running not notified: {notified(w.probe, before)}")
    b, a_listener = w.b, w.probe.hellos()[0][1]
    seen = {"exit": None, "listener_gone": None}

    def watch_b():
        now = time.monotonic()
        if seen["exit"] is None and b.proc.poll() is not None:
            seen["exit"] = now
        if seen["listener_gone"] is None and kine_listeners(w.url) <= {a_listener}:
            seen["listener_gone"] = time.monotonic()

    # At a random moment of A's 2 s look cycle: SIGTERM, then puts through A every 200 ms at once
    # (while B shuts down) until A is quiet.
    time.sleep(random.uniform(0, LOOK_INTERVAL))
    t_sig = time.monotonic()
    os.killpg(b.proc.pid, signal.SIGTERM)
    puts = until_quiet(w, "t3", limit=15.0, each=watch_b)
    try:
        b.proc.wait(timeout=30)
    except Exception:  # noqa: BLE001
        pytest.fail(f"{b.name} did not exit within 30 s of SIGTERM:\n{b.log_tail()}")
    w.b = None
    t_exit = seen["exit"] or time.monotonic()
    gone = seen["listener_gone"]
    rel = [(round(t1 - t_sig, 2), rev, ok) for _, t1, rev, ok in puts]
    log(f"test 3: B's listener gone {(gone - t_sig) if gone else float('nan'):.2f} s and B exited "
        f"{t_exit - t_sig:.2f} s after SIGTERM; puts through A (s after SIGTERM, revision, notified): {rel}")
    quiet = [i for i, p in enumerate(puts) if not p[3]]
    assert quiet, f"A still notifies {puts[-1][1] - t_sig:.1f} s after SIGTERM to B: {rel}"
    first = quiet[0]
    assert puts[first][0] - t_exit <= 3 * LOOK_INTERVAL, (
        f"A stopped notifying {puts[first][0] - t_exit:.2f} s after B exited (at most {3 * LOOK_INTERVAL} s "
        f"allowed; it looks every {LOOK_INTERVAL} s): {rel}")
    again = [r for r in rel[first:] if r[2]]
    assert not again, f"A notified again after it had stopped, with nobody else there: {again}"
    assert len(puts) - first >= 5, f"fewer than 5 quiet puts: {rel}"
    assert kine_listeners(w.url) == {a_listener}, "B's listener still there"
    log(f"test 3: first quiet put {puts[first][0] - t_sig:.2f} s after SIGTERM, "
        f"{puts[first][0] - gone if gone else float('nan'):.2f} s after B's listener was gone")
    assert_alive(w.a)


def test_newcomer_during_continuous_writes(world, server_factory):
    w = world
    # A alone and quiet first (test 3 leaves it so; make sure).
    pre = until_quiet(w, "t4-pre", limit=12.0)
    assert not any(ok for *_, ok in pre[-5:]), f"A does not stop notifying while alone: {pre}"
    start_rev = w.put_a("t4-mark")[2]  # A's revision before B2 starts
    hellos_before = {pid for _, pid in w.probe.hellos()}

    stop = threading.Event()
    errors: list = []
    puts: list = []  # (send, response, revision)
    cw = Client(w.a.endpoint)

    def writing():
        i = 0
        try:
            while not stop.is_set():
                i += 1
                t0 = time.monotonic()
                r = cw.kv.Put(cw.pb.PutRequest(key=PREFIX + f"t4/{i:06d}".encode(), value=str(i).encode()), timeout=10)
                puts.append((t0, time.monotonic(), r.header.revision))
                time.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    th = threading.Thread(target=writing, daemon=True)
    watchers: list = []
    try:
        th.start()
        time.sleep(0.5)
        t_start_b = time.monotonic()
        w.b = server_factory.kine("kine-b2", w.url)
        t_ready = time.monotonic()
        w1 = Watcher(w.b.endpoint, PREFIX + b"t4/")
        watchers.append(w1)
        w2 = Watcher(w.b.endpoint, PREFIX + b"t4/", start_revision=start_rev + 1)
        watchers.append(w2)
        time.sleep(3.0)  # covers the newcomer's miss window and more than one poll of its hub
    finally:
        stop.set()
        th.join(timeout=15)
        cw.close()
    try:
        assert not th.is_alive(), "writer thread stuck"
        assert not errors, f"puts through A failed: {errors}"
        last = puts[-1][2]
        for wt in watchers:
            wt.wait_revision(last, 5)
        time.sleep(SETTLE)
        hello = [(t, pid) for t, pid in w.probe.hellos() if pid not in hellos_before]
        log(f"test 4: {len(puts)} puts through A every 20 ms, revisions {puts[0][2]}..{last}; B2 ready "
            f"{t_ready - t_start_b:.2f} s after its start; hello {hello}; watch 1 from now created at revision "
            f"{w1.created_revision} {w1.created_at - t_ready:.3f} s after ready; watch 2 from {start_rev + 1}")
        assert hello, f"B2 never said hello; probe got {w.probe.snapshot()[-20:]}"
        t_hello = hello[0][0]

        by_rev = {rev: (t0, t1) for t0, t1, rev in puts}
        for name, wt, first_rev in (("watch from now", w1, w1.created_revision + 1), ("watch from before B2", w2, start_rev + 1)):
            events = wt.events()
            revs = [r for _, r, _ in events]
            want = [rev for _, _, rev in puts if rev >= first_rev]
            assert revs == want, (
                f"{name} through B2: missing {sorted(set(want) - set(revs))}, extra {sorted(set(revs) - set(want))}, "
                f"in order {revs == sorted(revs)}; {len(revs)} events, {len(want)} expected")
            # Delay after the put's response, or after the watch was created for puts before it.
            delays = [(r, t - max(by_rev[r][1], wt.created_at)) for t, r, _ in events]
            late = [(r, round(d, 3)) for r, d in delays if d > 1.5]
            ds = [d for _, d in delays]
            worst = max(delays, key=lambda x: x[1])
            log(f"test 4: {name}: {len(events)} events, delay p50 {pct(ds, 50) * 1000:.1f} ms, p90 "
                f"{pct(ds, 90) * 1000:.1f} ms, max {worst[1] * 1000:.1f} ms (revision {worst[0]}, put "
                f"{by_rev[worst[0]][1] - t_hello:+.3f} s from B2's hello)")
            assert not late, f"{name} through B2: events later than 1.5 s after their put: {late}"

        classified = notified(w.probe, puts)
        unnotified_after = [(rev, round(t1 - t_hello, 3)) for _, t1, rev, ok in classified
                            if not ok and t1 > t_hello + SETTLE]
        notified_before = [(rev, round(t1 - t_hello, 3)) for _, t1, rev, ok in classified if ok and t1 < t_hello]
        first_on = next(((rev, round(t1 - t_hello, 3)) for _, t1, rev, ok in classified if ok), None)
        log(f"test 4: first notified put (revision, s after the probe saw B2's hello): {first_on}; notified "
            f"before the hello: {notified_before}")
        assert not unnotified_after, (
            f"puts through A answered more than {SETTLE} s after B2's hello were not notified "
            f"(revision, s after the hello): {unnotified_after}")
        assert_alive(w.a, w.b)
    finally:
        for wt in watchers:
            wt.close()
