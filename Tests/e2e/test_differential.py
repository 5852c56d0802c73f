"""Differential suite: one script of raw gRPC requests per case, sent with identical inputs to the
reference etcd 3.5 and to the target; every response (every field, or the error's gRPC code and
exact message) is recorded and the two records are compared after normalisation:
  * header cluster_id / member_id / raft_term are masked;
  * every revision becomes "base+N", relative to the revision the server had when the case started
    (both servers run the same sequence, so relative revisions must match exactly);
  * revisions sent in requests are given relative too (`c.r(N)` = base+N of that server).
Each case writes under its own key prefix, so state does not leak between cases.

A case may be marked xfail only with a written reason naming a documented deliberate difference.
"""

from __future__ import annotations

import uuid

import pytest

from cases import Cases
from etcdgrpc import Client, modules, to_dict
from normalize import assert_same, normalize

RUN = uuid.uuid4().hex[:6]
CASES = Cases()
case = CASES.case


class Ctx:
    """Records every request/response of one case on one server."""

    def __init__(self, client: Client, name: str, prefix: bytes | None = None):
        self.cl = client
        self.pb = client.pb
        self.prefix = prefix if prefix is not None else f"/e2e-diff/{RUN}/{name}/".encode()
        self.base = client.current_revision()
        self.records: list = []

    # keys and revisions
    def k(self, name="") -> bytes:
        return self.prefix + (name.encode() if isinstance(name, str) else name)

    def end(self, prefix: bytes | None = None) -> bytes:
        p = bytearray(self.prefix if prefix is None else prefix)
        while p and p[-1] == 0xFF:
            p.pop()
        p[-1] += 1
        return bytes(p)

    def r(self, n: int) -> int:
        return self.base + n

    # recording
    def _call(self, label, method, req, drop=()):
        resp, err = self.cl.call(method, req)
        if err is not None:
            rec = {"error": err}
        else:
            rec = to_dict(resp)
            for f in drop:
                rec.pop(f, None)
        self.records.append({"op": label, "request": to_dict(req), "response": rec})
        return resp

    def note(self, label, value):
        self.records.append({"op": label, "value": value})

    # request builders (also usable inside txns)
    def RangeReq(self, key, range_end=b"", **kw):
        return self.pb.RangeRequest(key=key, range_end=range_end, **kw)

    def PutReq(self, key, value=b"", **kw):
        return self.pb.PutRequest(key=key, value=value, **kw)

    def DelReq(self, key, range_end=b"", **kw):
        return self.pb.DeleteRangeRequest(key=key, range_end=range_end, **kw)

    def op(self, req):
        pb = self.pb
        if req is None:
            return pb.RequestOp()
        if isinstance(req, pb.RangeRequest):
            return pb.RequestOp(request_range=req)
        if isinstance(req, pb.PutRequest):
            return pb.RequestOp(request_put=req)
        if isinstance(req, pb.DeleteRangeRequest):
            return pb.RequestOp(request_delete_range=req)
        if isinstance(req, pb.TxnRequest):
            return pb.RequestOp(request_txn=req)
        raise TypeError(req)

    def cmp(self, key, target: str, result: str, value, range_end=b""):
        pb = self.pb
        c = pb.Compare(key=key, range_end=range_end,
                       target=pb.Compare.CompareTarget.Value(target),
                       result=pb.Compare.CompareResult.Value(result))
        field = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision",
                 "VALUE": "value", "LEASE": "lease"}[target]
        if value is not None:
            setattr(c, field, value)
        return c

    def TxnReq(self, compare=(), success=(), failure=()):
        return self.pb.TxnRequest(compare=list(compare), success=[self.op(x) for x in success],
                                  failure=[self.op(x) for x in failure])

    # calls
    def range(self, key, range_end=b"", label="Range", drop=(), **kw):
        return self._call(label, self.cl.kv.Range, self.RangeReq(key, range_end, **kw), drop)

    def put(self, key, value=b"", label="Put", **kw):
        return self._call(label, self.cl.kv.Put, self.PutReq(key, value, **kw))

    def delete(self, key, range_end=b"", label="DeleteRange", **kw):
        return self._call(label, self.cl.kv.DeleteRange, self.DelReq(key, range_end, **kw))

    def txn(self, compare=(), success=(), failure=(), label="Txn"):
        return self._call(label, self.cl.kv.Txn, self.TxnReq(compare, success, failure))

    def compact(self, revision, physical=False, label="Compact"):
        return self._call(label, self.cl.kv.Compact, self.pb.CompactionRequest(revision=revision, physical=physical))


