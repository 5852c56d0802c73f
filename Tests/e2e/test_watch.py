"""Watch: differential cases over raw gRPC bidi streams, plus etcdctl watch end to end.

Each case is one script (writes through KV, requests on one or more Watch streams) run against
the reference etcd 3.5 and the target at the same time (one thread each). Every response a stream
delivers is recorded in arrival order: the script says how many responses it expects after each
step (`w.expect(n)`), and at the end every stream is drained until it has been quiet for a while,
so a missing, extra, split or merged response shows up in the diff. Records are normalised as in
the differential suite (revisions relative to the case's start revision, identities masked) and
lease IDs become L1, L2, ... in order of appearance. Watch IDs are compared exactly: etcd 3.5
numbers watchers per stream from 0, and so must the target.

Invariants checked on both servers besides the comparison: header revisions never go backwards
on a stream, and the reference delivered every response the script expected (so a case cannot
pass by both servers timing out the same way).
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import re
import subprocess
import threading
import time
import uuid

import pytest

import harness
from cases import Cases
from etcdgrpc import Client, Stream, to_dict
from normalize import assert_same, normalize, normalize_leases, pretty, rel

RUN = uuid.uuid4().hex[:6]
CASES = Cases()
case = CASES.case


class WatchStream:
    """A Watch stream inside a case: requests and responses go into the case's records."""

    def __init__(self, ctx: "WCtx", label: str):
        self.ctx = ctx
        self.label = label
        self.stream = Stream(ctx.cl.watch.Watch)
        self.pb = ctx.pb

    def create(self, key: bytes, range_end: bytes = b"", **kw):
        req = self.pb.WatchRequest(create_request=self.pb.WatchCreateRequest(key=key, range_end=range_end, **kw))
        self.ctx.records.append({"op": f"{self.label} create", "request": to_dict(req.create_request)})
        self.stream.send(req)

    def cancel(self, watch_id: int):
        req = self.pb.WatchRequest(cancel_request=self.pb.WatchCancelRequest(watch_id=watch_id))
        self.ctx.records.append({"op": f"{self.label} cancel", "request": to_dict(req.cancel_request)})
        self.stream.send(req)

    def progress(self):
        self.ctx.records.append({"op": f"{self.label} progress_request"})
        self.stream.send(self.pb.WatchRequest(progress_request=self.pb.WatchProgressRequest()))

    def expect(self, n: int, label: str = "", timeout: float = 5.0, sort: bool = False):
        """Record the next n responses (fewer if they do not come within timeout). sort=True
        orders them by watch id: etcd sends the responses of several watchers of one stream for
        one revision in no particular order."""
        got = self.stream.take(n, timeout)
        recs = [to_dict(m) for m in got]
        if sort:
            recs.sort(key=lambda r: (r["header"]["revision"] if r["header"] else 0, r["watch_id"]))
        if len(got) < n:
            self.ctx.shortfalls.append(f"{self.label} {label}: expected {n} responses, got {len(got)}")
        self.ctx.records.append({"op": f"{self.label} responses {label}".strip(), "responses": recs})
        return got

    def drain(self, quiet: float = 0.4):
        rest = self.stream.drain(quiet)
        self.ctx.records.append({"op": f"{self.label} further responses", "responses": [to_dict(m) for m in rest]})
        if self.stream.closed:  # not closed by us yet: the server ended the stream
            self.ctx.records.append({"op": f"{self.label} stream ended by the server",
                                     "status": self.stream.error or "OK"})

    def header_revisions_monotonic(self) -> bool:
        revs = [m.header.revision for _, m in self.stream.received if m.HasField("header") and m.header.revision]
        return all(a <= b for a, b in zip(revs, revs[1:]))

    def close(self):
        self.stream.close()


