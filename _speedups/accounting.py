"""Selector: the compiled accounting twin when built and allowed, else the pure one."""

from __future__ import annotations

import os
import platform

__all__ = ["RequestStats", "StatReport", "Histogram", "USING_EXTENSIONS"]

from _speedups._accounting_py import StatReport

USING_EXTENSIONS = False
if not os.environ.get("DATAPLANE_NO_EXTENSIONS") and platform.python_implementation() == "CPython":
    try:
        from _speedups._accounting_c import Histogram, RequestStats

        USING_EXTENSIONS = True
    except ImportError:
        pass
if not USING_EXTENSIONS:
    from _speedups._accounting_py import Histogram, RequestStats  # noqa: F401
