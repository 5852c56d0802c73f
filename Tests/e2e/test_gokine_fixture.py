"""kine on a database that Go kine wrote: Tests/fixtures/gokine-v0.13.sql (Go kine's exact DDL and
row conventions, history described in the file) is loaded into a fresh database, kine is started
on it, and etcd clients must see exactly the state Go kine would serve. New writes must continue
the revision sequence and be stored in Go kine's row format, so Go kine can read the table back.
"""

from __future__ import annotations

import json
import os

import pytest

import harness
from etcdgrpc import Client

pytestmark = pytest.mark.needs_kine

FIXTURE = harness.REPO / "Tests" / "fixtures" / "gokine-v0.13.sql"
MAX_ID = 14
COMPACTED = 5
COMPACTED_ERR = "etcdserver: mvcc: required revision has been compacted"


@pytest.fixture(scope="module")
def gokine(postgres_url):
    dbname = harness.unique_db_name("fixture")
    url = harness.create_database(postgres_url, dbname)
    harness.psql(url, file=FIXTURE)
    srv = harness.start_kine("kine-gokine-fixture", url)
    cl = Client(srv.endpoint)
    yield srv, cl, url
    cl.close()
    srv.stop()
    if os.environ.get("KINE_E2E_KEEP") != "1":
        harness.drop_database(postgres_url, dbname)


def kv(resp):
    return [(k.key.decode(), k.value.decode(), k.create_revision, k.mod_revision) for k in resp.kvs]


def get(cl, key, **kw):
    return cl.kv.Range(cl.pb.RangeRequest(key=key.encode(), **kw), timeout=10)


def prefix(cl, p, **kw):
    end = p[:-1] + chr(ord(p[-1]) + 1)
    return cl.kv.Range(cl.pb.RangeRequest(key=p.encode(), range_end=end.encode(), **kw), timeout=10)


def max_id(url) -> int:
    return int(harness.psql(url, "SELECT MAX(id) FROM kine").strip())


