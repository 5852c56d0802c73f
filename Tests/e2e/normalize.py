"""Normalisation of responses before two servers are compared.

What legitimately differs between two etcd-compatible servers that ran the same requests:
  * identities: cluster_id, member_id, raft_term (and raft indexes, leader, db sizes, versions);
  * absolute revisions: each server started from its own revision (kine writes a few rows at
    start-up), so revisions are rewritten relative to a base revision taken on that server at the
    start of the case. Both servers run the same sequence, so relative revisions must match.
Everything else must be equal.
"""

from __future__ import annotations

import difflib
import json
import re

ID_FIELDS = {"cluster_id", "member_id", "raft_term"}
REV_FIELDS = {
    "revision", "create_revision", "mod_revision", "compact_revision",
    # request fields (RangeRequest filters) hold absolute revisions too
    "min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision",
    # WatchCreateRequest
    "start_revision",
}


def rel(value: int, base: int) -> object:
    """0 and negative values stay as they are (etcd's "none"/"invalid"); a positive revision
    becomes "base+N" / "base-N"."""
    if not isinstance(value, int) or value <= 0:
        return value
    d = value - base
    return f"base{d:+d}"


def normalize(obj, base: int):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ID_FIELDS:
                out[k] = "<id>" if v else v
            elif k in REV_FIELDS and isinstance(v, int):
                out[k] = rel(v, base)
            else:
                out[k] = normalize(v, base)
        return out
    if isinstance(obj, list):
        return [normalize(x, base) for x in obj]
    return obj


def pretty(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, ensure_ascii=False, default=str)


def diff(expected, actual, expected_name: str = "etcd", actual_name: str = "kine") -> str:
    a = pretty(expected).splitlines()
    b = pretty(actual).splitlines()
    return "\n".join(difflib.unified_diff(a, b, fromfile=expected_name, tofile=actual_name, lineterm="", n=4))


def assert_same(expected, actual, what: str, expected_name: str = "etcd", actual_name: str = "kine"):
    if expected != actual:
        raise AssertionError(
            f"{what}: responses differ after normalisation "
            f"(- {expected_name}, + {actual_name})\n{diff(expected, actual, expected_name, actual_name)}"
        )


# ---------------------------------------------------------------------------------------------
# Text output of etcdctl


def normalize_text(text: str, endpoint: str, base: int | None = None) -> str:
    """Replace the endpoint, durations and (optionally) revisions in etcdctl's simple output."""
    t = text.replace(endpoint, "<endpoint>")
    t = re.sub(r"took = [0-9.]+(ns|µs|us|ms|s|m)+", "took = <duration>", t)
    if base is not None:
        t = re.sub(r"(compacted revision )(\d+)", lambda m: m.group(1) + str(rel(int(m.group(2)), base)), t)
        # `-w fields` output: "Revision" : 12
        t = re.sub(r'("(?:Revision|CreateRevision|ModRevision)" : )(\d+)',
                   lambda m: m.group(1) + str(rel(int(m.group(2)), base)), t)
    t = re.sub(r'("(?:ClusterID|MemberID|RaftTerm)" : )(\d+)', lambda m: m.group(1) + "<id>", t)
    return t


# ---------------------------------------------------------------------------------------------
# Server-chosen identifiers (lease IDs)

LEASE_FIELDS = {"ID", "lease"}


def normalize_leases(obj, mapping: dict):
    """Lease IDs (fields `ID` and `lease`, non-zero) become "L1", "L2", ... in order of first
    appearance; `mapping` (absolute → label) is filled as it goes, so a record list walked in order
    gives the same labels on both servers when both ran the same script. Negative and zero values
    (etcd's "none"/"not found") stay as they are."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in LEASE_FIELDS and isinstance(v, int) and v > 0:
                if v not in mapping:
                    mapping[v] = f"L{len(mapping) + 1}"
                out[k] = mapping[v]
            else:
                out[k] = normalize_leases(v, mapping)
        return out
    if isinstance(obj, list):
        return [normalize_leases(x, mapping) for x in obj]
    return obj
