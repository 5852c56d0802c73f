"""Auth on the two-node HA pair (docs/auth.md, "On the HA pair"), in the network-namespace lab
(hanet.py), sync replication.

One lab for the module: a leads, b follows. Through the leader, as etcdctl 3.5 would set it up:
root with the root role, a role `app` with readwrite on a prefix, a user alice with it, auth on.

* before any failover, the follower answers auth calls as the leader does (its requests go to
  the leader's database): alice logs in through b with the permissions a gives her; a user made
  through a logs in through b at once, and one made through b logs in through a; a revoke through
  b refuses the next read through a; auth status, user list and role get agree; `kine_auth` is
  replicated to b's copy;
* kine a killed (kill -9), its PostgreSQL alive: b keeps serving auth from a's database;
* then a's PostgreSQL killed too (the node is gone): b leads alone, and alice logs in through b
  with the password she had and the permissions she had (allowed inside the prefix, denied
  outside); her value written before the crash is there; a token a issued is unknown to b
  (`invalid auth token`); auth changes through the new leader work.

kine only (a single etcd has no such mode): the invariants are asserted directly. Skipped unless
root with `ip netns`, PostgreSQL 15 and a kine built with HA.

    python3 -m pytest Tests/e2e/test_ha_auth.py -s
"""

from __future__ import annotations

import functools
import sys
import time
import uuid

import grpc
import pytest

import etcdgrpc
import hacheck
import hanet
from hanet import LIVENESS
from test_ha import crash_node, hold_down, start_pair

pytestmark = [pytest.mark.needs_kine, pytest.mark.ha]

RUN = uuid.uuid4().hex[:6]
P = f"/e2e-ha-auth/{RUN}/"
APP = P + "app/"
ROOT = "root:root-pw"
ALICE = "alice:alice-pw"
DENIED = "Error: etcdserver: permission denied"


def report(msg: str) -> None:
    print(f"\n[ha auth] {msg}", file=sys.stderr, flush=True)


def ctl(lab, node: str, *args: str) -> tuple[int, str, str]:
    """etcdctl 3.5 through the node's socket: (exit code, stdout, the last "Error:" line or "")."""
    r = hacheck.etcdctl(lab, node, *args)
    errors = [l.strip() for l in r.stderr.splitlines() if l.startswith("Error:")]
    err = errors[-1] if errors else ("" if r.returncode == 0 else r.stderr.strip()[-300:])
    return r.returncode, r.stdout, err


def ok(lab, node: str, *args: str) -> str:
    rc, out, err = ctl(lab, node, *args)
    assert rc == 0, f"etcdctl {' '.join(args)} through {node}: {err}\n{lab.diagnostics()}"
    return out


def denied(lab, node: str, *args: str) -> None:
    rc, out, err = ctl(lab, node, *args)
    assert (rc, err) == (1, DENIED), f"etcdctl {' '.join(args)} through {node}: rc {rc} {out!r} {err!r}, expected {DENIED}"


def grpc_call(lab, node: str, method: str, request, token: str | None = None):
    """One Auth or KV call over gRPC: (response, None) or (None, (code, message))."""
    c = hacheck.FastClient(lab.node(node).endpoint, timeout=3)
    _, rpc_grpc, _ = etcdgrpc.modules()
    stub = rpc_grpc.AuthStub(c.channel) if method in ("Authenticate", "AuthStatus") else c.kv
    try:
        return getattr(stub, method)(request, timeout=3, metadata=[("token", token)] if token else None), None
    except grpc.RpcError as e:
        return None, (e.code().name, e.details())
    finally:
        c.close()


def auth_row(lab, node: str) -> str:
    return lab.psql(node, "SELECT md5(t::text) FROM kine_auth t")


