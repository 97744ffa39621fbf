"""The Forwarded shim: build RFC 7239 ``Forwarded`` from the X-Forwarded-* headers.

Mirrors knative/serving pkg/queue/forwarded_shim.go: only when there is no ``Forwarded`` header
and at least one of X-Forwarded-For/-Host/-Proto. The first node carries ``for=``, ``host=`` and
``proto=``; each further X-Forwarded-For node adds ``, for=``; a node containing ':' is taken
for IPv6 and written ``"[node]"``.
"""

from __future__ import annotations

__all__ = ["forwarded_from"]


def _node(node: bytes) -> bytes:
    return b'"[' + node + b']"' if b":" in node else node


def _consume(xff: bytes, start: int) -> tuple[bytes, int]:
    comma = xff.find(b",", start)
    if comma < 0:
        comma = len(xff)
    return xff[start:comma].strip(), comma + 1


def forwarded_from(xff: bytes | None, xfh: bytes | None, xfp: bytes | None) -> bytes:
    """The Forwarded value Knative builds from X-Forwarded-For, -Host and -Proto."""
    parts: list[bytes] = []
    first, pos = _consume(xff, 0) if xff else (b"", 0)
    if xff:
        parts.append(b"for=" + _node(first))
    if xfh:
        if first:
            parts.append(b";")
        parts.append(b"host=" + xfh)
    if xfp:
        if first or xfh:
            parts.append(b";")
        parts.append(b"proto=" + xfp)
    if xff:
        while pos < len(xff):
            node, pos = _consume(xff, pos)
            parts.append(b", for=" + _node(node))
    return b"".join(parts)
