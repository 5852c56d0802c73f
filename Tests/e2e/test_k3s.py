"""K3s for real: `k3s server --disable-agent` (v1.25.0+k3s1) on kine, step by step beside K3s on etcd 3.5.1.

For each transport, plain (`--datastore-endpoint=http://…`) and TLS with client certificates
(`https://…` with `--datastore-cafile/--datastore-certfile/--datastore-keyfile`; kine with
`--server-cert-file/--server-key-file/--trusted-ca-file`, etcd with the same certificates and
`--client-cert-auth`), a module fixture starts an etcd 3.5.1 and a kine on a fresh database, and
one K3s server on each (own data dir, own loopback ports, the same `--token`, the apiserver's
compactor at `--etcd-compaction-interval=10s`). Each test runs the same steps on both clusters, side
by side, through the apiserver's REST API (Python, the admin kubeconfig's client certificate), and
compares what came back: status codes, reasons, object names, controller results, the keys in the
datastore; never raw resourceVersions. The etcd side is also checked against what Kubernetes
should answer, so that a step that does nothing on both cannot pass.

  ready        /readyz is ok, /version is v1.25.0+k3s1, the same namespaces, one /bootstrap/<hash> key,
               K3s listens on 127.0.0.1 only (its port P and the apiserver's P+1)
  workload     configmaps: create, duplicate create (409), get, update, stale update (409), merge patch,
               label-selector list, paged list (limit=1, remainingItemCount), delete, get deleted (404);
               a secret round trip; a watch from the list's resourceVersion replays the same events;
               the keys under /registry/configmaps/<ns>/ in the datastore
  crd          a CRD becomes Established; custom resources created, listed, patched, deleted; the CRD
               deleted with its last resource
  controllers  a Deployment gets a ReplicaSet and 2 Pods (Pending on no node: K3s v1.25 starts its
               scheduler only once a node exists, so the leases are k3s and kube-controller-manager),
               scaling to 1 removes a Pod, deleting the namespace empties it (API and datastore)
  second       a second K3s server (same --token, own data dir and port) on the same datastore is ready,
               has the first one's CA, serves the first one's objects, and its writes are seen by the
               first (reads, and each apiserver's watch cache: resourceVersion=0 lists)
  wrong token  a K3s server with another --token exits non-zero with "bootstrap data already found and
               encrypted with different token"
  compaction   the apiserver's compactor ran against the datastore: compact_rev_key has version >= 2 and a
               read at a revision taken after start-up is refused as compacted (test_ready read it
               before); by then the datastore holds the same groups of keys (/registry/<resource>, …)

Everything started here is stopped, pass or fail: process groups (K3s with --disable-agent starts no
child processes; one still running with the K3s server's environment mark is killed and reported),
data dirs, databases, and what K3s writes under /etc/rancher (`node/password`, the `k3s/k3s.yaml`
link), restored to what was there before. A run killed outright (no teardown) is undone by the next
one: K3s, etcd and kine processes, temp dirs and databases carrying a dead pytest's pid are killed
and removed, and /etc/rancher is put back from the state that run saved. K3s needs root for
/etc/rancher. Skipped, before anything starts, when the k3s binary is missing (kubebin).
`KINE_E2E_ARGS` adds flags to kine (e.g. `--read-cache=false`); `KINE_E2E_KEEP=1` keeps the dirs.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import harness
import kubebin

pytestmark = pytest.mark.needs_kine

TOKEN = "kine-e2e-k3s-token"
WORK_PREFIX = "kine-e2e-k3s-"
MARK = "KINE_E2E_K3S_RUN"  # in each K3s server's environment: "<pytest pid>/<name>"
COMPACTION_INTERVAL = "10s"
READY_TIMEOUT = float(os.environ.get("KINE_E2E_K3S_READY_TIMEOUT", "150"))
RANCHER = Path("/etc/rancher")
BAD_TOKEN_ERROR = "bootstrap data already found and encrypted with different token"


# --------------------------------------------------------------------------------------------
# Datastores: etcd 3.5.1 or kine, plain or TLS


@dataclass
class Store:
    kind: str  # "etcd" or "kine"
    server: harness.Server
    url: str  # what K3s gets as --datastore-endpoint
    pki: harness.PKIFiles | None = None
    database: tuple[str, str] | None = None  # (postgres base URL, database name) for kine

    def ctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        cmd = [harness.etcdctl35(), f"--endpoints={self.url}", "--dial-timeout=3s", "--command-timeout=10s"]
        if self.pki:
            cmd += [f"--cacert={self.pki.ca}", f"--cert={self.pki.client.cert}", f"--key={self.pki.client.key}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, env=env)

    def keys(self, prefix: str) -> list[str]:
        r = self.ctl("get", prefix, "--prefix", "--keys-only")
        assert r.returncode == 0, f"{self.kind}: etcdctl get {prefix}: {r.stderr}"
        return [k for k in r.stdout.split("\n") if k]

    def revision(self) -> int:
        r = self.ctl("endpoint", "status", "-w", "json")
        assert r.returncode == 0, f"{self.kind}: endpoint status: {r.stderr}"
        return int(json.loads(r.stdout)[0]["Status"]["header"]["revision"])

    def stop(self) -> None:
        self.server.stop()
        if self.database and os.environ.get("KINE_E2E_KEEP") != "1":
            harness.drop_database(*self.database)


def _wait_store(store: Store, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not store.server.alive():
            raise RuntimeError(f"{store.kind} exited with {store.server.proc.returncode}\n{store.server.log_tail()}")
        r = store.ctl("endpoint", "status", timeout=10)
        if r.returncode == 0:
            return
        last = r.stderr.strip()
        time.sleep(0.3)
    store.stop()
    raise RuntimeError(f"{store.kind} not ready after {timeout}s: {last}\n{store.server.log_tail()}")


def start_store(kind: str, work: Path, pki: harness.PKIFiles | None, postgres_url: str | None) -> Store:
    if kind == "etcd" and not pki:
        srv = harness.start_etcd(f"k3s-etcd-{os.getpid()}")
        return Store("etcd", srv, f"http://{srv.endpoint}")
    port = harness.free_port()
    scheme = "https" if pki else "http"
    d = work / f"{kind}-{scheme}"
    d.mkdir()
    if kind == "etcd":
        pport = harness.free_port()
        client, peer = f"https://127.0.0.1:{port}", f"http://127.0.0.1:{pport}"
        cmd = [harness.etcd35(), "--name", "k3s-etcd-tls", "--data-dir", str(d / "data"),
               "--listen-client-urls", client, "--advertise-client-urls", client,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"k3s-etcd-tls={peer}", "--initial-cluster-state", "new",
               "--cert-file", pki.server.cert, "--key-file", pki.server.key,
               "--client-cert-auth", "--trusted-ca-file", pki.ca, "--log-level", "warn"]
        env = dict(os.environ)
        env.pop("ETCD_UNSUPPORTED_ARCH", None)
        srv = harness.Server(name="k3s-etcd-tls", kind="etcd3.5", endpoint=f"127.0.0.1:{port}",
                             proc=harness._spawn(cmd, d / "etcd.log", env), log_path=d / "etcd.log")
        store = Store("etcd", srv, client, pki)
    else:
        assert postgres_url
        dbname = harness.unique_db_name("k3s")
        db = harness.create_database(postgres_url, dbname)
        cmd = [harness.kine_binary(), "--listen-address", f"127.0.0.1:{port}", "--endpoint", db,
               "--metrics-bind-address", "0", *shlex.split(os.environ.get("KINE_E2E_ARGS", ""))]
        if pki:
            cmd += ["--server-cert-file", pki.server.cert, "--server-key-file", pki.server.key,
                    "--trusted-ca-file", pki.ca]
        srv = harness.Server(name=f"k3s-kine-{scheme}", kind="kine", endpoint=f"127.0.0.1:{port}",
                             proc=harness._spawn(cmd, d / "kine.log", dict(os.environ)), log_path=d / "kine.log")
        store = Store("kine", srv, f"{scheme}://127.0.0.1:{port}", pki, (postgres_url, dbname))
    _wait_store(store)
    return store


# --------------------------------------------------------------------------------------------
# K3s servers and a small REST client


def port_pair() -> int:
    """A free port P with P+1 free too (K3s serves on P, its kube-apiserver on P+1)."""
    for _ in range(100):
        p = harness.free_port()
        if p >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise RuntimeError("no two consecutive free ports")


class Api:
    """The admin kubeconfig K3s wrote: its server URL, CA and client certificate."""

    def __init__(self, kubeconfig: Path):
        try:
            cfg = yaml.safe_load(kubeconfig.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"{kubeconfig}: {e}") from e
        if not isinstance(cfg, dict) or not cfg.get("clusters") or not cfg.get("users"):
            raise ValueError(f"{kubeconfig}: not (yet) a kubeconfig")  # K3s may be writing it
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = cluster["server"]
        self.ca_data = base64.b64decode(cluster["certificate-authority-data"])
        d = kubeconfig.parent / (kubeconfig.stem + "-creds")
        d.mkdir(exist_ok=True)
        for name, key in (("ca.crt", None), ("client.crt", "client-certificate-data"), ("client.key", "client-key-data")):
            (d / name).write_bytes(self.ca_data if key is None else base64.b64decode(user[key]))
        self.ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        self.ctx.load_cert_chain(str(d / "client.crt"), str(d / "client.key"))
        u = urllib.parse.urlsplit(self.server)
        self.host, self.port = u.hostname, u.port

    def call(self, method: str, path: str, body=None, ctype: str = "application/json",
             timeout: float = 30) -> tuple[int, object]:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        try:
            data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
            headers = {"Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = ctype
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw

    def get(self, path: str):
        return self.call("GET", path)

    def post(self, path: str, body):
        return self.call("POST", path, body)

    def delete(self, path: str):
        return self.call("DELETE", path)


@dataclass
class K3s:
    name: str
    server: harness.Server
    work: Path
    port: int
    api: Api | None = None
    ready_after: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.work / "kubeconfig.yaml"


def k3s_cmd(store: Store, work: Path, port: int, token: str) -> list[str]:
    cmd = [kubebin.find("k3s") or "k3s", "server", "--disable-agent",
           f"--datastore-endpoint={store.url}", "--token", token,
           "--data-dir", str(work / "data"), "--bind-address", "127.0.0.1", "--https-listen-port", str(port),
           "--write-kubeconfig", str(work / "kubeconfig.yaml"),
           "--disable=traefik,servicelb,metrics-server,local-storage,coredns",
           "--disable-network-policy", "--disable-helm-controller", "--disable-cloud-controller",
           "--kube-controller-manager-arg=secure-port=0", "--kube-scheduler-arg=secure-port=0",
           f"--kube-apiserver-arg=etcd-compaction-interval={COMPACTION_INTERVAL}"]
    if store.pki:
        cmd += [f"--datastore-cafile={store.pki.ca}", f"--datastore-certfile={store.pki.client.cert}",
                f"--datastore-keyfile={store.pki.client.key}"]
    return cmd


def spawn_k3s(name: str, store: Store, parent: Path, token: str = TOKEN) -> K3s:
    work = parent / name
    work.mkdir()
    port = port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith("K3S_")}
    env[MARK] = f"{os.getpid()}/{name}"  # K3s rewrites its command line; its environment names it
    proc = harness._spawn(k3s_cmd(store, work, port, token), work / "k3s.log", env)
    srv = harness.Server(name=name, kind="k3s", endpoint=f"127.0.0.1:{port}", proc=proc, log_path=work / "k3s.log")
    return K3s(name, srv, work, port)


def wait_k3s(k: K3s, started: float, timeout: float = READY_TIMEOUT) -> K3s:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not k.server.alive():
            raise AssertionError(f"{k.name} exited with {k.server.proc.returncode}\n{k.server.log_tail(40)}")
        if k.kubeconfig.exists():
            try:
                k.api = k.api or Api(k.kubeconfig)
                status, body = k.api.get("/readyz")
                if status == 200 and body == "ok":
                    k.ready_after = time.monotonic() - started
                    return k
                last = f"{status} {body!r}"[:300]
            except (OSError, ssl.SSLError, http.client.HTTPException, ValueError, KeyError) as e:
                last = repr(e)
        time.sleep(0.5)
    raise AssertionError(f"{k.name} not ready after {timeout}s: {last}\n{k.server.log_tail(40)}")


def processes():
    """(pid, program name, command line, MARK value) of every process."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        mark = next((e.split(b"=", 1)[1].decode() for e in env if e.startswith(MARK.encode() + b"=")), None)
        yield int(pid), exe, cmdline, mark


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = f[1].split(":")
            raw = bytes.fromhex(addr)
            if len(raw) == 4:
                ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:
                ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            out.append((ip, int(port, 16)))
    return sorted(out)