class WCtx:
    def __init__(self, client: Client, name: str, server):
        self.cl = client
        self.pb = client.pb
        self.server = server
        self.prefix = f"/e2e-watch/{RUN}/{name}/".encode()
        self.base = client.current_revision()
        self.records: list = []
        self.streams: list[WatchStream] = []
        self.shortfalls: list[str] = []
        self.leases: list[int] = []

    def k(self, name="") -> bytes:
        return self.prefix + (name.encode() if isinstance(name, str) else name)

    def end(self, prefix: bytes | None = None) -> bytes:
        p = bytearray(self.prefix if prefix is None else prefix)
        p[-1] += 1
        return bytes(p)

    def r(self, n: int) -> int:
        return self.base + n

    def watch(self, label: str = "w") -> WatchStream:
        w = WatchStream(self, label)
        self.streams.append(w)
        return w

    def _call(self, label, method, req):
        resp, err = self.cl.call(method, req)
        self.records.append({"op": label, "request": to_dict(req), "response": err and {"error": err} or to_dict(resp)})
        return resp

    def put(self, key, value=b"", **kw):
        return self._call("Put", self.cl.kv.Put, self.pb.PutRequest(key=key, value=value, **kw))

    def delete(self, key, range_end=b"", **kw):
        return self._call("DeleteRange", self.cl.kv.DeleteRange, self.pb.DeleteRangeRequest(key=key, range_end=range_end, **kw))

    def range(self, key, range_end=b"", **kw):
        return self._call("Range", self.cl.kv.Range, self.pb.RangeRequest(key=key, range_end=range_end, **kw))

    def txn(self, success=(), compare=(), failure=()):
        pb = self.pb

        def op(r):
            if isinstance(r, pb.PutRequest):
                return pb.RequestOp(request_put=r)
            if isinstance(r, pb.DeleteRangeRequest):
                return pb.RequestOp(request_delete_range=r)
            return pb.RequestOp(request_range=r)
        req = pb.TxnRequest(compare=list(compare), success=[op(x) for x in success], failure=[op(x) for x in failure])
        return self._call("Txn", self.cl.kv.Txn, req)

    def compact(self, revision, physical: bool = False):
        return self._call("Compact", self.cl.kv.Compact, self.pb.CompactionRequest(revision=revision, physical=physical))

    def grant(self, ttl: int, lid: int = 0):
        resp = self._call("LeaseGrant", self.cl.lease.LeaseGrant, self.pb.LeaseGrantRequest(ID=lid, TTL=ttl))
        if resp is not None:
            self.leases.append(resp.ID)
        return resp

    def note(self, label, value):
        self.records.append({"op": label, "value": value})

    def finish(self):
        for w in self.streams:
            w.drain()
        for w in self.streams:
            self.note(f"{w.label} header revisions never go backwards", w.header_revisions_monotonic())
            w.close()
        for lid in self.leases:
            self.cl.call(self.cl.lease.LeaseRevoke, self.pb.LeaseRevokeRequest(ID=lid))


def run_pair(servers, clients, fn, name: str, ctx_class=None):
    """Runs fn(ctx) against both servers at once; returns both contexts (finished)."""
    ctxs = [(ctx_class or WCtx)(cl, name, s) for cl, s in zip(clients, servers)]

    def go(c):
        try:
            fn(c)
        finally:
            c.finish()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for f in [ex.submit(go, c) for c in ctxs]:
            f.result()
    return ctxs


def normalized(c: WCtx):
    return normalize_leases(normalize(c.records, c.base), {})


def compare(servers, ctxs, what: str):
    ref, tgt = servers
    a, b = ctxs
    assert not a.shortfalls, f"harness: the reference did not deliver what the script expects: {a.shortfalls}"
    assert a.records, "case recorded nothing"
    if os.environ.get("KINE_E2E_DUMP") == "1":  # print the reference's normalised record
        print(f"--- {what}\n{pretty(normalized(a))}")
    assert_same(normalized(a), normalized(b), what, f"{ref.name} ({ref.kind})", f"{tgt.name} ({tgt.kind})")


@pytest.mark.parametrize("fn", CASES)
def test_watch_differential(clients, servers, fn):
    ctxs = run_pair(servers, clients, fn, fn.__name__)
    compare(servers, ctxs, fn.__name__)


# =============================================================================================
# Cases: what a watch covers


@case
def case_single_key(c: WCtx):
    w = c.watch()
    w.create(c.k("a"))
    w.expect(1, "created")
    c.put(c.k("a"), b"1")
    w.expect(1, "put a")
    c.put(c.k("ab"), b"x")       # not watched
    c.put(c.k("b"), b"x")        # not watched
    c.put(c.k("a"), b"2")
    w.expect(1, "update a")
    c.delete(c.k("a"))
    w.expect(1, "delete a")
    c.delete(c.k("a"))           # nothing deleted: no revision, no event
    c.put(c.k("a"), b"3", lease=0)
    w.expect(1, "re-create a")


@case
def case_prefix(c: WCtx):
    w = c.watch()
    w.create(c.k("p/"), c.end(c.k("p/")))
    w.expect(1, "created")
    c.put(c.k("p"), b"outside")
    c.put(c.k("p/1"), b"1")
    c.put(c.k("p/2"), b"2")
    c.put(c.k("p0"), b"outside")
    c.put(c.k("p/1"), b"1b")
    c.put(c.k("p/"), b"the prefix itself")
    c.delete(c.k("p/2"))
    w.expect(5, "events")


@case
def case_from_key(c: WCtx):
    # Keys from 0x7f 0x7d sort after every other suite's keys, so a from-key watch sees this
    # case's writes only (nothing else writes while a case runs).
    c.prefix = f"\x7f\x7d-watch-{RUN}/".encode()
    w = c.watch()
    w.create(c.k("m"), b"\x00")
    w.expect(1, "created")
    c.put(c.k("a"), b"before m")
    c.put(c.k("m"), b"m")
    c.put(c.k("z"), b"z")
    c.put(c.k("zz/1"), b"zz")
    c.delete(c.k("m"), b"\x00")
    w.expect(4, "events")


