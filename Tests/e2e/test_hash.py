"""Hash and HashKV (issue 13): etcd's numbers for a known history, kine's agreement across
processes and restarts, and etcdctl endpoint hashkv against both servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

import harness
from etcdgrpc import Client

# What etcd 3.5.1 answers for the history below (KeyHistoryHashTests uses the same numbers).
UNCOMPACTED = {1: 1084519789, 2: 2587454935, 3: 1827592406, 4: 2069675932, 5: 1125682900, 6: 3439950231}
COMPACTED_AT_3 = {4: 1107643163, 5: 1468967122, 6: 78437169}


def history(client):
    pb = client.pb
    client.kv.Put(pb.PutRequest(key=b"a", value=b"1"))
    client.kv.Put(pb.PutRequest(key=b"b", value=b"2"))
    client.kv.Put(pb.PutRequest(key=b"a", value=b"3"))
    client.kv.DeleteRange(pb.DeleteRangeRequest(key=b"b"))
    client.kv.Txn(pb.TxnRequest(success=[
        pb.RequestOp(request_put=pb.PutRequest(key=b"c", value=b"cc")),
        pb.RequestOp(request_put=pb.PutRequest(key=b"d", value=b"")),
    ]))


def hashkv(client, revision=0):
    return client.call(client.maintenance.HashKV, client.pb.HashKVRequest(revision=revision))


def test_etcd_still_answers_the_numbers_the_unit_tests_use(server_factory):
    etcd = server_factory.etcd(f"hash-etcd-{time.monotonic_ns()}")
    client = Client(etcd.endpoint)
    assert client.current_revision() == 1
    history(client)
    for revision, expected in UNCOMPACTED.items():
        response, error = hashkv(client, revision)
        assert error is None and response.hash == expected, (revision, response, error)
    client.kv.Compact(client.pb.CompactionRequest(revision=3, physical=True))
    for revision, expected in COMPACTED_AT_3.items():
        response, error = hashkv(client, revision)
        assert error is None and response.hash == expected and response.compact_revision == 3, (revision, response, error)
    client.close()


def test_two_kine_processes_and_a_restart_agree(server_factory):
    if os.environ.get("KINE_E2E_TARGET", "kine") != "kine":
        pytest.skip("kine only")
    url = server_factory.database("hash")
    one = server_factory.kine(f"hash-a-{time.monotonic_ns() % 100000}", url)
    two = server_factory.kine(f"hash-b-{time.monotonic_ns() % 100000}", url)
    a, b = Client(one.endpoint), Client(two.endpoint)
    history(a)
    pb = a.pb
    lease = a.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=600))
    a.kv.Put(pb.PutRequest(key=b"leased", value=b"v", lease=lease.ID))
    for index in range(30):
        b.kv.Put(pb.PutRequest(key=b"k%02d" % (index % 7), value=b"\x00\xff" * index))
    current = a.current_revision()
    a.kv.Compact(pb.CompactionRequest(revision=current - 10, physical=True))
    a.kv.Put(pb.PutRequest(key=b"after", value=b"compaction"))
    current = a.current_revision()
    revisions = [0, current, current - 1, current - 5, current - 9]
    seen = {}
    for revision in revisions:
        ra, ea = hashkv(a, revision)
        rb, eb = hashkv(b, revision)
        assert ea is None and eb is None, (ea, eb)
        assert (ra.hash, ra.compact_revision) == (rb.hash, rb.compact_revision), revision
        seen[revision] = ra.hash
    assert len(set(seen.values())) > 1, "different revisions must hash differently here"
    ha, hb = a.maintenance.Hash(pb.HashRequest()), b.maintenance.Hash(pb.HashRequest())
    assert ha.hash == hb.hash
    a.close()
    b.close()
    one.stop()
    two.stop()
    again = server_factory.kine(f"hash-c-{time.monotonic_ns() % 100000}", url)
    c = Client(again.endpoint)
    for revision in revisions:
        response, error = hashkv(c, revision)
        assert error is None and response.hash == seen[revision], revision
    assert c.maintenance.Hash(pb.HashRequest()).hash == ha.hash
    c.close()
    # `kine hashkv` reads the database directly (the HA consistency check, docs/ha.md).
    for revision in (0, current - 5):
        out = subprocess.run([harness.kine_binary(), "hashkv", "--endpoint", url, "--rev", str(revision), "--json"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["hash"] == seen[revision], (revision, out.stdout)
    out = subprocess.run([harness.kine_binary(), "hashkv", "--endpoint", url, "--rev", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "required revision has been compacted" in out.stderr, out


def test_errors_and_etcdctl_as_etcd(server_factory):
    etcd = server_factory.etcd(f"hash-etcd2-{time.monotonic_ns()}")
    kine = server_factory.target(f"hash-kine-{time.monotonic_ns() % 100000}")
    outcomes = []
    for server in (etcd, kine):
        client = Client(server.endpoint)
        history(client)
        base = client.current_revision()
        client.kv.Compact(client.pb.CompactionRequest(revision=base - 1))
        errors = [hashkv(client, base - 2)[1], hashkv(client, base + 5)[1], hashkv(client, base - 1)[1]]
        ok, _ = hashkv(client, base)
        plain = harness.etcdctl(server, "endpoint", "hashkv")
        line = re.fullmatch(rf"{re.escape(server.endpoint)}, (\d+)\n", plain.stdout)
        rev = harness.etcdctl(server, "endpoint", "hashkv", f"--rev={base - 2}")
        outcomes.append({
            "errors": errors, "compact_revision": ok.compact_revision - base, "etcdctl": bool(line) and plain.returncode == 0,
            "etcdctl hash": int(line.group(1)) == ok.hash if line else None,
            "etcdctl --rev compacted": (rev.returncode, rev.stderr.strip().splitlines()[-1]),
        })
        client.close()
    assert outcomes[0] == outcomes[1]
    assert outcomes[1]["errors"][0] == {"code": "OUT_OF_RANGE", "message": "etcdserver: mvcc: required revision has been compacted"}
    assert outcomes[1]["errors"][1] == {"code": "OUT_OF_RANGE", "message": "etcdserver: mvcc: required revision is a future revision"}
