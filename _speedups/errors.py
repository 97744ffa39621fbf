"""The parse error every parser backend raises, and httptools' wrapping of it undone.

It lives here, at the bottom layer, because the compiled h1 glue raises it; the engine
re-exports it as ``proxy.engine.ParseError``.
"""

from __future__ import annotations

__all__ = ["ParseError", "unwrap", "VERSIONS"]

VERSIONS = {"1.1": b"1.1", "1.0": b"1.0", "0.9": b"0.9", "2.0": b"2.0"}


class ParseError(Exception):
    """A message that cannot be parsed; ``status`` is what to answer."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def unwrap(exc: Exception, default: str, status: int) -> ParseError:
    """httptools wraps what a callback raised; a ParseError from our sink keeps its status."""
    inner = exc.__context__
    if isinstance(inner, ParseError):
        return inner
    return ParseError(str(exc) or default, status)
