"""Two-node HA scenarios (design/HA.md) in the network-namespace lab (hanet.py), with the
checker (hacheck.py) asserting the invariants R1-R6 under load.

Each test builds a fresh lab (two namespaces, two PostgreSQLs, a kine per node) and removes it,
pass or fail. HA timing is seconds-scale (hanet.DEFAULT_HA_OPTIONS: liveness 3 s, probes every
500 ms, hold-down 5 s, startup grace 3 s). Measured times (failover, catch-up) are printed; run
with -s to see them. Skipped unless root with `ip netns`, PostgreSQL, and a kine built with HA.

    python3 -m pytest Tests/e2e/test_ha.py -s          # all scenarios
    python3 -m pytest Tests/e2e/test_ha.py -s -k crash # a few
"""

from __future__ import annotations

import base64
import functools
import os
import signal
import sys
import threading
import time

import pytest

import hacheck
import hanet
from hacheck import Checker, RoleRecorder, assert_invariants, wait_tables_equal
from hanet import HOLD_DOWN, LIVENESS, STARTUP_GRACE

pytestmark = [pytest.mark.needs_kine, pytest.mark.ha]

LEADING = {"leader", "leader-alone"}
FOLLOWING = {"follower-syncing", "follower"}


@pytest.fixture(scope="module", autouse=True)
def _ha_possible():
    why = hanet.ha_unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture
def lab():
    with hanet.HALab() as lab:
        for n in ("a", "b"):
            lab.start_postgres(n)
        yield lab
        chk = getattr(lab, "checker", None)
        if chk is not None:
            chk.stop(catch_up=0)  # a test that failed with the load still running


def diagnosed(test):
    """On failure, print both nodes' status, log tails and the checker's summary (shown in the
    failing test's captured output; the lab is gone by teardown)."""
    @functools.wraps(test)
    def run(lab, *args, **kwargs):
        try:
            return test(lab, *args, **kwargs)
        except BaseException:
            chk = getattr(lab, "checker", None)
            print(lab.diagnostics())
            if chk is not None:
                print(chk.summary())
            raise
    return run


