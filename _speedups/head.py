"""Selector: the compiled head scanner when built and allowed, else the pure twin."""

from __future__ import annotations

from _speedups._select import compiled_allowed, expect_extensions

__all__ = [
    "scan_headers", "build_head", "connection_tokens", "valid_host", "join_bytes",
    "h2_headers", "h2_frame", "USING_EXTENSIONS",
]

USING_EXTENSIONS = False
if compiled_allowed():
    try:
        from _speedups._head_c import (
            build_head,
            connection_tokens,
            h2_frame,
            h2_headers,
            join_bytes,
            scan_headers,
            valid_host,
        )

        USING_EXTENSIONS = True
    except ImportError:  # not built, or stale (_select warned)
        if expect_extensions():
            raise
if not USING_EXTENSIONS:
    from _speedups._head_py import (  # noqa: F401
        build_head,
        connection_tokens,
        h2_frame,
        h2_headers,
        join_bytes,
        scan_headers,
        valid_host,
    )
