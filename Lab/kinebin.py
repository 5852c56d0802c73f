"""Where the kine binary is: $KINE_BIN, else .build/debug/kine, else .build/release/kine.

One home for the lookup the HA lab (hanet.py, when no binary is given) and the e2e suites
(Tests/e2e/harness.py re-exports it as harness.kine_binary) share.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def kine_binary() -> str:
    env = os.environ.get("KINE_BIN")
    if env:
        return env
    for cfg in ("debug", "release"):
        p = REPO / ".build" / cfg / "kine"
        if p.exists():
            return str(p)
    raise RuntimeError("kine binary not found: run `swift build` or set KINE_BIN")
