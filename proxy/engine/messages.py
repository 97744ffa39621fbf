"""Bytes the engine writes itself: status lines, the Date header, Go-style error responses."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

__all__ = ["status_line", "date_header", "error_head", "HOP_BY_HOP"]

# Connection-level headers that a proxy never forwards as they are (RFC 9110 7.6.1 and Go's
# httputil.ReverseProxy list). Upgrade is put back for upgrade requests; Transfer-Encoding is
# written anew by the engine; TE is put back as "trailers" when the client asked for trailers;
# Trailer is announced again only on a chunked message (the only kind that can carry trailers).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"status code %d" % status


# PERF: status lines are built once; Go's server writes its own reason phrase, and so do we.
_LINES_11 = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_LINES_10 = {s.value: b"HTTP/1.0 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


def status_line(status: int, http10: bool = False) -> bytes:
    line = (_LINES_10 if http10 else _LINES_11).get(status)
    if line is None:
        line = b"HTTP/1.%d %d %s\r\n" % (0 if http10 else 1, status, _reason(status))
    return line


_date_second = 0
_date_line = b""


def date_header() -> bytes:
    """``Date: ...\\r\\n`` for now, formatted once a second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date_line


def error_head(status: int, length: int, http10: bool, close: bool, keep_alive_10: bool) -> bytes:
    """The head Go's ``http.Error`` gives: text/plain, nosniff, Date, Content-Length."""
    conn = b"Connection: close\r\n" if close else b""
    if not close and http10 and keep_alive_10:
        conn = b"Connection: keep-alive\r\n"
    return b"".join(
        (
            status_line(status, http10),
            b"Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n",
            date_header(),
            b"Content-Length: %d\r\n" % length,
            conn,
            b"\r\n",
        )
    )
