"""Lease keep-alives answered from memory (docs/design.md "## Leases", docs/compatibility.md row
"Lease keep-alive"), with two kine processes A and B on ONE PostgreSQL database.

A process answers a keep-alive from memory while the deadline stored in `kine_leases` is at
least half the TTL away; a pass every 250 ms writes the renewals that are due (the stored
deadline trails the promised one by 1 s, a quarter of the TTL under 4 s, or comes within
TTL/2 + 0.75 s of now) as the database's now() plus the time the promise has left; TimeToLive
writes the process's pending renewals first; a clean stop writes them all. Checked here from
the outside, through the other process, and with psql on `kine_leases` where a whole-second
TimeToLive is too coarse:

1. renewals through A are stored: TimeToLive through B (which holds nothing of A's memory)
   stays >= TTL - 2 while A renews every 50 ms, and the stored deadline trails the last answered
   renewal by at most 1.25 s;
2. a client that stops renewing gets its whole promised TTL and not much more: the lease and its
   key are there, seen through B, until last answer + TTL - 0.3 s, the stored deadline is the
   promised one, and everything is gone by last answer + TTL + 2 s;
3. kill -9 of A right after renewals loses at most 1.25 s of the lease's life: B sees the key and
   a TTL >= TTL - 1.25 - 1 (whole seconds), and B expires the lease by that stored deadline + 2 s,
   not before it;
4. a lease revoked through B while A keeps it alive: A's keep-alives answer TTL 0 within 1.5 s
   of the revoke and never a TTL > 0 after their first 0 (etcd answers 0 at once; the difference
   is documented);
5. TimeToLive through A right after renewals through A answers TTL - 1 (whole seconds, as etcd
   3.5.1 answers right after a keep-alive: the one comparison with etcd here); a renewal that was
   answered from memory and not yet due is written by that TimeToLive;
6. a clean stop (SIGTERM) of A right after a renewal answered from memory writes it: B sees
   TTL - 1 and the stored deadline is the promised one.

This is a kine design with no etcd counterpart (etcd keeps renewals in its leader's memory), so
the rules are asserted directly; etcd is only asked, in 5, what its TimeToLive answers. Bounds
come from the rules above plus generous slack for a loaded machine, never from measured
latencies. The processes killed or stopped (3, 6) are extra ones started on the same database;
everything started here is stopped, and the database dropped, when the module ends.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
import uuid

import pytest

import harness
from etcdgrpc import Client, Stream

pytestmark = pytest.mark.needs_kine

RUN = uuid.uuid4().hex[:6]
# The rules (docs/design.md, "## Leases").
WRITE_PERIOD = 0.25    # the pass writing due renewals
MAX_LAG = 1.0          # a renewal is due once the stored deadline trails the promised one by this
HEADROOM = 0.75        # ... or once the stored deadline is within TTL/2 + this of now
EXPIRY_PERIOD = 0.5    # every process looks for expired leases this often
# Slack for a measured instant (a gRPC or psql round trip on a busy 2-core machine).
SLACK = 0.15
EVERY = 0.05           # keep-alive interval of the "continuous" renewals


def log(msg: str) -> None:
    print(f"[lease-memory] {msg}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def db(server_factory):
    """(database URL, A, B): two kine processes on one fresh database."""
    url = server_factory.database("leasemem")
    a = server_factory.kine("kine-a", url)
    b = server_factory.kine("kine-b", url)
    yield url, a, b


def assert_alive(*servers) -> None:
    for s in servers:
        assert s.alive(), f"{s.name} died (exit {s.proc.returncode}):\n{s.log_tail()}"


class Conn:
    """A gRPC client of one process with the lease calls this suite makes."""

    def __init__(self, server):
        self.server = server
        self.cl = Client(server.endpoint)
        self.pb = self.cl.pb

    def grant(self, ttl: int) -> int:
        r = self.cl.lease.LeaseGrant(self.pb.LeaseGrantRequest(TTL=ttl), timeout=10)
        assert r.TTL == ttl and not r.error, f"LeaseGrant({ttl}) through {self.server.name}: {r}"
        return r.ID

    def put(self, key: bytes, lid: int) -> None:
        self.cl.kv.Put(self.pb.PutRequest(key=key, value=b"v", lease=lid), timeout=10)

    def ttl(self, lid: int, keys: bool = False):
        """LeaseTimeToLive: (response, monotonic time the answer arrived)."""
        r = self.cl.lease.LeaseTimeToLive(self.pb.LeaseTimeToLiveRequest(ID=lid, keys=keys), timeout=10)
        return r, time.monotonic()

    def has(self, key: bytes) -> bool:
        return self.cl.kv.Range(self.pb.RangeRequest(key=key), timeout=10).count == 1

    def revoke(self, lid: int) -> None:
        self.cl.lease.LeaseRevoke(self.pb.LeaseRevokeRequest(ID=lid), timeout=10)

    def close(self) -> None:
        self.cl.close()


class KeepAlives:
    """One LeaseKeepAlive stream used as etcd's clients use it: a request, then its answer.
    `answers` holds (sent, received, TTL) of each, in monotonic time."""

    def __init__(self, server):
        self.name = server.name
        self.cl = Client(server.endpoint)
        self.pb = self.cl.pb
        self.stream = Stream(self.cl.lease.LeaseKeepAlive)
        self.answers: list = []

    def renew(self, lid: int) -> int:
        sent = time.monotonic()
        self.stream.send(self.pb.LeaseKeepAliveRequest(ID=lid))
        got = self.stream.take(1, 10)
        assert got, f"no keep-alive answer from {self.name} within 10 s (stream error {self.stream.error})"
        assert got[0].ID == lid, got[0]
        self.answers.append((sent, time.monotonic(), got[0].TTL))
        return got[0].TTL

    def renew_for(self, lid: int, seconds: float, every: float = EVERY, expect: int | None = None,
                  between=None) -> None:
        """Renews every `every` seconds for `seconds`; each answer must be `expect` if given;
        `between()` runs after each answer."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ttl = self.renew(lid)
            if expect is not None:
                assert ttl == expect, f"keep-alive through {self.name} answered TTL {ttl}, expected {expect}"
            if between:
                between()
            time.sleep(every)

    @property
    def last_answer(self) -> float:
        return self.answers[-1][1]

    def close(self) -> None:
        self.stream.close()
        self.cl.close()