def stop_k3s(k: K3s) -> list[str]:
    """Stops the process group; returns what was still running with its mark (then killed)."""
    k.server.stop()
    leftovers = []
    for pid, exe, cmdline, mark in processes():
        if mark == f"{os.getpid()}/{k.name}":
            leftovers.append(f"{pid} {exe}: {cmdline[:200]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return leftovers


# --------------------------------------------------------------------------------------------
# /etc/rancher: put back what was there


def _rancher_state() -> dict:
    link = RANCHER / "k3s" / "k3s.yaml"
    return {
        "dirs": {str(p): p.is_dir() for p in (RANCHER, RANCHER / "k3s", RANCHER / "node")},
        "password": (RANCHER / "node" / "password").exists(),
        "link": os.readlink(link) if link.is_symlink() else ("file" if link.exists() else None),
    }


def _ours(target: str | None) -> bool:
    """A kubeconfig link into a (gone) temp dir of this suite: an interrupted run's leftover."""
    return bool(target) and WORK_PREFIX in target and not os.path.exists(target)


def _restore_rancher(before: dict) -> None:
    link = RANCHER / "k3s" / "k3s.yaml"
    was = before["link"]
    if was is None or _ours(was):
        if link.is_symlink():
            link.unlink()
    elif was != "file":
        if link.is_symlink() or not link.exists():
            if link.is_symlink():
                link.unlink()
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(was, link)
    pw = RANCHER / "node" / "password"
    if not before["password"] and pw.exists():
        pw.unlink()
    for d in (RANCHER / "k3s", RANCHER / "node", RANCHER):
        if not before["dirs"][str(d)] and d.is_dir() and not any(d.iterdir()):
            d.rmdir()


# --------------------------------------------------------------------------------------------
# What a killed run (SIGKILL: no teardown) left behind


STALE = re.compile(r"kine-e2e-k3s-(?:etcd-)?(\d+)-|kine_e2e_k3s_(\d+)_")


def _dead(pid: str) -> bool:
    return int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}")