@case
def case_empty_key_is_nul(c: WCtx):
    # An empty key is watched as "\x00"; with range_end "\x00" that is the whole keyspace, so
    # only the created response is compared (other suites' keys would show up otherwise).
    w = c.watch()
    w.create(b"", b"\x00", start_revision=c.r(1))
    w.expect(1, "created")
    w.cancel(0)
    w.expect(1, "canceled")


@case
def case_start_revision_now_and_history(c: WCtx):
    for i in range(1, 4):
        c.put(c.k("h"), f"v{i}".encode())      # base+1 .. base+3
    c.put(c.k("other"), b"x")                  # base+4
    c.delete(c.k("h"))                         # base+5
    now = c.watch("now")
    now.create(c.k(""), c.end(), start_revision=0)
    now.expect(1, "created (from now: no replay)")
    hist = c.watch("history")
    hist.create(c.k(""), c.end(), start_revision=c.r(2), prev_kv=True)
    hist.expect(2, "created, then the replay of base+2..base+5")
    single = c.watch("history-single-key")
    single.create(c.k("h"), start_revision=c.r(1))
    single.expect(2, "created, then the replay")
    c.put(c.k("h"), b"live")                   # base+6
    now.expect(1, "live")
    hist.expect(1, "live")
    single.expect(1, "live")


@case
def case_start_revision_current_and_future(c: WCtx):
    c.put(c.k("a"), b"1")                      # base+1
    w = c.watch()
    w.create(c.k("a"), start_revision=c.r(1))  # the current revision: replayed
    w.expect(2, "created, replay of base+1")
    w.create(c.k("a"), start_revision=c.r(3))  # future: accepted, waits
    w.expect(1, "created (future)")
    c.put(c.k("a"), b"2")                      # base+2: only watcher 0
    w.expect(1, "base+2")
    c.put(c.k("a"), b"3")                      # base+3: both
    w.expect(2, "base+3", sort=True)


@case
def case_compacted_start_revision(c: WCtx):
    for i in range(1, 5):
        c.put(c.k("c"), f"v{i}".encode())      # base+1 .. base+4
    c.compact(c.r(3))
    w = c.watch()
    w.create(c.k("c"), start_revision=c.r(1))
    w.expect(2, "created, then canceled with compact_revision")
    w.create(c.k("c"), start_revision=c.r(3))  # exactly the compacted revision: allowed
    w.expect(2, "created, replay of base+3..base+4")
    c.put(c.k("c"), b"v5")
    w.expect(1, "live event for the surviving watcher")


@case
def case_prev_kv_at_compacted_revision(c: WCtx):
    # etcd reads an event's prev_kv at the event's revision - 1 when it sends it; once that
    # revision is compacted the read fails and the event goes without prev_kv, although the
    # previous version was current a moment ago (kine's memory ring still holds it). The
    # compaction also removes the tombstone at its revision: the DELETE of d is not sent. etcd
    # compacts physically in the background, so the case waits for it (physical=True); kine
    # always has by the time it answers.
    c.put(c.k("a"), b"v1")                     # base+1
    c.put(c.k("d"), b"d1")                     # base+2
    c.put(c.k("a"), b"v2")                     # base+3
    c.txn(success=[c.pb.PutRequest(key=c.k("a"), value=b"v3"), c.pb.DeleteRangeRequest(key=c.k("d"))])  # base+4
    c.compact(c.r(4), physical=True)
    w = c.watch()
    w.create(c.k(""), c.end(), start_revision=c.r(4), prev_kv=True)
    w.expect(2, "created, then base+4's put without prev_kv (the delete is compacted away)")
    c.put(c.k("a"), b"v4")                     # base+5: its prev (base+4) is not compacted
    w.expect(1, "base+5 with prev_kv v3")
    w2 = c.watch("w2")
    w2.create(c.k(""), c.end(), start_revision=c.r(5), prev_kv=True)
    w2.expect(2, "created, then base+5 with prev_kv from history")


@case
def case_negative_start_revision(c: WCtx):
    # etcd 3.5 has no special case for a negative start revision: the watcher is created (with an
    # id) and, as its start is below the compacted revision, then canceled with compact_revision.
    c.put(c.k("c"), b"v1")
    c.put(c.k("c"), b"v2")
    c.compact(c.r(2))
    w = c.watch()
    w.create(c.k("c"), start_revision=-5)
    w.expect(2, "created, then canceled with compact_revision")
    w.create(c.k("c"))
    w.expect(1, "next watcher")
    c.put(c.k("c"), b"v3")
    w.expect(1, "event")