def test_fixture_loaded_unchanged(gokine):
    srv, cl, url = gokine
    # kine must not need to write anything at start-up on a complete Go kine database.
    assert max_id(url) == MAX_ID, "kine wrote rows at start-up on an existing Go kine database"
    ddl = harness.psql(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'kine' ORDER BY 1")
    for ix in ("kine_id_deleted_index", "kine_list_query_index", "kine_name_id_index", "kine_name_index",
               "kine_name_prev_revision_uindex", "kine_pkey", "kine_prev_revision_index"):
        assert ix in ddl.split(), f"index {ix} missing after kine started: {ddl}"


def test_header_revision_is_max_id(gokine):
    srv, cl, url = gokine
    r = get(cl, "/registry/health")
    assert r.header.revision == max_id(url)


def test_live_keys(gokine):
    srv, cl, url = gokine
    assert kv(get(cl, "/registry/configmaps/default/cm1")) == [("/registry/configmaps/default/cm1", "v3", 3, 12)]
    assert kv(get(cl, "/registry/secrets/default/s1")) == [("/registry/secrets/default/s1", "s1-v2", 8, 8)]
    assert kv(get(cl, "/registry/leases/kube-node-lease/n1")) == [("/registry/leases/kube-node-lease/n1", "lease-v2", 13, 14)]
    assert kv(get(cl, "/registry/health")) == [("/registry/health", '{"health":"true"}', 2, 2)]
    r = prefix(cl, "/registry/")
    assert [k[0] for k in kv(r)] == [
        "/registry/configmaps/default/cm1",
        "/registry/health",
        "/registry/leases/kube-node-lease/n1",
        "/registry/secrets/default/s1",
    ]
    assert r.count == 4 and not r.more
    r = prefix(cl, "/registry/", limit=2)
    assert len(r.kvs) == 2 and r.more and r.count == 4


def test_deleted_keys_and_gaps_absent(gokine):
    srv, cl, url = gokine
    assert get(cl, "/registry/pods/default/p1").count == 0
    assert prefix(cl, "/registry/pods/").count == 0
    assert get(cl, "gap-7").count == 0


def test_history_reads(gokine):
    srv, cl, url = gokine
    # Exactly at the compacted revision is readable.
    r = prefix(cl, "/registry/", revision=COMPACTED)
    assert kv(r) == [
        ("/registry/configmaps/default/cm1", "v2", 3, 4),
        ("/registry/health", '{"health":"true"}', 2, 2),
        ("/registry/secrets/default/s1", "s1-v1", 5, 5),
    ]
    assert get(cl, "/registry/secrets/default/s1", revision=7).count == 0   # deleted at 6
    assert kv(get(cl, "/registry/secrets/default/s1", revision=9)) == [("/registry/secrets/default/s1", "s1-v2", 8, 8)]
    assert kv(get(cl, "/registry/pods/default/p1", revision=9)) == [("/registry/pods/default/p1", "pod1", 9, 9)]
    assert kv(get(cl, "/registry/configmaps/default/cm1", revision=11)) == [("/registry/configmaps/default/cm1", "v2", 3, 4)]


def test_below_compacted_fails(gokine):
    srv, cl, url = gokine
    import grpc
    for rev in (1, COMPACTED - 1):
        with pytest.raises(grpc.RpcError) as e:
            get(cl, "/registry/configmaps/default/cm1", revision=rev)
        assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert e.value.details() == COMPACTED_ERR
    r = harness.etcdctl(srv, "get", "/registry/", "--prefix", f"--rev={COMPACTED - 1}")
    assert r.returncode != 0 and COMPACTED_ERR in r.stderr


def test_compact_rev_key_of_apiserver(gokine):
    srv, cl, url = gokine
    r = get(cl, "compact_rev_key")
    assert len(r.kvs) == 1, r
    assert r.kvs[0].key == b"compact_rev_key"
    assert r.kvs[0].version == 3
    assert r.kvs[0].value == b"8"


def test_etcdctl_view(gokine):
    srv, cl, url = gokine
    r = harness.etcdctl(srv, "get", "/registry/", "--prefix", "--keys-only")
    assert r.returncode == 0, r.stderr
    assert [l for l in r.stdout.splitlines() if l] == [
        "/registry/configmaps/default/cm1",
        "/registry/health",
        "/registry/leases/kube-node-lease/n1",
        "/registry/secrets/default/s1",
    ]
    r = harness.etcdctl(srv, "get", "/registry/secrets/default/s1", "-w", "json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["header"]["revision"] == max_id(url)
    assert j["kvs"][0]["create_revision"] == 8 and j["kvs"][0]["mod_revision"] == 8


def test_writes_continue_the_sequence(gokine):
    """Runs last in this module: it changes the state the other tests read."""
    srv, cl, url = gokine
    pb = cl.pb
    start = max_id(url)
    assert start == MAX_ID
    r = cl.kv.Put(pb.PutRequest(key=b"/registry/configmaps/default/cm2", value=b"new"), timeout=10)
    assert r.header.revision == MAX_ID + 1
    assert kv(get(cl, "/registry/configmaps/default/cm2")) == [("/registry/configmaps/default/cm2", "new", 15, 15)]
    assert get(cl, "/registry/configmaps/default/cm2").kvs[0].version == 1
    # kube-apiserver style update of a Go kine key.
    cmp = pb.Compare(key=b"/registry/configmaps/default/cm1", target=pb.Compare.MOD, result=pb.Compare.EQUAL,
                     mod_revision=12)
    t = cl.kv.Txn(pb.TxnRequest(compare=[cmp], success=[pb.RequestOp(request_put=pb.PutRequest(
        key=b"/registry/configmaps/default/cm1", value=b"v4"))]), timeout=10)
    assert t.succeeded and t.header.revision == MAX_ID + 2
    assert kv(get(cl, "/registry/configmaps/default/cm1")) == [("/registry/configmaps/default/cm1", "v4", 3, 16)]
    d = cl.kv.DeleteRange(pb.DeleteRangeRequest(key=b"/registry/secrets/default/s1", prev_kv=True), timeout=10)
    assert d.deleted == 1 and d.header.revision == MAX_ID + 3
    assert [(k.key, k.value) for k in d.prev_kvs] == [(b"/registry/secrets/default/s1", b"s1-v2")]
    assert get(cl, "/registry/secrets/default/s1").count == 0
    # The apiserver's compactor on the emulated compact_rev_key (version 3 -> 4).
    ck = pb.Compare(key=b"compact_rev_key", target=pb.Compare.VERSION, result=pb.Compare.EQUAL, version=3)
    t = cl.kv.Txn(pb.TxnRequest(compare=[ck], success=[pb.RequestOp(request_put=pb.PutRequest(
        key=b"compact_rev_key", value=b"16"))], failure=[pb.RequestOp(request_range=pb.RangeRequest(
            key=b"compact_rev_key"))]), timeout=10)
    assert t.succeeded, t
    r = get(cl, "compact_rev_key")
    assert (r.kvs[0].version, r.kvs[0].value) == (4, b"16")

    # The new rows are in Go kine's row format, so Go kine can read the table back (old_value
    # stays NULL: kine reads previous values from the superseded row, docs/compatibility.md).
    rows = harness.psql(url, "SELECT id, name, created, deleted, create_revision, prev_revision, "
                             "encode(coalesce(value, '\\x'::bytea), 'escape'), value IS NULL, "
                             "encode(coalesce(old_value, '\\x'::bytea), 'escape') "
                             f"FROM kine WHERE id > {MAX_ID} AND id <= {MAX_ID + 3} ORDER BY id")
    got = [tuple(l.split("|")) for l in rows.splitlines()]
    assert got[0][:4] == ("15", "/registry/configmaps/default/cm2", "1", "0") and got[0][5] == "0" and got[0][6] == "new", got
    assert got[1] == ("16", "/registry/configmaps/default/cm1", "0", "0", "3", "12", "v4", "f", ""), got
    assert got[2][:4] == ("17", "/registry/secrets/default/s1", "0", "1") and got[2][5] == "8", got
    assert int(harness.psql(url, "SELECT MAX(id) FROM kine").strip()) >= MAX_ID + 4