@pytest.fixture(scope="module", autouse=True)
def _ha_possible():
    why = hanet.ha_unavailable()
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def lab():
    with hanet.HALab() as lab:
        for n in ("a", "b"):
            lab.start_postgres(n)
        start_pair(lab, "sync")
        # The setup, through the leader.
        for args in (["role", "add", "root"],
                     ["user", "add", "root", "--new-user-password=root-pw"],
                     ["user", "grant-role", "root", "root"],
                     ["role", "add", "app"],
                     ["role", "grant-permission", "app", "readwrite", APP, "--prefix"],
                     ["user", "add", "alice", "--new-user-password=alice-pw"],
                     ["user", "grant-role", "alice", "app"],
                     ["put", P + "other/k", "other"],
                     ["auth", "enable"]):
            ok(lab, "a", *args)
        yield lab


def diagnosed(test):
    """On failure, print both nodes' status and log tails (the lab is gone by teardown)."""
    @functools.wraps(test)
    def run(lab, *args, **kwargs):
        try:
            return test(lab, *args, **kwargs)
        except BaseException:
            print(lab.diagnostics())
            raise
    return run


@diagnosed
def test_follower_answers_auth_like_the_leader(lab):
    st = lab.ha_status("b")
    assert st and st["role"] == "follower", st
    # alice through the follower: what a's database says she may do.
    assert ok(lab, "b", "--user", ALICE, "put", APP + "k", "from-b") == "OK\n"
    assert ok(lab, "b", "--user", ALICE, "get", APP + "k") == f"{APP}k\nfrom-b\n"
    assert ok(lab, "a", "--user", ALICE, "get", APP + "k") == f"{APP}k\nfrom-b\n"
    denied(lab, "b", "--user", ALICE, "put", P + "other/k", "x")
    denied(lab, "b", "--user", ALICE, "get", P + "other/k")
    rc, _, err = ctl(lab, "b", "--user", "alice:wrong", "get", APP + "k")
    assert err == "Error: etcdserver: authentication failed, invalid user ID or password", (rc, err)
    rc, _, err = ctl(lab, "b", "get", APP + "k")
    assert err == "Error: etcdserver: user name is empty", (rc, err)

    # A user made through the leader logs in through the follower at once, and the other way.
    ok(lab, "a", "--user", ROOT, "user", "add", "bob", "--new-user-password=bob-pw")
    ok(lab, "a", "--user", ROOT, "user", "grant-role", "bob", "app")
    assert ok(lab, "b", "--user", "bob:bob-pw", "put", APP + "bob", "1") == "OK\n"
    ok(lab, "b", "--user", ROOT, "user", "add", "carol", "--new-user-password=carol-pw")
    ok(lab, "b", "--user", ROOT, "user", "grant-role", "carol", "app")
    assert ok(lab, "a", "--user", "carol:carol-pw", "get", APP + "bob") == f"{APP}bob\n1\n"

    # A revoke through the follower refuses the leader's next read (one auth store), and back.
    ok(lab, "b", "--user", ROOT, "user", "revoke-role", "carol", "app")
    denied(lab, "a", "--user", "carol:carol-pw", "get", APP + "bob")
    ok(lab, "a", "--user", ROOT, "user", "grant-role", "carol", "app")
    assert ok(lab, "b", "--user", "carol:carol-pw", "get", APP + "bob") == f"{APP}bob\n1\n"

    # The same answers to the same questions through both nodes.
    for args in (["auth", "status"], ["user", "list"], ["role", "list"], ["role", "get", "app"],
                 ["user", "get", "alice"]):
        on_a, on_b = ok(lab, "a", "--user", ROOT, *args), ok(lab, "b", "--user", ROOT, *args)
        assert on_a == on_b, f"etcdctl {' '.join(args)}: a says {on_a!r}, b says {on_b!r}"
    assert ok(lab, "b", "--user", ROOT, "user", "list") == "alice\nbob\ncarol\nroot\n"

    # kine_auth is replicated to b's copy (what b will serve from if it is promoted).
    want = auth_row(lab, "a")
    assert want, "no kine_auth row on a"
    same = hanet.wait_for(lambda: auth_row(lab, "b") == want, 10, 0.2)
    assert same, f"kine_auth on b's copy {auth_row(lab, 'b')!r} != a's {want!r} after 10 s"