def _normalized(ctx: Ctx):
    # Requests carry absolute revisions too (e.g. `revision`, `mod_revision` compares).
    return normalize(ctx.records, ctx.base)


@pytest.mark.parametrize("fn", CASES)
def test_differential(clients, servers, fn):
    ref, tgt = servers
    recs = []
    for cl in clients:
        ctx = Ctx(cl, fn.__name__)
        fn(ctx)
        recs.append(_normalized(ctx))
    assert recs[0], "case recorded nothing"
    assert_same(recs[0], recs[1], fn.__name__, f"{ref.name} ({ref.kind})", f"{tgt.name} ({tgt.kind})")


# =============================================================================================
# Range


@case
def case_range_single(c: Ctx):
    c.put(c.k("a"), b"va")
    c.range(c.k("a"))
    c.range(c.k("missing"))
    c.range(b"", label="Range empty key")
    c.range(b"", range_end=c.k("z"), label="Range empty key with range_end")


@case
def case_range_prefix(c: Ctx):
    for n in ("a/1", "a/2", "a/3", "ab", "b"):
        c.put(c.k(n), n.encode())
    c.range(c.k("a/"), c.end(c.k("a/")))
    c.range(c.k("a/2"), c.end(c.k("a/")))
    c.range(c.k("b"), c.k("a"), label="Range end < key")
    c.range(c.k("a/1"), c.k("a/1"), label="Range end == key")


@case
def case_range_from_key(c: Ctx):
    # Keys starting 0x7f 0x7e sort after every ordinary key of the other cases, so a from-key
    # read sees only this case's keys (plus those of etcdctl's from-key test, 0x7f 0x7f, which
    # runs later).
    c.prefix = f"\x7f\x7e-diff-{RUN}/".encode()
    for n in ("a", "b", "c"):
        c.put(c.k(n), n.encode())
    c.range(c.k("b"), b"\x00")
    c.range(c.k("b"), b"\x00", limit=1)
    c.range(c.k("b"), b"\x00", count_only=True)
    c.delete(c.k(""), b"\x00", prev_kv=True)


@case
def case_range_whole_keyspace(c: Ctx):
    c.put(c.k("x"), b"1")
    c.put(c.k("y"), b"2")
    # The whole keyspace holds every other case's keys, so compare only keys created by this case: the server-side
    # min_create_revision filter prunes kvs, and `count` (computed before the filter) is dropped.
    c.range(b"\x00", b"\x00", keys_only=True, min_create_revision=c.r(1), drop=("count",))
    c.range(b"\x00", b"\x00", min_create_revision=c.r(1), sort_order=2, sort_target=0, drop=("count",))


@case
def case_range_limit_more_count(c: Ctx):
    for i in range(5):
        c.put(c.k(f"k{i}"), f"v{i}".encode())
    for limit in (0, 1, 2, 4, 5, 6):
        c.range(c.k(""), c.end(), limit=limit, label=f"Range limit={limit}")
    c.range(c.k(""), c.end(), limit=2, revision=c.r(3), label="Range limit=2 at base+3")


@case
def case_range_count_from_continue_key(c: Ctx):
    for i in range(6):
        c.put(c.k(f"p{i}"), b"x")
    # kube-apiserver paging: key = last key + "\x00", count = remaining keys from there.
    c.range(c.k("p1") + b"\x00", c.end(), limit=2)
    c.range(c.k("p3") + b"\x00", c.end(), limit=2, revision=c.r(6))
    c.range(c.k("p5") + b"\x00", c.end(), limit=2)
    c.range(c.k("p2"), c.end(), count_only=True)


