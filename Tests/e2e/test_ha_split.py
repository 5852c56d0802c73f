"""Two-node HA: network splits, reunion, saved split writes, witness, flapping, pause and
upgrade, handover (issue 10; design/HA.md "Rejoin and reunion", "Maintenance").

Same lab and checker as test_ha.py (hanet.py, hacheck.py); HA timing seconds-scale. Each test
builds its own lab and removes it, pass or fail.

    python3 -m pytest Tests/e2e/test_ha_split.py -s
"""

from __future__ import annotations

import base64
import functools
import os
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
    why = hanet.ha_unavailable()
    if why:
        pytest.skip(why)


def _lab(witness: bool):
    lab = hanet.HALab(witness=witness)
    lab.setup()
    try:
        for n in ("a", "b"):
            lab.start_postgres(n)
        yield lab
    finally:
        chk = getattr(lab, "checker", None)
        if chk is not None:
            chk.stop(catch_up=0)
        lab.cleanup()


@pytest.fixture
def lab():
    yield from _lab(witness=False)


@pytest.fixture
def witness_lab():
    """The lab with a witness namespace (hanet.WITNESS)."""
    yield from _lab(witness=True)


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
    m = lab.metrics(loser)
    assert m["kine_ha_split_writes_saved_total"] == len(saved), (m, len(saved))
    assert m["kine_ha_step_downs_total"] >= 1 and m['kine_ha_role{role="follower"}'] == 1, m
    assert lab.metrics(winner)["etcd_server_is_leader"] == 1
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
        # a takes writes again once it has dropped its lost standby (liveness, later on a busy machine).
        assert hanet.wait_for(lambda: chk.first_ack("a", after=t_split + LIVENESS + 1), 15), "a acknowledged nothing during the split"
        time.sleep(2.5)
        if quiet_before_heal:
            chk.quiet(quiet_before_heal)
            time.sleep(4)
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


# --------------------------------------------------------------------------------------------
# Other link faults, and a flapping link


def heal_and_check(lab, chk: Checker, roles: RoleRecorder, t_heal: float) -> str:
    """After any split: one leader, whichever; returns it."""
    winner = hanet.wait_for(lambda: (l := leaders({n: lab.ha_status(n) for n in ("a", "b")})) and len(l) == 1
                            and next(iter(l)), 40, 0.3)
    assert winner, f"no single leader after the heal\n{lab.diagnostics()}"
    loser = "b" if winner == "a" else "a"
    lab.wait_role(loser, "follower", 60)
    return winner


def check_any_split(lab, chk: Checker, roles: RoleRecorder, t_heal: float) -> None:
    winner = heal_and_check(lab, chk, roles, t_heal)
    for n in ("a", "b"):
        steps.put_until_ok(lab, n, f"{chk.prefix}restored-{n}", 15)
    chk.stop()
    saved = {w["key"]: (base64.b64decode(w["value"]).decode(), w["revision"]) for w in lab.split_writes(winner)}
    got = hacheck.read_all(lab, winner, chk.prefix)
    assert got is not None
    with chk._lock:
        chk.reads.extend((k, v, r) for k, (v, r) in got.items())
        acks = list(chk.acks)
    lost = [a for a in acks if got.get(a.key) != (a.value, a.revision) and saved.get(a.key) != (a.value, a.revision)]
    assert not lost, f"{len(lost)} acknowledged writes neither in the table nor saved: {[(a.node, a.key, a.revision) for a in lost[:5]]}"
    problems = hacheck.check_r1(chk) + hacheck.check_r2(chk)
    assert not problems, "\n".join(problems[:20])
    wait_tables_equal(lab, 20)
    report(f"leader {winner}; {len(saved)} split writes saved; {chk.summary()}")


