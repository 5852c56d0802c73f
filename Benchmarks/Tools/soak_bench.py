#!/usr/bin/env python3
"""Soak (issue 23): Kubernetes-like churn through kube-apiserver on kine for a long time, on one node
and on the HA pair: `scripts/bench.sh --only soak`.

    soak_bench.py --kine BIN --results DIR --work DIR [--doc MD --plots DIR] [--minutes M]
                  [--phases single,pair] [--rate R] [--clients N] [--sample S] [--warmup S]
                  [--cooldown S] [--no-ha]
    soak_bench.py --report DIR/soak.json --doc MD --plots DIR      # re-render the doc section only

Phases, one after the other, each on fresh servers (started like kube_bench.py does):

* `single`: kine (--kine) on its own throw-away PostgreSQL (scripts/postgres.sh through
  harness.LocalPostgres), one kube-apiserver v1.36.2 on it (Tests/e2e/kube.py);
* `pair` (root): the HA lab of Lab/hanet.py (two network namespaces, a PostgreSQL and a kine each,
  sync replication), one kube-apiserver per node in the root namespace talking only to its own
  node's kine over the node's unix socket; half the clients go through the leader's apiserver, half
  through the follower's.

Every apiserver runs with `--event-ttl=1m` (each Event is written with an etcd lease, so leases
expire all the time) and `--etcd-compaction-interval=1m` (the apiserver compacts every minute; with
two apiservers, whichever wins the compact_rev_key race).

The churn: --clients Python threads (default 8), each with its own HTTPS keep-alive connection,
paced so that together they send --rate requests/s (default 60; all are writes), each request
one of (weights in %): ConfigMap create-or-delete 30 (each client keeps 50 live ConfigMaps: below
that it creates, at it it deletes its oldest, so creates and deletes balance), ConfigMap update 30
(PUT with the resourceVersion of its last answer), Secret create-or-delete 8 (10 live per client),
Secret update 7, Event create 20 (TTL 1 m), Event update 5 (merge-patch of the count of one of its
Events created in the last 30 s). A client that falls more than 2 s behind its schedule drops the
backlog (counted) instead of bursting.

Sampled every --sample s (default 10) during the churn (--minutes, default 30) and a --cooldown
(default 180 s) without churn after it (the Events' leases expire, the next compactions remove
their rows):
  - RSS (VmRSS) of each kine process and each apiserver;
  - per PostgreSQL: pg_total_relation_size('kine') (table + indexes + TOAST),
    pg_relation_size('kine'), pg_database_size, the WAL directory's size, kine's rows (all, deleted,
    /registry/events/, with a lease), kine_leases' rows, n_live_tup / n_dead_tup and
    (auto)vacuum counts of the kine table;
  - per kine, from its /metrics: leases, read-cache keys / tombstones / bytes, watchers, current
    and compacted revision, compactions, compacted rows, expired leases;
  - p50 / p90 / p99 / max latency of the churn requests that completed in the window (all, per
    operation and per apiserver), requests/s, errors;
  - CPU (cores) used in the window by kine, PostgreSQL, the apiservers, this client and the rest
    of the machine (another run on the shared cores).

At the end of each phase: the ConfigMaps and Secrets the apiserver lists against what the clients
think is live, and the Events left after the cooldown (all should have expired). A summary per
phase (post-warm-up churn: median of the first third vs median of the last third, least-squares
slope per 10 min, value at the end of the cooldown) is printed and written.

Results: DIR/soak.json (config, machine, every sample, the summaries) and the apiservers' and
kines' logs in DIR/soak-logs/. With --doc, after a run that did not fail, the text between the SOAK
markers of that file and soak-<phase>.png in --plots (matplotlib) are rewritten. Everything
started here (apiservers, kine, PostgreSQL, the lab's namespaces and processes, temp dirs) is
stopped and removed at the end, pass or fail (finally; SIGTERM/SIGINT unwind into it).
"""
from __future__ import annotations

import argparse
import base64
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

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
# kube_bench puts Tests/e2e and Lab on sys.path and brings the HTTPS client and helpers reused here.
from kube_bench import RV_RE, Conn, machine_busy_ticks, pct, self_ticks  # noqa: E402
import harness  # noqa: E402
import kube  # noqa: E402
import kubebin  # noqa: E402
from procstat import pg_ticks, proc_ticks  # noqa: E402

BEGIN = "<!-- BEGIN GENERATED SOAK (scripts/bench.sh --only soak) -->"
END = "<!-- END GENERATED SOAK -->"
CLK_TCK = os.sysconf("SC_CLK_TCK")
NPROC = os.cpu_count() or 1
NS = "soak"
APISERVER_ARGS = ["--event-ttl=1m", "--etcd-compaction-interval=1m"]
WEIGHTS = {"cm-churn": 30, "cm-update": 30, "secret-churn": 8, "secret-update": 7, "event-create": 20, "event-patch": 5}
LIVE_CMS, LIVE_SECRETS = 50, 10
CM_VALUE_BYTES, SECRET_BYTES = 512, 256
EVENT_PATCH_AGE = 30.0
PHASES = ("single", "pair")
# Error lines every apiserver of this layout logs while it starts (no cluster around it).
STARTUP_NOISE = ("The manifest file is empty", "Failed to ensure lease exists", "Found stale data")
METRICS = {  # kine /metrics sample -> short name in the results
    "kine_leases": "leases",
    "kine_read_cache_keys": "cacheKeys",
    "kine_read_cache_tombstones": "cacheTombstones",
    "kine_read_cache_bytes": "cacheBytes",
    "etcd_debugging_mvcc_watcher_total": "watchers",
    "etcd_debugging_mvcc_watch_stream_total": "watchStreams",
    "etcd_debugging_mvcc_current_revision": "revision",
    "etcd_debugging_mvcc_compact_revision": "compactRevision",
    "etcd_mvcc_db_total_size_in_bytes": "dbSizeBytes",
    'kine_compact_total{result="success"}': "compactions",
    'kine_compact_total{result="conflict"}': "compactionConflicts",
    'kine_compact_total{result="error"}': "compactionErrors",
    "etcd_debugging_mvcc_db_compaction_keys_total": "compactedRows",
    "kine_lease_expired_total": "leasesExpired",
    "etcd_debugging_lease_granted_total": "leasesGranted",
    "etcd_debugging_lease_revoked_total": "leasesRevoked",
}
PG_SQL = """
SELECT pg_total_relation_size('kine'), pg_relation_size('kine'), pg_database_size(current_database()),
       (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()),
       k.n, k.deleted, k.events, k.leased, (SELECT count(*) FROM kine_leases),
       (SELECT count(*) FROM kine_leases WHERE expires_at < now() - interval '5 seconds'),
       (SELECT coalesce(max(ttl), 0) FROM kine_leases),
       s.n_live_tup, s.n_dead_tup, s.autovacuum_count, s.vacuum_count, s.autoanalyze_count
FROM (SELECT count(*) AS n, count(*) FILTER (WHERE deleted <> 0) AS deleted,
             count(*) FILTER (WHERE name LIKE '/registry/events/%') AS events,
             count(*) FILTER (WHERE kv_lease IS NOT NULL) AS leased FROM kine) k,
     pg_stat_user_tables s WHERE s.relname = 'kine'
"""
PG_FIELDS = ("totalBytes", "tableBytes", "databaseBytes", "walBytes", "rows", "deletedRows", "eventRows",
             "leasedRows", "leases", "overdueLeases", "maxLeaseTtl", "liveTuples", "deadTuples", "autovacuums", "vacuums", "autoanalyzes")