@case
def case_range_empty(c: WCtx):
    w = c.watch()
    w.create(c.k("b"), c.k("a"))
    w.expect(1, "range_end < key")
    w.create(c.k("b"), c.k("b"))
    w.expect(1, "range_end == key")
    w.create(c.k("b"), c.k("c"))               # valid: gets id 0 (the canceled ones took none)
    w.expect(1, "valid range")
    c.put(c.k("b"), b"x")
    w.expect(1, "event")


@case
def case_prev_kv(c: WCtx):
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.expect(1, "created")
    c.put(c.k("a"), b"1")                      # create: no prev_kv
    c.put(c.k("a"), b"2")                      # update: prev_kv = 1
    c.put(c.k("a"), b"", ignore_value=True)    # value unchanged, new revision
    c.delete(c.k("a"))                         # delete: prev_kv (value 2)
    c.put(c.k("a"), b"4")                      # re-create: no prev_kv
    w.expect(5, "events")
    plain = c.watch("no-prev-kv")
    plain.create(c.k(""), c.end())
    plain.expect(1, "created")
    c.put(c.k("a"), b"5")
    c.delete(c.k("a"))
    w.expect(2, "with prev_kv")
    plain.expect(2, "without prev_kv")


@case
def case_filters(c: WCtx):
    noput = c.watch("noput")
    noput.create(c.k(""), c.end(), filters=[0])          # NOPUT
    nodel = c.watch("nodelete")
    nodel.create(c.k(""), c.end(), filters=[1], prev_kv=True)  # NODELETE
    both = c.watch("both")
    both.create(c.k(""), c.end(), filters=[0, 1])
    for w in (noput, nodel, both):
        w.expect(1, "created")
    c.put(c.k("a"), b"1")
    c.put(c.k("b"), b"1")
    c.delete(c.k("a"))
    c.txn([c.pb.PutRequest(key=c.k("c"), value=b"1"), c.pb.DeleteRangeRequest(key=c.k("b"))])
    c.delete(c.k("c"))
    noput.expect(3, "deletes only")
    nodel.expect(3, "puts only")
    c.put(c.k("end"), b"marker")
    nodel.expect(1, "marker")


@case
def case_several_watchers_one_stream(c: WCtx):
    c.put(c.k("a"), b"1")                      # base+1
    c.put(c.k("b"), b"1")                      # base+2
    w = c.watch()
    # Sent back to back: created responses in request order, each before its watcher's events.
    w.create(c.k("a"))
    w.create(c.k(""), c.end(), start_revision=c.r(1))
    w.create(c.k("b"), prev_kv=True)
    w.create(c.k("zzz"))
    got = w.stream.take(5, 5.0)
    created = [m.watch_id for m in got if m.created]
    c.note("created responses in order", created)
    seen_created = set()
    ok = True
    for m in got:
        if m.created:
            seen_created.add(m.watch_id)
        elif m.watch_id not in seen_created:
            ok = False
    c.note("every watcher's created response before its events", ok)
    recs = sorted((to_dict(m) for m in got), key=lambda r: (r["watch_id"], not r["created"]))
    c.records.append({"op": "responses by watch id", "responses": recs})
    if len(got) < 5:
        c.shortfalls.append(f"expected 5 responses, got {len(got)}")
    c.put(c.k("a"), b"2")
    w.expect(2, "a: watchers 0 and 1", sort=True)
    c.put(c.k("b"), b"2")
    w.expect(2, "b: watchers 1 and 2", sort=True)


@case
def case_client_watch_ids(c: WCtx):
    w = c.watch()
    w.create(c.k("a"), watch_id=7)
    w.expect(1, "created 7")
    w.create(c.k("b"), watch_id=7)
    w.expect(1, "duplicate id 7")
    w.create(c.k("c"))
    w.expect(1, "auto id")
    w.create(c.k("d"), watch_id=1)
    w.expect(1, "created 1")
    w.create(c.k("e"))
    w.expect(1, "auto id skips 1")
    w.create(c.k("f"), watch_id=1)
    w.expect(1, "duplicate id 1")
    for n in "acdef":
        c.put(c.k(n), b"x")
    w.expect(4, "events")
    w2 = c.watch("second-stream")
    w2.create(c.k("a"), watch_id=7)            # ids are per stream
    w2.create(c.k("a"))
    w2.expect(2, "created on another stream")


@case
def case_cancel(c: WCtx):
    w = c.watch()
    w.create(c.k("a"))
    w.create(c.k("a"), prev_kv=True)
    w.expect(2, "created")
    c.put(c.k("a"), b"1")
    w.expect(2, "both", sort=True)
    w.cancel(0)
    w.expect(1, "canceled 0")
    w.cancel(0)                                # already canceled: nothing
    w.cancel(12345)                            # unknown: nothing
    c.put(c.k("a"), b"2")
    w.expect(1, "only watcher 1")
    w.cancel(1)
    w.expect(1, "canceled 1")
    c.put(c.k("a"), b"3")                      # nobody watches