def reap_stale(postgres_url: str) -> list[str]:
    """K3s, etcd and kine processes, temp dirs and databases of an earlier run of this module whose
    pytest (the pid in their mark or names) is gone: killed, removed, dropped. Returns what it found."""
    found = []
    for pid, exe, cmdline, mark in processes():
        m = STALE.search(cmdline) if exe in ("etcd", "kine") else None
        owner = mark.split("/")[0] if mark else (m.group(1) or m.group(2)) if m else None
        if owner and _dead(owner):
            found.append(f"process {pid} {exe}: {cmdline[:120].strip()}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    tmp = Path(tempfile.gettempdir())
    for d in tmp.glob("kine-e2e-k3s-*"):
        m = STALE.search(d.name + "/")
        if m and _dead(m.group(1)):
            found.append(f"{d}")
            if d.name.endswith("-rancher.json"):  # what /etc/rancher held before that run
                try:
                    _restore_rancher(json.loads(d.read_text()))
                except (OSError, ValueError, KeyError):
                    pass
                d.unlink()
            else:
                shutil.rmtree(d, ignore_errors=True)
    rows = harness.psql(harness.db_url(postgres_url, "postgres"),
                        r"SELECT datname FROM pg_database WHERE datname LIKE 'kine\_e2e\_k3s\_%'", check=False)
    for name in rows.split():
        m = STALE.search(name)
        if m and _dead(m.group(2)):
            found.append(f"database {name}")
            harness.drop_database(postgres_url, name)
    return found


@pytest.fixture(scope="module")
def k3s_binary() -> str:
    """The k3s binary, or a skip (before PostgreSQL or anything else is started)."""
    return kubebin.require("k3s")["k3s"]


@pytest.fixture(scope="module")
def rancher(k3s_binary, postgres_url):
    stale = reap_stale(postgres_url)
    if stale:
        harness.log("test_k3s: removed what an interrupted run left: " + "; ".join(stale))
    before = _rancher_state()
    # Kept until the end, so that a run killed before its teardown is undone by the next one.
    state = Path(tempfile.gettempdir()) / f"{WORK_PREFIX}{os.getpid()}-rancher.json"
    state.write_text(json.dumps(before))
    try:
        yield before
    finally:
        _restore_rancher(before)
        state.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# The pair of clusters


@dataclass
class Cluster:
    store: Store
    k3s: K3s
    work: Path
    start_revision: int = 0
    extra: list = field(default_factory=list)  # more K3s servers started by tests

    @property
    def api(self) -> Api:
        assert self.k3s.api is not None
        return self.k3s.api


@pytest.fixture(scope="module", params=["http", "https"])
def pair(request, rancher, postgres_url):
    tls = request.param == "https"
    work = Path(tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-"))
    os.chmod(work, 0o755)
    stores: list[Store] = []
    servers: list[K3s] = []
    clusters: list[Cluster] = []
    try:
        pki = harness.make_pki(work, "kine-e2e-k3s-ca") if tls else None
        for kind in ("etcd", "kine"):
            stores.append(start_store(kind, work, pki, postgres_url))
        t0 = time.monotonic()
        for s in stores:
            servers.append(spawn_k3s(f"k3s-{s.kind}-{request.param}", s, work))
        for s, k in zip(stores, servers):
            wait_k3s(k, t0)
            clusters.append(Cluster(s, k, work, start_revision=s.revision()))
        harness.log("K3s ready after " + ", ".join(f"{c.store.kind} {c.k3s.ready_after:.1f}s" for c in clusters))
        yield tuple(clusters)
    finally:
        leftovers = []
        for c in clusters:
            for k in c.extra:
                leftovers += stop_k3s(k)
        for k in servers:
            leftovers += stop_k3s(k)
        for s in stores:
            s.stop()
        if os.environ.get("KINE_E2E_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        assert not leftovers, f"processes left running after K3s stopped (killed): {leftovers}"


def on_both(pair, fn):
    """fn(cluster) on the etcd and the kine cluster at once; (etcd result, kine result)."""
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fe, fk = ex.submit(fn, pair[0]), ex.submit(fn, pair[1])
        return fe.result(), fk.result()


def assert_same(e, k) -> None:
    assert k == e, f"kine differs from etcd:\n  etcd: {json.dumps(e, sort_keys=True)}\n  kine: {json.dumps(k, sort_keys=True)}"


def wait_for(fn, timeout: float, interval: float = 0.5):
    """fn() until it returns something truthy; the last value otherwise."""
    deadline = time.monotonic() + timeout
    v = fn()
    while not v and time.monotonic() < deadline:
        time.sleep(interval)
        v = fn()
    return v


def names(body) -> list[str]:
    return sorted(i["metadata"]["name"] for i in body.get("items", [])) if isinstance(body, dict) else [str(body)[:200]]


def reason(body) -> str | None:
    return body.get("reason") if isinstance(body, dict) else None


# --------------------------------------------------------------------------------------------
# Tests


def test_ready(pair):
    def run(c: Cluster) -> dict:
        st, ver = c.api.get("/version")
        _, ns = c.api.get("/api/v1/namespaces")
        st_ready, ready = c.api.get("/readyz?verbose")
        checks = sorted(l.split()[0] for l in str(ready).splitlines() if l.startswith("[+]"))
        boot = c.store.keys("/bootstrap")
        # K3s on P, its kube-apiserver on P+1, both on loopback only (nothing else with --disable-agent).
        sockets = [(ip, port - c.k3s.port) for ip, port in listening(c.k3s.server.proc.pid)]
        # Not compacted yet (test_apiserver_compaction checks that this read is refused later on).
        early = c.store.ctl("get", "/registry/namespaces/default", f"--rev={c.start_revision}", "--keys-only")
        return {"read at start revision": (early.returncode, early.stdout.split()), "listening (P+n)": sockets,
                "version": (st, ver.get("gitVersion") if isinstance(ver, dict) else ver),
                "namespaces": names(ns), "readyz": st_ready, "readyz checks": checks, "bootstrap keys": boot}

    e, k = on_both(pair, run)
    assert e["version"] == (200, "v1.25.0+k3s1")
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(e["namespaces"])
    assert e["readyz"] == 200 and "[+]etcd" in e["readyz checks"]
    assert e["read at start revision"] == (0, ["/registry/namespaces/default"])
    assert e["listening (P+n)"] == [("127.0.0.1", 0), ("127.0.0.1", 1)]
    assert len(e["bootstrap keys"]) == 1 and re.fullmatch(r"/bootstrap/[0-9a-f]{12}", e["bootstrap keys"][0])
    assert_same(e, k)


def test_workload(pair):
    ns = "e2e-work"
    base = f"/api/v1/namespaces/{ns}"

    def cm(name: str, data: dict, labels: dict | None = None) -> dict:
        meta = {"name": name, **({"labels": labels} if labels else {})}
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}

    def run(c: Cluster) -> dict:
        a = c.api
        out: dict = {}
        out["create namespace"] = a.post("/api/v1/namespaces", {"metadata": {"name": ns}})[0]
        # The root-ca-cert-publisher controller puts kube-root-ca.crt in every namespace.
        out["kube-root-ca.crt published"] = bool(wait_for(lambda: a.get(f"{base}/configmaps/kube-root-ca.crt")[0] == 200, 30))
        st, lst = a.get(f"{base}/configmaps")
        rv = lst["metadata"]["resourceVersion"]
        for name, labels in (("cm-a", {"app": "x"}), ("cm-b", None), ("cm-c", {"app": "x"})):
            out[f"create {name}"] = a.post(f"{base}/configmaps", cm(name, {"k": name}, labels))[0]
        st, body = a.post(f"{base}/configmaps", cm("cm-a", {"k": "again"}))
        out["create cm-a again"] = (st, reason(body))
        st, got = a.get(f"{base}/configmaps/cm-a")
        out["get cm-a"] = (st, got.get("data"))
        old = json.loads(json.dumps(got))
        got["data"] = {"k": "updated"}
        st, upd = a.call("PUT", f"{base}/configmaps/cm-a", got)
        out["update cm-a"] = (st, upd.get("data"))
        old["data"] = {"k": "stale"}
        st, body = a.call("PUT", f"{base}/configmaps/cm-a", old)
        out["stale update cm-a"] = (st, reason(body))
        st, body = a.call("PATCH", f"{base}/configmaps/cm-b", {"data": {"k2": "patched"}}, "application/merge-patch+json")
        out["merge patch cm-b"] = (st, body.get("data"))
        out["label app=x"] = names(a.get(f"{base}/configmaps?labelSelector=app%3Dx")[1])
        pages, cont, remaining = [], "", []
        while True:
            st, page = a.get(f"{base}/configmaps?limit=1" + (f"&continue={urllib.parse.quote(cont)}" if cont else ""))
            if st != 200:
                pages.append(("status", st))
                break
            pages.append(names(page))
            remaining.append(page["metadata"].get("remainingItemCount"))
            cont = page["metadata"].get("continue")
            if not cont:
                break
        out["pages of 1"] = pages
        out["remainingItemCount"] = remaining
        st, body = a.delete(f"{base}/configmaps/cm-c")
        out["delete cm-c"] = st
        st, body = a.get(f"{base}/configmaps/cm-c")
        out["get deleted cm-c"] = (st, reason(body))
        out["delete cm-c again"] = (lambda r: (r[0], reason(r[1])))(a.delete(f"{base}/configmaps/cm-c"))
        out["list"] = names(a.get(f"{base}/configmaps")[1])
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "type": "Opaque",
                  "data": {"password": base64.b64encode(b"hunter2").decode()}}
        out["create secret"] = a.post(f"{base}/secrets", secret)[0]
        st, s = a.get(f"{base}/secrets/s1")
        out["get secret"] = (st, base64.b64decode(s["data"]["password"]).decode() if st == 200 else None)
        out["secret in datastore"] = c.store.keys(f"/registry/secrets/{ns}/")
        out["delete secret"] = a.delete(f"{base}/secrets/s1")[0]
        # A watch from the list before the writes replays them (the apiserver closes it after 2 s).
        st, stream = a.call("GET", f"{base}/configmaps?watch=1&resourceVersion={rv}&timeoutSeconds=2")
        events = [json.loads(l) for l in str(stream).splitlines() if l.strip()] if st == 200 else [str(stream)[:300]]
        out["watch"] = (st, [(ev.get("type"), ev.get("object", {}).get("metadata", {}).get("name"),
                              ev.get("object", {}).get("data")) for ev in events if isinstance(ev, dict)])
        out["datastore keys"] = c.store.keys(f"/registry/configmaps/{ns}/")
        out["secret keys after delete"] = c.store.keys(f"/registry/secrets/{ns}/")
        return out

    e, k = on_both(pair, run)
    assert e["create cm-a again"] == (409, "AlreadyExists")
    assert e["stale update cm-a"] == (409, "Conflict")
    assert e["get deleted cm-c"] == (404, "NotFound")
    assert e["list"] == ["cm-a", "cm-b", "kube-root-ca.crt"]
    assert e["pages of 1"] == [["cm-a"], ["cm-b"], ["cm-c"], ["kube-root-ca.crt"]]
    assert e["get secret"] == (200, "hunter2") and e["secret in datastore"] == [f"/registry/secrets/{ns}/s1"]
    assert [t for t, n, _ in e["watch"][1]] == ["ADDED", "ADDED", "ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert e["datastore keys"] == [f"/registry/configmaps/{ns}/{n}" for n in ("cm-a", "cm-b", "kube-root-ca.crt")]
    assert_same(e, k)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.e2e.kine.io"},
    "spec": {"group": "e2e.kine.io", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_crd_and_custom_resources(pair):
    crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    widgets = "/apis/e2e.kine.io/v1/namespaces/default/widgets"

    def run(c: Cluster) -> dict:
        a = c.api
        out: dict = {"create crd": a.post(crd_path, CRD)[0]}

        def established():
            st, body = a.get(f"{crd_path}/widgets.e2e.kine.io")
            conds = {x["type"]: x["status"] for x in (body.get("status") or {}).get("conditions") or []} if st == 200 else {}
            return conds.get("Established") == "True"

        out["established"] = bool(wait_for(established, 30))
        out["widgets served"] = bool(wait_for(lambda: a.get(widgets)[0] == 200, 30))
        for n in ("w1", "w2"):
            out[f"create {n}"] = a.post(widgets, {"apiVersion": "e2e.kine.io/v1", "kind": "Widget",
                                                  "metadata": {"name": n}, "spec": {"size": 1}})[0]
        out["list"] = names(a.get(widgets)[1])
        st, body = a.call("PATCH", f"{widgets}/w1", {"spec": {"size": 3}}, "application/merge-patch+json")
        out["patch w1"] = (st, body.get("spec"))
        out["delete w2"] = a.delete(f"{widgets}/w2")[0]
        out["list after delete"] = names(a.get(widgets)[1])
        out["datastore keys"] = c.store.keys("/registry/e2e.kine.io/widgets/")
        out["delete crd"] = a.delete(f"{crd_path}/widgets.e2e.kine.io")[0]
        out["crd gone"] = bool(wait_for(lambda: a.get(f"{crd_path}/widgets.e2e.kine.io")[0] == 404, 60))
        out["datastore keys after"] = c.store.keys("/registry/e2e.kine.io/")
        return out

    e, k = on_both(pair, run)
    assert e["create crd"] == 201 and e["established"] and e["widgets served"]
    assert e["list"] == ["w1", "w2"] and e["patch w1"] == (200, {"size": 3}) and e["list after delete"] == ["w1"]
    assert e["datastore keys"] == ["/registry/e2e.kine.io/widgets/default/w1"]
    assert e["crd gone"] and e["datastore keys after"] == []
    assert_same(e, k)


def test_controllers_deployment_and_namespace_deletion(pair):
    ns = "e2e-ctrl"
    deploy = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]}}},
    }

    def run(c: Cluster) -> dict:
        a = c.api
        out: dict = {"create namespace": a.post("/api/v1/namespaces", {"metadata": {"name": ns}})[0]}
        out["create deployment"] = a.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deploy)[0]

        def rs_and_pods():
            _, rs = a.get(f"/apis/apps/v1/namespaces/{ns}/replicasets")
            _, pods = a.get(f"/api/v1/namespaces/{ns}/pods")
            rs_items, pod_items = rs.get("items", []), pods.get("items", [])
            # (phase, node): K3s v1.25 starts its scheduler only once a node exists, so with
            # --disable-agent the Pods stay Pending on no node.
            sched = sorted((p["status"].get("phase"), p["spec"].get("nodeName")) for p in pod_items)
            return {"replicasets": [[o["kind"] for o in r["metadata"].get("ownerReferences", [])] for r in rs_items],
                    "pod owners": sorted(o["kind"] for p in pod_items for o in p["metadata"].get("ownerReferences", [])),
                    "pods": sched}

        want = {"replicasets": [["Deployment"]], "pod owners": ["ReplicaSet", "ReplicaSet"],
                "pods": [("Pending", None), ("Pending", None)]}
        out["controllers"] = wait_for(lambda: (lambda v: v if v == want else None)(rs_and_pods()), 90) or rs_and_pods()
        st, body = a.call("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale", {"spec": {"replicas": 1}},
                          "application/merge-patch+json")
        out["scale to 1"] = (st, body.get("spec"))
        out["pods after scale"] = len(wait_for(lambda: (lambda p: p if len(p) == 1 else None)(
            a.get(f"/api/v1/namespaces/{ns}/pods")[1].get("items", [])), 60) or a.get(f"/api/v1/namespaces/{ns}/pods")[1]["items"])
        out["leases"] = names(a.get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases")[1])
        out["keys before"] = sorted({k.split("/")[2] for k in c.store.keys("/registry/") if f"/{ns}/" in k} & {"deployments", "replicasets", "pods"})
        st, body = a.delete(f"/api/v1/namespaces/{ns}")
        out["delete namespace"] = (st, body.get("status", {}).get("phase") if isinstance(body, dict) else body)
        out["namespace gone"] = bool(wait_for(lambda: a.get(f"/api/v1/namespaces/{ns}")[0] == 404, 90))
        out["keys after"] = [k for k in c.store.keys("/registry/") if f"/{ns}/" in k or k.endswith(f"/{ns}")]
        return out

    e, k = on_both(pair, run)
    assert e["controllers"] == {"replicasets": [["Deployment"]], "pod owners": ["ReplicaSet", "ReplicaSet"],
                                "pods": [("Pending", None), ("Pending", None)]}
    assert e["leases"] == ["k3s", "kube-controller-manager"]
    assert e["pods after scale"] == 1 and e["keys before"] == ["deployments", "pods", "replicasets"]
    assert e["delete namespace"] == (200, "Terminating") and e["namespace gone"] and e["keys after"] == []
    assert_same(json.loads(json.dumps(e)), json.loads(json.dumps(k)))


def test_second_server_joins(pair):
    def run(c: Cluster) -> dict:
        t0 = time.monotonic()
        k2 = spawn_k3s(f"{c.k3s.name}-second", c.store, c.work)
        c.extra.append(k2)
        wait_k3s(k2, t0)
        harness.log(f"{k2.name} ready after {k2.ready_after:.1f}s")
        a1, a2 = c.api, k2.api
        out = {"same CA": a2.ca_data == a1.ca_data, "readyz": a2.get("/readyz")}
        ns = "e2e-join"
        out["create namespace on first"] = a1.post("/api/v1/namespaces", {"metadata": {"name": ns}})[0]
        out["create on first"] = a1.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "from-first"}})[0]
        out["seen by second"] = wait_for(lambda: a2.get(f"/api/v1/namespaces/{ns}/configmaps/from-first")[0] == 200, 20)
        out["create on second"] = a2.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "from-second"}})[0]
        out["seen by first"] = wait_for(lambda: a1.get(f"/api/v1/namespaces/{ns}/configmaps/from-second")[0] == 200, 20)
        out["first lists"] = [n for n in names(a1.get(f"/api/v1/namespaces/{ns}/configmaps")[1]) if n.startswith("from-")]
        out["second lists"] = [n for n in names(a2.get(f"/api/v1/namespaces/{ns}/configmaps")[1]) if n.startswith("from-")]
        # resourceVersion=0 lists come from each apiserver's watch cache, fed by its datastore watch.
        cached = f"/api/v1/namespaces/{ns}/configmaps?resourceVersion=0"
        out["in second's watch cache"] = bool(wait_for(lambda: "from-first" in names(a2.get(cached)[1]), 20))
        out["in first's watch cache"] = bool(wait_for(lambda: "from-second" in names(a1.get(cached)[1]), 20))
        out["namespaces equal"] = names(a1.get("/api/v1/namespaces")[1]) == names(a2.get("/api/v1/namespaces")[1])
        leftovers = stop_k3s(k2)
        c.extra.remove(k2)
        out["leftover processes"] = leftovers
        out["first still ready"] = c.api.get("/readyz")
        return out

    e, k = on_both(pair, run)
    assert e["same CA"] and e["readyz"] == (200, "ok") and e["seen by second"] and e["seen by first"]
    assert e["first lists"] == e["second lists"] == ["from-first", "from-second"] and e["namespaces equal"]
    assert e["in second's watch cache"] and e["in first's watch cache"]
    assert e["leftover processes"] == [] and e["first still ready"] == (200, "ok")
    assert_same(e, k)


