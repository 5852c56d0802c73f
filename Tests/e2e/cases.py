"""The case list the differential suites share: each suite keeps its own list, filled by `@case`."""

from __future__ import annotations

import pytest


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