@case
def case_progress_request(c: WCtx):
    w = c.watch()
    w.create(c.k("a"))
    w.create(c.k(""), c.end())
    w.expect(2, "created")
    c.put(c.k("a"), b"1")
    w.expect(2, "events", sort=True)
    outside = c.prefix.rstrip(b"/") + b"-outside"   # sorts before the prefix: not watched
    c.put(outside, b"1")
    c.put(c.k("b"), b"1")
    w.expect(1, "event for the prefix watcher")
    w.progress()
    w.expect(1, "progress: watch id -1, header = current revision")
    c.put(outside, b"2")
    w.progress()
    w.expect(1, "progress after an unwatched write: header = current revision")
    c.put(c.k("c"), b"")
    w.expect(1, "event")
    w.progress()
    w.expect(1, "progress again")


@case
def case_txn_several_keys(c: WCtx):
    c.put(c.k("c"), b"old")
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.expect(1, "created")
    c.txn([c.pb.PutRequest(key=c.k("b"), value=b"1"), c.pb.PutRequest(key=c.k("a"), value=b"1"),
           c.pb.DeleteRangeRequest(key=c.k("c")), c.pb.PutRequest(key=c.k("d"), value=b"1"),
           c.pb.RangeRequest(key=c.k("a"))])
    w.expect(1, "one response, one revision, events in request order")
    c.txn([c.pb.PutRequest(key=c.k("x"), value=b"1")],
          compare=[c.pb.Compare(key=c.k("a"), target=c.pb.Compare.VERSION, result=c.pb.Compare.EQUAL, version=5)],
          failure=[c.pb.PutRequest(key=c.k("a"), value=b"2"), c.pb.DeleteRangeRequest(key=c.k("b"))])
    w.expect(1, "failure branch")
    c.txn([c.pb.RangeRequest(key=c.k("a"))])   # read-only: no revision, no event
    c.put(c.k("z"), b"marker")
    w.expect(1, "marker")


@case
def case_delete_prefix(c: WCtx):
    for n in ("d/1", "d/2", "d/3", "e"):
        c.put(c.k(n), b"v")
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.create(c.k("d/2"))
    w.expect(2, "created")
    c.delete(c.k("d/"), c.end(c.k("d/")))
    w.expect(2, "deletes of one revision (prefix watcher) and d/2", sort=True)
    c.delete(c.k("d/"), c.end(c.k("d/")))      # nothing left: no event
    c.put(c.k("e"), b"marker")
    w.expect(1, "marker")


@case
def case_lease_expiry_events(c: WCtx):
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.expect(1, "created")
    g = c.grant(2)
    c.put(c.k("l/1"), b"1", lease=g.ID)
    c.put(c.k("l/2"), b"2", lease=g.ID)
    c.put(c.k("kept"), b"no lease")
    w.expect(3, "puts")
    t0 = time.monotonic()
    w.expect(1, "expiry: DELETE events of one revision with prev_kv", timeout=6.0)
    c.note("expired within TTL + 1.5 s", time.monotonic() - t0 <= 3.5)
    c.range(c.k(""), c.end())
    c._call("LeaseTimeToLive", c.cl.lease.LeaseTimeToLive, c.pb.LeaseTimeToLiveRequest(ID=g.ID))


@case
def case_lease_revoke_events(c: WCtx):
    w = c.watch()
    w.create(c.k(""), c.end(), prev_kv=True)
    w.expect(1, "created")
    g = c.grant(600)
    for n in ("b", "a", "c"):
        c.put(c.k(n), n.encode(), lease=g.ID)
    c.put(c.k("c"), b"detached")               # detaches c
    w.expect(4, "puts")
    c._call("LeaseRevoke", c.cl.lease.LeaseRevoke, c.pb.LeaseRevokeRequest(ID=g.ID))
    w.expect(1, "revoke: DELETE a and b in one revision")
    c.range(c.k(""), c.end())