@pytest.mark.parametrize("fault", ["blackhole-a", "drop-both"])
@steps.diagnosed
def test_one_way_blackhole_and_silent_drop(lab, fault):
    """A one-way blackhole (a's packets to b vanish) or a silent drop both ways, longer than
    liveness: whatever each side concludes, the heal ends with one leader and nothing lost."""
    start_pair(lab)
    steps.hold_down(lab)
    chk = Checker(lab, watchers=False).start()
    time.sleep(1)
    with RoleRecorder(lab) as roles:
        if fault == "blackhole-a":
            lab.blackhole("a")
        else:
            lab.partition()
        time.sleep(LIVENESS + HOLD_DOWN)
        lab.heal()
        t_heal = time.monotonic()
        check_any_split(lab, chk, roles, t_heal)
    report(f"{fault}: roles a {roles.roles('a')}, b {roles.roles('b')}")


def promotions(roles: RoleRecorder, node: str) -> list[float]:
    """Times the node went from a following role (or unknown) to a leading one."""
    out, last = [], None
    for t, st in roles.rounds:
        s = st[node]
        if not s:
            continue
        if s["role"] in LEADING and last is not None and last not in LEADING:
            out.append(t)
        last = s["role"]
    return out


@steps.diagnosed
def test_flapping_link(lab):
    """The link goes down and up every 2-5 s for KINE_HA_FLAP_SECONDS (default 120): no node
    promotes twice within the hold-down, and service is restored afterwards with nothing lost."""
    import random
    duration = float(os.environ.get("KINE_HA_FLAP_SECONDS", "120"))
    rng = random.Random(7)
    start_pair(lab)
    steps.hold_down(lab)
    chk = Checker(lab, watchers=False).start()
    with RoleRecorder(lab, interval=0.2) as roles:
        t_end = time.monotonic() + duration
        flaps = 0
        while time.monotonic() < t_end:
            lab.link_down("a")
            time.sleep(rng.uniform(2, 5))
            lab.link_up("a")
            time.sleep(rng.uniform(2, 5))
            flaps += 1
        t_heal = time.monotonic()
        check_any_split(lab, chk, roles, t_heal)
    for n in ("a", "b"):
        ps = promotions(roles, n)
        close = [(round(x - chk.t_started, 1), round(y - chk.t_started, 1)) for x, y in zip(ps, ps[1:]) if y - x < HOLD_DOWN - 1]
        assert not close, f"{n} promoted twice within the hold-down: {close}"
    report(f"flapping {flaps} times over {duration:.0f}s: promotions a {len(promotions(roles, 'a'))}, "
           f"b {len(promotions(roles, 'b'))}; terms {sorted(roles.terms('a') | roles.terms('b'))}")


# --------------------------------------------------------------------------------------------
# Witness


@diagnosed
def test_witness_isolated_leader_stops_writes(witness_lab):
    """With a witness, a leader cut from both its peer and the witness stops taking writes; the
    follower, which reaches the witness, takes over; no acknowledged write is lost (a's clients
    got errors, not acknowledgements later dropped)."""
    lab = witness_lab
    start_pair(lab, {"--ha-witness": hanet.WITNESS})
    assert lab.ha_status("a")["witness"] == "reachable", lab.ha_status("a")
    steps.hold_down(lab)
    chk = Checker(lab, watchers=False).start()
    time.sleep(1)
    with RoleRecorder(lab) as roles:
        lab.witness_down("a")
        lab.link_down("a")
        t_split = time.monotonic()
        lab.wait_role("b", "leader-alone", LIVENESS + 15)
        time.sleep(3)
        sa = lab.ha_status("a")
        assert sa and sa["witness"] == "unreachable" and sa["witnessLost"], sa
        assert not chk.first_ack("a", after=t_split + 1), f"isolated a acknowledged a write: {chk.first_ack('a', after=t_split + 1)}"
        lab.heal()
        t_heal = time.monotonic()
        winner = heal_and_check(lab, chk, roles, t_heal)
        assert winner == "b", f"{winner} won; b reached the witness throughout"
    chk.stop()
    problems = hacheck.check_r5(chk, "b") + hacheck.check_r1(chk) + hacheck.check_r2(chk)
    assert not problems, "\n".join(problems[:20])
    wait_tables_equal(lab, 20)
    decided = [l for l in lab.kine_log_text("b").splitlines() if "reunion decided" in l]
    report(f"witness: isolated a took no writes; {decided[-1][-200:] if decided else 'no reunion logged'}; {chk.summary()}")