@case
def case_range_historic(c: Ctx):
    c.put(c.k("a"), b"v1")           # +1
    c.put(c.k("a"), b"v2")           # +2
    c.put(c.k("b"), b"b1")           # +3
    c.delete(c.k("a"))               # +4
    c.put(c.k("a"), b"v3")           # +5
    for n in range(0, 6):
        c.range(c.k(""), c.end(), revision=c.r(n), label=f"Range prefix at base+{n}")
        c.range(c.k("a"), revision=c.r(n), label=f"Range a at base+{n}")
    c.range(c.k(""), c.end(), revision=c.r(6), label="Range at future revision")
    c.range(c.k(""), c.end(), revision=c.r(100), label="Range at far future revision")
    c.range(c.k(""), c.end(), revision=-1, label="Range at negative revision")


@case
def case_range_keys_only_count_only(c: Ctx):
    for n in ("a", "b", "c"):
        c.put(c.k(n), b"value-" + n.encode(), )
    c.range(c.k(""), c.end(), keys_only=True)
    c.range(c.k(""), c.end(), count_only=True)
    c.range(c.k(""), c.end(), count_only=True, limit=1)
    c.range(c.k(""), c.end(), keys_only=True, count_only=True)
    c.range(c.k("b"), keys_only=True)


@case
def case_range_sort(c: Ctx):
    # Distinct create order, versions and values per key.
    c.put(c.k("c"), b"zz")
    c.put(c.k("a"), b"mm")
    c.put(c.k("b"), b"aa")
    c.put(c.k("a"), b"mm2")
    c.put(c.k("d"), b"bb")
    c.put(c.k("a"), b"mm3")
    c.put(c.k("b"), b"aa2")
    for target in range(5):  # KEY VERSION CREATE MOD VALUE
        for order in range(3):  # NONE ASCEND DESCEND
            c.range(c.k(""), c.end(), sort_target=target, sort_order=order, label=f"Range sort {target}/{order}")
            c.range(c.k(""), c.end(), sort_target=target, sort_order=order, limit=2,
                    label=f"Range sort {target}/{order} limit 2")


@case
def case_range_min_max_filters(c: Ctx):
    c.put(c.k("a"), b"1")   # +1
    c.put(c.k("b"), b"1")   # +2
    c.put(c.k("c"), b"1")   # +3
    c.put(c.k("a"), b"2")   # +4
    c.put(c.k("d"), b"1")   # +5
    c.put(c.k("b"), b"2")   # +6
    for field in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
        for n in (2, 4, 5):
            c.range(c.k(""), c.end(), **{field: c.r(n)}, label=f"Range {field}=base+{n}")
            c.range(c.k(""), c.end(), limit=1, **{field: c.r(n)}, label=f"Range {field}=base+{n} limit 1")
    c.range(c.k(""), c.end(), min_mod_revision=c.r(3), max_mod_revision=c.r(5), label="Range mod in [3,5]")
    c.range(c.k(""), c.end(), min_create_revision=c.r(2), max_create_revision=c.r(3),
            sort_order=2, sort_target=3, label="Range create in [2,3] sorted by mod desc")
    c.range(c.k(""), c.end(), min_mod_revision=c.r(4), count_only=True, label="Range count_only with filter")


@case
def case_range_serializable(c: Ctx):
    c.put(c.k("s"), b"1")
    c.range(c.k("s"), serializable=True)
    c.range(c.k(""), c.end(), serializable=True, revision=c.r(1))


# =============================================================================================
# Put


@case
def case_put_prev_kv(c: Ctx):
    c.put(c.k("p"), b"v1", prev_kv=True)
    c.put(c.k("p"), b"v2", prev_kv=True)
    c.put(c.k("p"), b"v2", prev_kv=True)  # same value: still a new revision
    c.put(c.k("p"), b"", prev_kv=True)    # empty value
    c.range(c.k("p"))


@case
def case_put_ignore_value_lease(c: Ctx):
    c.put(c.k("k"), b"orig")
    c.put(c.k("k"), ignore_value=True, prev_kv=True)
    c.range(c.k("k"))
    c.put(c.k("k"), b"new", ignore_lease=True, prev_kv=True)
    c.put(c.k("k"), ignore_value=True, ignore_lease=True)
    c.range(c.k("k"))
    c.put(c.k("missing"), ignore_value=True, label="Put ignore_value on missing key")
    c.put(c.k("missing"), b"x", ignore_lease=True, label="Put ignore_lease on missing key")
    c.put(c.k("k"), b"v", ignore_value=True, label="Put value + ignore_value")
    c.put(c.k("k"), b"v", lease=12345, ignore_lease=True, label="Put lease + ignore_lease")
    c.range(c.k("k"))