@case
def case_compact_rev_key(c: WCtx):
    # kube-apiserver >= 1.34 watches etcd's compact_rev_key (kine keeps it as Go kine's
    # compact_rev_key_apiserver row): a write through a Txn must arrive under its etcd name.
    w = c.watch()
    w.create(b"compact_rev_key")
    w.expect(1, "created")
    r = c.cl.kv.Range(c.pb.RangeRequest(key=b"compact_rev_key"))
    ver = r.kvs[0].version if r.kvs else 0
    c.note("compact_rev_key existed", bool(r.kvs))
    c.records.append({"op": "Txn compact_rev_key"})
    c.cl.kv.Txn(c.pb.TxnRequest(
        compare=[c.pb.Compare(key=b"compact_rev_key", target=c.pb.Compare.VERSION, result=c.pb.Compare.EQUAL, version=ver)],
        success=[c.pb.RequestOp(request_put=c.pb.PutRequest(key=b"compact_rev_key", value=str(c.base).encode()))]))
    got = w.stream.take(1, 5.0)
    ev = [(e.type, e.kv.key, e.kv.mod_revision - c.base, e.kv.version - ver) for m in got for e in m.events]
    c.note("event (type, key, relative mod_revision, version delta)", [list(map(str, x)) for x in ev])


@case
def case_header_revision_on_quiet_watch(c: WCtx):
    # Responses for one watcher carry the header of the revision they were sent at, and a
    # watch on an untouched key created after writes gets the current revision in its header.
    c.put(c.k("x"), b"1")
    c.put(c.k("y"), b"1")
    w = c.watch()
    w.create(c.k("untouched"))
    w.create(c.k("x"), start_revision=c.r(1))
    w.expect(3, "created, created, replay")


@case
def case_half_closed_stream(c: WCtx):
    # A client that ends its send side keeps its watchers: etcd's receive loop returns on EOF
    # without ending the stream, so events keep coming.
    w = c.watch()
    w.create(c.k("a"))
    w.expect(1, "created")
    w.stream.half_close()
    time.sleep(0.2)
    c.put(c.k("a"), b"1")
    w.expect(1, "event after the client half-closed")
    c.put(c.k("a"), b"2")
    w.expect(1, "another")


@case
def case_odd_requests(c: WCtx):
    w = c.watch()
    w.stream.send(c.pb.WatchRequest())         # no request at all: ignored
    c.records.append({"op": "w empty WatchRequest"})
    w.create(c.k("a"), filters=[5])            # unknown filter value: ignored
    w.expect(1, "created with an unknown filter")
    w.create(b"", b"")                          # empty key: watches "\x00"
    w.expect(1, "created for an empty key")
    w.stream.send(c.pb.WatchRequest(cancel_request=c.pb.WatchCancelRequest(watch_id=-1)))
    c.records.append({"op": "w cancel -1"})
    c.put(c.k("a"), b"1")
    w.expect(1, "event")


@case
def case_cancel_during_replay(c: WCtx):
    # A cancel sent right behind its create (while the watcher replays history): etcd answers
    # every create with `created` and then the cancel with `canceled`, in request order; the
    # replay's events, if any got out before the cancel, come between the two.
    for i in range(1, 51):
        c.put(c.k(f"k{i % 5}"), b"v")          # base+1 .. base+50
    w = c.watch()
    for i in range(5):
        w.create(c.k(""), c.end(), start_revision=c.r(1))
        w.cancel(i)
    w.stream.wait_for(lambda r: sum(1 for _, m in r if m.canceled) >= 5, 5)
    got = w.stream.take(len(w.stream.received), 0.1)
    kinds: dict = {}
    for m in got:
        kinds.setdefault(m.watch_id, []).append(
            "created" if m.created else "canceled" if m.canceled else "events")
    c.note("per watch id, without event responses", {i: [k for k in ks if k != "events"] for i, ks in kinds.items()})
    c.note("events only between created and canceled", all(
        ks[0] == "created" and ks[-1] == "canceled" for ks in kinds.values()))
    c.put(c.k("k0"), b"after")
    w.create(c.k(""), c.end())
    w.expect(1, "created")
    c.put(c.k("k1"), b"after")
    w.expect(1, "event for the new watcher only")


def _summary(resps, base):
    """Responses without the values (large): per response its flags and (type, key, relative
    mod_revision, value size, prev value size) per event."""
    out = []
    for m in resps:
        out.append({"watch_id": m.watch_id, "created": m.created, "fragment": m.fragment,
                     "header": rel(m.header.revision, base),
                     "events": [["PUT" if e.type == 0 else "DELETE",
                                 e.kv.key.decode(), rel(e.kv.mod_revision, base), len(e.kv.value),
                                 len(e.prev_kv.value) if e.HasField("prev_kv") else None] for e in m.events]})
    return out


