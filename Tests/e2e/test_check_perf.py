"""`etcdctl check perf --load=s` against the target: 50 client connections, 150 puts/s for 60 s,
256-byte binary keys (NUL bytes and non-UTF-8 included) and 1 KiB values. Passes when etcdctl
prints no FAIL line and exits 0 (throughput > 90 % of target, slowest request <= 0.5 s, stddev
<= 0.1 s, no errors). Takes about 70 s; runs last in the session.
"""

from __future__ import annotations

import sys

import pytest

import harness


@pytest.mark.slow
def test_check_perf_load_s(target, capsys):
    r = harness.etcdctl(target, "check", "perf", "--load=s", timeout=240, command_timeout="30s")
    out = r.stdout + r.stderr
    lines = [l for l in out.splitlines() if "PASS" in l or "FAIL" in l]
    with capsys.disabled():  # shown even when the test passes
        print(f"\ncheck perf --load=s against {target.name} ({target.kind}):", file=sys.stderr)
        for l in lines:
            print("  " + l, file=sys.stderr)
    assert r.returncode == 0 and not any("FAIL" in l for l in lines), f"check perf failed (exit {r.returncode}):\n{out[-4000:]}"
    assert any("Throughput" in l for l in lines), out[-2000:]
    # The prefix must be empty again afterwards (check perf deletes it).
    g = harness.etcdctl(target, "get", "/etcdctl-check-perf/", "--prefix", "--count-only", "-w", "fields")
    assert g.returncode == 0 and '"Count" : 0' in g.stdout, g.stdout + g.stderr
