"""CPU time of processes from /proc, for the benchmark tools (ha_bench.py, kube_bench.py)."""

from __future__ import annotations

import subprocess


def proc_ticks(pid: int | None, children: bool = False) -> int:
    """utime + stime of `pid` in clock ticks (with `children`, also of the children it reaped);
    0 for no pid or a process that is gone."""
    if not pid:
        return 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[0] is field 3 (state): utime = field 14 -> index 11
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t


def children_of(pid: int) -> list[int]:
    try:  # no pgrep: a process spawned per sample would count as another's CPU
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        r = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()]


def pg_ticks(postmaster: int | None) -> int:
    """A PostgreSQL: the postmaster, the children it has reaped, and its live children."""
    if not postmaster:
        return 0
    return proc_ticks(postmaster, children=True) + sum(proc_ticks(c) for c in children_of(postmaster))
