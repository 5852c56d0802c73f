"""Two-node HA: network splits, reunion, saved split writes, witness, flapping, pause and
upgrade, handover (issue 10; design/HA.md "Rejoin and reunion", "Maintenance").

Same lab and checker as test_ha.py (hanet.py, hacheck.py); HA timing seconds-scale. Each test
builds its own lab and removes it, pass or fail.

    python3 -m pytest Tests/e2e/test_ha_split.py -s
"""

from __future__ import annotations

import base64
import functools
import time

import pytest

import hacheck
import hanet
import test_ha as steps
from hacheck import Checker, RoleRecorder, wait_tables_equal
from hanet import HOLD_DOWN, LIVENESS

pytestmark = [pytest.mark.needs_kine, pytest.mark.ha]

LEADING = {"leader", "leader-alone"}
report = steps.report


@pytest.fixture(scope="module", autouse=True)
def _ha_possible():
    why = steps._why_skip()
    if why:
        pytest.skip(why)


def make_lab(witness: bool = False):
    lab = hanet.HALab(witness=witness)
    lab.setup()
    for n in ("a", "b"):
        lab.start_postgres(n)
    return lab


@pytest.fixture
def lab():
    lab = make_lab()
    try:
        yield lab
    finally:
        chk = getattr(lab, "checker", None)
        if chk is not None:
            chk.stop(catch_up=0)
        lab.cleanup()


@pytest.fixture
def witness_lab():
    lab = make_lab(witness=True)
    try:
        yield lab
    finally:
        chk = getattr(lab, "checker", None)
        if chk is not None:
            chk.stop(catch_up=0)
        lab.cleanup()


