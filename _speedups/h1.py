"""Selector: the compiled httptools glue when built and allowed, else the pure twin."""

from __future__ import annotations

from _speedups._select import compiled_allowed, expect_extensions

__all__ = [
    "HttptoolsRequestParser", "HttptoolsResponseParser", "RequestSink", "ResponseSink",
    "USING_EXTENSIONS",
]

USING_EXTENSIONS = False
if compiled_allowed():
    try:
        from _speedups._h1_c import (
            HttptoolsRequestParser,
            HttptoolsResponseParser,
            RequestSink,
            ResponseSink,
        )

        USING_EXTENSIONS = True
    except ImportError:  # not built, or stale (_select warned)
        if expect_extensions():
            raise
if not USING_EXTENSIONS:
    from _speedups._h1_py import (  # noqa: F401
        HttptoolsRequestParser,
        HttptoolsResponseParser,
        RequestSink,
        ResponseSink,
    )