@contextlib.contextmanager
def clients(a, b):
    """A KV/lease client on A and on B and a keep-alive stream on A, closed afterwards, pass or fail."""
    ca, cb, ka = Conn(a), Conn(b), KeepAlives(a)
    try:
        yield ca, cb, ka
    finally:
        ka.close()
        ca.close()
        cb.close()


def stored_deadline(url: str, lid: int):
    """The lease's deadline in `kine_leases` as an interval (lo, hi) of monotonic time (the
    statement ran somewhere inside psql's round trip), or None when there is no row."""
    t0 = time.monotonic()
    out = harness.psql(url, f"SELECT EXTRACT(EPOCH FROM expires_at - now()) FROM kine_leases WHERE id = {int(lid)}")
    t1 = time.monotonic()
    out = out.strip()
    if not out:
        return None
    left = float(out)
    return (t0 + left, t1 + left)


def sigkill(srv) -> None:
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(timeout=10)


def sigterm(srv) -> int:
    """SIGTERM to the process group; its exit code (it must exit by itself within 30 s)."""
    os.killpg(srv.proc.pid, signal.SIGTERM)
    try:
        return srv.proc.wait(timeout=30)
    except Exception:
        pytest.fail(f"{srv.name} did not exit within 30 s of SIGTERM:\n{srv.log_tail()}")


def test_renewals_through_a_are_stored(db):
    url, a, b = db
    with clients(a, b) as (ca, cb, ka):
        ttl = 10
        lid = ca.grant(ttl)
        t_grant = time.monotonic()
        seen = []  # (time, TTL through B) while A renews

        def sample():
            if not seen or time.monotonic() - seen[-1][0] >= 0.5:
                r, t = cb.ttl(lid)
                seen.append((t, r.TTL))

        ka.renew_for(lid, 3.0, expect=ttl, between=sample)
        last = ka.last_answer
        r, t_b = cb.ttl(lid)
        seen.append((t_b, r.TTL))
        deadline = stored_deadline(url, lid)
        log(f"test 1: TimeToLive through B while A renews every {EVERY * 1000:.0f} ms: "
            f"{[(round(t - t_grant, 2), x) for t, x in seen]}; stored deadline trails the last answer by "
            f"{last + ttl - deadline[1]:.3f} s")
        assert r.grantedTTL == ttl
        # Without any write the stored deadline would be the grant's: TTL 6 or 7 by now.
        bad = [(round(t - t_grant, 2), x) for t, x in seen if not ttl - 2 <= x <= ttl - 1]
        assert not bad, (f"TimeToLive through B while A renews must be {ttl - 2} or {ttl - 1} (the stored deadline "
                         f"trails by <= {MAX_LAG} s + one {WRITE_PERIOD} s pass); got (s after grant, TTL) {bad}")
        assert deadline is not None, "lease row gone"
        # The promise of the last answer is <= last + ttl; the stored deadline trails it by at most
        # the lag plus one pass.
        assert deadline[1] >= last + ttl - MAX_LAG - WRITE_PERIOD - SLACK, (
            f"stored deadline {last + ttl - deadline[1]:.3f} s behind the last answered renewal's promise "
            f"(at most {MAX_LAG + WRITE_PERIOD} s allowed)")
        assert deadline[0] <= last + ttl + SLACK, f"stored deadline beyond the promise by {deadline[0] - last - ttl:.3f} s"
        assert_alive(a, b)


