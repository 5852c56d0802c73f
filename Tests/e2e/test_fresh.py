"""A fresh kine is a fresh etcd: the same revision, no keys, the same first events.

A new etcd 3.5.1 and a kine on a new database are started side by side and asked the same things,
in absolute revisions (no base revision is subtracted, unlike the other differential suites):
Status, a Range over the whole keyspace (also at revision 1, and serializable), a Compact at
revision 1, a watch of everything from revision 1 that sees the first put and delete, the
revisions those writes get, and HashKV over that history (the same number). Clients that assume a fresh server (Kubernetes' own storage tests do)
see no difference. A database Go kine wrote keeps its `/registry/health` key
(test_gokine_fixture.py).
"""

from __future__ import annotations

import pytest

from etcdgrpc import Client, Stream, to_dict
from normalize import assert_same

pytestmark = pytest.mark.needs_kine


def fresh_view(endpoint: str) -> dict:
    cl = Client(endpoint)
    pb = cl.pb
    out: dict = {}
    try:
        st, err = cl.call(cl.maintenance.Status, pb.StatusRequest())
        out["status"] = err or {"revision": st.header.revision, "errors": list(st.errors),
                                "is_learner": st.isLearner}
        everything = pb.RangeRequest(key=b"\x00", range_end=b"\x00")
        for label, req in (
            ("range all", everything),
            ("range all serializable", pb.RangeRequest(key=b"\x00", range_end=b"\x00", serializable=True)),
            ("range all at revision 1", pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=1)),
            ("range all at revision 2", pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=2)),
            ("count all", pb.RangeRequest(key=b"\x00", range_end=b"\x00", count_only=True)),
        ):
            resp, err = cl.call(cl.kv.Range, req)
            out[label] = err or to_dict(resp)

        watch = Stream(cl.watch.Watch)
        watch.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=b"\x00", range_end=b"\x00", start_revision=1, prev_kv=True)))
        out["watch created"] = [to_dict(m) for m in watch.take(1, 5.0)]
        for label, call, req in (
            ("put /a", cl.kv.Put, pb.PutRequest(key=b"/a", value=b"1")),
            ("put /a again", cl.kv.Put, pb.PutRequest(key=b"/a", value=b"2", prev_kv=True)),
            ("delete /a", cl.kv.DeleteRange, pb.DeleteRangeRequest(key=b"/a")),
        ):
            resp, err = cl.call(call, req)
            out[label] = err or to_dict(resp)
        # etcd delivers a watcher that started in the past in batches of whatever its 100 ms sync
        # loop finds, so the events are compared, not how they were split into responses.
        watch.wait_for(lambda got: sum(len(m.events) for _, m in got) >= 3, 5.0)
        responses = [to_dict(m) for m in watch.take(1000, 0.0) + watch.drain(0.3)]
        out["watch events"] = [e for r in responses for e in r["events"]]
        out["watch last header"] = responses[-1]["header"] if responses else None
        watch.close()

        # The same history hashes the same: kine's bookkeeping row adds nothing to HashKV.
        resp, err = cl.call(cl.maintenance.HashKV, pb.HashKVRequest(revision=0))
        out["hashkv"] = err or {"hash": resp.hash, "compact_revision": resp.compact_revision, "revision": resp.header.revision}
        resp, err = cl.call(cl.kv.Compact, pb.CompactionRequest(revision=1))
        out["compact 1"] = err or to_dict(resp)
        resp, err = cl.call(cl.kv.Compact, pb.CompactionRequest(revision=1))
        out["compact 1 again"] = err or to_dict(resp)
    finally:
        cl.close()
    return _mask_identities(out)


def _mask_identities(obj):
    if isinstance(obj, dict):
        return {k: ("<id>" if k in ("cluster_id", "member_id", "raft_term") and v else _mask_identities(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mask_identities(x) for x in obj]
    return obj


def test_fresh_server_is_etcd(server_factory):
    etcd = server_factory.etcd("fresh-etcd")
    kine = server_factory.target("fresh-kine")
    expected = fresh_view(etcd.endpoint)
    actual = fresh_view(kine.endpoint)
    # What a fresh etcd says, so the comparison cannot pass on two wrong answers.
    assert expected["status"]["revision"] == 1
    assert expected["range all"]["count"] == 0 and expected["put /a"]["header"]["revision"] == 2
    assert_same(expected, actual, "a fresh server")
