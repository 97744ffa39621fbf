"""The h11 parser backend (pure Python): the events of ``proxy.engine.parsers`` from h11."""

from __future__ import annotations

import re
from typing import Any

import h11
import h11._readers

from _speedups.errors import ParseError

__all__ = ["H11RequestParser", "H11ResponseParser"]

# h11 takes anything after a chunk size's ";" up to the line's end (a bare CR, a NUL, any
# control byte): llhttp and RFC 9112 allow only token names and token or quoted-string values.
# The h11 backend must be as strict as the fast one, and h11 reads chunk lines with this one
# module-level pattern, so the pattern is swapped for the RFC's grammar (stricter only: every
# chunk line it accepts, h11's accepted too).
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
h11._readers.chunk_header_re = re.compile(
    rb"(?P<chunk_size>[0-9A-Fa-f]{1,20})"
    rb"(?P<chunk_ext>(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
    + _QUOTED + rb"))?)*)[ \t]*\r\n"
)


def _noop() -> None:
    pass


def _has_obs_fold(head: bytes) -> bool:
    return b"\n " in head or b"\n\t" in head


# Control bytes other than HTAB (and the CR LF that end lines) are invalid in a head: llhttp
# refuses them, h11 lets some through, so the h11 backend checks the raw head itself.
_CTL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_CHUNK = 1 << 63


def _h11_error(exc: Exception, default: int) -> ParseError:
    status = getattr(exc, "error_status_hint", default) or default
    if default == 502:
        status = 502
    return ParseError(str(exc) or "malformed message", status)



def _too_large(limit: int) -> str:
    """Go's transport's words for a response head over its limit (Knative's 502 body)."""
    return ("net/http: HTTP/1.x transport connection broken: net/http: server response "
            f"headers exceeded {limit} bytes; aborted")


class H11RequestParser:
    __slots__ = ("_sink", "_conn", "_max_head", "_head_bytes", "_in_head", "_done", "_head_begin")

    def __init__(self, sink: Any, max_head: int) -> None:
        self._sink = sink
        self._head_begin = getattr(sink, "head_begin", _noop)
        self._max_head = max_head
        self._conn = self._new_conn()
        self._head_bytes = b""
        self._in_head = True
        self._done = False

    def _new_conn(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_head + 4)

    def feed(self, data: bytes) -> None:
        # A loop, not recursion: the bytes after one request are the next one's, and a client
        # may pipeline thousands of them in one read (recursion hit Python's limit at ~20 000).
        while True:
            rest = self._feed_one(data)
            if rest is None:
                return
            data = rest

    def _feed_one(self, data: bytes) -> bytes | None:
        """Feeds ``data``; returns the bytes after a complete request (to feed afresh), or
        None."""
        if self._done:
            return None
        if self._in_head:
            if data and not self._head_bytes:
                self._head_begin()
            # h11 folds obs-fold lines silently; Knative's Go server refuses them, so do we.
            self._head_bytes += data
            end = self._head_bytes.find(b"\r\n\r\n")
            head = self._head_bytes if end < 0 else self._head_bytes[:end]
            if _has_obs_fold(head):
                raise ParseError("obsolete line folding in header", 400)
            if _CTL.search(head):
                raise ParseError("invalid header value", 400)
            if end < 0 and len(self._head_bytes) > self._max_head:
                raise ParseError("request header too large", 431)
        conn = self._conn
        conn.receive_data(data)
        rest = self._drain()
        if rest is not None:
            return rest
        # h11 takes chunk sizes of any length; Go (and llhttp) refuse those over 63 bits.
        reader = getattr(self._conn, "_reader", None)
        if getattr(reader, "_bytes_in_chunk", 0) >= _MAX_CHUNK:
            raise ParseError("invalid chunk size", 400)
        return None

    def _drain(self) -> bytes | None:
        sink = self._sink
        while True:
            try:
                ev: Any = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _h11_error(exc, 400) from None
            if ev is h11.NEED_DATA:
                return None
            t = type(ev)
            if t is h11.Request:
                self._in_head = False
                self._head_bytes = b""
                size = len(ev.target) + sum(len(n) + len(v) + 4 for n, v in ev.headers.raw_items())
                if size > self._max_head:
                    raise ParseError("request header too large", 431)
                sink.on_head(
                    ev.method, ev.target, ev.http_version, list(ev.headers.raw_items())
                )
            elif t is h11.Data:
                sink.on_body(bytes(ev.data))
            elif t is h11.EndOfMessage:
                rest, _closed = self._conn.trailing_data
                sink.on_end(list(ev.headers.raw_items()))
                state = self._conn.states.get(h11.CLIENT)
                if state is h11.MIGHT_SWITCH_PROTOCOL:
                    self._done = True
                    sink.on_upgrade(bytes(rest))
                    return None
                # One h11 connection per request: the next starts afresh on the leftovers.
                self._conn = self._new_conn()
                self._in_head = True
                self._head_bytes = b""
                return bytes(rest) if rest else None
            elif ev is h11.PAUSED:
                return None
            elif t is h11.ConnectionClosed:
                return None