@case
def case_fragment(c: WCtx):
    # One revision whose events exceed etcd's limit for one response (max-request-bytes 1.5 MiB
    # + 512 KiB): with fragment=true it is split over several responses, all but the last
    # marked fragment; without, it is sent whole.
    big = b"x" * (1024 * 1024)
    for n in ("a", "b", "c"):
        c.put(c.k(n), big)
    frag = c.watch("fragment")
    frag.create(c.k(""), c.end(), prev_kv=True, fragment=True)
    whole = c.watch("no-fragment")
    whole.create(c.k(""), c.end(), prev_kv=True)
    frag.expect(1, "created")
    whole.expect(1, "created")
    c.delete(c.k(""), c.end())
    ok = frag.stream.wait_for(lambda r: any(m.events and not m.fragment for _, m in r), 10)
    c.note("fragmented response completed", ok)
    got = frag.stream.take(len(frag.stream.received) - 1, 1)
    c.records.append({"op": "fragment responses", "summary": _summary(got, c.base)})
    got = whole.stream.take(1, 10)
    c.records.append({"op": "no-fragment response", "summary": _summary(got, c.base)})


def test_watch_slow_consumer(servers, clients):
    """A watcher that stops reading while 12,000 events (12 MB) are written, then reads again:
    every event exactly once, in order, and no revision split over responses. etcd groups the
    catch-up differently, so the flattened event lists are compared, not the responses."""
    def script(c: WCtx):
        w = c.watch()
        w.create(c.k(""), c.end())
        w.expect(1, "created")
        w.stream.pause()
        value = b"v" * 1000
        for i in range(120):
            c.cl.kv.Txn(c.pb.TxnRequest(success=[
                c.pb.RequestOp(request_put=c.pb.PutRequest(key=c.k(f"k{j:03d}"), value=value + str(i).encode()))
                for j in range(100)]))
        c.put(c.k("marker"), b"end")                  # base+121
        time.sleep(0.5)
        w.stream.resume()
        ok = w.stream.wait_for(lambda r: any(e.kv.mod_revision == c.r(121) for _, m in r for e in m.events), 30)
        c.note("caught up to the marker", ok)
        resps = w.stream.take(len(w.stream.received), 1)
        flat = [(e.kv.mod_revision - c.base, e.kv.key.decode().rsplit("/", 1)[1], e.kv.version) for m in resps for e in m.events]
        c.note("events", len(flat))
        c.note("every event once, in order", flat == [(r, f"k{j:03d}", r) for r in range(1, 121) for j in range(100)]
               + [(121, "marker", 1)])
        split = []
        where: dict = {}
        for n, m in enumerate(resps):
            for e in m.events:
                where.setdefault(e.kv.mod_revision, set()).add(n)
        split = [r - c.base for r, ns in where.items() if len(ns) > 1]
        c.note("revisions split over responses", split)
        c.note("header revisions never go backwards (so far)", w.header_revisions_monotonic())
        if not ok:
            c.note("last event seen", flat[-1:] if flat else None)

    ctxs = run_pair(servers, clients, script, "slow_consumer")
    compare(servers, ctxs, "slow consumer")


# =============================================================================================
# Progress notifications (servers with a short interval)


PROGRESS_INTERVAL = "500ms"


@pytest.fixture(scope="module")
def progress_servers(server_factory):
    a = server_factory.etcd("ref-progress", [f"--experimental-watch-progress-notify-interval={PROGRESS_INTERVAL}"])
    b = server_factory.target("target-progress",
                              etcd_args=[f"--experimental-watch-progress-notify-interval={PROGRESS_INTERVAL}"],
                              kine_args=["--watch-progress-notify-interval", PROGRESS_INTERVAL])
    ca, cb = Client(a.endpoint), Client(b.endpoint)
    yield (a, b), (ca, cb)
    ca.close()
    cb.close()


def _dedupe(recs):
    out = []
    for r in recs:
        if not out or out[-1] != r:
            out.append(r)
    return out


def test_watch_progress_notify(progress_servers):
    """progress_notify watches get {header: current revision, watch_id, no events} while quiet;
    only the shape is compared (how many arrive depends on timing): consecutive identical
    responses are collapsed, and each quiet period must have produced at least one."""
    servers, clients = progress_servers

    def script(c: WCtx):
        w = c.watch()
        w.create(c.k(""), c.end(), progress_notify=True)
        w.create(c.k(""), c.end())               # no progress for this one
        w.expect(2, "created")
        time.sleep(1.6)
        quiet1 = w.stream.drain(0.1)
        c.put(c.k("a"), b"1")
        w.expect(2, "events", sort=True)
        time.sleep(1.6)
        quiet2 = w.stream.drain(0.1)
        # Stop here: more progress responses may come at any moment.
        c.note("header revisions never go backwards", w.header_revisions_monotonic())
        c.streams.remove(w)
        w.close()
        for label, got in (("quiet 1", quiet1), ("quiet 2", quiet2)):
            recs = [to_dict(m) for m in got]
            c.note(f"{label}: at least one progress response", len(recs) >= 1)
            c.records.append({"op": f"{label}: progress responses (deduplicated)", "responses": _dedupe(recs)})

    ctxs = run_pair(servers, clients, script, "progress_notify")
    compare(servers, ctxs, "progress_notify")


