"""Compiled speedups for the hot path, each with a pure-Python twin.

Each accelerated unit ``x`` has ``_x_py.py`` (the reference) and ``_x_c.pyx`` (compiled), and one
selector module ``x.py`` that callers import. ``DATAPLANE_NO_EXTENSIONS=1`` (or a non-CPython
interpreter) forces the pure twins; ``USING_EXTENSIONS`` tells which were loaded.
"""

from __future__ import annotations

import os
import platform

__all__ = ["NO_EXTENSIONS", "USING_EXTENSIONS"]

NO_EXTENSIONS: bool = bool(os.environ.get("DATAPLANE_NO_EXTENSIONS")) or (
    platform.python_implementation() != "CPython"
)

from _speedups.accounting import USING_EXTENSIONS as _ACCOUNTING  # noqa: E402
from _speedups.head import USING_EXTENSIONS as _HEAD  # noqa: E402

USING_EXTENSIONS: bool = _HEAD and _ACCOUNTING