@case
def case_put_errors(c: Ctx):
    c.put(b"", b"v", label="Put empty key")
    c.put(c.k("l"), b"v", lease=0x7E57_1EA5E_0001, label="Put unknown lease")
    c.range(c.k("l"))


@case
def case_lease_attach(c: Ctx):
    lid = 0x7E57_0000 + (int(RUN, 16) & 0xFFFF)
    g, err = c.cl.call(c.cl.lease.LeaseGrant, c.pb.LeaseGrantRequest(ID=lid, TTL=600))
    c.note("LeaseGrant", err or {"ID": g.ID - lid, "TTL": g.TTL, "error": g.error})
    c.put(c.k("leased"), b"v", lease=lid)
    c.range(c.k("leased"), label="Range leased (lease = ID)")
    c.txn([c.cmp(c.k("leased"), "LEASE", "EQUAL", lid)], [c.RangeReq(c.k("leased"), keys_only=True)], [])
    c.put(c.k("leased"), b"v2", ignore_lease=True)
    c.put(c.k("leased"), b"v3")  # detaches
    c.txn([c.cmp(c.k("leased"), "LEASE", "EQUAL", 0)], [], [])
    c.cl.call(c.cl.lease.LeaseRevoke, c.pb.LeaseRevokeRequest(ID=lid))


# =============================================================================================
# DeleteRange


@case
def case_delete(c: Ctx):
    for n in ("a", "b", "c", "d/1", "d/2", "d/3", "e"):
        c.put(c.k(n), n.encode())
    c.delete(c.k("a"))
    c.delete(c.k("a"), label="DeleteRange already deleted")
    c.delete(c.k("b"), prev_kv=True)
    c.delete(c.k("d/"), c.end(c.k("d/")), prev_kv=True, label="DeleteRange prefix")
    c.delete(c.k("c"), c.k("zz"), label="DeleteRange [c, zz)")
    c.delete(c.k("x"), c.k("y"), prev_kv=True, label="DeleteRange nothing in range")
    c.delete(b"", label="DeleteRange empty key")
    c.range(c.k(""), c.end())


@case
def case_version_lifecycle(c: Ctx):
    for i in range(3):
        c.put(c.k("v"), f"{i}".encode())
    c.range(c.k("v"))
    c.delete(c.k("v"), prev_kv=True)
    c.range(c.k("v"))
    c.put(c.k("v"), b"again", prev_kv=True)
    c.range(c.k("v"))
    c.range(c.k("v"), revision=c.r(3), label="Range v at base+3 (version 3)")


# =============================================================================================
# Txn


@case
def case_txn_compare_targets(c: Ctx):
    c.put(c.k("t"), b"v2")   # +1
    c.put(c.k("t"), b"v2")   # +2: version 2, create base+1, mod base+2
    values = {  # comparand: label (labels must not hold absolute revisions)
        "VALUE": {b"v1": "v1", b"v2": "v2", b"v3": "v3"},
        "VERSION": {1: "1", 2: "2", 3: "3"},
        "CREATE": {c.r(0): "base+0", c.r(1): "base+1", c.r(2): "base+2"},
        "MOD": {c.r(1): "base+1", c.r(2): "base+2", c.r(3): "base+3"},
        "LEASE": {-1: "-1", 0: "0", 1: "1"},
    }
    for target, comparands in values.items():
        for result in ("EQUAL", "NOT_EQUAL", "GREATER", "LESS"):
            for v, name in comparands.items():
                c.txn([c.cmp(c.k("t"), target, result, v)], [], [], label=f"Txn {target} {result} {name}")
    # On a missing key: VALUE is always false, the others compare with 0.
    for target, v in (("VALUE", b""), ("VALUE", b"x"), ("VERSION", 0), ("CREATE", 0), ("MOD", 0), ("LEASE", 0)):
        for result in ("EQUAL", "NOT_EQUAL", "GREATER", "LESS"):
            c.txn([c.cmp(c.k("nope"), target, result, v)], [], [], label=f"Txn missing {target} {result} {v!r}")
    # Unset comparand (oneof not set) behaves like zero.
    c.txn([c.cmp(c.k("nope"), "MOD", "EQUAL", None)], [], [], label="Txn MOD EQUAL unset on missing")
    c.txn([c.cmp(c.k("t"), "VERSION", "GREATER", None)], [], [], label="Txn VERSION GREATER unset")


