"""Selector: the compiled accounting twin when built and allowed, else the pure one."""

from __future__ import annotations

from _speedups._accounting_py import StatReport
from _speedups._select import compiled_allowed, expect_extensions

__all__ = ["RequestStats", "StatReport", "Histogram", "HistogramGroup", "USING_EXTENSIONS"]

USING_EXTENSIONS = False
if compiled_allowed():
    try:
        from _speedups._accounting_c import Histogram, HistogramGroup, RequestStats

        USING_EXTENSIONS = True
    except ImportError:  # not built, or stale (_select warned)
        if expect_extensions():
            raise
if not USING_EXTENSIONS:
    from _speedups._accounting_py import (  # noqa: F401
        Histogram,
        HistogramGroup,
        RequestStats,
    )