@diagnosed
def test_failover_keeps_users_and_permissions(lab):
    pb = etcdgrpc.modules()[0]
    # A token issued by a, and the value alice wrote (acknowledged: sync replication).
    resp, err = grpc_call(lab, "a", "Authenticate", pb.AuthenticateRequest(name="alice", password="alice-pw"))
    assert err is None, err
    token_a = resp.token
    assert ok(lab, "a", "--user", ALICE, "put", APP + "before-crash", "v") == "OK\n"
    term = lab.ha_status("a")["term"]
    hold_down(lab)

    # kine a dies; its PostgreSQL answers: b goes on routing to it, auth included.
    lab.kill_kine("a")
    assert ok(lab, "b", "--user", ALICE, "get", APP + "before-crash") == f"{APP}before-crash\nv\n"
    denied(lab, "b", "--user", ALICE, "get", P + "other/k")
    st = lab.ha_status("b")
    assert st and st["role"] == "follower", f"b changed role when only kine a died: {st}"

    # Then a's PostgreSQL: the node is gone, b takes over.
    t_kill = crash_node(lab, "a")
    st = lab.wait_role("b", "leader-alone", LIVENESS + 20)
    t_promoted = time.monotonic()
    assert st["term"] == term + 1 and st["leader"] == "b", st

    # alice logs in on the new leader with her password (retried only until b answers at all).
    first = hanet.wait_for(lambda: (r := ctl(lab, "b", "--user", ALICE, "get", APP + "before-crash"))[0] == 0 and r,
                           10, 0.1)
    assert first, f"alice cannot log in on the new leader: {ctl(lab, 'b', '--user', ALICE, 'get', APP + 'before-crash')}"
    t_login = time.monotonic()
    assert first[1] == f"{APP}before-crash\nv\n", first
    report(f"b leader-alone {t_promoted - t_kill:.2f}s after the node crash; alice logged in and read "
           f"{t_login - t_kill:.2f}s after it")

    # Her permissions hold: inside the prefix allowed, outside denied.
    assert ok(lab, "b", "--user", ALICE, "put", APP + "after-crash", "w") == "OK\n"
    assert ok(lab, "b", "--user", ALICE, "get", APP, "--prefix", "--keys-only") == \
        "".join(f"{APP}{k}\n\n" for k in ("after-crash", "before-crash", "bob", "k"))
    denied(lab, "b", "--user", ALICE, "put", P + "other/k", "x")
    denied(lab, "b", "--user", ALICE, "get", P + "other/k")
    denied(lab, "b", "--user", ALICE, "get", P, "--prefix")
    denied(lab, "b", "--user", ALICE, "user", "list")
    rc, _, err = ctl(lab, "b", "--user", "alice:wrong", "get", APP + "k")
    assert err == "Error: etcdserver: authentication failed, invalid user ID or password", (rc, err)
    assert ok(lab, "b", "--user", "bob:bob-pw", "get", APP + "bob") == f"{APP}bob\n1\n"
    assert ok(lab, "b", "--user", ROOT, "get", P + "other/k") == f"{P}other/k\nother\n"
    assert ok(lab, "b", "--user", ROOT, "auth", "status").startswith("Authentication Status: true\n")
    assert ok(lab, "b", "--user", ROOT, "user", "list") == "alice\nbob\ncarol\nroot\n"

    # A token from the dead leader is unknown to the new one.
    _, err = grpc_call(lab, "b", "Range", pb.RangeRequest(key=(APP + "k").encode()), token_a)
    assert err == ("UNAUTHENTICATED", "etcdserver: invalid auth token"), err

    # The new leader's auth store takes changes: revoke, then alice is refused at once.
    ok(lab, "b", "--user", ROOT, "role", "revoke-permission", "app", APP, "--prefix")
    denied(lab, "b", "--user", ALICE, "get", APP + "k")
    ok(lab, "b", "--user", ROOT, "role", "grant-permission", "app", "read", APP, "--prefix")
    assert ok(lab, "b", "--user", ALICE, "get", APP + "k") == f"{APP}k\nfrom-b\n"
    denied(lab, "b", "--user", ALICE, "put", APP + "k", "read-only now")