@case
def case_txn_range_compare(c: Ctx):
    c.put(c.k("r/a"), b"1")
    c.put(c.k("r/b"), b"1")
    c.put(c.k("r/c"), b"2")
    end = c.end(c.k("r/"))
    c.txn([c.cmp(c.k("r/"), "VERSION", "EQUAL", 1, end)], [], [], label="all version 1")
    c.txn([c.cmp(c.k("r/"), "VALUE", "EQUAL", b"1", end)], [], [], label="not all value 1")
    c.txn([c.cmp(c.k("r/"), "VALUE", "LESS", b"3", end)], [], [], label="all value < 3")
    c.txn([c.cmp(c.k("r/"), "MOD", "GREATER", c.r(0), end)], [], [], label="all mod > base")
    c.txn([c.cmp(c.k("r/"), "CREATE", "LESS", c.r(3), end)], [], [], label="not all create < base+3")
    c.txn([c.cmp(c.k("r/a"), "VERSION", "EQUAL", 1, c.k("r/c"))], [], [], label="[a,c) version 1")
    c.txn([c.cmp(c.k("q/"), "VERSION", "EQUAL", 0, c.end(c.k("q/")))], [], [], label="empty range version 0")
    c.txn([c.cmp(c.k("q/"), "VALUE", "EQUAL", b"", c.end(c.k("q/")))], [], [], label="empty range value")
    c.txn([c.cmp(c.k("r/"), "VERSION", "GREATER", 0, b"\x00")], [], [], label="from-key compare")


@case
def case_txn_branches_and_ops(c: Ctx):
    c.put(c.k("x"), b"1")
    c.put(c.k("gone"), b"g")
    ok = [c.cmp(c.k("x"), "VALUE", "EQUAL", b"1")]
    bad = [c.cmp(c.k("x"), "VALUE", "EQUAL", b"2")]
    ops = [
        c.PutReq(c.k("y"), b"2", prev_kv=True),
        c.RangeReq(c.k(""), c.end()),
        c.DelReq(c.k("gone"), prev_kv=True),
        c.RangeReq(c.k("gone")),
        c.TxnReq([c.cmp(c.k("y"), "VERSION", "EQUAL", 0)], [c.PutReq(c.k("nested-s"), b"s")],
                 [c.PutReq(c.k("nested-f"), b"f")]),
    ]
    c.txn(ok, ops, [c.RangeReq(c.k("x"))], label="success branch")
    c.txn(bad, [c.PutReq(c.k("never"), b"n")], ops[:2], label="failure branch")
    c.txn([], [c.RangeReq(c.k("x"))], [], label="no compares, read only")
    c.txn([], [], [], label="empty txn")
    c.txn(ok + bad, [c.PutReq(c.k("never"), b"n")], [c.RangeReq(c.k("x"), count_only=True)], label="two compares, one false")
    c.range(c.k(""), c.end())


@case
def case_txn_sees_own_writes(c: Ctx):
    c.txn([], [
        c.PutReq(c.k("a"), b"1"),
        c.RangeReq(c.k("a")),
        c.PutReq(c.k("b"), b"2"),
        c.RangeReq(c.k(""), c.end()),
        c.DelReq(c.k("a"), prev_kv=True),
        c.RangeReq(c.k(""), c.end(), count_only=True),
        c.TxnReq([], [c.RangeReq(c.k("b"))], []),
    ], [])
    c.txn([], [c.PutReq(c.k("b"), b"3"), c.RangeReq(c.k("b")), c.PutReq(c.k("c"), b"1", prev_kv=True)], [])
    c.range(c.k(""), c.end())