def test_wrong_token_refused(pair):
    def run(c: Cluster) -> dict:
        k = spawn_k3s(f"{c.k3s.name}-wrong-token", c.store, c.work, token="not-" + TOKEN)
        c.extra.append(k)
        try:
            rc = k.server.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            rc = None
        fatal = [l for l in k.server.log_path.read_text(errors="replace").splitlines() if "level=fatal" in l]
        leftovers = stop_k3s(k)
        c.extra.remove(k)
        return {"exit": rc, "fatal": [re.sub(r'^time="[^"]*" ', "", l) for l in fatal],
                "kubeconfig written": k.kubeconfig.exists(), "leftover processes": leftovers,
                "bootstrap keys": len(c.store.keys("/bootstrap"))}

    e, k = on_both(pair, run)
    assert e["exit"] == 1 and any(BAD_TOKEN_ERROR in l for l in e["fatal"]), e
    assert e["bootstrap keys"] == 1
    assert_same(e, k)


def test_apiserver_compaction(pair):
    """Runs last in its group: by then the 10 s compactor has had several turns."""

    def run(c: Cluster) -> dict:
        def compacted():
            r = c.store.ctl("get", "/registry/namespaces/default", f"--rev={c.start_revision}")
            return r if r.returncode != 0 else None

        # What the datastore holds by now, by top-level group (/registry/<resource>, /bootstrap/<hash>, …).
        every = c.store.ctl("get", "", "--from-key", "--keys-only")
        # (Not /registry/masterleases/<ip>: both servers advertise the host's address, and the one that
        # stopped deleted that key until the other's next 10 s reconcile writes it again.)
        groups = sorted({"/".join(k.split("/")[:3]) for k in every.stdout.split("\n") if k} - {"/registry/masterleases"})
        r = wait_for(compacted, 60, 2) or c.store.ctl("get", "/registry/namespaces/default", f"--rev={c.start_revision}")
        errs = [l.strip() for l in r.stderr.splitlines() if l.startswith("Error")]
        kv = json.loads(c.store.ctl("get", "compact_rev_key", "-w", "json").stdout).get("kvs", [{}])[0]
        return {"key groups": groups, "read below compaction": (r.returncode, errs), "compact_rev_key version >= 2": int(kv.get("version", 0)) >= 2,
                "compacted revision >= start": int(base64.b64decode(kv.get("value", "MA==")) or 0) >= c.start_revision,
                "still ready": c.api.get("/readyz"), "list after": c.api.get("/api/v1/namespaces/default")[0]}

    e, k = on_both(pair, run)
    assert e["read below compaction"] == (1, ["Error: etcdserver: mvcc: required revision has been compacted"])
    assert e["compact_rev_key version >= 2"] and e["compacted revision >= start"]
    assert e["still ready"] == (200, "ok") and e["list after"] == 200
    assert {"compact_rev_key", "/registry/namespaces", "/registry/configmaps", "/registry/leases"} <= set(e["key groups"])
    assert_same(e, k)
