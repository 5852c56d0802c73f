"""Self-checks of the HA lab (hanet.py) and checker (hacheck.py), without kine's HA mode.

* The lab itself: namespaces, veth, one PostgreSQL per namespace set up for logical
  replication; a publication on a and a subscription on b over 10.77.0.1 made by hand; rows
  arrive; a link cut holds them back and they arrive after it; a blackhole route makes connects
  time out; everything is gone afterwards; leftovers of a dead run are swept.
* The checker's verdicts on made-up records (it must catch what it claims to catch).
* With a built kine (any version): kine in a namespace, reached over its unix socket by gRPC
  and etcdctl; two plain kine processes on a's database (the follower-routing shape) under the
  checker's load with a kine killed, restarted and frozen: every invariant holds.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import hacheck
import hanet

pytestmark = pytest.mark.ha


@pytest.fixture(scope="module", autouse=True)
def _lab_possible():
    why = hanet.netns_available()
    if why:
        pytest.skip(why)


@pytest.fixture
def lab():
    with hanet.HALab() as lab:
        yield lab
    assert not lab.leftovers(), lab.leftovers()


def _count(lab, node) -> int:
    return int(lab.psql(node, "SELECT count(*) FROM t") or 0)


def _connect_fails(lab, node, host) -> float:
    """Seconds until a connect from node to host fails (connect_timeout=3)."""
    t0 = time.monotonic()
    with pytest.raises(RuntimeError):
        lab.psql(node, "SELECT 1", host=host)
    return time.monotonic() - t0


def test_lab_replication_link_cut_and_teardown():
    with hanet.HALab() as lab:
        for n in "ab":
            lab.start_postgres(n)
        for n in "ab":
            assert lab.psql(n, "SHOW wal_level") == "logical"
            assert lab.psql(n, "SHOW track_commit_timestamp") == "on"
            assert lab.psql(n, "SHOW unix_socket_directories") == str(lab.node(n).pgsock)
        # Each namespace reaches the other's PostgreSQL over the veth, and only its own.
        assert lab.psql("b", "SELECT inet_server_addr()", host="10.77.0.1") == "10.77.0.1"
        assert lab.psql("a", "SELECT inet_server_addr()", host="10.77.0.2") == "10.77.0.2"

        lab.psql("a", "CREATE TABLE t(id int PRIMARY KEY, v text);"
                      "CREATE PUBLICATION lab_pub FOR TABLE t WITH (publish = 'insert, update, delete');")
        lab.psql("b", "CREATE TABLE t(id int PRIMARY KEY, v text);"
                      "CREATE SUBSCRIPTION lab_sub CONNECTION 'host=10.77.0.1 port=5432 dbname=kubernetes "
                      "user=postgres application_name=kine_b connect_timeout=2' PUBLICATION lab_pub "
                      "WITH (slot_name = 'kine_sub_b', synchronous_commit = 'local', disable_on_error = true);")
        lab.psql("a", "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100) g")
        assert hanet.wait_for(lambda: _count(lab, "b") == 100, 15), "rows did not replicate to b"
        assert lab.psql("a", "SELECT application_name FROM pg_stat_replication") == "kine_b"
        assert lab.table_state("a", ("t",)) == lab.table_state("b", ("t",))

        # Link cut: writes on a wait in its WAL; b cannot connect to a; after the link is back
        # the subscription catches up by itself.
        lab.link_down("a")
        lab.psql("a", "INSERT INTO t SELECT g, 'cut' FROM generate_series(101, 110) g")
        assert _connect_fails(lab, "b", "10.77.0.1") < 6
        time.sleep(0.5)
        assert _count(lab, "b") == 100, "rows crossed a cut link"
        lab.link_up("a")
        assert hanet.wait_for(lambda: _count(lab, "b") == 110, 20), "no catch-up after the link came back"

        # Blackhole route in a (a's packets to b vanish): b's connects to a time out; a's own
        # connects to b fail at once (EINVAL), as the kernel refuses local sends into it.
        lab.blackhole("a")
        assert _connect_fails(lab, "b", "10.77.0.1") >= 2, "b -> a should time out, not be refused"
        assert _connect_fails(lab, "a", "10.77.0.2") < 1
        lab.unblackhole("a")
        assert lab.psql("b", "SELECT 1", host="10.77.0.1") == "1"
        # drop() in b: silence in both of b's directions of connection setup.
        lab.drop("b")
        assert _connect_fails(lab, "b", "10.77.0.1") >= 2
        assert _connect_fails(lab, "a", "10.77.0.2") >= 2
        lab.heal()
        assert lab.psql("b", "SELECT 1", host="10.77.0.1") == "1"

        # kill -9 and restart of a PostgreSQL (what the failover tests do).
        lab.kill_postgres("a")
        assert not lab.postgres_running("a")
        lab.start_postgres("a")
        assert _count(lab, "a") == 110
        names = {n.ns for n in lab.nodes.values()}
        root = lab.root
    assert not lab.leftovers(), lab.leftovers()
    assert not names & set(hanet.netns_list())
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(root) not in ps, [l for l in ps.splitlines() if str(root) in l]


def test_lab_sweeps_leftovers_of_a_dead_run():
    # A pid that no longer exists plays the run that was SIGKILLed.
    p = subprocess.Popen(["true"])
    p.wait()
    dead = p.pid
    if hanet.pid_exists(dead):
        pytest.skip("pid reused")
    ns, d = f"kha{dead}a", f"/tmp/kha-{dead}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    os.makedirs(f"{d}/a", exist_ok=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
    try:
        hanet.wait_for(lambda: sleeper.pid in hanet.netns_pids(ns), 5, 0.05)
        with hanet.HALab():
            assert ns not in hanet.netns_list()
            assert not os.path.exists(d)
            assert sleeper.wait(timeout=5) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# --------------------------------------------------------------------------------------------
# The checker's verdicts on made-up records


class _FakeLab:
    def node(self, n):
        raise AssertionError("no lab")


def _made_up_checker():
    chk = hacheck.Checker(_FakeLab())
    chk.t_started = time.monotonic()
    return chk


def _ack(chk, node, cid, seq, rev):
    chk._record_ack(hacheck.Ack(node, cid, "grpc", f"{chk.prefix}{cid}/{seq}", f"v{seq}", rev, time.monotonic()))


def _watch(chk, node, start, revs_keys, end="closed", compact=0):
    s = hacheck.Segment(node=node, chain=f"{node}-watch", requested=start, t_start=0, start=start, created=True,
                        end=end, compact_revision=compact)
    s.events = [hacheck.Event(r, k, v, 0, 0.0) for r, k, v in revs_keys]
    chk.segments.append(s)
    return s


def test_checker_accepts_a_clean_history():
    chk = _made_up_checker()
    for i, rev in enumerate((10, 11, 12)):
        _ack(chk, "a", "a-w0", i, rev)
    _watch(chk, "b", 10, [(a.revision, a.key, a.value) for a in chk.acks])
    _watch(chk, "a", 11, [(a.revision, a.key, a.value) for a in chk.acks[1:2]], end="compacted", compact=100)
    assert hacheck.check_r1(chk) == [] and hacheck.check_r2(chk) == [] and hacheck.check_r3(chk) == []


def test_checker_catches_violations():
    chk = _made_up_checker()
    _ack(chk, "a", "a-w0", 0, 10)
    _ack(chk, "a", "a-w0", 1, 12)
    _ack(chk, "b", "b-w0", 0, 12)      # R1: revision 12 twice with different content
    _ack(chk, "a", "a-w0", 2, 11)      # R2: a-w0 goes back from 12 to 11
    a0, a1 = chk.acks[0], chk.acks[1]
    _watch(chk, "b", 10, [(a1.revision, a1.key, a1.value), (a0.revision, a0.key, a0.value)])  # order
    _watch(chk, "a", 10, [(a0.revision, a0.key, a0.value)])  # open at the end: misses 11, 12
    r1, r2, r3 = hacheck.check_r1(chk), hacheck.check_r2(chk), hacheck.check_r3(chk)
    assert any("revision 12" in p for p in r1), r1
    assert any("a-w0" in p for p in r2), r2
    assert any("out of revision order" in p for p in r3), r3
    assert any("acknowledged writes missing" in p for p in r3), r3
    chk.failures.append(hacheck.Failure("b", "b-w0", "k", "INTERNAL", "boom", 0.0))
    assert hacheck.check_errors(chk)


# --------------------------------------------------------------------------------------------
# With a kine binary (no HA flags needed)


def _kine_or_skip():
    import harness
    try:
        return harness.kine_binary()
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.mark.needs_kine
def test_lab_kine_in_a_namespace(lab):
    _kine_or_skip()
    lab.start_postgres("a")
    node = lab.start_kine("a", ha=False, wait="etcd")
    c = hacheck.FastClient(node.endpoint)
    try:
        put = c.kv.Put(c.pb.PutRequest(key=b"/lab/k", value=b"v1"), timeout=5)
        r = hacheck.etcdctl(lab, "a", "get", "/lab/k", "--print-value-only")
        assert r.returncode == 0 and r.stdout.strip() == "v1", r.stderr
        lab.kill_kine("a")
        assert not lab.kine_running("a")
        lab.start_kine("a", ha=False, wait="etcd")
        got = c.kv.Range(c.pb.RangeRequest(key=b"/lab/k"), timeout=5)
        assert got.kvs[0].mod_revision == put.header.revision
        lab.pause_kine("a")
        _, err = c.call(c.kv.Range, c.pb.RangeRequest(key=b"/lab/k"))
        assert err and err["code"] == "DEADLINE_EXCEEDED", err
        lab.resume_kine("a")
        assert c.kv.Range(c.pb.RangeRequest(key=b"/lab/k"), timeout=5).count == 1
        assert lab.ha_status("a") is None  # no HA port: a plain kine
        assert lab.stop_kine("a") == 0
    finally:
        c.close()


@pytest.mark.needs_kine
def test_checker_on_two_plain_kines_sharing_a_database(lab):
    """The follower-routing shape without HA: kine b uses a's PostgreSQL over the veth. Under
    the checker's load, kill -9 and restart kine b, freeze kine a for 2 s: R1-R3 and R5
    through both nodes hold, errors are only UNAVAILABLE / DEADLINE_EXCEEDED."""
    _kine_or_skip()
    lab.start_postgres("a")
    routed = "postgres://postgres@10.77.0.1:5432/kubernetes"
    lab.start_kine("a", ha=False, wait="etcd")
    lab.start_kine("b", ha=False, wait="etcd", endpoint=routed)
    chk = hacheck.Checker(lab).start()
    try:
        time.sleep(1.5)
        t_kill = time.monotonic()
        lab.kill_kine("b")
        time.sleep(0.5)
        lab.start_kine("b", ha=False, wait="etcd", endpoint=routed)
        time.sleep(1.0)
        lab.pause_kine("a")
        time.sleep(2.0)
        lab.resume_kine("a")
        time.sleep(1.0)
    finally:
        chk.stop()
    print(chk.summary())
    assert chk.first_ack("b", after=t_kill), "no write through b after its restart"
    assert any(s.end == "error" for s in chk.segments_on("b")), "b's watch should have broken with the kill"
    hacheck.assert_invariants(chk, survivor="a")
    assert not hacheck.check_r5(chk, "b")
