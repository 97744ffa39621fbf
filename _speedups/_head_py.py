"""Request and response head scanning and rewriting: the pure-Python twin.

Theory of operation: the parser hands us the head as a list of ``(name, value)`` byte pairs in
wire order. ``scan_headers`` walks it once, lower-casing each name, and keeps the values of the
headers named in ``fields.NAMES``; the lower-cased names are kept so that ``build_head`` can
write the head again without lower-casing twice. ``build_head`` writes a start line, every header
whose lower-cased name is in neither ``drop`` nor ``also_drop``, then ``extra`` (ready-made header
lines), then the blank line. Bodies never pass through here.

``_head_c.pyx`` is the compiled twin with the same API; callers import ``_speedups.head``.
"""

from __future__ import annotations

import struct
from collections.abc import Collection

from _speedups.fields import (
    CONTENT_LENGTH,
    COUNT,
    FLAG_CONFLICTING_LENGTH,
    FLAG_DUPLICATE_HOST,
    HOST,
    INDEX,
    JOINED,
)

__all__ = ["scan_headers", "build_head", "connection_tokens", "h2_headers", "h2_frame"]


def scan_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[list[bytes], list[bytes | None], int]:
    """Returns ``(lower-cased names, field values by slot, flags)`` for a head."""
    lnames: list[bytes] = []
    values: list[bytes | None] = [None] * COUNT
    flags = 0
    index = INDEX
    for name, value in headers:
        lname = name.lower()
        lnames.append(lname)
        slot = index.get(lname)
        if slot is None:
            continue
        old = values[slot]
        if old is None:
            values[slot] = value
        elif slot in JOINED:
            values[slot] = old + b", " + value
        elif slot == CONTENT_LENGTH and old.strip() != value.strip():
            flags |= FLAG_CONFLICTING_LENGTH
        elif slot == HOST:
            flags |= FLAG_DUPLICATE_HOST
    return lnames, values, flags


def connection_tokens(value: bytes | None) -> list[bytes]:
    """The lower-cased tokens of a Connection header value."""
    if not value:
        return []
    return [t for t in (part.strip().lower() for part in value.split(b",")) if t]


def join_bytes(parts: list[bytes] | tuple[bytes, ...]) -> bytes:
    """``b"".join(parts)`` (the compiled twin copies the pieces without the buffer protocol)."""
    return b"".join(parts)


Pieces = bytes | tuple  # bytes, or a tuple of bytes and of such tuples (two levels at most)


def _joined(piece: Pieces, depth: int = 0) -> bytes:
    if type(piece) is bytes:
        return piece
    if type(piece) is not tuple or depth > 1:
        raise TypeError("start_line and extra: bytes, or tuples of bytes (two levels at most)")
    return b"".join([_joined(part, depth + 1) for part in piece])


def build_head(
    start_line: Pieces,
    headers: list[tuple[bytes, bytes]],
    lnames: list[bytes],
    drop: Collection[bytes],
    also_drop: Collection[bytes] | None,
    extra: Pieces,
) -> bytes:
    """Writes a head: start line (with CRLF), kept headers, ``extra`` lines, blank line.
    ``start_line`` and ``extra`` may each be a tuple of pieces (bytes, or tuples of bytes),
    written one after another."""
    out = [_joined(start_line)]
    append = out.append
    if also_drop:
        for i, (name, value) in enumerate(headers):
            lname = lnames[i]
            if lname in drop or lname in also_drop:
                continue
            append(name + b": " + value + b"\r\n")
    else:
        for i, (name, value) in enumerate(headers):
            if lnames[i] in drop:
                continue
            append(name + b": " + value + b"\r\n")
    append(_joined(extra))
    append(b"\r\n")
    return b"".join(out)


# Go's httpguts.ValidHostHeader: the bytes a Host value may hold.
HOST_BYTES = bytes(
    b for b in range(256)
    if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "!$%&'()*+,-.:;=[]_~")
)


def valid_host(value: bytes) -> bool:
    """True if every byte of a Host value is one Go's ``ValidHostHeader`` allows."""
    return not value.translate(None, HOST_BYTES)


# RFC 9113 8.2.2: never sent over HTTP/2 (and Host becomes :authority).
H2_DROPPED = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
        b"host",
    }
)


def h2_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """An HTTP/1.1 request head (what ``build_head`` made) as an HTTP/2 header list: the start
    line becomes the pseudo-headers, Host becomes ``:authority``, connection-specific fields
    are dropped (RFC 9113 8.2.2), and TE is kept only as ``trailers``."""
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    target = rest.rpartition(b" ")[0]
    regular = []
    authority = b""
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        value = value.strip()
        if lname in H2_DROPPED:
            if lname == b"host":
                authority = value
            continue
        if lname == b"te":
            if b"trailers" not in value.lower():
                continue
            value = b"trailers"
        regular.append((lname, value))
    pseudo = [(b":method", method), (b":scheme", b"http")]
    if authority:
        pseudo.append((b":authority", authority))
    if method != b"CONNECT":
        pseudo.append((b":path", target))
    return pseudo + regular


_FRAME_HEAD = struct.Struct(">HBBBL")  # 24-bit length as H+B, type, flags, stream id


def h2_frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """An HTTP/2 frame (RFC 9113 4.1): its 9-byte head, then ``payload``."""
    n = len(payload)
    return _FRAME_HEAD.pack(n >> 8, n & 0xFF, kind, flags, sid) + payload