@case
def case_txn_nested(c: Ctx):
    c.put(c.k("n"), b"1")
    inner_true = c.TxnReq([c.cmp(c.k("n"), "VALUE", "EQUAL", b"1")],
                          [c.PutReq(c.k("in-s"), b"s"), c.RangeReq(c.k("n"))], [c.PutReq(c.k("in-f"), b"f")])
    inner_false = c.TxnReq([c.cmp(c.k("n"), "VALUE", "EQUAL", b"0")],
                           [c.PutReq(c.k("in2-s"), b"s")], [c.PutReq(c.k("in2-f"), b"f"), c.DelReq(c.k("n"))])
    c.txn([], [inner_true, c.TxnReq([], [inner_false], [])], [])
    # Compares of a nested txn see the store before the outer txn.
    c.txn([], [c.PutReq(c.k("m"), b"new"),
               c.TxnReq([c.cmp(c.k("m"), "VERSION", "EQUAL", 0)], [c.RangeReq(c.k("m"))], [])], [])
    c.range(c.k(""), c.end())


@case
def case_txn_too_many_ops(c: Ctx):
    puts = lambda n: [c.PutReq(c.k(f"op{i}"), b"x") for i in range(n)]  # noqa: E731
    c.txn([], puts(128), [], label="128 puts")
    c.txn([], puts(129), [], label="129 puts")
    c.txn([], [], puts(129), label="129 puts in failure")
    c.txn([c.cmp(c.k("op0"), "VERSION", "GREATER", 0)] * 129, [], [], label="129 compares")
    nested = lambda n: [c.PutReq(c.k(f"nested{i}"), b"x") for i in range(n)]  # noqa: E731
    c.txn([], [c.TxnReq([], nested(100), [])] + puts(27), [], label="nested 100 + 27 outer")
    c.txn([], [c.TxnReq([], nested(101), [])] + puts(27), [], label="nested 101 + 27 outer")
    c.txn([], [c.RangeReq(c.k("op0"))] * 60 + [c.TxnReq([], [c.RangeReq(c.k("op1"))] * 70, [])], [],
          label="nested over budget")
    c.range(c.k(""), c.end(), count_only=True)


@case
def case_txn_duplicate_keys(c: Ctx):
    k = c.k
    c.txn([], [c.PutReq(k("d"), b"1"), c.PutReq(k("d"), b"2")], [], label="two puts same key")
    c.txn([], [c.PutReq(k("d"), b"1")], [c.PutReq(k("d"), b"2")], label="same key in success and failure: ok")
    c.txn([], [c.DelReq(k(""), c.end()), c.PutReq(k("d"), b"1")], [], label="put inside deleted range")
    c.txn([], [c.PutReq(k("d"), b"1"), c.DelReq(k("d"))], [], label="put then delete same key")
    c.txn([], [c.DelReq(k("a"), k("m")), c.DelReq(k("c"), k("z"))], [], label="overlapping deletes: ok")
    c.txn([], [c.PutReq(k("d"), b"1"), c.TxnReq([], [c.PutReq(k("d"), b"2")], [])], [], label="put + nested put")
    c.txn([], [c.PutReq(k("d"), b"1"), c.TxnReq([], [], [c.PutReq(k("d"), b"2")])], [],
          label="put + nested failure put")
    c.txn([], [c.TxnReq([], [c.PutReq(k("e"), b"1")], [c.PutReq(k("e"), b"2")])], [], label="nested both lists: ok")
    c.txn([], [c.PutReq(k("d"), b"1"), c.RangeReq(k("d")), c.PutReq(k("f"), b"1")], [], label="put + range same key: ok")
    c.range(k(""), c.end())


@case
def case_txn_invalid_ops(c: Ctx):
    c.txn([], [None], [], label="empty RequestOp in success")
    c.txn([], [], [None], label="empty RequestOp in failure")
    c.txn([c.cmp(b"", "VERSION", "EQUAL", 0)], [], [], label="compare with empty key")
    c.txn([], [c.PutReq(b"", b"v")], [], label="put empty key")
    c.txn([], [c.RangeReq(b"")], [], label="range empty key")
    c.txn([], [c.DelReq(b"")], [], label="delete empty key")
    c.txn([], [c.PutReq(c.k("i"), b"v", ignore_value=True)], [], label="ignore_value with value")
    c.txn([], [c.PutReq(c.k("i"), ignore_value=True)], [], label="ignore_value on missing key")
    c.txn([], [c.PutReq(c.k("i"), b"v", lease=0x7E57_1EA5E_0002)], [], label="unknown lease")
    c.txn([], [c.RangeReq(c.k("i"), revision=c.r(50))], [], label="future revision range")
    c.txn([], [c.PutReq(c.k("i"), b"ok"), c.PutReq(c.k("j"), b"v", lease=0x7E57_1EA5E_0003)], [],
          label="second op fails: nothing written")
    c.range(c.k(""), c.end())


