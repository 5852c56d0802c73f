"""What the differential suites share: the case list, filled by `@case` (each suite keeps its own),
and the runner that runs one script on the reference and the target at once and compares the
normalised records."""

from __future__ import annotations

import concurrent.futures
import os

import pytest

from normalize import assert_same, pretty


class Cases(list):
    """pytest params for a suite's cases, in definition order, with ids without the `case_` prefix.
    `@case(xfail="reason")` marks a case as a strict expected failure: the reason must name a
    deliberate difference documented in docs/compatibility.md."""

    def case(self, fn=None, *, xfail: str | None = None):
        def reg(f):
            marks = [pytest.mark.xfail(reason=xfail, strict=True)] if xfail else []
            self.append(pytest.param(f, id=f.__name__.removeprefix("case_"), marks=marks))
            return f
        return reg(fn) if fn else reg


def run_differential(servers, ctxs, fn, name: str, normalized, nothing_recorded: str):
    """fn(ctx) on both servers at once, one thread each (ctxs: the reference's context, then the
    target's; each has `records`, `shortfalls` and `finish()`); then the records, passed through
    `normalized(ctx)`, must be equal. `nothing_recorded` is the message when the reference
    recorded nothing. Returns ctxs (finished). KINE_E2E_DUMP=1 prints the reference's record."""

    def go(c):
        try:
            fn(c)
        except Exception as e:
            if c is ctxs[0]:
                raise
            # The target answered something the script cannot go on from: the diff shows where.
            c.records.append({"op": "the script stopped", "error": f"{type(e).__name__}: {e}"})
        finally:
            c.finish()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for f in [ex.submit(go, c) for c in ctxs]:
            f.result()
    ref, tgt = servers
    a, b = ctxs
    if os.environ.get("KINE_E2E_DUMP") == "1":
        print(f"--- {name}\n{pretty(normalized(a))}")
    assert not a.shortfalls, f"harness: the reference did not deliver what the script expects: {a.shortfalls}"
    assert a.records, nothing_recorded
    assert_same(normalized(a), normalized(b), name, f"{ref.name} ({ref.kind})", f"{tgt.name} ({tgt.kind})")
    return ctxs