@diagnosed
def test_witness_follower_without_it_does_not_promote(witness_lab):
    """With a witness, a follower cut from the leader and from the witness never promotes; the
    leader, which reaches the witness, keeps taking writes; nothing is lost, no split writes."""
    lab = witness_lab
    a, b = start_pair(lab, {"--ha-witness": hanet.WITNESS})
    steps.hold_down(lab)
    chk = Checker(lab, nodes=("a",), watchers=False).start()
    with RoleRecorder(lab) as roles:
        lab.witness_down("b")
        lab.link_down("b")
        t_split = time.monotonic()
        time.sleep(LIVENESS + HOLD_DOWN + 3)
        assert chk.first_ack("a", after=t_split + LIVENESS + 1), "a stopped taking writes while it reached the witness"
        lab.heal()
        lab.wait_role("b", "follower", 60)
    chk.stop()
    assert not LEADING & set(roles.roles("b")), f"b led without the witness: {roles.roles('b')}"
    assert roles.terms("b") == {a["term"]}, roles.terms("b")
    problems = hacheck.check_r5(chk, "b") + hacheck.check_r1(chk) + hacheck.check_r2(chk)
    assert not problems, "\n".join(problems[:20])
    assert lab.split_writes("a") == []
    wait_tables_equal(lab, 20)


# --------------------------------------------------------------------------------------------
# Maintenance: pause, the upgrade procedure, handover


@steps.diagnosed
def test_pause_blocks_promotion(lab):
    """kine ha pause on a reaches b; kill the leader: no promotion until resume."""
    a, b = start_pair(lab)
    steps.hold_down(lab)
    lab.ha_command("a", "pause", "--for", "10m")
    assert hanet.wait_for(lambda: (s := lab.ha_status("b")) and s["paused"], 5), "b did not adopt a's pause"
    steps.crash_node(lab, "a")
    with RoleRecorder(lab) as roles:
        time.sleep(2 * (LIVENESS + HOLD_DOWN))
    assert set(roles.roles("b")) == {"follower"}, f"b changed role while paused: {roles.roles('b')}"
    t_resume = time.monotonic()
    lab.ha_command("b", "resume")
    st = lab.wait_role("b", "leader-alone", LIVENESS + 10)
    assert st["term"] == a["term"] + 1 and not st["paused"], st
    report(f"paused: no promotion for {2 * (LIVENESS + HOLD_DOWN):.0f}s with the leader dead; "
           f"promoted {time.monotonic() - t_resume:.2f}s after resume")


@steps.diagnosed
def test_upgrade_procedure_under_pause(lab):
    """The seed's upgrade: pause, restart (upgrade) the follower's kine, then the leader's, resume:
    roles and terms unchanged, and reads are answered throughout (through one node or the other)."""
    a, b = start_pair(lab)
    steps.hold_down(lab)
    chk = Checker(lab, watchers=False).start()
    with RoleRecorder(lab) as roles:
        lab.ha_command("a", "pause", "--for", "10m")
        assert hanet.wait_for(lambda: (s := lab.ha_status("b")) and s["paused"], 5)
        for n in ("b", "a"):
            lab.stop_kine(n)
            time.sleep(1)
            lab.start_kine(n, replication="sync", options={})
            lab.wait_role(n, "leader" if n == "a" else "follower", 40)
            time.sleep(1)
        lab.ha_command("b", "resume")
        assert hanet.wait_for(lambda: all((s := lab.ha_status(n)) and not s["paused"] for n in ("a", "b")), 5)
        time.sleep(1)
    chk.stop()
    # A restarted node is in bootstrap until it has heard its peer.
    assert set(roles.roles("a")) <= LEADING | {"bootstrap"} and set(roles.roles("b")) <= {"follower", "follower-syncing", "bootstrap"}, (
        roles.roles("a"), roles.roles("b"))
    assert roles.terms("a") | roles.terms("b") == {a["term"]}
    with chk._lock:
        reads = sorted(t for c in ("a-r", "b-r") for t, _ in chk.headers.get(c, []))
    gaps = [y - x for x, y in zip(reads, reads[1:])]
    report(f"upgrade under pause: longest time with no read answered by either node {max(gaps):.2f}s; {chk.summary()}")
    assert max(gaps) < 2.0, f"no read was answered for {max(gaps):.2f}s during the upgrade"
    problems = hacheck.check_r5(chk, "a") + hacheck.check_r1(chk) + hacheck.check_r2(chk)
    assert not problems, "\n".join(problems[:20])