def test_stopped_client_gets_its_whole_ttl_and_not_more(db):
    url, a, b = db
    with clients(a, b) as (ca, cb, ka):
        ttl = 4
        lid = ca.grant(ttl)
        key = f"/e2e-leasemem/{RUN}/stopped".encode()
        ca.put(key, lid)
        for _ in range(5):
            assert ka.renew(lid) == ttl
            time.sleep(0.3)
        last = ka.last_answer
        ka.close()  # the client stops renewing
        must_live = last + ttl - 0.3
        must_be_gone = last + ttl + 2.0
        polls = []  # (answer time, TimeToLive TTL through B, key present through B)
        deadline = None
        while time.monotonic() < must_be_gone + 2.0:
            r, t = cb.ttl(lid)
            present = cb.has(key)
            polls.append((time.monotonic(), r.TTL, present))
            # Once the pass must have written the last renewal (stored deadline within
            # TTL/2 + 0.75 s of now, plus one pass), the stored deadline is the promised one.
            if deadline is None and time.monotonic() >= last + ttl - (ttl / 2 + HEADROOM) + WRITE_PERIOD + SLACK:
                deadline = stored_deadline(url, lid)
            if r.TTL == -1 and not present and t >= must_live:
                break
            time.sleep(0.1)
        rel = [(round(t - last, 2), x, p) for t, x, p in polls]
        log(f"test 2: TTL {ttl}, after the last answer (s, TTL through B, key through B): {rel}")
        early = [(round(t - last, 2), x, p) for t, x, p in polls if t <= must_live and (x == -1 or not p)]
        assert not early, (f"lease or key gone through B before last answer + {ttl} - 0.3 s: {early} "
                           f"(all polls: {rel})")
        assert any(must_live - 0.3 <= t <= must_live for t, _, _ in polls), f"no poll shortly before +{ttl - 0.3} s: {rel}"
        gone = [t for t, x, p in polls if x == -1 and not p]
        assert gone and gone[0] <= must_be_gone, (
            f"lease not gone through B by last answer + {ttl} + 2 s (expiry runs every {EXPIRY_PERIOD} s): {rel}")
        after = [(round(t - last, 2), x, p) for t, x, p in polls if t > gone[0] and (x != -1 or p)]
        assert not after, f"lease or key back after it was gone: {after}"
        assert deadline is not None, f"lease row gone before its promised deadline: {rel}"
        log(f"test 2: stored deadline - last answer = {deadline[0] - last:.3f} .. {deadline[1] - last:.3f} s")
        assert deadline[1] >= last + ttl - 0.3, (
            f"stored deadline {last + ttl - deadline[1]:.3f} s short of the last renewal's promise")
        assert deadline[0] <= last + ttl + SLACK, (
            f"stored deadline {deadline[0] - last - ttl:.3f} s beyond the last renewal's promise")
        assert_alive(a, b)


