"""Header rules for requests going upstream, sans-IO.

What Knative's queue-proxy and activator do to a request head on its way to the next hop (Go's
``httputil.ReverseProxy`` plus Knative's handlers):

- hop-by-hop headers are not forwarded: Connection and every header it names, Keep-Alive,
  Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE (except ``TE: trailers``),
  Transfer-Encoding (written anew when the body is chunked) and Upgrade (kept, with
  ``Connection: Upgrade``, for an upgrade request);
- the peer address is appended to X-Forwarded-For (repeated headers are joined first);
- Host is kept, unless the caller overrides it (K-Original-Host), and filled in when absent;
- an absolute-form target becomes origin-form, its authority becoming the Host;
- no User-Agent is added, bodies are not touched.
"""

from __future__ import annotations

from collections.abc import Collection

from _speedups import fields as F
from _speedups.fields import shared
from _speedups.head import build_head, connection_tokens, join_bytes
from proxy.engine.messages import HOP_BY_HOP

__all__ = ["HOP_BY_HOP", "request_head", "drop_set", "split_absolute"]


def drop_set(*names: bytes) -> frozenset[bytes]:
    """Hop-by-hop headers, X-Forwarded-For (re-written) and ``names`` (lower-case).

    PERF: each name as the object the head scanner hands out (``_speedups.fields.shared``):
    a dropped header is found by identity, with no compare of its bytes."""
    return frozenset(shared(n) for n in (*HOP_BY_HOP, b"x-forwarded-for", *names))


# Framing and routing are not headers in Go's model (Request.ContentLength, .Host,
# .TransferEncoding), so a Connection header naming them does not remove them.
_NOT_DROPPABLE = frozenset({b"content-length", b"host", b"transfer-encoding"})
_ONLY_HOST = (b"host",)


def split_absolute(target: bytes) -> tuple[bytes, bytes | None]:
    """``http://host/path?q`` -> (``/path?q``, ``host``); origin-form targets pass through."""
    if target[:1] == b"/" or b"://" not in target[:10]:
        return target, None
    rest = target.split(b"://", 1)[1]
    slash = rest.find(b"/")
    query = rest.find(b"?")
    cut = min(i for i in (slash, query, len(rest)) if i >= 0)
    path = rest[cut:]
    if not path.startswith(b"/"):
        path = b"/" + path
    authority = rest[:cut]
    at = authority.rfind(b"@")
    if at >= 0:
        authority = authority[at + 1 :]  # user info never becomes the Host
    return path, authority


def _has_token(value: bytes, token: bytes) -> bool:
    return any(t.split(b";", 1)[0].strip() == token for t in value.lower().split(b","))


def request_head(
    ex: object,
    drop: Collection[bytes],
    host: bytes | None = None,
    extra: bytes | tuple = b"",
    also_drop: Collection[bytes] = (),
    default_host: bytes = b"",
) -> bytes:
    """The head to send upstream for exchange ``ex`` (an ``engine.server.Exchange``).

    ``extra``: lines to add (each CRLF-ended), as bytes or a tuple of bytes pieces."""
    values = ex.fields  # type: ignore[attr-defined]
    target = ex.target  # type: ignore[attr-defined]
    conn_value = values[F.CONNECTION]
    # PERF: the common request (Host present, no X-Forwarded-For, Connection, TE or body
    # framing to restate) builds no list: its one added line is the connection's own.
    drops: Collection[bytes] = also_drop
    xff = values[F.X_FORWARDED_FOR]
    if conn_value is not None:
        tokens = [t for t in connection_tokens(conn_value) if t not in _NOT_DROPPABLE]
        drops = [*also_drop, *tokens]
        if b"x-forwarded-for" in tokens:
            xff = None  # Go drops the hop-by-hop XFF before it appends the peer
    if not target or target[0] != 47:  # not "/...": PERF, no slice object
        target, url_host = split_absolute(target)
        if host is None and url_host:
            host = url_host
    host_line: tuple = ()  # PERF: pieces of the added lines, joined only into the head
    if host is not None or not values[F.HOST]:
        drops = [*drops, b"host"] if drops else _ONLY_HOST
        host_line = (b"Host: ", host if host is not None else default_host, b"\r\n")
    conn = ex.conn  # type: ignore[attr-defined]
    if xff is not None:
        # Repeated X-Forwarded-For lines are joined (the slot keeps only the first).
        lnames = ex.lnames  # type: ignore[attr-defined]
        if lnames.count(b"x-forwarded-for") > 1:
            hs = ex.headers  # type: ignore[attr-defined]
            xff = b", ".join([hs[i][1] for i, n in enumerate(lnames) if n == b"x-forwarded-for"])
    if xff:
        xff_line = join_bytes((b"X-Forwarded-For: ", xff, b", ", conn.peer_bytes, b"\r\n"))
    else:
        xff_line = conn.xff_line  # the peer alone
    te = values[F.TE]
    rare = b""
    if ex.chunked or ex.upgrade or te is not None:  # type: ignore[attr-defined]
        lines = []
        if ex.chunked:  # type: ignore[attr-defined]
            lines.append(b"Transfer-Encoding: chunked\r\n")
            if values[F.TRAILER]:
                lines.append(b"Trailer: " + values[F.TRAILER] + b"\r\n")
        if ex.upgrade:  # type: ignore[attr-defined]
            lines.append(b"Connection: Upgrade\r\nUpgrade: " + values[F.UPGRADE] + b"\r\n")
        if te is not None and _has_token(te, b"trailers"):
            lines.append(b"TE: trailers\r\n")
        rare = join_bytes(lines)
    # PERF: the start line and the added lines in pieces, copied straight into the head
    return build_head((ex.method, b" ", target, b" HTTP/1.1\r\n"),  # type: ignore[attr-defined]
                      ex.headers, ex.lnames, drop, drops,  # type: ignore[attr-defined]
                      (host_line, xff_line, rare, extra))