def log(msg: str) -> None:
    print(f"bench.sh: {msg}", file=sys.stderr, flush=True)


def rss_kb(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def parse_metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if name in METRICS:
                try:
                    out[METRICS[name]] = float(value)
                except ValueError:
                    pass
    return out


def tcp_metrics(endpoint: str) -> dict[str, float]:
    host, port = endpoint.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        c.request("GET", "/metrics")
        return parse_metrics(c.getresponse().read().decode())
    finally:
        c.close()


def lat_stats(v: list[float]) -> dict:
    v = sorted(v)
    return {"n": len(v), "p50": pct(v, .5), "p90": pct(v, .9), "p99": pct(v, .99), "max": v[-1] if v else 0.0}


def now_stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------------------- client


class SoakConn(Conn):
    """kube_bench's keep-alive HTTPS connection, with a content type per request (merge-patch)."""

    def send(self, method: str, path: str, body: bytes | None = None,
             ctype: str = "application/json") -> tuple[int, bytes]:
        headers = dict(self.headers, **{"Content-Type": ctype}) if body is not None else self.headers
        try:
            self.c.request(method, path, body=body, headers=headers)
            r = self.c.getresponse()
            return r.status, r.read()
        except Exception:
            self.close()
            try:
                self.c = self._new()  # the next request gets a fresh connection
            except Exception:  # noqa: BLE001  (the apiserver is away: try again next time)
                pass
            raise


class Recorder:
    """Every finished churn request: (monotonic end, target, op, latency ms or None, error kind)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple] = []

    def add(self, item: tuple) -> None:
        with self.lock:
            self.items.append(item)

    def drain(self) -> list[tuple]:
        with self.lock:
            out, self.items = self.items, []
        return out


class Worker:
    """One churn client: its own connection, pools of live ConfigMaps and Secrets, recent Events."""

    def __init__(self, tid: int, target: str, api: kube.APIServer, interval: float, stop: threading.Event,
                 rec: Recorder, seed: int):
        self.tid, self.target, self.api, self.interval = tid, target, api, interval
        self.stop, self.rec = stop, rec
        self.rng = random.Random(seed)
        self.cms: list[list[str]] = []       # [name, resourceVersion], oldest first
        self.secrets: list[list[str]] = []
        self.events: list[list] = []         # [name, created (monotonic), count]
        self.seq = 0
        self.behind = 0
        self.samples: list[str] = []
        self.ops = list(WEIGHTS)
        self.weights = [WEIGHTS[o] for o in self.ops]
        self.thread = threading.Thread(target=self.run, name=f"soak-{target}-{tid}", daemon=True)

    def run(self) -> None:
        conn = None
        next_t = time.monotonic() + self.rng.random() * self.interval
        while not self.stop.is_set():
            wait = next_t - time.monotonic()
            if wait > 0 and self.stop.wait(wait):
                break
            next_t += self.interval
            if time.monotonic() - next_t > 2.0:  # more than 2 s behind: drop the backlog
                self.behind += 1
                next_t = time.monotonic()
            if conn is None:
                try:
                    conn = SoakConn(self.api.host, self.api.port, self.api.token)
                except Exception as e:  # noqa: BLE001
                    self.rec.add((time.monotonic(), self.target, "connect", None, "connect"))
                    self.note(f"connect: {e!r}")
                    continue
            self.one(conn, self.rng.choices(self.ops, self.weights)[0])
        if conn is not None:
            conn.close()

    def note(self, s: str) -> None:
        if len(self.samples) < 5:
            self.samples.append(s[:300])

    def call(self, conn: SoakConn, op: str, method: str, path: str, body: dict | None, want: tuple,
             ctype: str = "application/json") -> tuple[int, bytes] | None:
        data = json.dumps(body).encode() if body is not None else None
        t1 = time.perf_counter()
        try:
            st, resp = conn.send(method, path, data, ctype)
        except (socket.timeout, TimeoutError) as e:
            self.rec.add((time.monotonic(), self.target, op, None, "client timeout"))
            self.note(f"{op}: {e!r}")
            return None
        except Exception as e:  # noqa: BLE001
            self.rec.add((time.monotonic(), self.target, op, None, "connection"))
            self.note(f"{op}: {e!r}")
            return None
        ms = (time.perf_counter() - t1) * 1000
        if st in want:
            self.rec.add((time.monotonic(), self.target, op, ms, None))
        else:
            self.rec.add((time.monotonic(), self.target, op, None, str(st)))
            self.note(f"{op}: {st} {resp[:200]!r}")
        return st, resp

    def name(self, kind: str) -> str:
        self.seq += 1
        return f"{kind}-{self.target}-{self.tid}-{self.seq}"

    def one(self, conn: SoakConn, op: str) -> None:
        base = f"/api/v1/namespaces/{NS}"
        if op in ("cm-churn", "cm-update", "secret-churn", "secret-update"):
            secret = op.startswith("secret")
            pool, live = (self.secrets, LIVE_SECRETS) if secret else (self.cms, LIVE_CMS)
            res = "secrets" if secret else "configmaps"
            kind = "secret" if secret else "cm"
            if op.endswith("update") and pool:
                entry = self.rng.choice(pool)
                body = self.obj(secret, entry[0], entry[1])
                r = self.call(conn, f"{kind}-update", "PUT", f"{base}/{res}/{entry[0]}", body, (200,))
                if r and r[0] == 200:
                    m = RV_RE.search(r[1])
                    entry[1] = m.group(1).decode() if m else ""
                elif r and r[0] == 409:  # someone else's version: re-read it
                    try:
                        st, d = conn.send("GET", f"{base}/{res}/{entry[0]}")
                        m = RV_RE.search(d)
                        entry[1] = m.group(1).decode() if m else entry[1]
                    except Exception:  # noqa: BLE001
                        pass
            elif len(pool) >= live:
                entry = pool.pop(0)
                self.call(conn, f"{kind}-delete", "DELETE", f"{base}/{res}/{entry[0]}", None, (200, 202))
            else:
                name = self.name(kind)
                r = self.call(conn, f"{kind}-create", "POST", f"{base}/{res}", self.obj(secret, name), (201,))
                if r and r[0] == 201:
                    m = RV_RE.search(r[1])
                    pool.append([name, m.group(1).decode() if m else ""])
        elif op == "event-patch" and self.events:
            now = time.monotonic()
            self.events = [e for e in self.events if now - e[1] < EVENT_PATCH_AGE]
            if self.events:
                e = self.rng.choice(self.events)
                e[2] += 1
                self.call(conn, "event-patch", "PATCH", f"{base}/events/{e[0]}",
                          {"count": e[2], "lastTimestamp": now_stamp()}, (200,), "application/merge-patch+json")
                return
            self.one(conn, "event-create")
        else:  # event-create (and event-patch with no recent Event)
            name = self.name("ev")
            cm = self.cms[-1][0] if self.cms else "none"
            stamp = now_stamp()
            body = {"apiVersion": "v1", "kind": "Event",
                    "metadata": {"name": name, "namespace": NS},
                    "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": NS, "name": cm},
                    "reason": "SoakChurn", "message": f"soak client {self.tid} touched {cm} ({self.seq})",
                    "type": "Normal", "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
                    "source": {"component": "soak-bench", "host": "soak"}}
            r = self.call(conn, "event-create", "POST", f"{base}/events", body, (201,))
            if r and r[0] == 201:
                self.events.append([name, time.monotonic(), 1])

    def obj(self, secret: bool, name: str, rv: str | None = None) -> dict:
        meta = {"name": name, "namespace": NS, "labels": {"app": "soak", "client": str(self.tid)}}
        if rv:
            meta["resourceVersion"] = rv
        if secret:
            raw = self.rng.randbytes(SECRET_BYTES)
            return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                    "data": {"key": base64.b64encode(raw).decode()}}
        val = f"{self.seq}-{self.rng.random():.12f}-"
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": {"v": (val * (CM_VALUE_BYTES // len(val) + 1))[:CM_VALUE_BYTES]}}


# ---------------------------------------------------------------------------------------- phases


class Phase:
    """A store (one kine, or the pair) with its apiserver(s), sampled while clients churn."""

    name = ""

    def __init__(self, bench: "SoakBench"):
        self.b = bench
        self.apis: dict[str, kube.APIServer] = {}   # target -> apiserver
        self.kines: dict[str, int] = {}             # label -> pid
        self.pgs: dict[str, int | None] = {}        # label -> postmaster pid
        self.notes: list[str] = []
        self.logs: dict[str, Path] = {}

    def start_apis(self, pending: list[tuple[str, str]]) -> None:
        started = []
        for target, servers in pending:
            d = self.b.work / f"api-{self.name}-{target}"
            (d / "certs").mkdir(parents=True, exist_ok=True)
            f = self.b.files
            files = kube.KubeFiles(workdir=d, sa_key=f.sa_key, sa_pub=f.sa_pub, tokens_csv=f.tokens_csv,
                                   token=f.token, cert_dir=d / "certs")
            api = kube.start_apiserver(f"soak-{self.name}-{target}", servers, workdir=d, files=files,
                                       binary=self.b.apiserver_bin, extra_args=APISERVER_ARGS, wait=False)
            self.apis[target] = api
            started.append(api)
        for api in started:
            kube.wait_ready(api, 180)
            log(f"  apiserver {api.name}: {api.url} (pid {api.proc.pid})")

    def pg_sample(self) -> dict[str, dict | None]:
        raise NotImplementedError

    def metrics_sample(self) -> dict[str, dict | None]:
        raise NotImplementedError

    def roles(self) -> str:
        return ""

    def stop(self, logdir: Path) -> None:
        raise NotImplementedError

    def stop_apis(self, logdir: Path) -> None:
        for api in self.apis.values():
            api.stop()
            try:
                shutil.copy(api.log_path, logdir / f"{api.name}.log")
            except OSError:
                pass
            self.scan_log(api)

    def scan_log(self, api: kube.APIServer) -> None:
        """Notes the apiserver's error lines (klog `E`) by message, leaving out its start-up noise."""
        counts: dict[str, int] = {}
        for line in api.log_text().splitlines():
            m = re.match(r"E\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)", line)
            if m and not any(x in m.group(1) for x in STARTUP_NOISE):
                sig = re.sub(r"\b\d+\b", "N", m.group(1))[:110]
                counts[sig] = counts.get(sig, 0) + 1
        if counts:
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
            self.notes.append(f"{api.name} log: {sum(counts.values())} error lines; "
                              + "; ".join(f"{n} x `{sig}`" for sig, n in top))


class SinglePhase(Phase):
    name = "single"

    def start(self) -> None:
        log("single node: PostgreSQL (scripts/postgres.sh), kine, kube-apiserver")
        self.pg = harness.LocalPostgres()
        url = self.pg.start()
        self.url = f"{url.rsplit('/', 1)[0]}/kubernetes"
        self.kine = harness.start_kine("soak-kine", self.url)
        log(f"  kine {self.kine.endpoint} (pid {self.kine.proc.pid}) on {self.url}")
        self.kines = {"kine": self.kine.proc.pid}
        self.pgs = {"pg": self.b.postmaster(Path(self.pg.datadir) / "pg")}
        self.start_apis([("single", f"http://{self.kine.endpoint}")])

    def pg_sample(self) -> dict[str, dict | None]:
        try:
            row = harness.psql(self.url, PG_SQL).strip().split("|")
            return {"pg": dict(zip(PG_FIELDS, (int(x) if x else None for x in row)))}
        except Exception as e:  # noqa: BLE001
            self.b.note_once(f"single: PostgreSQL sample failed: {e}"[:300])
            return {"pg": None}

    def metrics_sample(self) -> dict[str, dict | None]:
        try:
            return {"kine": tcp_metrics(self.kine.endpoint)}
        except Exception as e:  # noqa: BLE001
            self.b.note_once(f"single: kine /metrics failed: {e!r}"[:300])
            return {"kine": None}

    def stop(self, logdir: Path) -> None:
        self.stop_apis(logdir)
        kine = getattr(self, "kine", None)
        if kine is not None:
            try:
                shutil.copy(kine.log_path, logdir / "soak-single-kine.log")
            except OSError:
                pass
            kine.stop()
        pg = getattr(self, "pg", None)
        if pg is not None:
            pg.stop()


class PairPhase(Phase):
    name = "pair"

    def start(self) -> None:
        import hanet
        log("HA pair: lab (hanet.py), sync replication, node a leads; an apiserver per node")
        self.lab = hanet.HALab(kine_bin=self.b.a.kine)
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
        self.kines = {f"kine-{n}": self.lab.node(n).kine_pid for n in ("a", "b")}
        self.pgs = {f"pg-{n}": self.lab.postgres_pid(n) for n in ("a", "b")}
        log(f"  kine a pid {self.kines['kine-a']}, kine b pid {self.kines['kine-b']}")
        self.start_apis([("leader", f"unix://{self.lab.node('a').sock}"),
                         ("follower", f"unix://{self.lab.node('b').sock}")])

    def pg_sample(self) -> dict[str, dict | None]:
        out: dict[str, dict | None] = {}
        for n in ("a", "b"):
            try:
                row = self.lab.psql(n, PG_SQL, timeout=30).strip().split("|")
                out[f"pg-{n}"] = dict(zip(PG_FIELDS, (int(x) if x else None for x in row)))
            except Exception as e:  # noqa: BLE001
                self.b.note_once(f"pair: PostgreSQL {n} sample failed: {e}"[:300])
                out[f"pg-{n}"] = None
        return out

    def metrics_sample(self) -> dict[str, dict | None]:
        out: dict[str, dict | None] = {}
        for n in ("a", "b"):
            try:
                m = self.lab.metrics(n)
                out[f"kine-{n}"] = {METRICS[k]: v for k, v in m.items() if k in METRICS}
            except Exception as e:  # noqa: BLE001
                self.b.note_once(f"pair: kine {n} /metrics failed: {e!r}"[:300])
                out[f"kine-{n}"] = None
        return out

    def roles(self) -> str:
        return " ".join(f"{n}={(self.lab.ha_status(n) or {}).get('role')}" for n in ("a", "b"))

    def stop(self, logdir: Path) -> None:
        self.stop_apis(logdir)
        lab = getattr(self, "lab", None)
        if lab is None:
            return
        for n in ("a", "b"):
            try:
                shutil.copy(lab.node(n).kine_log, logdir / f"soak-pair-kine-{n}.log")
            except OSError:
                pass
        self.lab = None
        lab.cleanup()
        left = lab.leftovers()
        if left:
            self.notes.append(f"HA lab left over after cleanup: {left}")
            log(f"HA lab left over after cleanup: {left}")


# ---------------------------------------------------------------------------------------- the run


class SoakBench:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.work)
        self.results = Path(a.results)
        self.minutes = a.minutes
        self.churn_s = a.minutes * 60.0
        self.warmup_s = a.warmup if a.warmup is not None else min(300.0, self.churn_s / 3)
        self.notes: list[str] = []
        self._noted: set[str] = set()
        self.doc: dict = {}

    def note_once(self, s: str) -> None:
        key = s[:60]
        if key not in self._noted:
            self._noted.add(key)
            self.notes.append(s)
            log(s)

    @staticmethod
    def postmaster(datadir: Path) -> int | None:
        try:
            return int((datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None

    # ---------------------------------------------------------------- one phase

    def ticks(self, ph: Phase) -> dict[str, int]:
        return {"kine": sum(proc_ticks(p) for p in ph.kines.values()),
                "postgres": sum(pg_ticks(p) for p in ph.pgs.values()),
                "apiserver": sum(proc_ticks(a.proc.pid) for a in ph.apis.values()),
                "client": self_ticks(), "machine": machine_busy_ticks()}

    def sample(self, ph: Phase, t: float, part: str, recs: list[tuple], dt: float,
               ticks0: dict[str, int], ticks1: dict[str, int], workers: list[Worker]) -> dict:
        ok = sorted(r[3] for r in recs if r[3] is not None)
        errs: dict[str, int] = {}
        by_op: dict[str, list[float]] = {}
        by_target: dict[str, list[float]] = {}
        for _, target, op, ms, err in recs:
            if ms is None:
                k = f"{op} {err}"
                errs[k] = errs.get(k, 0) + 1
            else:
                by_op.setdefault(op, []).append(ms)
                by_target.setdefault(target, []).append(ms)

        stats = lat_stats
        cpu = {k: (ticks1[k] - ticks0[k]) / CLK_TCK / dt for k in ticks0 if k != "machine"}
        cpu["other"] = max(0.0, (ticks1["machine"] - ticks0["machine"]) / CLK_TCK / dt - sum(cpu.values()))
        return {
            "t": round(t, 1), "part": part, "windowS": round(dt, 2),
            "rssKb": {k: rss_kb(p) for k, p in ph.kines.items()},
            "apiserverRssKb": {k: rss_kb(a.proc.pid) for k, a in ph.apis.items()},
            "pg": ph.pg_sample(), "kine": ph.metrics_sample(),
            "latencyMs": stats(ok) if ok else None,
            "byOp": {k: stats(v) for k, v in sorted(by_op.items())},
            "byTarget": {k: stats(v) for k, v in sorted(by_target.items())},
            "requestsPerSec": len(ok) / dt if dt > 0 else 0.0, "errors": errs,
            "behind": sum(w.behind for w in workers),
            "cpuCores": {k: round(v, 3) for k, v in cpu.items()},
            "liveObjects": {"configmaps": sum(len(w.cms) for w in workers),
                            "secrets": sum(len(w.secrets) for w in workers)},
        }

    def run_phase(self, ph: Phase) -> dict:
        res: dict = {"phase": ph.name, "samples": [], "notes": ph.notes, "checks": {}, "timesS": {}}
        self.doc["phases"][ph.name] = res  # written as it grows (every minute, and when interrupted)
        t_phase = time.monotonic()
        ph.start()
        res["timesS"]["start"] = round(time.monotonic() - t_phase, 1)
        targets = list(ph.apis)
        for api in ph.apis.values():
            r = api.client().post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": NS}})
            if r.status in (201, 409):
                break
            raise RuntimeError(f"{ph.name}: namespace {NS}: {r}")
        rec = Recorder()
        stop = threading.Event()
        interval = self.a.clients / self.a.rate
        workers = [Worker(i, targets[i % len(targets)], ph.apis[targets[i % len(targets)]], interval, stop, rec,
                          seed=1000 * (PHASES.index(ph.name) + 1) + i)
                   for i in range(self.a.clients)]
        log(f"{ph.name}: churn {self.minutes:g} min at {self.a.rate:g} requests/s ({self.a.clients} clients over "
            f"{', '.join(targets)}), then {self.a.cooldown:g} s without; a sample every {self.a.sample:g} s")
        ticks = self.ticks(ph)
        last = time.monotonic()
        res["samples"].append(self.sample(ph, 0.0, "baseline", [], 1.0, ticks, ticks, workers))
        t0 = time.monotonic()
        for w in workers:
            w.thread.start()
        n_churn = max(1, round(self.churn_s / self.a.sample))
        n_cool = round(self.a.cooldown / self.a.sample)
        steady: dict[str, list[float]] = {"all": []}  # every latency of the post-warm-up churn
        try:
            for k in range(1, n_churn + n_cool + 1):
                time.sleep(max(0.0, t0 + k * self.a.sample - time.monotonic()))
                if k == n_churn:  # the churn ends: its last window takes every request still in flight
                    stop.set()
                    for w in workers:
                        w.thread.join(90)
                recs = rec.drain()
                now = time.monotonic()
                t1 = self.ticks(ph)
                part = "cooldown" if k > n_churn else ("warmup" if k * self.a.sample <= self.warmup_s + 1e-6 else "churn")
                s = self.sample(ph, now - t0, part, recs, now - last, ticks, t1, workers)
                ticks, last = t1, now
                if part == "churn":
                    for _, target, op, ms, _ in recs:
                        if ms is not None:
                            steady["all"].append(ms)
                            steady.setdefault(op, []).append(ms)
                            steady.setdefault(f"via {target}", []).append(ms)
                res["samples"].append(s)
                self.log_sample(ph, s)
                if k % max(1, round(60 / self.a.sample)) == 0:
                    self.write()
                roles = ph.roles()
                if roles and roles != "a=leader b=follower":
                    ph.notes.append(f"t={s['t']:.0f} s: HA roles {roles}")
                    log(f"  HA roles: {roles}")
        finally:
            stop.set()
        res["timesS"]["churn+cooldown"] = round(time.monotonic() - t0, 1)
        res["steadyLatencyMs"] = {k: lat_stats(v) for k, v in steady.items() if v}
        res["checks"] = self.checks(ph, workers)
        res["behind"] = sum(w.behind for w in workers)
        res["errorSamples"] = [s for w in workers for s in w.samples][:10]
        res["timesS"]["total"] = round(time.monotonic() - t_phase, 1)
        return res

    def log_sample(self, ph: Phase, s: dict) -> None:
        rss = " ".join(f"{k} {v / 1024:.0f}" for k, v in s["rssKb"].items() if v)
        pg = " ".join(f"{k} {v['totalBytes'] / 2**20:.1f}/{v['databaseBytes'] / 2**20:.0f} MiB rows {v['rows']} ev {v['eventRows']} "
                      f"leases {v['leases']}" for k, v in s["pg"].items() if v)
        lat = s["latencyMs"]
        lt = f"p50 {lat['p50']:.1f} p99 {lat['p99']:.1f} ms" if lat else "no requests"
        err = f" errors {s['errors']}" if s["errors"] else ""
        log(f"  {ph.name} {s['part']:8} t={s['t']:6.0f}s  RSS MiB {rss}  {pg}  {s['requestsPerSec']:5.1f}/s {lt}"
            f"  other CPU {s['cpuCores']['other']:.2f}{err}")

    def checks(self, ph: Phase, workers: list[Worker]) -> dict:
        """Per apiserver: what it lists against what the clients believe is live, and the Events
        left after the cooldown."""
        out: dict = {}
        for target, api in ph.apis.items():
            c = api.client(timeout=60)
            got: dict = {}
            for res, pool in (("configmaps", "cms"), ("secrets", "secrets"), ("events", None)):
                try:
                    r = c.get(f"/api/v1/namespaces/{NS}/{res}")
                    names = set(r.names) - {"kube-root-ca.crt"}
                    d = {"listed": len(names), "status": r.status}
                    if pool:
                        want = {e[0] for w in workers for e in getattr(w, pool)}
                        d.update(expected=len(want), missing=len(want - names), unexpected=len(names - want))
                    got[res] = d
                except Exception as e:  # noqa: BLE001
                    got[res] = {"error": repr(e)[:200]}
            out[target] = got
            log(f"  {ph.name} checks through {target}: {got}")
        return out

    # ---------------------------------------------------------------- the whole run

    def run(self) -> int:
        t_start = self.t_start = time.monotonic()
        self.load_start = open("/proc/loadavg").read().split()[:3]
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        os.chmod(self.work, 0o755)
        self.results.mkdir(parents=True, exist_ok=True)
        out = self.results / "soak.json"
        if out.exists():
            out.unlink()
        logdir = self.results / "soak-logs"
        shutil.rmtree(logdir, ignore_errors=True)
        logdir.mkdir(parents=True)
        os.environ["KINE_BIN"] = self.a.kine
        os.environ.pop("KINE_E2E_ARGS", None)
        self.apiserver_version = ""
        phases = [p for p in self.a.phases.split(",") if p]
        for p in phases:
            if p not in PHASES:
                raise SystemExit(f"unknown phase {p!r} (phases: {', '.join(PHASES)})")
        self.doc = {"phases": {}}
        rc = 0
        try:
            kb = kubebin.find("kube-apiserver")
            if not kb:
                raise RuntimeError(f"kube-apiserver not found (looked in $KINE_KUBE_BIN_DIR, PATH and {kubebin.SHARED})")
            self.apiserver_bin = kb
            self.apiserver_version = subprocess.run([kb, "--version"], capture_output=True, text=True).stdout.strip()
            self.files = kube.make_files(self.work / "files")
            for p in phases:
                if p == "pair":
                    why = self.ha_unavailable()
                    if why:
                        self.notes.append(f"the HA pair was not run: {why}")
                        log(f"no HA pair: {why}")
                        continue
                ph = SinglePhase(self) if p == "single" else PairPhase(self)
                try:
                    self.run_phase(ph)
                finally:
                    log(f"{p}: stopping everything")
                    ph.stop(logdir)
                self.write()  # what there is so far
                log(f"{p}: {self.doc['phases'][p]['timesS']['total']:.0f} s")
        except BaseException as e:  # noqa: BLE001 (KeyboardInterrupt from SIGTERM included)
            log(f"soak failed: {type(e).__name__}: {e}")
            self.notes.append(f"the run failed: {type(e).__name__}: {str(e)[:300]}")
            rc = 1
        finally:
            shutil.rmtree(self.work, ignore_errors=True)
            out = self.write()
            print_summary(self.doc)
            log(f"soak: {round(time.monotonic() - t_start)} s; results in {out}")
        return rc

    def ha_unavailable(self) -> str | None:
        if self.a.no_ha:
            return "--no-ha (not root)"
        try:
            import hanet
        except Exception as e:  # noqa: BLE001
            return f"hanet.py: {e}"
        return hanet.netns_available()

    def write(self) -> Path:
        def sh(c):
            try:
                return subprocess.run(c, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
            except Exception:  # noqa: BLE001
                return "unknown"
        self.doc["machine"] = {
            "nproc": NPROC, "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
            "kernel": os.uname().release, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
            "kubeApiserver": self.apiserver_version, "postgres": sh("psql --version"),
            "kine": self.a.kine_rev, "kineBin": self.a.kine,
            "loadAverageStart": self.load_start, "loadAverageEnd": open("/proc/loadavg").read().split()[:3],
            "runtimeS": round(time.monotonic() - self.t_start),
        }
        self.doc["config"] = {
            "minutes": self.minutes, "warmupS": self.warmup_s, "cooldownS": self.a.cooldown,
            "sampleS": self.a.sample, "rate": self.a.rate, "clients": self.a.clients, "weights": WEIGHTS,
            "liveConfigMapsPerClient": LIVE_CMS, "liveSecretsPerClient": LIVE_SECRETS,
            "configMapValueBytes": CM_VALUE_BYTES, "secretBytes": SECRET_BYTES,
            "apiserverArgs": APISERVER_ARGS, "phases": self.a.phases,
        }
        self.doc["notes"] = self.notes
        for p in self.doc["phases"].values():
            p["summary"] = summarize(p, self.warmup_s)
        out = self.results / "soak.json"
        json.dump(self.doc, open(out, "w"), indent=1)
        return out


# ---------------------------------------------------------------------------------------- summary


def series(ph: dict) -> dict[str, list[tuple[float, float, str]]]:
    """Named series (t, value, part) out of a phase's samples."""
    out: dict[str, list] = {}

    def put(name, t, v, part):
        if v is not None:
            out.setdefault(name, []).append((t, float(v), part))
    for s in ph["samples"]:
        t, part = s["t"], s["part"]
        for k, v in s["rssKb"].items():
            put(f"RSS {k} (MiB)", t, v / 1024 if v else None, part)
        for k, v in s.get("apiserverRssKb", {}).items():
            put(f"RSS apiserver {k} (MiB)", t, v / 1024 if v else None, part)
        for k, v in s["pg"].items():
            if not v:
                continue
            put(f"kine table {k} (MiB)", t, v["totalBytes"] / 2**20, part)
            put(f"database {k} (MiB)", t, v["databaseBytes"] / 2**20, part)
            put(f"WAL {k} (MiB)", t, v["walBytes"] / 2**20, part)
            put(f"rows {k}", t, v["rows"], part)
            put(f"event rows {k}", t, v["eventRows"], part)
            put(f"deleted rows {k}", t, v["deletedRows"], part)
            put(f"leases {k}", t, v["leases"], part)
            put(f"overdue leases {k}", t, v.get("overdueLeases"), part)
            put(f"dead tuples {k}", t, v["deadTuples"], part)
        for k, v in s["kine"].items():
            if not v:
                continue
            for m, lab in (("cacheKeys", "read-cache keys"), ("cacheTombstones", "read-cache tombstones"),
                           ("cacheBytes", "read-cache MiB"), ("watchers", "watchers")):
                if m in v:
                    put(f"{lab} {k}", t, v[m] / 2**20 if m == "cacheBytes" else v[m], part)
            if "revision" in v and "compactRevision" in v:
                put(f"uncompacted revisions {k}", t, v["revision"] - v["compactRevision"], part)
        if s["part"] != "baseline" and s["latencyMs"]:
            put("p50 (ms)", t, s["latencyMs"]["p50"], part)
            put("p99 (ms)", t, s["latencyMs"]["p99"], part)
        if s["part"] in ("warmup", "churn"):
            put("requests/s", t, s["requestsPerSec"], part)
    return out


def _slope(pts: list[tuple[float, float]]) -> float | None:
    if len(pts) < 3:
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def summarize(ph: dict, warmup_s: float) -> dict:
    out = {}
    for name, pts in series(ph).items():
        steady = [(t, v) for t, v, part in pts if part == "churn"]
        cool = [v for t, v, part in pts if part == "cooldown"]
        d: dict = {"max": max(v for _, v, _ in pts)}
        if steady:
            third = max(1, len(steady) // 3)
            first = statistics.median(v for _, v in steady[:third])
            last = statistics.median(v for _, v in steady[-third:])
            sl = _slope(steady)
            d.update(first=first, last=last, n=len(steady),
                     change=(last - first) / first if first else None,
                     slopePer10Min=sl * 600 if sl is not None else None)
        if cool:
            d["afterCooldown"] = cool[-1]
        out[name] = d
    checks = ph.get("checks") or {}
    out["_errors"] = sum(sum(s["errors"].values()) for s in ph["samples"])
    out["_requests"] = sum(s["latencyMs"]["n"] for s in ph["samples"] if s["latencyMs"])
    out["_checks"] = checks
    return out


MAIN_SERIES = ("RSS ", "kine table ", "database ", "WAL ", "rows ", "event rows ", "dead tuples ", "uncompacted revisions ",
               "leases ", "overdue leases ", "read-cache keys ", "read-cache tombstones ", "read-cache MiB ", "p50 ",
               "p99 ", "requests/s")


def _main_rows(summ: dict) -> list[str]:
    names = [n for n in summ if not n.startswith("_") and not n.startswith("RSS apiserver")]
    return sorted((n for n in names if n.startswith(MAIN_SERIES)),
                  key=lambda n: ([i for i, p in enumerate(MAIN_SERIES) if n.startswith(p)][0], n))


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def verdict(name: str, d: dict) -> str:
    ch = d.get("change")
    if ch is None:
        return "–"
    lim = 0.25 if name.startswith(("p50", "p99")) else 0.10
    return "flat" if abs(ch) <= lim else ("grows" if ch > 0 else "falls")


def summary_table(ph: dict) -> list[str]:
    summ = ph["summary"]
    rows = ["| series | start of steady churn | end of churn | change | slope / 10 min | max | after cooldown | trend (±10 %; latency ±25 %) |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for n in _main_rows(summ):
        d = summ[n]
        ch = f"{d['change'] * 100:+.0f} %" if d.get("change") is not None else "–"
        rows.append(f"| {n} | {_fmt(d.get('first'))} | {_fmt(d.get('last'))} | {ch} | {_fmt(d.get('slopePer10Min'))} | "
                    f"{_fmt(d.get('max'))} | {_fmt(d.get('afterCooldown'))} | {verdict(n, d)} |")
    return rows


def print_summary(doc: dict) -> None:
    for name, ph in doc.get("phases", {}).items():
        if "summary" not in ph:
            continue
        print(f"\nSoak, {name} ({ph['timesS']}):", file=sys.stderr)
        for line in summary_table(ph):
            print(line, file=sys.stderr)
        s = ph["summary"]
        st = ph.get("steadyLatencyMs") or {}
        if st:
            print("latency after the warm-up, p50 / p99 ms: " + ", ".join(
                f"{k} {_fmt(v['p50'])} / {_fmt(v['p99'])}" for k, v in st.items()), file=sys.stderr)
        print(f"requests {s['_requests']}, errors {s['_errors']}, clients behind schedule (backlogs dropped) "
              f"{ph.get('behind', 0)}; checks {s['_checks']}", file=sys.stderr)
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------- report


def render(doc: dict, plot_dir: str | None, doc_path: str | None) -> str:
    m, cfg = doc["machine"], doc["config"]
    o = []
    smoke = cfg["minutes"] < 10
    label = (f"**a {cfg['minutes']:g}-minute smoke run, not the soak**: too short for a steady state "
             "(compaction keeps 1-2 minutes of history, Events live 1 minute); the 30-minute run replaces it"
             if smoke else f"{cfg['minutes']:g} minutes of churn per phase")
    o.append(f"Generated by `scripts/bench.sh --only soak` on {m['date']}: {label}. kine {m['kine']}, kube-apiserver "
             f"{m['kubeApiserver'].replace('Kubernetes ', '')}, {m['postgres']}; {m['nproc']} cores shared by the "
             f"clients, the apiserver(s), kine and PostgreSQL; the run took {m['runtimeS']} s (load average before "
             f"it: {' '.join(m['loadAverageStart'])}).")
    o.append("")
    mix = ", ".join(f"{k} {v} %" for k, v in cfg["weights"].items())
    o.append(f"Churn: {cfg['clients']} clients, {cfg['rate']:g} requests/s in all (every one a write: {mix}); "
             f"{cfg['liveConfigMapsPerClient']} live ConfigMaps ({cfg['configMapValueBytes']} B) and "
             f"{cfg['liveSecretsPerClient']} Secrets per client; apiserver `{' '.join(cfg['apiserverArgs'])}`. "
             f"Sampled every {cfg['sampleS']:g} s; the first {cfg['warmupS']:g} s are the warm-up (shaded), then "
             f"{cfg['cooldownS']:g} s without churn. \"start\" / \"end\" are the medians of the first and last "
             f"third of the samples after the warm-up; latencies are per {cfg['sampleS']:g}-s window.")
    o.append("")
    for name, ph in doc["phases"].items():
        title = "One node (kine + PostgreSQL, one apiserver)" if name == "single" else \
            "HA pair, sync (two kines and PostgreSQLs, an apiserver per node, half the clients through each)"
        s = ph["summary"]
        o.append(f"#### {title}")
        o.append("")
        t = ph["timesS"]
        o.append(f"Phase time {t.get('total', 0):.0f} s (start {t.get('start', 0):.0f} s, churn and cooldown "
                 f"{t.get('churn+cooldown', 0):.0f} s); {s['_requests']:,} requests answered, {s['_errors']} errors, "
                 f"{ph.get('behind', 0)} backlogs dropped.")
        o.append("")
        o += summary_table(ph)
        o.append("")
        st = ph.get("steadyLatencyMs") or {}
        if st:
            order = ["all"] + sorted(k for k in st if k.startswith("via ")) + sorted(k for k in st if k != "all" and not k.startswith("via "))
            o.append("Latency over the whole churn after the warm-up, p50 / p99 ms (n): "
                     + ", ".join(f"{k} {_fmt(st[k]['p50'])} / {_fmt(st[k]['p99'])} ({st[k]['n']:,})" for k in order) + ".")
            o.append("")
        if plot_dir:
            p = plot_phase(doc, name, plot_dir)
            if p:
                rel = os.path.relpath(p, os.path.dirname(os.path.abspath(doc_path)) if doc_path else ".")
                o.append(f"![Soak, {name}]({rel})")
                o.append("")
        notes = []
        for target, ch in (s.get("_checks") or {}).items():
            parts = []
            for res in ("configmaps", "secrets"):
                c = ch.get(res) or {}
                if "listed" in c:
                    ok = c.get("missing") == 0 and c.get("unexpected") == 0
                    parts.append(f"{c['listed']} {res} listed, the clients hold {c.get('expected')} "
                                 + ("(same names)" if ok else f"(**{c.get('missing')} missing, {c.get('unexpected')} unexpected**)"))
                elif c.get("error"):
                    parts.append(f"{res}: {c['error']}")
            ev = ch.get("events") or {}
            if "listed" in ev:
                parts.append(f"{ev['listed']} Events listed after the {cfg['cooldownS']:g}-s cooldown"
                             + (" (all expired)" if ev["listed"] == 0 else ""))
            notes.append(f"at the end, through the {target} apiserver: " + "; ".join(parts))
        errs: dict[str, int] = {}
        for smp in ph["samples"]:
            for k, v in smp["errors"].items():
                errs[k] = errs.get(k, 0) + v
        if errs:
            notes.append("errors: " + ", ".join(f"{k}: {v}" for k, v in sorted(errs.items())))
        other = [smp["cpuCores"]["other"] for smp in ph["samples"] if smp["part"] in ("warmup", "churn")]
        if other:
            notes.append(f"CPU of processes not this run's: median {statistics.median(other):.2f}, max {max(other):.2f} "
                         f"cores (of {m['nproc']})")
        notes += ph.get("notes", [])
        for n in notes:
            o.append(f"- {n}")
        o.append("")
    if doc.get("notes"):
        o.append("Notes: " + "; ".join(doc["notes"]))
        o.append("")
    o.append("Raw numbers (every sample, per-operation and per-apiserver latencies, kine's /metrics, PostgreSQL "
             "tuple and vacuum counts, CPU): `$BENCH_WORK/results/soak.json`.")
    return "\n".join(o)


def plot_phase(doc: dict, name: str, plot_dir: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ph, cfg = doc["phases"][name], doc["config"]
    ss = ph["samples"]
    if len(ss) < 2:
        return None
    sr = series(ph)
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    def ls(n: str, base: str = "-") -> str:  # the pair's node b dashed, so that equal lines both show
        return "--" if re.search(r"-b( |$)", n) else base
    mins = lambda pts: [p[0] / 60 for p in pts]  # noqa: E731
    vals = lambda pts: [p[1] for p in pts]  # noqa: E731
    fig, axs = plt.subplots(6, 1, figsize=(10, 16.5), sharex=True)
    churn_end = cfg["minutes"]
    for ax in axs:
        ax.axvspan(0, cfg["warmupS"] / 60, color="#eeeeee", zorder=0)
        ax.axvspan(churn_end, ss[-1]["t"] / 60, color="#e4ecf7", zorder=0)
        ax.grid(alpha=0.3)
    # 1: RSS
    ax = axs[0]
    for n, pts in sr.items():
        if n.startswith("RSS ") and "apiserver" not in n:
            ax.plot(mins(pts), vals(pts), marker=".", ls=ls(n), label=n.replace("RSS ", "").replace(" (MiB)", ""))
    ax.set_ylabel("kine RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    title = "one node" if name == "single" else "HA pair (sync)"
    smoke = f" — {cfg['minutes']:g}-minute SMOKE RUN" if cfg["minutes"] < 10 else ""
    ax.set_title(f"Soak, {title}: {cfg['rate']:g} writes/s through kube-apiserver{smoke}\n"
                 "(grey: warm-up; blue: no churn, Events expire)")
    # 2: sizes
    ax = axs[1]
    for n, pts in sr.items():
        if n.startswith("kine table "):
            ax.plot(mins(pts), vals(pts), marker=".", ls=ls(n), label=n.replace(" (MiB)", ""))
        if n.startswith("database "):
            ax.plot(mins(pts), vals(pts), ls=ls(n, ":"), lw=2, label=n.replace(" (MiB)", ""))
    ax.set_ylabel("PostgreSQL size (MiB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    # 3: rows and leases
    ax = axs[2]
    for n, pts in sr.items():
        if n.startswith(("rows ", "event rows ", "deleted rows ", "dead tuples ")):
            ax.plot(mins(pts), vals(pts), marker=".", ms=3, ls=ls(n), label=n)
    ax.set_ylabel("kine table rows")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    for n, pts in sr.items():
        if n.startswith("leases "):
            ax2.plot(mins(pts), vals(pts), ls=":", color="black" if not n.endswith("-b") else "grey", label=n)
    ax2.set_ylabel("kine_leases rows (dotted)")
    ax2.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    # 4: kine's memory figures
    ax = axs[3]
    for n, pts in sr.items():
        if n.startswith(("read-cache keys ", "read-cache tombstones ")):
            ax.plot(mins(pts), vals(pts), marker=".", ms=3, ls=ls(n), label=n)
    ax.set_ylabel("kine read cache (entries)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    # 5: latency and rate
    ax = axs[4]
    for n, st in (("p50 (ms)", "-"), ("p99 (ms)", "-")):
        if n in sr:
            ax.plot(mins(sr[n]), vals(sr[n]), marker=".", ls=st, label=n.replace(" (ms)", " all"))
    by_t: dict[str, list] = {}
    for s in ss:
        for tgt, st in s.get("byTarget", {}).items():
            by_t.setdefault(tgt, []).append((s["t"], st["p99"]))
    if len(by_t) > 1:
        for tgt, pts in by_t.items():
            ax.plot(mins(pts), vals(pts), ls=":", lw=1, label=f"p99 via {tgt}")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(f"latency per {cfg['sampleS']:g}-s window (ms, log)")
    ax.legend(fontsize=8, loc="upper left")
    if "requests/s" in sr:
        ax2 = ax.twinx()
        ax2.plot(mins(sr["requests/s"]), vals(sr["requests/s"]), color="grey", lw=0.8, label="requests/s")
        ax2.set_ylabel("requests/s (grey)")
        ax2.set_ylim(0, cfg["rate"] * 1.5)
    # 6: CPU
    ax = axs[5]
    ts = [s["t"] / 60 for s in ss[1:]]
    for k in ("kine", "postgres", "apiserver", "client", "other"):
        ax.plot(ts, [s["cpuCores"].get(k, 0) for s in ss[1:]], label=k)
    ax.set_ylabel("CPU (cores)")
    ax.set_xlabel("minutes since the churn started")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper right", ncol=5)
    fig.tight_layout()
    os.makedirs(plot_dir, exist_ok=True)
    path = os.path.join(plot_dir, f"soak-{name}.png")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


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
    p.add_argument("--results")
    p.add_argument("--work")
    p.add_argument("--doc", help="markdown file whose SOAK block is rewritten")
    p.add_argument("--plots", help="directory for soak-<phase>.png")
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of churn per phase (default 30)")
    p.add_argument("--phases", default="single,pair", help="comma-separated: single, pair (default both)")
    p.add_argument("--rate", type=float, default=60.0, help="requests/s of all clients together (default 60)")
    p.add_argument("--clients", type=int, default=8, help="client threads (default 8; the pair: half per node)")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of churn left out of the trend "
                   "(default: a third of the churn, at most 300)")
    p.add_argument("--cooldown", type=float, default=180.0, help="seconds sampled without churn after it (default 180)")
    p.add_argument("--no-ha", action="store_true", help="leave out the HA pair")
    p.add_argument("--report", help="only re-render the doc block from this soak.json")
    a = p.parse_args()
    if a.report:
        if not a.doc:
            p.error("--report needs --doc")
        write_doc(json.load(open(a.report)), a.doc, a.plots)
        return 0
    for req in ("kine", "results", "work"):
        if not getattr(a, req):
            p.error(f"--{req} is required")
    if a.rate <= 0 or a.clients < 1 or a.sample <= 0 or a.minutes <= 0:
        p.error("--rate, --clients, --sample and --minutes must be positive")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)  # unwind (and clean up) on SIGTERM too
    b = SoakBench(a)
    rc = b.run()
    if a.doc and rc != 0:
        log(f"the run failed: {a.doc} left alone (soak_bench.py --report {Path(a.results) / 'soak.json'} renders it)")
    elif a.doc:
        try:
            write_doc(json.load(open(Path(a.results) / "soak.json")), a.doc, a.plots)
            log(f"report: {a.doc} (section Soak), plots in {a.plots}")
        except Exception as e:  # noqa: BLE001
            log(f"report failed: {type(e).__name__}: {e}")
            rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