def report(msg: str) -> None:
    print(f"\n[ha] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Steps shared by the scenarios


def start_pair(lab, replication: str = "sync") -> tuple[dict, dict]:
    """Both nodes empty: a (primary) leads, b (secondary) follows with its copy ready. Returns
    their statuses; remembers when roles settled, for hold_down()."""
    lab.start_kine("a", replication=replication)
    lab.start_kine("b", replication=replication)
    b = lab.wait_role("b", "follower", 40)
    want_sync = replication == "sync"
    a = hanet.wait_for(lambda: (s := lab.ha_status("a")) and s["role"] == "leader"
                       and s["syncActive"] == want_sync and s, 20, 0.25)
    assert a, f"a is not leader with syncActive={want_sync}\n{lab.diagnostics()}"
    # b's view of a catches up within a probe round or two.
    b = hanet.wait_for(lambda: (s := lab.ha_status("b")) and s["role"] == "follower"
                       and s["peer"]["role"] == "leader" and s, 5, 0.25) or lab.ha_status("b")
    lab.t_settled = time.monotonic()
    assert (a["leader"], b["leader"]) == ("a", "a"), (a, b)
    assert a["term"] == b["term"], (a, b)
    assert b["subscription"] == "ready", b
    return a, b


def hold_down(lab) -> None:
    """No role change is allowed within the hold-down after the last one: wait it out before
    injecting a fault that should cause one."""
    left = lab.t_settled + HOLD_DOWN + 0.5 - time.monotonic()
    if left > 0:
        time.sleep(left)


def crash_node(lab, n: str) -> float:
    """A node crash: kill -9 of its kine and its PostgreSQL, back to back. Returns the time."""
    t = time.monotonic()
    lab.kill_kine(n)
    lab.kill_postgres(n)
    return t


def restart_node(lab, n: str, **kine_kw) -> float:
    lab.start_postgres(n)
    t = time.monotonic()
    lab.start_kine(n, **kine_kw)
    return t


def put(lab, n: str, key: str, value: str = "v", timeout: float = 3) -> tuple[object, dict | None]:
    c = hacheck.FastClient(lab.node(n).endpoint, timeout=timeout)
    try:
        return c.call(c.kv.Put, c.pb.PutRequest(key=key.encode(), value=value.encode()))
    finally:
        c.close()


def get(lab, n: str, key: str) -> bytes | None:
    c = hacheck.FastClient(lab.node(n).endpoint, timeout=3)
    try:
        r, err = c.call(c.kv.Range, c.pb.RangeRequest(key=key.encode()))  # linearizable
        assert err is None, f"Range through {n}: {err}"
        return r.kvs[0].value if r.kvs else None
    finally:
        c.close()


def put_until_ok(lab, n: str, key: str, timeout: float) -> tuple[float, object]:
    """Retries a Put through n until it is acknowledged; (seconds it took, response)."""
    t0 = time.monotonic()
    resp = hanet.wait_for(lambda: put(lab, n, key)[0], timeout, 0.1)
    assert resp, f"no Put through {n} succeeded within {timeout}s\n{lab.diagnostics()}"
    return time.monotonic() - t0, resp


def assert_promoted(st: dict, term_before: int, max_acked: int) -> int:
    """b's status after a failover: leading alone in the next term, epoch above all it saw."""
    assert st["term"] == term_before + 1, st
    assert st["leader"] == "b", st
    epoch = st["epochStart"]
    assert epoch >= max_acked + hacheck.EPOCH_BUMP, f"epoch start {epoch} not above {max_acked} + 10^9"
    return epoch


def assert_watches_across(chk: Checker, node: str, epoch: int, t_fault: float) -> dict[str, int]:
    """R3: each watch on node open at the fault either went on in the new epoch (still open; check_r3
    checks it then delivered every acknowledged write of its window exactly once, in order) or
    ended with a compaction cancel at the epoch start, and then its chain re-created it from there.
    kine continues a watch when the new leader's copy holds everything the watch was sent
    (docs/ha.md); returns how many went each way."""
    across = [s for s in chk.segments_on(node) if s.t_start < t_fault and (s.t_end == 0 or s.t_end > t_fault)]
    watches = f"watches on {node} (t from the checker's start, fault at +{t_fault - chk.t_started:.2f}s):\n" \
        + chk.describe_watches(node)
    assert across, f"no watch on {node} was open across the failover\n{watches}"
    outcome = {"continued": 0, "cancelled": 0}
    for s in across:
        if s.end in ("open", "closed"):  # still open when the checker stopped
            outcome["continued"] += 1
            continue
        assert (s.end, s.compact_revision) == ("compacted", epoch), (
            f"watch {s.chain} from {s.start} open across the failover ended {s.end} "
            f"compact_revision={s.compact_revision} reason={s.reason!r}, expected it to go on or a compaction "
            f"cancel at {epoch}\n{watches}")
        outcome["cancelled"] += 1
    if outcome["cancelled"]:
        assert any(s.start == epoch for s in chk.segments_on(node)), f"no watch re-created from the epoch start\n{watches}"
    report(f"watches on {node} open across the failover: {outcome['continued']} went on, {outcome['cancelled']} cancelled at the epoch")
    return outcome


def assert_below_epoch_compacted(lab, node: str, prefix: str, revision: int, epoch: int) -> None:
    """R3: a Range or Watch below the epoch start gets etcd's compacted error."""
    p = hacheck.compacted_probe(lab, node, prefix, max(1, revision))  # 0 would mean "latest"
    err = p["range_error"]
    assert err and err["code"] == "OUT_OF_RANGE" and hacheck.COMPACTED_MESSAGE in err["message"], p
    assert p["watch_canceled"] and p["watch_compact_revision"] == epoch and p["watch_events"] == 0, p


# --------------------------------------------------------------------------------------------
# a. steady state


@diagnosed
def test_steady_state(lab):
    a, b = start_pair(lab)
    assert a["peer"]["role"] == "follower" and a["peer"]["rpcOK"] and a["peer"]["sqlOK"], a
    assert b["peer"]["role"] == "leader", b
    assert a["subscription"] == "none" and a["postgresUp"] and b["postgresUp"], (a, b)

    chk = Checker(lab).start()
    # Writes through either node are seen by linearizable reads through the other.
    for i in range(5):
        for w, r in (("a", "b"), ("b", "a")):
            key = f"{chk.prefix}cross/{w}{i}"
            resp, err = put(lab, w, key, f"from-{w}")
            assert err is None, f"Put through {w}: {err}"
            assert get(lab, r, key) == f"from-{w}".encode(), f"{r} does not read {w}'s write {key}"
    time.sleep(2)
    chk.stop()
    report(chk.summary())
    assert not chk.failures, f"errors in steady state: {chk.failures[:5]}"
    assert_invariants(chk, survivor="a")
    assert not hacheck.check_r5(chk, "b"), "b does not read every acknowledged write"
    t0 = time.monotonic()
    state = wait_tables_equal(lab, 10)
    report(f"steady state: b's tables equal a's ({state['kine'][0]} kine rows) {time.monotonic() - t0:.2f}s after the load")


# --------------------------------------------------------------------------------------------
# b, d. leader node crash under load


def _leader_crash(lab, replication: str) -> tuple[Checker, int, float]:
    a, _ = start_pair(lab, replication)
    hold_down(lab)
    chk = Checker(lab).start()
    time.sleep(2)
    t_kill = crash_node(lab, "a")
    max_before = chk.max_revision(before=t_kill)
    st = lab.wait_role("b", "leader-alone", LIVENESS + 20)
    epoch = assert_promoted(st, a["term"], max_before)
    first = hanet.wait_for(lambda: chk.first_ack("b", after=t_kill, min_revision=epoch), 15, 0.1)
    assert first, f"no write through b acknowledged after the promotion\n{chk.summary()}"
    report(f"{replication}: leader crash -> b leader-alone (term {st['term']}, epoch {epoch}); "
           f"first acknowledged write through b {first.t - t_kill:.2f}s after the kill "
           f"(liveness {LIVENESS:.0f}s)")
    assert first.t - t_kill <= LIVENESS + 10, "failover took longer than liveness + 10 s"
    time.sleep(2)
    chk.stop()
    report(chk.summary())
    return chk, epoch, t_kill, max_before


@diagnosed
def test_leader_crash_sync(lab):
    chk, epoch, t_kill, max_before = _leader_crash(lab, "sync")
    assert_invariants(chk, survivor="b")  # R1, R2, R3 and R5: every acknowledged write survived
    assert_below_epoch_compacted(lab, "b", chk.prefix, max_before, epoch)
    assert_watches_across(chk, "b", epoch, t_kill)


@diagnosed
def test_leader_crash_async(lab):
    chk, epoch, t_kill, max_before = _leader_crash(lab, "async")
    lost = hacheck.lost_writes(chk, "b")
    report(f"async: {len(lost)} of {len(chk.acks)} acknowledged writes lost in the leader crash"
           + (f" (revisions {lost[0].revision}..{lost[-1].revision})" if lost else ""))
    assert_invariants(chk)  # R1, R2, R3 (losing acknowledged writes is async's deal)
    assert_below_epoch_compacted(lab, "b", chk.prefix, max_before, epoch)
    assert_watches_across(chk, "b", epoch, t_kill)


# --------------------------------------------------------------------------------------------
# c. leader PostgreSQL crash, kine a alive


@diagnosed
def test_leader_postgres_crash(lab):
    a, _ = start_pair(lab)
    hold_down(lab)
    with RoleRecorder(lab) as roles:
        t_kill = time.monotonic()
        lab.kill_postgres("a")
        st = lab.wait_role("b", "leader-alone", 2 * LIVENESS + 10)
        t_promoted = time.monotonic()
        epoch = assert_promoted(st, a["term"], 0)
        took, resp = put_until_ok(lab, "b", "/ha/pgcrash/after", 10)
        assert resp.header.revision > epoch
        report(f"leader PostgreSQL crash -> b leader-alone {t_promoted - t_kill:.2f}s later; "
               f"write through b {t_promoted - t_kill + took:.2f}s after the kill")
        assert lab.kine_running("a"), "kine a exited when its PostgreSQL died\n" + lab.kine_log_tail("a")
        assert hanet.wait_for(lambda: (s := lab.ha_status("a")) and not s["postgresUp"], 10), lab.diagnostics()
        # Its PostgreSQL back, kine a follows the new leader (it must not lead again).
        lab.start_postgres("a")
        sa = lab.wait_role("a", "follower", 40)
        assert (sa["term"], sa["leader"]) == (st["term"], "b"), sa
        put_until_ok(lab, "a", "/ha/pgcrash/through-a", 10)
    report(f"kine a's roles through its PostgreSQL's crash and return: {roles.roles('a')}")
    assert not roles.both_leading(), f"R4: both nodes led at once: {roles.roles('a')} / {roles.roles('b')}"
    wait_tables_equal(lab, 15)


# --------------------------------------------------------------------------------------------
# e. follower crash


@diagnosed
def test_follower_crash(lab):
    start_pair(lab)
    hold_down(lab)
    chk = Checker(lab).start()
    time.sleep(2)
    t_kill = crash_node(lab, "b")
    st = lab.wait_role("a", "leader-alone", LIVENESS + 15)
    t_alone = time.monotonic()
    assert not st["syncActive"], st
    time.sleep(1.5)
    assert chk.acks_through("a", after=t_alone), "a does not take writes while alone"
    stall = chk.longest_gap("a", t_kill, t_alone + 1.5)
    report(f"follower crash: a leader-alone {t_alone - t_kill:.2f}s after the kill; longest stall of "
           f"writes through a {stall:.2f}s")
    restart_node(lab, "b")
    t_back = time.monotonic()
    lab.wait_role("b", "follower", 40)
    sa = hanet.wait_for(lambda: (s := lab.ha_status("a")) and s["role"] == "leader" and s["syncActive"] and s, 20)
    assert sa, f"a did not return to leader with sync on\n{lab.diagnostics()}"
    report(f"follower back: follower and sync on {time.monotonic() - t_back:.2f}s after kine b started")
    time.sleep(1)
    chk.stop()
    report(chk.summary())
    assert_invariants(chk, survivor="a")
    wait_tables_equal(lab, 15)


# --------------------------------------------------------------------------------------------
# f. the old leader returns after b promoted


@diagnosed
def test_old_leader_returns(lab):
    a, _ = start_pair(lab)
    hold_down(lab)
    chk = Checker(lab).start()
    time.sleep(1.5)
    t_kill = crash_node(lab, "a")
    st = lab.wait_role("b", "leader-alone", LIVENESS + 20)
    epoch = assert_promoted(st, a["term"], chk.max_revision(before=t_kill))
    time.sleep(1)
    with RoleRecorder(lab) as roles:
        t_up = restart_node(lab, "a")
        took, resp = put_until_ok(lab, "a", f"{chk.prefix}returned", 30)
        assert resp.header.revision > epoch, "a's first write after its return is below b's epoch"
        sa = lab.wait_role("a", "follower", 60)
        t_follower = time.monotonic()
        assert (sa["term"], sa["leader"]) == (st["term"], "b"), sa
        sb = hanet.wait_for(lambda: (s := lab.ha_status("b")) and s["role"] == "leader" and s["syncActive"] and s, 20)
        assert sb, f"b did not return to leader with sync on\n{lab.diagnostics()}"
    report(f"old leader returns: routed write through a {took:.2f}s after kine a started, follower after "
           f"{t_follower - t_up:.2f}s; a's roles {roles.roles('a')}")
    assert not LEADING & set(roles.roles("a")), f"R4: the returning old leader led: {roles.roles('a')}"
    assert not roles.both_leading()
    time.sleep(1)
    chk.stop()
    report(chk.summary())
    assert_invariants(chk, survivor="b")
    wait_tables_equal(lab, 15)


# --------------------------------------------------------------------------------------------
# g. leader kine frozen while its PostgreSQL answers


@diagnosed
def test_frozen_leader_kine(lab):
    a, b = start_pair(lab)
    hold_down(lab)
    chk = Checker(lab).start()
    time.sleep(1)
    with RoleRecorder(lab) as roles:
        t_stop = time.monotonic()
        lab.pause_kine("a")
        time.sleep(3 * LIVENESS)
        lab.resume_kine("a")
        t_cont = time.monotonic()
        time.sleep(1.5)
    chk.stop()
    report(chk.summary())
    assert set(roles.roles("b")) == {"follower"}, f"b changed role while a's PostgreSQL answered: {roles.roles('b')}"
    assert roles.terms("b") == {b["term"]}, roles.terms("b")
    gap = chk.longest_gap("b", t_stop, t_cont)
    report(f"kine a frozen {t_cont - t_stop:.1f}s: longest stall of writes through b {gap:.2f}s")
    assert gap < LIVENESS, (f"writes through b stalled {gap:.2f}s while kine a was frozen (a frozen kine "
                            f"holding the write lock or a sync wait would do this)")
    sa = lab.ha_status("a")
    assert sa and sa["role"] == "leader" and sa["term"] == a["term"], sa
    assert_invariants(chk, survivor="a")


# --------------------------------------------------------------------------------------------
# h. a link cut shorter than liveness


@diagnosed
def test_short_link_cut(lab):
    a, b = start_pair(lab)
    hold_down(lab)
    with RoleRecorder(lab) as roles:
        lab.link_down("a")
        time.sleep(1.0)
        lab.link_up("a")
        time.sleep(LIVENESS + 2)
    assert set(roles.roles("b")) == {"follower"}, f"b changed role over a 1 s link cut: {roles.roles('b')}"
    assert set(roles.roles("a")) <= {"leader"}, f"a changed role over a 1 s link cut: {roles.roles('a')}"
    assert roles.terms("a") | roles.terms("b") == {a["term"]}
    for n in ("a", "b"):
        put_until_ok(lab, n, f"/ha/linkcut/{n}", 10)


# --------------------------------------------------------------------------------------------
# i. a fresh follower for a 100 000-key database


def _bulk_load(lab, node: str, keys: int, per_txn: int = 128, threads: int = 4) -> None:
    """keys Puts through node's etcd API, per_txn to a Txn, from threads clients."""
    batches = [range(i, min(i + per_txn, keys)) for i in range(0, keys, per_txn)]
    errors: list = []

    def work(mine):
        c = hacheck.FastClient(lab.node(node).endpoint, timeout=30)
        pb = c.pb
        try:
            for batch in mine:
                ops = [pb.RequestOp(request_put=pb.PutRequest(key=f"/ha/bulk/{i:07d}".encode(), value=b"x" * 100))
                       for i in batch]
                _, err = c.call(c.kv.Txn, pb.TxnRequest(success=ops))
                if err:
                    errors.append(err)
                    return
        finally:
            c.close()

    ts = [threading.Thread(target=work, args=(batches[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]


@diagnosed
def test_large_database_fresh_follower(lab):
    lab.stop_postgres("b")  # a starts alone: neither b's kine nor its PostgreSQL answers
    lab.start_kine("a")
    lab.wait_role("a", "leader-alone", STARTUP_GRACE + 20)
    keys = 100_000
    t0 = time.monotonic()
    _bulk_load(lab, "a", keys)
    report(f"bulk load: {keys} keys through a in {time.monotonic() - t0:.1f}s")
    t_start = restart_node(lab, "b")
    st = lab.wait_role("b", "follower", 180)
    took = time.monotonic() - t_start
    assert st["subscription"] == "ready", st
    report(f"fresh follower of a {keys}-key database: follower {took:.1f}s after kine b started")
    state = wait_tables_equal(lab, 30)
    assert state["kine"][0] >= keys, state


# --------------------------------------------------------------------------------------------
# j. bad setups


@diagnosed
def test_peer_unreachable_at_start(lab):
    """b alone (a's PostgreSQL down, no kine a): a clear message naming the peer, no crash, no
    promotion of an empty secondary, and clients get UNAVAILABLE."""
    lab.stop_postgres("a")
    lab.start_kine("b")
    time.sleep(STARTUP_GRACE + 3)  # past the startup grace, plus a few probe rounds
    assert lab.kine_running("b"), "kine b exited\n" + lab.kine_log_tail("b")
    lines = [l for l in lab.kine_log_text("b").splitlines() if "peer" in l.lower() and "10.77.0.1" in l]
    assert lines, "no log line mentions the unreachable peer (10.77.0.1)\n" + lab.kine_log_tail("b")
    st = lab.ha_status("b")
    assert st and st["role"] not in LEADING, f"an empty secondary promoted itself: {st}"
    _, err = put(lab, "b", "/ha/alone/k", timeout=5)
    assert err and err["code"] == "UNAVAILABLE", f"Put through a node that cannot route: {err}"
    report(f"peer unreachable: b is {st['role']}; log says: {lines[-1][:200]}")


@diagnosed
def test_wal_level_not_logical(lab):
    """kine refuses a PostgreSQL without wal_level=logical, saying so."""
    lab.set_postgres_settings("a", wal_level="replica")
    lab.restart_postgres("a")
    assert lab.psql("a", "SHOW wal_level") == "replica"
    lab.start_kine("a", wait=None)
    said = hanet.wait_for(lambda: "wal_level" in lab.kine_log_text("a"), 20)
    assert said, "kine does not mention wal_level\n" + lab.kine_log_tail("a")
    if lab.kine_running("a"):
        st = lab.ha_status("a")
        assert not st or st["role"] not in LEADING, f"kine leads on a wal_level=replica database: {st}"
    report("wal_level=replica: kine " + ("exited" if not lab.kine_running("a") else "refuses while running")
           + ": " + next(l for l in lab.kine_log_text("a").splitlines() if "wal_level" in l)[:200])


@diagnosed
def test_peer_with_another_schema_version(lab):
    """A peer announcing another HA schema version is named in both logs and never paired with:
    the secondary neither follows nor takes over; the primary serves alone."""
    lab.start_kine("a")
    lab.start_kine("b", env={"KINE_HA_TEST_SCHEMA_VERSION": "99"})
    time.sleep(STARTUP_GRACE + 3)
    for n, other in (("a", "99"), ("b", "1")):
        said = [l for l in lab.kine_log_text(n).splitlines() if "schema version" in l and other in l]
        assert said, f"kine {n} does not name the peer's schema version\n" + lab.kine_log_tail(n)
    sb = lab.ha_status("b")
    assert sb and sb["role"] == "bootstrap" and sb["subscription"] == "none", f"b paired with a: {sb}"
    sa = lab.ha_status("a")
    assert sa and sa["role"] == "leader-alone" and sa["term"] == 1, sa
    report("mixed schema versions: " + next(l for l in lab.kine_log_text("b").splitlines() if "schema version" in l)[:200])


def test_copy_gains_a_table_the_leader_publishes(lab):
    """An upgrade that publishes a new table (kine_alarms came with schema 3): the leader's kine
    adds it to its publication at start; the follower's existing copy subscribes to it within a
    round or two, with the rows the leader already had, and streams it from then on."""
    start_pair(lab)
    subscribed = ("SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid "
                  "WHERE s.subname = 'kine_sub_b' AND r.srrelid = 'kine_alarms'::regclass")
    # A pair made by a kine that did not publish kine_alarms yet.
    lab.psql("a", "ALTER PUBLICATION kine_pub DROP TABLE kine_alarms")
    lab.psql("b", "SET default_transaction_read_only = off; ALTER SUBSCRIPTION kine_sub_b REFRESH PUBLICATION")  # b is fenced
    assert lab.psql("b", subscribed) == "0"
    c = hacheck.FastClient(lab.node("a").endpoint)
    try:
        pb = c.pb
        _, err = c.call(c.maintenance.Alarm, pb.AlarmRequest(action=1, memberID=7, alarm=2))  # ACTIVATE CORRUPT 7
        assert err is None, err
        assert lab.psql("b", "SELECT count(*) FROM kine_alarms") == "0", "kine_alarms replicated while unpublished"
        # What the upgraded leader's start does (HASQL.publish).
        lab.psql("a", "ALTER PUBLICATION kine_pub ADD TABLE kine_alarms")
        copied = hanet.wait_for(lambda: lab.psql("b", "SELECT string_agg(member_id || ':' || alarm, ',') FROM kine_alarms") == "7:2",
                                15, 0.25)
        assert copied, f"b's copy did not take kine_alarms with a's row\n{lab.diagnostics()}"
        assert lab.psql("b", subscribed) == "1"
        st = lab.wait_role("b", "follower", 15)
        assert st["subscription"] == "ready", st
        said = [l for l in lab.kine_log_text("b").splitlines() if "new tables to the local copy" in l]
        assert said, "b does not log the refresh\n" + lab.kine_log_tail("b")
        # From now on the table streams: a deactivation through b (written to a's database) reaches b's copy.
        cb = hacheck.FastClient(lab.node("b").endpoint)
        try:
            _, err = cb.call(cb.maintenance.Alarm, pb.AlarmRequest(action=2, memberID=7, alarm=2))  # DEACTIVATE
            assert err is None, err
        finally:
            cb.close()
        assert hanet.wait_for(lambda: lab.psql("b", "SELECT count(*) FROM kine_alarms") == "0", 10, 0.25), \
            "the deactivation did not reach b's copy"
    finally:
        c.close()
    wait_tables_equal(lab, 10)
    report("copy refreshed: " + said[0][:200])


# --------------------------------------------------------------------------------------------
# More than the list: both machines lose power; the old leader kept what only it had


@diagnosed
def test_power_loss_both_nodes(lab):
    """Both nodes crash together and come back, the follower first: the pair comes back as it
    was (a leads at the same term, b follows), with every acknowledged write."""
    a, _ = start_pair(lab)
    hold_down(lab)
    chk = Checker(lab).start()
    time.sleep(2)
    chk.stop()
    for n in ("a", "b"):
        crash_node(lab, n)
    for n in ("b", "a"):
        restart_node(lab, n, wait=None)
    sb = lab.wait_role("b", "follower", 40)
    sa = hanet.wait_for(lambda: (s := lab.ha_status("a")) and s["role"] == "leader" and s, 20)
    assert sa, f"a does not lead again\n{lab.diagnostics()}"
    assert (sa["term"], sa["leader"], sb["leader"]) == (a["term"], "a", "a"), (sa, sb)
    assert not hacheck.check_r5(chk, "a"), "an acknowledged write is gone after the power loss"
    assert not hacheck.check_r5(chk, "b"), "b does not read every acknowledged write after the power loss"
    put_until_ok(lab, "b", f"{chk.prefix}after-power-loss", 10)
    wait_tables_equal(lab, 15)


@diagnosed
def test_old_leader_saves_rows_only_it_had(lab):
    """Async: writes acknowledged by a that never reached b's copy are lost from the cluster when
    a dies; when a returns and follows b, exactly those rows are saved on b (the leader) in the
    replicated kine_ha_split_writes before a's copy is re-made, so both nodes show them and
    `kine ha split-writes` lists them with their values (nothing is silently dropped)."""
    start_pair(lab, "async")
    hold_down(lab)
    # b's apply worker is frozen while a takes the writes, then killed with what it had
    # received unread (PostgreSQL restarts b's backends; the copy stays complete up to before).
    apply_pid = int(lab.psql("b", "SELECT pid FROM pg_stat_subscription WHERE subname = 'kine_sub_b' AND relid IS NULL"))
    os.kill(apply_pid, signal.SIGSTOP)
    try:
        keys = []
        for i in range(20):
            key = f"/ha/only-a/{i:02d}"
            _, err = put(lab, "a", key, f"value-{i}")
            assert err is None, f"Put through a: {err}"
            keys.append(key)
        crash_node(lab, "a")
    finally:
        os.kill(apply_pid, signal.SIGKILL)
    st = lab.wait_role("b", "leader-alone", LIVENESS + 20)
    assert all(get(lab, "b", k) is None for k in keys), "b has writes its frozen apply worker never applied"
    report(f"async, frozen copy: {len(keys)} acknowledged writes through a are not on the new leader b")
    restart_node(lab, "a")
    lab.wait_role("a", "follower", 40)
    for n in ("a", "b"):
        saved = lab.split_writes(n)
        got = sorted((w["key"], base64.b64decode(w["value"]).decode()) for w in saved if w["key"].startswith("/ha/only-a/"))
        assert got == [(k, f"value-{i}") for i, k in enumerate(keys)], f"split writes on {n}: {got}"
        assert all(w["node"] == "a" for w in saved), saved
    assert any("saved this node's split writes" in l for l in lab.kine_log_text("a").splitlines()), "a does not log the saved rows"
    assert lab.psql("a", "SELECT count(*) FROM kine WHERE name LIKE '/ha/only-a/%'") == "0"
    wait_tables_equal(lab, 15)
    report(f"old leader returned: {len(keys)} rows only it had saved on b and listed on both (term {st['term']})")