# =============================================================================================
# Compaction, odd keys


@case
def case_compact(c: Ctx):
    for i in range(1, 6):
        c.put(c.k("c"), f"v{i}".encode())  # base+1 .. base+5
    c.delete(c.k("c"))                      # base+6
    c.put(c.k("c"), b"v7")                  # base+7
    c.compact(c.r(3))
    c.range(c.k("c"), revision=c.r(2), label="below compacted")
    c.range(c.k("c"), revision=c.r(3), label="at compacted")
    c.range(c.k("c"), revision=c.r(6), label="at delete")
    c.range(c.k("c"), revision=c.r(5))
    c.range(c.k("c"))
    c.txn([], [c.RangeReq(c.k("c"), revision=c.r(1))], [], label="txn range below compacted")
    c.compact(c.r(3), label="Compact again")
    c.compact(c.r(2), label="Compact lower")
    c.compact(c.r(20), label="Compact future")
    c.compact(c.r(6), physical=True, label="Compact physical")
    c.range(c.k("c"), revision=c.r(5), label="below second compaction")
    c.range(c.k("c"), revision=c.r(6), label="at second compaction (deleted)")


@case
def case_binary_keys(c: Ctx):
    keys = [b"a\x00b", b"\x00", b"\xff\xfe\xfd", b"\xc3\x28", b"z\xff", b"\x01", b"a", b"a\x00"]
    for i, key in enumerate(keys):
        c.put(c.k(key), bytes([i, 0, 255, 128]) + key)
    c.range(c.k(""), c.end())
    c.range(c.k(b"a"), c.end(c.k(b"a")), label="prefix a (incl. a\\x00 and a\\x00b)")
    c.range(c.k(b"a\x00"), label="exact a\\x00")
    c.range(c.k(""), c.end(), sort_target=4, sort_order=1, label="sort by binary value")
    c.range(c.k(b"\xff"), c.end(), label="[prefix+\\xff, end of prefix)")
    c.txn([c.cmp(c.k(b"\xff\xfe\xfd"), "VALUE", "EQUAL", bytes([2, 0, 255, 128]) + b"\xff\xfe\xfd")],
          [c.DelReq(c.k(b"a\x00"), prev_kv=True)], [])
    # etcdctl check perf style key: prefix + varint + zero padding.
    c.put(c.k(b"\x96\x01" + b"\x00" * 30), b"\x00" * 64)
    c.range(c.k(""), c.end(), keys_only=True)
    c.delete(c.k(""), c.end(), prev_kv=True)


# =============================================================================================
# kube-apiserver and K3s shapes


@case
def case_kube_create_update_delete(c: Ctx):
    key = c.k("registry/pods/default/p1")
    create = lambda v: c.txn([c.cmp(key, "MOD", "EQUAL", 0)], [c.PutReq(key, v)], [], label="create")  # noqa: E731
    create(b"pod-v1")
    create(b"pod-v1-again")  # exists: failed
    rev = c.range(key, label="get").kvs[0].mod_revision
    c.txn([c.cmp(key, "MOD", "EQUAL", rev)], [c.PutReq(key, b"pod-v2")], [c.RangeReq(key)], label="update ok")
    c.txn([c.cmp(key, "MOD", "EQUAL", rev)], [c.PutReq(key, b"pod-v3")], [c.RangeReq(key)], label="update stale")
    rev2 = c.range(key, label="get").kvs[0].mod_revision
    c.txn([c.cmp(key, "MOD", "EQUAL", rev)], [c.DelReq(key)], [c.RangeReq(key)], label="delete stale")
    c.txn([c.cmp(key, "MOD", "EQUAL", rev2)], [c.DelReq(key, prev_kv=True)], [c.RangeReq(key)], label="delete ok")
    c.txn([c.cmp(key, "MOD", "EQUAL", rev2)], [c.DelReq(key)], [c.RangeReq(key)], label="delete missing")
    create(b"pod-recreated")
    # List with paging as the apiserver does: limit, then continue from last key + \x00.
    for i in range(3):
        c.put(c.k(f"registry/pods/default/q{i}"), b"q")
    pre = c.k("registry/pods/")
    page = c.range(pre, c.end(pre), limit=2, label="list page 1")
    c.range(page.kvs[-1].key + b"\x00", c.end(pre), limit=2, revision=page.header.revision, label="list page 2")
    # Get with limit 1 (kubernetes client in 1.32+).
    c.range(key, limit=1)