@steps.diagnosed
def test_handover_under_load(lab):
    """kine ha handover: b leads, a follows, no acknowledged write lost; the write gap measured."""
    a, b = start_pair(lab)
    steps.hold_down(lab)
    chk = Checker(lab, watchers=False).start()
    time.sleep(2)
    with RoleRecorder(lab) as roles:
        t0 = time.monotonic()
        r = lab.ha_command("a", "handover", "--timeout", "10s")
        t1 = time.monotonic()
        assert "b leads" in r.stdout, r.stdout + r.stderr
        sa = lab.wait_role("a", "follower", 60)
        time.sleep(2)
    chk.stop()
    assert sa["leader"] == "b" and sa["term"] == a["term"] + 1, sa
    problems = hacheck.check_r5(chk, "b") + hacheck.check_r1(chk) + hacheck.check_r2(chk)
    assert not problems, "\n".join(problems[:20])
    assert lab.split_writes("b") == [], "a handover saved split writes"
    with chk._lock:
        ts = sorted(x.t for x in chk.acks)
    window = [t for t in ts if t0 - 1 <= t <= t1 + 2]
    gap = max((y - x for x, y in zip(window, window[1:])), default=0)
    report(f"handover: command took {t1 - t0:.2f}s; longest time without an acknowledged write (any node) "
           f"{gap:.2f}s; roles a {roles.roles('a')}, b {roles.roles('b')}")
    wait_tables_equal(lab, 30)


# --------------------------------------------------------------------------------------------
# Secured peer link (mutual TLS on the HA port)


def _openssl(*args: str) -> None:
    hanet.sh(["openssl", *args], timeout=60)


def make_ca(d, name: str) -> tuple[str, str]:
    key, crt = f"{d}/{name}.key", f"{d}/{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", key, "-out", crt)
    return key, crt


def make_cert(d, ca: tuple[str, str], name: str, ip: str) -> tuple[str, str]:
    key, csr, crt, ext = f"{d}/{name}.key", f"{d}/{name}.csr", f"{d}/{name}.crt", f"{d}/{name}.ext"
    with open(ext, "w") as f:
        f.write(f"subjectAltName = IP:{ip}, DNS:{name}\nextendedKeyUsage = serverAuth, clientAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
             "-keyout", key, "-out", csr)
    _openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial", "-days", "2",
             "-extfile", ext, "-out", crt)
    return key, crt


def tls_options(key_crt: tuple[str, str], ca: tuple[str, str]) -> dict:
    return {"--ha-cert-file": key_crt[1], "--ha-key-file": key_crt[0], "--ha-trusted-ca-file": ca[1]}


