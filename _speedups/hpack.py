"""Selector: the compiled HPACK codec when built and allowed, else the ``hpack`` library's
(the pure twin and the reference: same interface, same errors)."""

from __future__ import annotations

from _speedups._select import compiled_allowed, expect_extensions

__all__ = ["Decoder", "Encoder", "USING_EXTENSIONS"]

USING_EXTENSIONS = False
if compiled_allowed():
    try:
        from _speedups._hpack_c import Decoder, Encoder

        USING_EXTENSIONS = True
    except ImportError:  # not built, or stale (_select warned)
        if expect_extensions():
            raise
if not USING_EXTENSIONS:
    from hpack import Decoder, Encoder  # type: ignore[assignment]  # noqa: F401