class H11ResponseParser:
    __slots__ = ("_sink", "_conn", "_max_head", "_upgrade", "_method")

    def __init__(self, sink: Any, max_head: int) -> None:
        self._sink = sink
        self._max_head = max_head
        self._conn: h11.Connection | None = None
        self._upgrade = False
        self._method = b"GET"

    def expect(self, method_is_head: bool, upgrade: bool) -> None:
        self._method = b"HEAD" if method_is_head else b"GET"
        self._upgrade = upgrade
        self._conn = self._new_conn(b"")

    def _new_conn(self, leftover: bytes) -> h11.Connection:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=self._max_head + 4)
        headers = [(b"host", b"upstream")]
        if self._upgrade:
            headers += [(b"connection", b"upgrade"), (b"upgrade", b"x")]
        conn.send(h11.Request(method=self._method, target=b"/", headers=headers))
        if leftover:
            conn.receive_data(leftover)
        return conn

    def feed(self, data: bytes) -> None:
        conn = self._conn
        if conn is None:
            raise ParseError("response without a request", 502)
        conn.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        sink = self._sink
        while self._conn is not None:
            in_head = self._conn.their_state is h11.SEND_RESPONSE
            try:
                ev: Any = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                if in_head and exc.error_status_hint == 431:
                    # A head that outgrew h11's buffer before it ended ("Receive buffer too
                    # long"): the same answer as a whole head over the limit (below), whichever
                    # way the reads split it.
                    raise ParseError(_too_large(self._max_head), 502) from None
                raise _h11_error(exc, 502) from None
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                if ev is h11.PAUSED or self._conn.their_state is h11.SWITCHED_PROTOCOL:
                    rest, _ = self._conn.trailing_data
                    self._conn = None
                    sink.on_response_upgrade(bytes(rest))
                return
            t = type(ev)
            if t is h11.InformationalResponse:
                sink.on_response_head(
                    ev.status_code, ev.http_version, list(ev.headers.raw_items())
                )
                if ev.status_code == 101:
                    rest, _ = self._conn.trailing_data
                    self._conn = None
                    sink.on_response_end([])
                    sink.on_response_upgrade(bytes(rest))
                    return
                sink.on_response_end([])
            elif t is h11.Response:
                if sum(len(n) + len(v) + 4 for n, v in ev.headers.raw_items()) > self._max_head:
                    raise ParseError(_too_large(self._max_head), 502)
                sink.on_response_head(
                    ev.status_code, ev.http_version, list(ev.headers.raw_items())
                )
            elif t is h11.Data:
                sink.on_response_body(bytes(ev.data))
            elif t is h11.EndOfMessage:
                rest, _ = self._conn.trailing_data
                self._conn = None
                sink.on_response_end(list(ev.headers.raw_items()))
                if rest:
                    # Bytes after a complete response, before a new request: a broken upstream.
                    raise ParseError("unsolicited response bytes", 502)
                return
            elif t is h11.ConnectionClosed:
                return