# =============================================================================================
# etcdctl watch end to end


class CtlWatch:
    """`etcdctl watch ...` running in the background; output collected until it contains
    `until` (a regex) or a timeout."""

    def __init__(self, server, *args: str, stdin: bool = False):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        self.proc = subprocess.Popen(
            [harness.etcdctl35(), f"--endpoints={server.endpoint}", "--dial-timeout=2s", "watch", *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._cv = threading.Condition()
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self._threads:
            t.start()

    def _pump(self, f, into):
        for line in f:
            with self._cv:
                into.append(line)
                self._cv.notify_all()

    def write(self, line: str):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_lines(self, n: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.out) < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                self._cv.wait(left)
            return len(self.out) >= n

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in self._threads:
            t.join(2)
        return "".join(self.out), "".join(self.err)


def _decode_kvs(obj):
    """etcdctl -w json prints keys and values base64: decode them so diffs are readable."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("key", "value") and isinstance(v, str):
                out[k] = base64.b64decode(v).decode("utf-8", "backslashreplace")
            else:
                out[k] = _decode_kvs(v)
        return out
    if isinstance(obj, list):
        return [_decode_kvs(x) for x in obj]
    return obj


def _norm_ctl(text: str, base: int) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(normalize(_decode_kvs(json.loads(line)), base))
                continue
            except ValueError:
                pass
        out.append(re.sub(r"(progress notify: )(\d+)", lambda m: m.group(1) + str(rel(int(m.group(2)), base)), line))
    return out


def _ctl_pair(servers, clients, name, script):
    """script(ctx, start_watch) runs on both servers at once; start_watch(*args, stdin=False)
    starts etcdctl watch against that ctx's server. Returns normalised outputs."""
    def one(c: WCtx):
        watches = []

        def start(*args, stdin=False):
            cw = CtlWatch(c.server, *[a.format(**{f"r{i}": c.r(i) for i in range(10)}) for a in args], stdin=stdin)
            watches.append(cw)
            return cw
        try:
            script(c, start)
        finally:
            for i, cw in enumerate(watches):
                out, err = cw.stop()
                c.records.append({"op": f"etcdctl watch #{i}", "stdout": _norm_ctl(out, c.base),
                                  "stderr": [l for l in err.splitlines() if "Error" in l or "canceled" in l]})
    return run_pair(servers, clients, one, name)


def test_etcdctl_watch_prefix_rev_prev_kv(servers, clients):
    def script(c: WCtx, start):
        c.put(c.k("a"), b"1")                          # base+1
        c.put(c.k("b"), b"1")                          # base+2
        c.put(c.k("a"), b"2")                          # base+3
        c.delete(c.k("b"))                             # base+4
        p = c.k().decode()
        hist = start("--prefix", p, "--rev={r2}", "--prev-kv")
        hist_json = start("--prefix", p, "--rev={r1}", "-w", "json")
        single = start(p + "a", "--rev={r1}")
        # The replay shows each watch is established; then live writes follow.
        # (PUT b; PUT a with prev; DELETE b with prev: 3 + 5 + 5 lines)
        ok = hist.wait_lines(13, 8) and hist_json.wait_lines(1, 8) and single.wait_lines(6, 8)
        c.note("history printed", ok)
        live = start("--prefix", p + "a")
        time.sleep(1.0)                                # no output to wait on for a from-now watch
        c.put(c.k("a"), b"3")                          # base+5
        c.put(c.k("ab"), b"x")                         # base+6
        c.delete(c.k("a"))                             # base+7
        c.put(c.k("zz"), b"end")                       # base+8
        hist.wait_lines(13 + 5 + 3 + 5 + 3, 5)
        live.wait_lines(9, 5)
        time.sleep(0.3)

    ctxs = _ctl_pair(servers, clients, "etcdctl-watch", script)
    compare(servers, ctxs, "etcdctl watch --prefix/--rev/--prev-kv")


def test_etcdctl_watch_interactive_progress(servers, clients):
    def script(c: WCtx, start):
        c.put(c.k("a"), b"1")                          # base+1
        p = c.k().decode()
        iw = start("-i", stdin=True)
        iw.write(f"watch --prefix {p} --rev={c.r(1)}")
        c.note("replay printed", iw.wait_lines(3, 8))
        iw.write(f"watch {p}b --rev={c.r(2)}")         # a future revision: no race with the put
        c.put(c.k("b"), b"2")                          # base+2: both watches
        iw.wait_lines(9, 5)
        iw.write("progress")
        # etcd broadcasts the one progress response (watch id -1) to both watchers
        c.note("progress printed", iw.wait_lines(11, 5))
        time.sleep(0.3)

    ctxs = _ctl_pair(servers, clients, "etcdctl-watch-i", script)
    compare(servers, ctxs, "etcdctl watch -i with progress")