@steps.diagnosed
def test_peer_link_mutual_tls(lab):
    """Both nodes with certificates from one CA pair up over TLS; a peer with a certificate from
    another CA, or a client with none, is refused at the handshake, and the refusal is logged."""
    d = str(lab.root)
    ca = make_ca(d, "pair-ca")
    other = make_ca(d, "other-ca")
    certs = {n: make_cert(d, ca, f"node-{n}", lab.node(n).addr) for n in ("a", "b")}
    lab.status_args = ["--ha-cert-file", certs["a"][1], "--ha-key-file", certs["a"][0], "--ha-trusted-ca-file", ca[1]]
    for n in ("a", "b"):
        lab.start_kine(n, replication="sync", options=tls_options(certs[n], ca))
    lab.wait_role("b", "follower", 40)
    lab.wait_role("a", "leader", 20)
    steps.put_until_ok(lab, "b", "/ha/tls/routed", 10)

    # No client certificate: refused (kine ha status without the TLS flags), and logged by a.
    node = lab.node("a")
    r = hanet.sh(lab.nsexec("a") + [lab.kine_bin, "ha", "status", "--address", node.ha_address], check=False, timeout=20)
    assert r.returncode != 0, f"a plain client was served on the TLS peer port: {r.stdout}"
    # With the pair's certificate: served.
    ok = hanet.sh(lab.nsexec("a") + [lab.kine_bin, "ha", "status", "--json", "--address", node.ha_address,
                                     "--ha-cert-file", certs["a"][1], "--ha-key-file", certs["a"][0],
                                     "--ha-trusted-ca-file", ca[1]], timeout=20)
    assert '"role":"leader"' in ok.stdout, ok.stdout

    # b comes back with a certificate from another CA: a refuses it, b's HA channel fails.
    def refusals() -> int:
        return sum("TLS handshake refused" in l for l in lab.kine_log_text("a").splitlines())

    lab.stop_kine("b")
    before = refusals()
    stranger = make_cert(d, other, "node-b-other", lab.node("b").addr)
    lab.start_kine("b", replication="sync", options=tls_options(stranger, other), wait=None)
    refused = hanet.wait_for(lambda: refusals() >= before + 2, 20)
    assert refused, "a did not log the refused handshakes"
    # a's own probes of b fail too (neither trusts the other's CA); waited for, so the status
    # shown is from a round after b came back, not from one before it stopped.
    sa = {}
    def probe_failed() -> bool:
        nonlocal sa
        sa = lab.ha_status_tls("a", certs["a"], ca) or {}
        # b listens (no "Connection refused"), but the TLS session between them fails.
        return bool(sa) and not sa["peer"]["rpcOK"] and "Connection refused" not in sa["peer"]["error"]
    assert hanet.wait_for(probe_failed, 10), sa
    lines = [l for l in lab.kine_log_text("a").splitlines() if "TLS handshake refused" in l]
    report(f"mutual TLS: refused and logged: {lines[-1][-200:]}")


@steps.diagnosed
def test_peer_sql_over_tls_verify_full(lab):
    """With ssl=on on both PostgreSQLs and `sslmode=verify-full` in the peer DSN, the follower's
    routed connections and its replication subscription to the leader run over TLS."""
    import shutil
    d = str(lab.root)
    ca = make_ca(d, "pg-ca")
    for n in ("a", "b"):
        key, crt = make_cert(d, ca, f"pg-{n}", lab.node(n).addr)
        for f in (key, crt):
            shutil.chown(f, hanet.PG_USER, hanet.PG_USER)
        os.chmod(key, 0o600)
        lab.set_postgres_settings(n, ssl="on", ssl_cert_file=f"'{crt}'", ssl_key_file=f"'{key}'")
        lab.restart_postgres(n)
    os.chmod(ca[1], 0o644)
    for n in ("a", "b"):
        peer = lab.peer(n)
        dsn = (f"postgres://{hanet.PG_USER}@{peer.addr}:{hanet.PG_PORT}/{hanet.DB}"
               f"?sslmode=verify-full&sslrootcert={ca[1]}")
        lab.start_kine(n, replication="sync", options={"--ha-peer-endpoint": dsn})
    lab.wait_role("b", "follower", 40)
    lab.wait_role("a", "leader", 20)
    steps.put_until_ok(lab, "b", "/ha/pg-tls/routed", 10)
    rows = lab.psql("a", "SELECT a.backend_type, a.application_name, s.ssl FROM pg_stat_activity a "
                         "JOIN pg_stat_ssl s USING (pid) WHERE a.client_addr = '10.77.0.2' ORDER BY 1, 2")
    lines = [l.split("|") for l in rows.splitlines()]
    assert lines and all(l[2] == "t" for l in lines), f"connections from b to a's PostgreSQL without TLS: {lines}"
    assert any(l[0] == "walsender" for l in lines), f"no replication connection from b: {lines}"
    assert any(l[0] == "client backend" for l in lines), f"no routed connection from b: {lines}"
    report(f"peer SQL over TLS (verify-full): {len(lines)} connections from b to a, all TLS: {sorted({l[0] for l in lines})}")