def test_sigkill_right_after_renewals_loses_at_most_the_lag(db, server_factory):
    url, _, b = db
    a = server_factory.kine("kine-a-kill", url)
    with clients(a, b) as (ca, cb, ka):
        ttl = 10
        lid = ca.grant(ttl)
        key = f"/e2e-leasemem/{RUN}/killed".encode()
        ca.put(key, lid)
        ka.renew_for(lid, 2.0, expect=ttl)
        last = ka.last_answer
        sigkill(a)
        t_killed = time.monotonic()
        r, t_q = cb.ttl(lid, keys=True)
        deadline = stored_deadline(url, lid)
        assert deadline is not None, "lease row gone right after the kill"
        log(f"test 3: killed {t_killed - last:.3f} s after the last answer; TimeToLive through B {r.TTL} "
            f"{t_q - last:.3f} s after it; stored deadline trails the last promise by {last + ttl - deadline[1]:.3f} s")
        assert r.grantedTTL == ttl and list(r.keys) == [key], f"through B after the kill: {r}"
        assert cb.has(key), "the lease's key is gone through B right after the kill"
        # Stored deadline >= last answer + TTL - (lag + one pass); whole seconds left at t_q.
        lost = MAX_LAG + WRITE_PERIOD
        want = math.floor(ttl - lost - (t_q - last) - SLACK)
        assert r.TTL >= want, (f"TimeToLive through B {r.TTL} after the kill, expected >= {want} "
                               f"(TTL {ttl} - {lost} s lost at most - {t_q - last:.2f} s since the last answer)")
        assert r.TTL <= ttl - 1
        assert deadline[1] >= last + ttl - lost - SLACK, (
            f"kill -9 lost {last + ttl - deadline[1]:.3f} s of the lease's life (at most {lost} s allowed)")
        # B expires it: not before the stored deadline, and by it + one expiry pass (+ slack).
        polls = []
        while time.monotonic() < deadline[1] + 4:
            r, t = cb.ttl(lid)
            present = cb.has(key)
            polls.append((time.monotonic(), r.TTL, present))
            if r.TTL == -1 and not present:
                break
            time.sleep(0.2)
        rel = [(round(t - deadline[0], 2), x, p) for t, x, p in polls]
        early = [(round(t - deadline[0], 2), x, p) for t, x, p in polls
                 if t < deadline[0] - SLACK and (x == -1 or not p)]
        assert not early, f"lease expired before its stored deadline (s after it, TTL, key): {early}"
        gone = [t for t, x, p in polls if x == -1 and not p]
        assert gone and gone[0] <= deadline[1] + 2.0, (
            f"B did not expire the dead process's lease within 2 s of its stored deadline (s after it, TTL, key): {rel}")
        log(f"test 3: gone through B {gone[0] - deadline[0]:.2f} s after the stored deadline")
        assert_alive(b)


def test_revoke_through_b_while_a_keeps_alive(db):
    url, a, b = db
    ca, cb, ka = Conn(a), Conn(b), KeepAlives(a)
    stop = threading.Event()
    errors: list = []

    def renewing():
        try:
            while not stop.is_set():
                ka.renew(lid)
                time.sleep(EVERY)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ttl = 10
    lid = ca.grant(ttl)
    key = f"/e2e-leasemem/{RUN}/revoked".encode()
    ca.put(key, lid)
    th = threading.Thread(target=renewing, daemon=True)
    th.start()
    try:
        time.sleep(1.6)  # A renews from memory; the stored deadline trails by up to 1.25 s
        cb.revoke(lid)
        t_rev = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        th.join(timeout=15)
        ka.close()
    try:
        assert not th.is_alive(), "keep-alive thread stuck"
        assert not errors, errors
        answers = ka.answers
        before = [x for s, t, x in answers if t < t_rev]
        assert before and all(x == ttl for x in before), f"keep-alives before the revoke: {before}"
        after = [(round(t - t_rev, 3), x) for s, t, x in answers if t >= t_rev]
        log(f"test 4: keep-alives through A after the revoke through B (s, TTL): {after}")
        zeros = [i for i, (_, x) in enumerate(after) if x == 0]
        assert zeros, f"keep-alives through A never answered TTL 0 after the revoke through B: {after}"
        first_zero = zeros[0]
        stale = after[:first_zero]
        assert all(x == ttl for _, x in stale), f"keep-alive answers other than {ttl} or 0: {after}"
        assert not any(x != 0 for _, x in after[first_zero:]), f"a TTL > 0 after the first TTL 0: {after}"
        limit = MAX_LAG + WRITE_PERIOD + 0.25
        assert after[first_zero][0] <= limit, (
            f"keep-alives through A answered the revoked lease's TTL for {after[first_zero][0]:.2f} s after the "
            f"revoke through B ({len(stale)} stale answers), at most {limit} s allowed: {after}")
        log(f"test 4: {len(stale)} stale answers; first TTL 0 {after[first_zero][0]:.3f} s after the revoke")
        r, _ = ca.ttl(lid)
        assert r.TTL == -1, f"TimeToLive through A of the revoked lease: {r}"
        assert not ca.has(key) and not cb.has(key), "the revoked lease's key is still there"
        assert_alive(a, b)
    finally:
        ca.close()
        cb.close()


