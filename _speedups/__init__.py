"""Compiled speedups for the hot path, each with a pure-Python twin.

Each accelerated unit ``x`` has ``_x_py.py`` (the reference) and ``_x_c.pyx`` (compiled), and one
selector module ``x.py`` that callers import. ``DATAPLANE_NO_EXTENSIONS=1`` (or a non-CPython
interpreter) forces the pure twins; ``USING_EXTENSIONS`` tells whether every compiled twin loaded.
Units: ``head`` (request/response head scanning and rewriting), ``accounting`` (autoscaler stats
and histogram buckets), ``h1`` (the httptools callback glue).

The engine's hot modules (``_select.ENGINE_MODULES``: server, upstream, deadlines, the
queue-proxy handler ...) are compiled from their own ``.py``, typed by a ``.pxd`` beside it; with
extensions off, or when a build is stale (its stamp differs from the sources beside it, or a
compiled module it cimports is stale), ``_select.install_finder`` makes their imports take the
``.py`` (with a RuntimeWarning; an ImportError under ``DATAPLANE_EXPECT_EXTENSIONS=1``).
"""

from __future__ import annotations

from _speedups._select import compiled_allowed, install_finder

install_finder()  # before the selectors below import anything compiled

from _speedups.accounting import USING_EXTENSIONS as _ACCOUNTING  # noqa: E402
from _speedups.h1 import USING_EXTENSIONS as _H1  # noqa: E402
from _speedups.head import USING_EXTENSIONS as _HEAD  # noqa: E402

__all__ = ["NO_EXTENSIONS", "USING_EXTENSIONS"]

NO_EXTENSIONS: bool = not compiled_allowed()
USING_EXTENSIONS: bool = _HEAD and _ACCOUNTING and _H1