def diagnosed(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        lab = kwargs.get("lab") or kwargs.get("witness_lab") or args[0]
        try:
            return test(*args, **kwargs)
        except BaseException:
            print(lab.diagnostics())
            chk = getattr(lab, "checker", None)
            if chk is not None:
                print(chk.summary())
            raise
    return run


def start_pair(lab, options: dict | None = None, env: dict | None = None) -> tuple[dict, dict]:
    """a leads, b follows with its copy ready, both with `options` (and env[node] added)."""
    env = env or {}
    for n in ("a", "b"):
        lab.start_kine(n, replication="sync", options=options or {}, env=env.get(n))
    b = lab.wait_role("b", "follower", 40)
    a = hanet.wait_for(lambda: (s := lab.ha_status("a")) and s["role"] == "leader" and s["syncActive"] and s, 20, 0.25)
    assert a, f"a is not a synchronous leader\n{lab.diagnostics()}"
    lab.t_settled = time.monotonic()
    return a, b


def leaders(st: dict) -> set:
    return {n for n, s in st.items() if s and s.get("role") in LEADING}


def check_split_outcome(lab, chk: Checker, roles: RoleRecorder, winner: str, t_heal: float) -> list[dict]:
    """After a healed split: one leader (the expected winner) within the hold-down; every
    acknowledged write either in the table or, for the loser's split-era writes, saved with its
    value and revision; R1, R2; tables equal. Returns the saved split writes."""
    loser = "b" if winner == "a" else "a"
    late = [t for t, st in roles.rounds if t > t_heal + HOLD_DOWN and len(leaders(st)) > 1]
    assert not late, f"both nodes still lead {HOLD_DOWN}s after the heal ({len(late)} rounds)\n{lab.diagnostics()}"
    settled = next((t for t, st in roles.rounds if t > t_heal and leaders(st) == {winner}), None)
    assert settled is not None, f"{winner} never led alone after the heal\n{lab.diagnostics()}"
    report(f"one leader ({winner}) {settled - t_heal:.2f}s after the heal")
    sw = lab.wait_role(winner, "leader", 40)
    sl = lab.wait_role(loser, "follower", 60)
    assert (sw["leader"], sl["leader"]) == (winner, winner) and sw["term"] == sl["term"], (sw, sl)

    saved = lab.split_writes(winner)
    assert saved == lab.split_writes(loser), "the two nodes list different split writes"
    assert all(w["node"] == loser for w in saved), f"split writes from the winner: {[w for w in saved if w['node'] != loser][:3]}"
    by_key = {w["key"]: (base64.b64decode(w["value"]).decode(), w["revision"]) for w in saved}
    got = hacheck.read_all(lab, winner, chk.prefix)
    assert got is not None, "the winner does not answer a Range"
    with chk._lock:
        chk.reads.extend((k, v, r) for k, (v, r) in got.items())
        acks = list(chk.acks)
    in_table = [a for a in acks if got.get(a.key) == (a.value, a.revision)]
    in_saved = [a for a in acks if by_key.get(a.key) == (a.value, a.revision)]
    lost = [a for a in acks if a not in in_table and a not in in_saved]
    assert not lost, f"{len(lost)} acknowledged writes neither in the table nor saved: {[(a.node, a.key, a.revision) for a in lost[:5]]}"
    assert all(a.node == loser for a in in_saved), "a write acknowledged by the winner was saved as a split write"
    assert in_saved, "the loser acknowledged no write during the split: the test did not exercise a split"
    assert not (set(by_key) & set(got)), "a saved split write is also in the table"
    problems = hacheck.check_r1(chk) + hacheck.check_r2(chk)
    assert not problems, "\n".join(problems[:20])
    wait_tables_equal(lab, 20)
    report(f"{len(in_saved)} writes the loser {loser}'s clients had acknowledged are saved on both nodes; "
           f"{len(in_table)} acknowledged writes in the table")
    return saved


def split_scenario(lab, policy: str, winner: str, options: dict | None = None, env: dict | None = None,
                   quiet_before_heal: str | None = None) -> None:
    """Symmetric split (link down) with writes acknowledged on both sides for longer than
    liveness plus a few seconds, then heal."""
    start_pair(lab, {"--ha-reunion": policy, **(options or {})}, env)
    steps.hold_down(lab)
    chk = Checker(lab, watchers=False).start()
    time.sleep(1)
    with RoleRecorder(lab) as roles:
        lab.link_down("a")
        t_split = time.monotonic()
        lab.wait_role("b", "leader-alone", LIVENESS + 15)
        assert hanet.wait_for(lambda: chk.first_ack("b", after=t_split), 10), "b acknowledged nothing after promoting"
        time.sleep(2.5)
        if quiet_before_heal:
            chk.quiet(quiet_before_heal)
            time.sleep(4)
        assert chk.first_ack("a", after=t_split + LIVENESS + 1), "a acknowledged nothing during the split"
        lab.link_up("a")
        t_heal = time.monotonic()
        lab.wait_role("b" if winner == "a" else "a", "follower", 60)
        chk.loud("a")
        chk.loud("b")
        time.sleep(1)
    chk.stop()
    report(f"split ({policy}) {t_heal - t_split:.1f}s: {chk.summary()}")
    check_split_outcome(lab, chk, roles, winner, t_heal)
    rule = {"incumbent": "led before the split", "promoted": "promoted during the split", "newest": "newest write"}[policy]
    decided = [l for l in lab.kine_log_text("b").splitlines() + lab.kine_log_text("a").splitlines() if "reunion decided" in l]
    assert decided, "no node logged the reunion decision"
    report(decided[-1][-240:])
    if options and "--ha-max-clock-skew" in options:
        assert "priority" in decided[-1], f"expected the priority rule inside the skew bound: {decided[-1]}"
    else:
        assert rule in decided[-1], f"expected the {policy} rule: {decided[-1]}"


SKEW = "60000"  # ms: far beyond --ha-max-clock-skew


@steps.diagnosed
def test_split_incumbent_with_skew(lab):
    """incumbent: a (which led before the split) wins, though b's clock runs a minute ahead."""
    split_scenario(lab, "incumbent", "a", env={"b": {"KINE_HA_TEST_CLOCK_OFFSET_MS": SKEW}})


@steps.diagnosed
def test_split_promoted_with_skew(lab):
    """promoted: b (promoted during the split) wins, though a's clock runs a minute ahead."""
    split_scenario(lab, "promoted", "b", env={"a": {"KINE_HA_TEST_CLOCK_OFFSET_MS": SKEW}})


@steps.diagnosed
def test_split_newest(lab):
    """newest: a stops writing 4 s before the heal, so b has the newest write and wins."""
    split_scenario(lab, "newest", "b", quiet_before_heal="a")


@steps.diagnosed
def test_split_newest_within_clock_skew(lab):
    """newest, with the two last writes 4 s apart but a 30 s skew bound: the clocks decide
    nothing, the next rule (priority: a is primary) does."""
    split_scenario(lab, "newest", "a", options={"--ha-max-clock-skew": "30s"}, quiet_before_heal="a")