def test_time_to_live_through_a_after_renewals_through_a(db, ref):
    url, a, b = db
    ttl = 10
    # etcd 3.5.1: TimeToLive right after keep-alives answers the whole seconds left (TTL - 1).
    ce, ke = Conn(ref), KeepAlives(ref)
    try:
        lid = ce.grant(ttl)
        ke.renew_for(lid, 2.0, expect=ttl)
        etcd_ttl = ce.ttl(lid)[0].TTL
        ce.revoke(lid)
    finally:
        ke.close()
        ce.close()
    with clients(a, b) as (ca, cb, ka):
        # Continuous renewals, then TimeToLive through A.
        lid = ca.grant(ttl)
        ka.renew_for(lid, 2.0, expect=ttl)
        kine_ttl = ca.ttl(lid)[0].TTL
        log(f"test 5: TimeToLive right after 2 s of keep-alives: etcd {etcd_ttl}, kine through A {kine_ttl}")
        assert etcd_ttl in (ttl - 1, ttl), f"etcd's TimeToLive right after keep-alives answered {etcd_ttl}"
        assert kine_ttl == etcd_ttl, (f"TimeToLive through A right after renewals through A answered {kine_ttl}, "
                                     f"etcd answers {etcd_ttl}")

        # One renewal answered from memory and not due (it trails the grant's deadline by
        # < 1 s, which is 10 s away): the stored deadline is still the grant's until A's
        # TimeToLive writes it.
        lid = ca.grant(ttl)
        t_grant = time.monotonic()
        time.sleep(0.5)
        assert ka.renew(lid) == ttl
        sent, last, _ = ka.answers[-1]
        time.sleep(2 * WRITE_PERIOD)  # two passes, which must leave it alone
        before = stored_deadline(url, lid)
        r, _ = ca.ttl(lid)
        after = stored_deadline(url, lid)
        log(f"test 5: renewal {last - t_grant:.3f} s after the grant; stored deadline - last answer before "
            f"A's TimeToLive {before[0] - last:.3f}..{before[1] - last:.3f} s, after {after[0] - last:.3f}.."
            f"{after[1] - last:.3f} s; TimeToLive through A {r.TTL}")
        assert r.TTL == ttl - 1, f"TimeToLive through A right after a renewal through A answered {r.TTL}"
        assert after[1] >= last + ttl - SLACK, (
            f"after TimeToLive through A the stored deadline is {last + ttl - after[1]:.3f} s short of the "
            "renewal's promise: A's pending renewal was not written first")
        assert after[0] <= last + ttl + SLACK
        if last - t_grant < MAX_LAG - 0.1:  # the renewal cannot have been due
            assert before[0] <= last + ttl - 0.3, (
                "the stored deadline already had the renewal before TimeToLive: it was not answered from "
                f"memory (stored deadline - last answer {before[0] - last:.3f} s)")
        r, t = cb.ttl(lid)
        assert r.TTL >= math.floor(ttl - (t - last) - SLACK), f"TimeToLive through B {t - last:.2f} s later: {r.TTL}"
        assert_alive(a, b)


def test_clean_stop_writes_pending_renewals(db, server_factory):
    url, _, b = db
    a = server_factory.kine("kine-a-term", url)
    with clients(a, b) as (ca, cb, ka):
        ttl = 10
        lid = ca.grant(ttl)
        key = f"/e2e-leasemem/{RUN}/stopped-cleanly".encode()
        ca.put(key, lid)
        ka.renew_for(lid, 2.0, expect=ttl)
        # A last renewal 0.6 s after the others: whatever the pass wrote, this one's promise is
        # >= 0.6 s beyond what is stored, and only the stop can write it now.
        time.sleep(0.6)
        assert ka.renew(lid) == ttl
        last = ka.last_answer
        ka.close()
        code = sigterm(a)
        t_exit = time.monotonic()
        assert code not in (-signal.SIGKILL,), f"{a.name} exit code {code}"
        r, t_q = cb.ttl(lid, keys=True)
        deadline = stored_deadline(url, lid)
        log(f"test 6: exit code {code} {t_exit - last:.3f} s after the last answer; TimeToLive through B {r.TTL} "
            f"{t_q - last:.3f} s after it; stored deadline - last answer "
            f"{deadline[0] - last:.3f}..{deadline[1] - last:.3f} s")
        assert list(r.keys) == [key] and cb.has(key), f"through B after the stop: {r}"
        want = math.floor(ttl - (t_q - last) - SLACK)
        assert r.TTL >= want and r.TTL <= ttl - 1, (
            f"TimeToLive through B after a clean stop {r.TTL}, expected {want}..{ttl - 1} "
            f"({t_q - last:.2f} s since the last answer)")
        assert deadline[1] >= last + ttl - SLACK, (
            f"the clean stop lost {last + ttl - deadline[1]:.3f} s of the lease's life: its pending renewal "
            "was not written")
        assert deadline[0] <= last + ttl + SLACK
        assert_alive(b)