@case
def case_kube_compact_rev_key(c: Ctx):
    # The apiserver's compactor: Range compact_rev_key, then
    # Txn[VERSION(compact_rev_key) == v] / [Put(compact_rev_key, rev)] / [Range(compact_rev_key)].
    # compact_rev_key is a global key: this is the only case that touches it.
    key = b"compact_rev_key"
    c.range(key, label="get compact_rev_key")
    for version, value in ((0, b"1001"), (1, b"1002"), (1, b"1003"), (2, b"1004"), (5, b"1005")):
        c.txn([c.cmp(key, "VERSION", "EQUAL", version)], [c.PutReq(key, value)], [c.RangeReq(key)],
              label=f"compact txn version=={version}")
    c.range(key, label="get compact_rev_key")


@case
def case_kube_registry_health(c: Ctx):
    # Older kube-apiservers' etcd health check read /registry/health. Go kine writes that key at
    # start-up; etcd, and kine on a database it created, do not have it.
    c.range(b"/registry/health")
    c.range(b"/registry/health", serializable=True)


@case
def case_k3s_bootstrap(c: Ctx):
    key = c.k("bootstrap/0123456789ab")
    c.range(c.k("bootstrap"), c.end(c.k("bootstrap")))
    c.txn([c.cmp(key, "MOD", "EQUAL", 0)], [c.PutReq(key, b"encrypted-data")], [])
    c.txn([c.cmp(key, "MOD", "EQUAL", 0)], [c.PutReq(key, b"encrypted-data-2")], [])
    c.range(c.k("bootstrap"), c.end(c.k("bootstrap")))


# =============================================================================================
# Maintenance


@case
def case_maintenance(c: Ctx):
    pb = c.pb
    c._call("Alarm GET", c.cl.maintenance.Alarm, pb.AlarmRequest(action=0))
    c._call("Defragment", c.cl.maintenance.Defragment, pb.DefragmentRequest())
    st, err = c.cl.call(c.cl.maintenance.Status, pb.StatusRequest())
    c.note("Status", err or {"leader_is_member": st.leader == st.header.member_id,
                             "dbSize>0": st.dbSize > 0, "errors": list(st.errors), "isLearner": st.isLearner,
                             "revision": st.header.revision})
    ml, err = c.cl.call(c.cl.cluster.MemberList, pb.MemberListRequest())
    c.note("MemberList", err or {"n": len(ml.members),
                                 "id_is_member": [m.ID == ml.header.member_id for m in ml.members],
                                 "has_client_urls": [bool(m.clientURLs) for m in ml.members],
                                 "isLearner": [m.isLearner for m in ml.members]})


def test_harness_detects_differences(servers):
    """The comparison must be able to fail: the same script with one extra write on one side."""
    ref, _ = servers
    cl = Client(ref.endpoint)
    try:
        a = Ctx(cl, "selftest")
        a.put(a.k("x"), b"1")
        a.range(a.k("x"))
        b = Ctx(cl, "selftest")
        b.put(b.k("x"), b"1")
        b.put(b.k("x"), b"1")
        b.records.pop(0)
        b.range(b.k("x"))
        with pytest.raises(AssertionError, match="differ"):
            assert_same(_normalized(a), _normalized(b), "selftest")
    finally:
        cl.close()


def test_protos_generate():
    rpc, _, _ = modules()
    assert rpc.RangeRequest.DESCRIPTOR.fields_by_name["max_create_revision"].number == 13
    assert rpc.Compare.DESCRIPTOR.fields_by_name["range_end"].number == 64
