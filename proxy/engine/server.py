"""The HTTP/1.1 proxy engine: client connections, exchanges, and the relay between them.

Theory of operation
-------------------
``ServerProtocol`` is a thin asyncio protocol (duck-typed) around a request parser
(``parsers``). Each request head becomes an ``Exchange``; the connection runs one exchange at a
time, in order, so pipelined requests are answered in order (later ones wait, parsed, with
reading paused).

This module and the others in ``_speedups._select.ENGINE_MODULES`` are compiled by Cython,
typed by the ``.pxd`` beside each (attributes, and C-level calls between the engine's objects);
the ``.py`` is their pure twin. Annotations are for mypy only: the ``.pxd`` is what Cython reads.

The engine knows nothing of Knative. It hands each exchange to a *handler* (the queue-proxy's or
the activator's policy) with ``handler.handle(exchange)``. The handler then, now or later:

- answers it locally: ``exchange.respond(status, body, head_lines)`` / ``exchange.error(...)``;
- or sets ``exchange.head_out`` (the rewritten request head, see ``proxy.headers``) and calls
  ``exchange.forward(pool)``: an upstream connection is taken from the pool, the head is sent,
  and bodies are relayed as raw decoded bytes in both directions with backpressure (a full
  transport pauses reading on the other side);
- and may set ``exchange.on_done``, called exactly once when the exchange ends in any way
  (answered, failed, client gone, timed out): the place to release a breaker slot or to take a
  waiter out of a queue.

Timeouts are kept in ``Deadlines`` queues (one loop timer for all) and decided by
``proxy.engine.timeouts.expire``. Framing to the client is decided here: responses with a length
keep it, others are chunked to HTTP/1.1 clients and close-delimited to HTTP/1.0 ones.

Why one long module (about 950 lines): ``ServerProtocol`` and ``Exchange`` are one state machine,
the client side of an exchange's life (head, body, forward, response, done, next pipelined
request); every transition of one is a call into the other. Kept together, each transition is
read in one place and is a C call in the compiled build; the upstream side (``upstream``), the
timers (``deadlines``) and the messages (``messages``) are already their own modules.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable
from functools import partial
from time import monotonic
from typing import TYPE_CHECKING, Any

from _speedups import fields as F
from _speedups.head import build_head, connection_tokens, join_bytes, scan_headers, valid_host
from proxy.engine import parsers
from proxy.engine import states as S
from proxy.engine.deadlines import Deadlines, Queue
from proxy.engine.messages import HOP_BY_HOP, date_header, error_head, status_line
from proxy.engine.timeouts import APPEND, IDLE, RESPOND, RESPONSE_START, TIMEOUT_BODY, TOTAL, expire

if TYPE_CHECKING:
    from proxy.engine.handler import Handler

__all__ = ["Exchange", "ServerProtocol", "Server"]

log = logging.getLogger("proxy.engine")


BODY_BUFFER = 64 * 1024
_LINGER_RESET = struct.pack("ii", 1, 0)
HEAD_TICKS = 4  # header-read-timeout sweeps per period
_CHUNK_END = b"0\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_PREFACE_START = b"PRI * HTTP/2.0"  # the HTTP/2 preface's first line

Timeouts = tuple  # (total queue, response-start queue or None, idle queue or None)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def chunk_end(trailers: list[tuple[bytes, bytes]]) -> bytes:
    if not trailers:
        return _CHUNK_END
    return b"0\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in trailers) + b"\r\n"



def _check_target(method: bytes, target: bytes) -> None:
    """A request target other than origin-form: ``*`` for OPTIONS only, absolute-form with a
    valid authority (it becomes the Host), nothing else (authority-form is CONNECT's, which is
    never relayed)."""
    if target == b"*":
        if method != b"OPTIONS":
            raise parsers.ParseError("asterisk-form is only for OPTIONS")
        return
    scheme, sep, rest = target.partition(b"://")
    if not sep or not scheme or not scheme.isalpha():
        if method == b"CONNECT":
            return
        raise parsers.ParseError("malformed request target")
    end = len(rest)
    for stop in (b"/", b"?", b"#"):
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    authority = rest[:end].rpartition(b"@")[2]  # user info never becomes the Host
    if not authority or not valid_host(authority):
        raise parsers.ParseError("malformed host in request target")


def _names_h2c(upgrade: bytes) -> bool:
    """Whether an Upgrade header offers h2c (its tokens, any case)."""
    return any(t.strip().lower() == b"h2c" for t in upgrade.split(b","))

class Exchange:
    """One request and its response, from head to end."""

    __slots__ = (
        "conn",
        "method",
        "target",
        "http10",
        "headers",
        "lnames",
        "fields",
        "keep_alive",
        "upgrade",
        "chunked",
        "expect_continue",
        "body_done",
        "body_buf",
        "early",
        "body_size",
        "trailers",
        "upstream",
        "state",
        "written",
        "resp_mode",
        "resp_close",
        "resp_status",
        "resp_bytes",
        "resp_local",
        "req_bytes",
        "head_out",
        "on_done",
        "ctx",
        "timeout_body",
        "total_q",
        "start_q",
        "idle_q",
        "started",
        "body_reader",
    )

    def __init__(self, conn: ServerProtocol, method: bytes, target: bytes, http10: bool,
                 headers: list, lnames: list, fields: list) -> None:
        self.conn = conn
        self.method = method
        self.target = target
        self.http10 = http10
        self.headers = headers
        self.lnames = lnames
        self.fields = fields
        self.keep_alive = True
        self.upgrade = False
        self.chunked = False
        self.expect_continue = False
        self.body_done = False
        self.body_buf: list[bytes] | None = None
        # Bytes after an upgrade request, held until the app switches (101): never relayed
        # before, so a refused upgrade cannot smuggle them to the app as a request.
        self.early: list[bytes] | None = None
        self.body_size = 0
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.upstream: Any = None
        self.state = S.WAITING
        self.written = False
        self.resp_mode = 0  # 0 length or no body, 1 chunked, 2 close-delimited
        self.resp_close = False
        self.resp_status = 0
        self.resp_bytes = 0
        # The answer was made here (respond, error: a refusal, a timeout, an upstream failure),
        # not relayed from the upstream: the metrics' client side reports an error type then.
        self.resp_local = False
        self.req_bytes = 0  # request body bytes read while the request was being served
        self.head_out = b""
        self.on_done: Callable[[Exchange], None] | None = None
        self.ctx: Any = None
        self.timeout_body = TIMEOUT_BODY
        self.total_q: Queue | None = None
        self.start_q: Queue | None = None
        self.idle_q: Queue | None = None
        self.started = 0.0
        self.body_reader: tuple[Callable[[bytes], None], int] | None = None

    # ------------------------------------------------------------------ handler API

    @property
    def peer(self) -> str:
        return self.conn.peer_ip

    def respond(self, status: int, body: bytes = b"", head_lines: bytes = b"",
                close: bool = False) -> None:
        """Answers locally with ``body``; ``head_lines`` are extra header lines (CRLF-ended)."""
        if self.state == S.DONE:
            return
        self._detach_upstream()
        conn = self.conn
        close = close or self._must_close()
        conn_line = b"Connection: close\r\n" if close else b""
        if not close and self.http10:
            conn_line = b"Connection: keep-alive\r\n"
        head = b"".join(
            (
                status_line(status, self.http10),
                head_lines,
                date_header(),
                b"Content-Length: %d\r\n" % len(body),
                conn_line,
                b"\r\n",
            )
        )
        self.resp_status = status
        self.resp_bytes = len(body)
        self.resp_local = True
        self.resp_close = close
        self.written = True
        conn.write(head if self.method == b"HEAD" else head + body)
        conn.flush()
        self._finish()

    def error(self, status: int, text: str | bytes, close: bool = False) -> None:
        """Answers like Go's ``http.Error``: text/plain, nosniff, the text and a newline."""
        if self.state == S.DONE:
            return
        self._detach_upstream()
        body = (text.encode() if isinstance(text, str) else text) + b"\n"
        close = close or self._must_close()
        head = error_head(status, len(body), self.http10, close, self.keep_alive)
        self.resp_status = status
        self.resp_bytes = len(body)
        self.resp_local = True
        self.resp_close = close
        self.written = True
        self.conn.write(head if self.method == b"HEAD" else head + body)
        self.conn.flush()
        self._finish()

    def forward(self, pool: Any) -> None:
        """Sends ``head_out`` and the body upstream through a connection from ``pool``."""
        if self.state != S.WAITING:
            return
        if self.method == b"CONNECT":  # Go's ReverseProxy, through Knative's error handler
            self.error(502, "client sent unsupported CONNECT request", close=True)
            return
        self.state = S.CONNECTING
        pool.acquire(self)

    def read_body(self, callback: Callable[[bytes], None], limit: int = 1 << 20) -> None:
        """For a handler that answers from the request body itself (a control API): calls
        ``callback(body)`` once the whole body is in, at once if it already is. A body over
        ``limit`` bytes is answered 413 and never reaches ``callback``."""
        if self.state != S.WAITING:
            return
        if self.body_done:
            body = b"".join(self.body_buf) if self.body_buf else b""
            self.body_buf = None
            callback(body)
            return
        self.body_reader = (callback, limit)
        if self.body_size > limit:
            self.error(413, "http: request body too large", close=True)
            return
        self.conn.resume(S.PAUSE_BODY)

    def arm_timeouts(self, queues: Timeouts, now: float = -1.0) -> None:
        """Starts this exchange's revision timeouts (from ``Server.timeouts``) at ``now`` (the
        loop's clock; by default, read now)."""
        total, start, idle = queues
        if now < 0:
            now = self.conn.server._time()
        self.total_q = total
        total.add(self, now)
        if start is not None:
            self.start_q = start
            start.add(self, now)
        if idle is not None:
            self.idle_q = idle
            idle.add(self, now)

    # ------------------------------------------------------------------ engine internals

    def _must_close(self) -> bool:
        conn = self.conn
        return (
            not self.keep_alive
            or not self.body_done
            or conn.closing
            or conn.server.draining_connections
        )

    def feed_body(self, data: bytes) -> None:
        up = self.upstream
        if up is not None and self.state == S.FORWARDING:
            self.req_bytes += len(data)
            up.send_body(data, self.chunked)
            return
        if self.state == S.DONE:
            return  # answered already; the rest of the body is dropped
        self.req_bytes += len(data)
        if self.body_buf is None:
            self.body_buf = []
        self.body_buf.append(data)
        self.body_size += len(data)
        reader = self.body_reader
        if reader is not None:
            if self.body_size > reader[1]:
                self.body_reader = None
                self.error(413, "http: request body too large", close=True)
        elif self.body_size > BODY_BUFFER:
            self.conn.pause(S.PAUSE_BODY)

    def end_body(self, trailers: list[tuple[bytes, bytes]]) -> None:
        self.body_done = True
        self.trailers = trailers
        up = self.upstream
        if up is not None and self.state == S.FORWARDING:
            up.send_body_end(self.chunked, trailers)
            return
        reader = self.body_reader
        if reader is not None and self.state == S.WAITING:
            self.body_reader = None
            body = b"".join(self.body_buf) if self.body_buf else b""
            self.body_buf = None
            reader[0](body)

    def attached(self, upstream: Any) -> None:
        """The pool found an upstream connection: send the head and what body we hold."""
        self.upstream = upstream
        self.state = S.FORWARDING
        if self.conn.full:  # the client cannot take more yet: the answer waits in the app
            upstream.pause_reading()
        out = self.head_out
        buf = self.body_buf
        if buf:
            self.body_buf = None
            self.body_size = 0
            if self.chunked:
                out += b"".join([chunk(d) for d in buf if d])
            else:
                out += b"".join(buf)
            self.conn.resume(S.PAUSE_BODY)
        if self.body_done and self.chunked:
            out += chunk_end(self.trailers or [])
        upstream.send_head(out, self)
        if self.expect_continue and not self.body_done and not self.http10:
            self.conn.write(_CONTINUE)
            self.conn.flush()

    def early_tunnel_bytes(self, data: bytes) -> None:
        """Bytes after an upgrade request: the tunnel's first bytes if the app switches (101),
        else nothing anyone may read (the connection closes after the answer)."""
        if self.early is None:
            self.early = []
        self.early.append(data)

    def upstream_failed(self, reason: str) -> None:
        """The upstream broke. Before the response started: 502; after: cut the client."""
        if self.state == S.DONE:
            return
        self.upstream = None
        if not self.written:
            self.error(502, reason)
        else:
            self._abort_client()

    def _abort_client(self) -> None:
        conn = self.conn
        self._finish_state()
        conn.abort()

    def response_head(self, status: int, headers: list, lnames: list, values: list,
                      tokens: list) -> None:
        """Writes the client's response head for an upstream response head (``tokens``: those
        of its Connection header, lower-case)."""
        if self.state == S.DONE:
            return
        if status < 200 and status != 101:
            if status == 100:
                return  # we said 100 Continue ourselves (or the client never asked)
            if not self.http10:
                self.conn.write(build_head(status_line(status), headers, lnames, HOP_BY_HOP,
                                           tokens, b""))
            return
        http10 = self.http10
        extra = []
        if status == 101:
            self.state = S.TUNNEL
            extra.append(b"Connection: Upgrade\r\n")
            if values[F.UPGRADE]:
                extra.append(b"Upgrade: " + values[F.UPGRADE] + b"\r\n")
        else:
            bodyless = self.method == b"HEAD" or status == 204 or status == 304
            close = self._must_close() or self.upgrade
            if bodyless or values[F.CONTENT_LENGTH] is not None and values[
                F.TRANSFER_ENCODING
            ] is None:
                self.resp_mode = 0
            elif http10:
                self.resp_mode = 2
                close = True
            else:
                self.resp_mode = 1
                extra.append(b"Transfer-Encoding: chunked\r\n")
                if values[F.TRAILER]:
                    extra.append(b"Trailer: " + values[F.TRAILER] + b"\r\n")
            if close:
                extra.append(b"Connection: close\r\n")
            elif http10:
                extra.append(b"Connection: keep-alive\r\n")
            self.resp_close = close
        if values[F.DATE] is None:
            extra.append(date_header())
        drop = HOP_BY_HOP if self.resp_mode == 0 else _HOP_AND_LENGTH
        self.resp_status = status
        self._written()
        self.conn.write(
            build_head(status_line(status, http10), headers, lnames, drop, tokens,
                       join_bytes(extra) if extra else b"")
        )

    def response_plain(self, status: int, lines: bytes, has_date: bool) -> None:
        """``response_head`` for a plain upstream head (``UpstreamProtocol.on_response_plain``):
        a final status with a Content-Length, ``lines`` already without hop-by-hop headers."""
        if self.state == S.DONE:
            return
        close = self._must_close() or self.upgrade
        self.resp_mode = 0
        self.resp_close = close
        self.resp_status = status
        self._written()
        # PERF: the pieces go to the write buffer as they are; flush joins them once.
        conn = self.conn
        conn.write(status_line(status, self.http10))
        conn.write(lines)
        if close:
            conn.write(b"Connection: close\r\n")
        elif self.http10:
            conn.write(b"Connection: keep-alive\r\n")
        if not has_date:
            conn.write(date_header())
        conn.write(b"\r\n")

    def response_body(self, data: bytes) -> None:
        if self.state == S.DONE or not data:
            return
        self.resp_bytes += len(data)
        if self.idle_q is not None:
            self.idle_q.touch(self)
        if self.resp_mode == 1:
            self.conn.write(b"%x\r\n" % len(data))
            self.conn.write(data)
            self.conn.write(b"\r\n")
        else:
            self.conn.write(data)

    def response_end(self, trailers: list) -> None:
        if self.state == S.DONE:
            return
        if self.resp_mode == 1:
            self.conn.write(chunk_end(trailers))
        self._finish()

    def _written(self) -> None:
        if not self.written:
            self.written = True
            if self.start_q is not None:
                self.start_q.discard(self)
        if self.idle_q is not None:
            self.idle_q.touch(self)

    def on_timeout(self, kind: str) -> None:
        if self.state == S.DONE:
            return
        action = expire(kind, self.written)
        if action == RESPOND:
            body = self.timeout_body
            self._detach_upstream()
            self.respond(504, body, b"Content-Type: text/plain; charset=utf-8\r\n")
        elif action == APPEND:
            self._detach_upstream()
            body = self.timeout_body
            if self.resp_mode == 1:
                # Knative's text goes out, but never the terminating chunk: the body was cut,
                # and the client must not take it for complete. The connection then closes.
                self.conn.write(chunk(body))
                self.resp_close = True
                self._finish()
            elif self.resp_mode == 2:
                self.conn.write(body)
                self.conn.flush()
                self._finish()
            else:
                # A response with a length cannot grow: Go stops short, and so does the client.
                self._abort_client()

    def _detach_upstream(self) -> None:
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.abandon()

    def _finish_state(self) -> bool:
        if self.state == S.DONE:
            return False
        self.state = S.DONE
        if self.total_q is not None:
            self.total_q.discard(self)
            if self.start_q is not None:
                self.start_q.discard(self)
            if self.idle_q is not None:
                self.idle_q.discard(self)
        cb = self.on_done
        if cb is not None:
            self.on_done = None
            try:
                cb(self)
            except Exception:  # pragma: no cover - a handler bug must not kill the loop
                log.exception("on_done callback failed")
        return True

    def _finish(self) -> None:
        if self._finish_state():
            self.conn.exchange_done(self)

    def client_gone(self) -> None:
        """The client closed or broke its connection."""
        if self.state == S.DONE:
            return
        self._detach_upstream()
        self._finish_state()


_HOP_AND_LENGTH = HOP_BY_HOP | {b"content-length"}


def _expire_total(ex: Exchange) -> None:
    ex.on_timeout(TOTAL)


def _expire_start(ex: Exchange) -> None:
    ex.on_timeout(RESPONSE_START)


def _expire_idle(ex: Exchange) -> None:
    ex.on_timeout(IDLE)


def _no_write(data: bytes) -> None:
    raise RuntimeError("no transport")


def _closed() -> bool:
    return True


class ServerProtocol:
    """A client connection: parses requests, runs their exchanges one at a time, in order.

    PERF: compiled, a ``_speedups._h1_c.RequestSink`` (server.pxd), so the compiled parser calls
    ``on_head``, ``on_body`` and ``on_end`` in C."""

    __slots__ = (
        "server",
        "transport",
        "peer_ip",
        "peer_bytes",
        "peer_addr",
        "xff_line",
        "parser",
        "current",
        "reading",
        "pipeline",
        "paused",
        "full",
        "wbuf",
        "corked",
        "closing",
        "tunnel",
        "parser_done",
        "head_tick",
        "shares",
        "fresh",
        "h2",
        "tls",
        "_write",
        "_is_closing",
        "_feed",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer_ip = ""
        self.peer_bytes = b""
        self.peer_addr = ""
        self.xff_line = b"X-Forwarded-For: \r\n"  # for a request with none: the peer alone
        self.parser = parsers.request_parser(server.backend, self, server.max_head)
        self._feed = self.parser.feed  # PERF: bound once (see _write below)
        self.current: Exchange | None = None
        self.reading: Exchange | None = None  # whose body is arriving
        # MEM: a list, not a deque: 56 bytes against 760 on every connection, and a pipeline
        # is rarely more than a few requests deep (10 000 held connections: -7 MiB).
        self.pipeline: list[Exchange] = []
        self.paused = 0
        self.full = False  # the transport is over its high-water mark (pause_writing)
        self.wbuf: list[bytes] = []
        self.corked = False
        self.closing = False
        self.tunnel = False
        self.parser_done = False  # a request that ends the connection was read
        self.head_tick = -1  # the server's tick when the head being read began; -1: none
        # An upstream answer has come back to this client: its next requests may take any
        # pooled connection (UpstreamPool.acquire: HAProxy's http-reuse safe).
        self.shares = False
        self.fresh = True  # nothing read yet: the HTTP/2 preface may come
        # The HTTP/2 connection this one switched to (while ``fresh``: the first bytes, held
        # because they may be the start of the HTTP/2 preface).
        self.h2: Any = None
        self.tls = False  # accepted on a TLS listener (Server.listen with ssl=)
        # PERF: the transport's write and is_closing, bound once (a call by name looks the
        # method up on every call: about 300 instructions).
        self._write: Callable[[bytes], None] = _no_write
        self._is_closing: Callable[[], bool] = _closed

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._write = transport.write  # type: ignore[attr-defined]
        self._is_closing = transport.is_closing
        peer = transport.get_extra_info("peername")
        if peer:
            self.set_peer(peer[0], peer[1])
        self.server.connections.add(self)
        self.head_tick = self.server.head_tick

    def set_peer(self, ip: str, port: int) -> None:
        self.peer_ip = ip
        self.peer_bytes = ip.encode()
        self.peer_addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        self.xff_line = b"X-Forwarded-For: " + self.peer_bytes + b"\r\n"

    def data_received(self, data: bytes) -> None:
        if self.tunnel:
            up = self.current.upstream if self.current is not None else None
            if up is not None:
                up.transport.write(data)
            return
        if self.parser_done:
            ex = self.current
            if ex is not None and ex.upgrade and ex.state < S.DONE:
                ex.early_tunnel_bytes(data)  # sent before the 101: the tunnel's first bytes
            return  # bytes after a request that closes the connection are never read (Go)
        if self.closing:
            return  # answered and closing (a refusal before the body was read): no more
        if self.fresh:
            if self.h2 is not None:  # the start of the preface, held
                data = self.h2 + data
                self.h2 = None
            if data[:14] == _PREFACE_START:
                # HTTP/2 with prior knowledge (h2c): the connection is HTTP/2's from here.
                from proxy.engine.h2 import serve

                self.fresh = False
                self.h2 = serve(self, data)
                return
            if len(data) < 14 and _PREFACE_START.startswith(data):
                self.h2 = data  # a piece of what may be the preface: wait for the rest
                return
            self.fresh = False
        try:
            self._feed(data)
        except parsers.ParseError as exc:
            if not self.parser_done:
                self._bad_request(exc)
        if self.wbuf:
            self.flush()

    def eof_received(self) -> bool | None:
        if self.tunnel:
            # Go's ReverseProxy copies both ways until either side stops, then closes both.
            ex = self.current
            if ex is not None and ex.upstream is not None:
                ex.upstream.close()
        return None  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.current is not None:
            self.current.client_gone()
            self.current = None
        self.pipeline.clear()
        self.server.connection_closed(self)

    def pause_writing(self) -> None:
        self.full = True  # kept: an upstream attached later starts paused (Exchange.attached)
        ex = self.current
        if ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.full = False
        ex = self.current
        if ex is not None and ex.upstream is not None:
            ex.upstream.resume_reading()

    # ------------------------------------------------------------------ parser sink

    def on_head(self, method: bytes, target: bytes, version: bytes, headers: list) -> None:
        if self.parser_done or self.closing:
            # A request after one that ends the connection (Connection: close, HTTP/1.0, an
            # upgrade, an answer that closes it before the body was read) came in the same
            # read: it is never run (Go never reads it).
            return
        self.head_tick = -1
        lnames, values, flags = scan_headers(headers)
        http10 = version == b"1.0"
        if not http10 and version != b"1.1":
            if version == b"0.9" or version[:2] == b"1.":
                # A request line with no version (httptools says 0.9), or one httptools refuses
                # (HTTP/1.2): Go's "malformed HTTP request" and so a bare 400 in both builds.
                raise parsers.ParseError(f"malformed HTTP version {version!r}")
            raise parsers.ParseError("unsupported protocol version", 505)
        if flags:
            if flags & F.FLAG_CONFLICTING_LENGTH:
                raise parsers.ParseError("conflicting Content-Length headers")
            raise parsers.ParseError("too many Host headers")
        te = values[F.TRANSFER_ENCODING]
        if te is not None:
            if values[F.CONTENT_LENGTH] is not None:
                raise parsers.ParseError("Content-Length with Transfer-Encoding")
            if te.strip().lower() != b"chunked" or http10:
                raise parsers.ParseError("unsupported transfer encoding", 501)
        if not target or target[0] != 47:  # not origin-form ("/..."): PERF, one byte
            _check_target(method, target)
        host = values[F.HOST]
        if host is None:
            if not http10:
                raise parsers.ParseError("missing required Host header")
        elif not valid_host(host):
            raise parsers.ParseError("malformed Host header")
        ex = Exchange(self, method, target, http10, headers, lnames, values)
        tokens = connection_tokens(values[F.CONNECTION]) if values[F.CONNECTION] else ()
        if http10:
            ex.keep_alive = b"keep-alive" in tokens
        else:
            ex.keep_alive = b"close" not in tokens
        upgrade = values[F.UPGRADE]
        if upgrade is not None and _names_h2c(upgrade):
            if (b"http2-settings" in tokens and not http10 and self.current is None
                    and te is None and values[F.CONTENT_LENGTH] in (None, b"0")):
                # Go's h2c handler: 101, then HTTP/2 with this request as stream 1. (One with
                # a body, or pipelined behind another, is served over HTTP/1.1, as RFC 9113
                # 3.2 allows; Go would read such a body whole into memory first.)
                self.parser_done = True
                from proxy.engine.h2 import upgrade as h2_upgrade

                self.h2 = h2_upgrade(self, method, target, headers, lnames, values)
                return
            upgrade = None  # never relayed as a tunnel (it would pass the breaker and stats)
        ex.upgrade = b"upgrade" in tokens and upgrade is not None
        if ex.upgrade and (te is not None or values[F.CONTENT_LENGTH] not in (None, b"0")):
            # llhttp switches right after such a head and would take the body for tunnel
            # bytes: refused, so that a body (or a request hidden in it) never goes astray.
            raise parsers.ParseError("an upgrade request cannot have a body")
        ex.chunked = te is not None
        expect = values[F.EXPECT]
        ex.expect_continue = expect is not None and expect.lower() == b"100-continue"
        if te is None and values[F.CONTENT_LENGTH] is None:
            # No body: the parser reports the end at once, but mark it now for the handler.
            ex.body_done = not ex.upgrade
        self.reading = ex
        if self.current is None:
            self.current = ex
            self.server.dispatch(ex)
        else:
            self.pipeline.append(ex)
            self.pause(S.PAUSE_PIPELINE)

    def on_body(self, data: bytes) -> None:
        ex = self.reading
        if ex is not None:
            ex.feed_body(data)

    def on_end(self, trailers: list) -> None:
        ex = self.reading
        if ex is None:
            return
        if not ex.upgrade:
            self.reading = None  # an upgrade request stays: on_upgrade takes what follows
        if not ex.keep_alive:
            self.parser_done = True
        ex.end_body(trailers)

    def on_upgrade(self, rest: bytes) -> None:
        if self.h2 is not None:  # switched to HTTP/2 (h2c upgrade): what follows is its
            if rest:
                self.h2.data_received(rest)
            return
        ex = self.reading
        self.reading = None
        self.parser_done = True  # what follows is tunnel bytes, or nothing
        if ex is None or not ex.upgrade:
            # The parser saw an upgrade we do not relay (h2c, served over HTTP/1.1; CONNECT):
            # that request is answered, then the connection closes; what followed it is
            # never read.
            last = ex or (self.pipeline[-1] if self.pipeline else self.current)
            if last is not None:
                last.keep_alive = False
            else:  # already answered
                self.close()
            return
        ex.body_done = True
        if rest:
            ex.early_tunnel_bytes(rest)
        # Further bytes belong to the tunnel (or to nothing, if the upgrade is refused): none
        # is read until the app has answered.
        self.pause(S.PAUSE_PIPELINE)

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes) -> None:
        self.wbuf.append(data)

    def flush(self) -> None:
        buf = self.wbuf
        if buf:
            self.wbuf = []
            if self.transport is not None and not self._is_closing():
                self._write(buf[0] if len(buf) == 1 else join_bytes(buf))

    def abort(self) -> None:
        """Cuts the connection with a reset, so that no client takes it for a clean end."""
        self.flush()
        self.closing = True
        t = self.transport
        if t is not None:
            sock = t.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                except OSError:
                    pass
            t.abort()

    def close(self) -> None:
        self.flush()
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ flow control

    def pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None and not self.closing:
                self.transport.resume_reading()

    # ------------------------------------------------------------------ lifecycle

    def start_tunnel(self, ex: Exchange) -> None:
        early = ex.early
        if early:
            ex.early = None
            up = ex.upstream
            if up is not None and up.transport is not None:
                up.transport.write(b"".join(early))
        self.tunnel = True
        self.server.tunnels.add(self)
        self.resume(S.PAUSE_PIPELINE | S.PAUSE_BODY)

    def exchange_done(self, ex: Exchange) -> None:
        if ex is not self.current:
            return
        self.current = None
        if self.paused & S.PAUSE_UPSTREAM:
            # Stopped for the upstream of this exchange (its buffer full of the body), which
            # the exchange no longer has: its resume_writing would never reach this client.
            self.resume(S.PAUSE_UPSTREAM)
        if self.tunnel or ex.resp_close or self.closing or not ex.keep_alive or not ex.body_done:
            self.close()
            return
        if self.wbuf and not self.corked:
            # PERF: the answer goes out at the end of the loop's pass, with the pass's other
            # answers (Server.uncork): the client wakes once for several (as with HAProxy).
            self.corked = True
            server = self.server
            corked = server.corked
            if not corked:
                server._uncork_soon()
            corked.append(self)
        if self.pipeline:
            nxt = self.pipeline.pop(0)
            if isinstance(nxt, parsers.ParseError):
                self._answer_bad_request(nxt)
                return
            self.current = nxt
            if not self.pipeline:
                self.resume(S.PAUSE_PIPELINE)
            # Not a direct call: a long pipeline of local answers would recurse.
            self.server.loop.call_soon(self.server.dispatch, nxt)
        else:
            self.resume(S.PAUSE_PIPELINE)
            if self.server.draining_connections:
                self.close()

    def head_begin(self) -> None:
        if self.head_tick < 0:
            self.head_tick = self.server.head_tick

    def head_timeout(self) -> None:
        if self.current is None:
            self.head_tick = -1
            self.close()
        else:
            # A head pipelined behind a running request: Go reads it only once that one is
            # answered, so its deadline runs from then. Look again one period later.
            self.head_tick = self.server.head_tick

    def _bad_request(self, exc: parsers.ParseError) -> None:
        """Answers a request that cannot be parsed, then closes: it never reaches the app.

        An error in the body of the request being read fails that request; an error in a
        later, pipelined head waits its turn, after the requests before it are answered."""
        self.parser_done = True
        reading = self.reading
        self.reading = None
        ex = self.current
        if ex is not None and ex.state != S.DONE and reading is ex:
            if ex.written:
                ex.client_gone()
                self.abort()
                return
            ex.keep_alive = False
            ex.error(exc.status, exc.reason, close=True)
            return
        if reading is not None and reading is not ex:
            # A pipelined request whose body broke: it never runs.
            try:
                self.pipeline.remove(reading)
            except ValueError:
                pass
        if ex is not None and ex.state != S.DONE:
            self.pipeline.append(exc)  # type: ignore[arg-type]
            self.pause(S.PAUSE_PIPELINE)
            return
        self._answer_bad_request(exc)

    def _answer_bad_request(self, exc: parsers.ParseError) -> None:
        self.pipeline.clear()
        log.debug("refused a request head: %s (%d)", exc.reason, exc.status)
        self.write(parsers.refusal(exc))
        self.close()


def _no_handle(ex: Exchange) -> None:
    raise RuntimeError("no handler")


class Server:
    """Shared state of one listening engine: handler, parser backend, timers, connections."""

    def __init__(
        self,
        handler: Handler | None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        backend: str | None = None,
        max_head: int = parsers.MAX_REQUEST_HEAD,
        header_timeout: float = 60.0,
    ) -> None:
        self.loop = loop or asyncio.get_event_loop()
        self._time = monotonic  # see ``clock`` in proxy.engine.deadlines
        self.handler = handler  # None: set it before the first request (a request meets a 500)
        self._handle_of: Any = None  # the handler whose bound handle() is in _handle
        self._handle: Callable[[Exchange], None] = _no_handle
        self.backend = backend or parsers.default_backend()
        self.max_head = max_head
        self.deadlines = Deadlines(self.loop)
        # PERF: the header read timeout is checked by a sweep every quarter period over the
        # connections reading a head, not by a deadline per request (cProfile: the per-request
        # deadline was 2 dict operations and a clock read on every request). A slow head is
        # cut between 1 and 1.25 periods after it began.
        self.head_tick = 0
        self._head_period = header_timeout / HEAD_TICKS
        self._head_sweeper: asyncio.TimerHandle | None = None
        self.connections: set[ServerProtocol] = set()
        self.tunnels: set[ServerProtocol] = set()
        self.h2conns: set[Any] = set()  # client connections that switched to HTTP/2
        self.draining_connections = False
        self._servers: list[asyncio.Server] = []
        self._idle_waiter: asyncio.Future[None] | None = None
        self.corked: list[ServerProtocol] = []
        self._uncork_soon = partial(self.loop.call_soon, self.uncork)  # PERF: bound once

    def uncork(self) -> None:
        """Writes the answers held back during this pass of the loop (exchange_done)."""
        corked = self.corked
        self.corked = []
        for conn in corked:
            conn.corked = False
            conn.flush()

    def timeouts(self, total: float, response_start: float = 0.0,
                 idle: float = 0.0) -> Timeouts:
        """Deadline queues for ``Exchange.arm_timeouts`` (0 = that timeout is off)."""
        dl = self.deadlines
        return (
            dl.queue(total, _expire_total),
            dl.queue(response_start, _expire_start) if response_start > 0 else None,
            dl.queue(idle, _expire_idle) if idle > 0 else None,
        )

    def dispatch(self, ex: Exchange) -> None:
        if ex.state != S.WAITING:
            return  # its client left while it sat in the pipeline
        ex.started = self._time()
        if ex.target == b"*":  # only OPTIONS gets here (_check_target)
            # Go's server answers "OPTIONS *" itself (globalOptionsHandler), before any
            # handler: 200, no body. Checked against Knative's binary.
            ex.respond(200, b"")
            return
        try:
            handler = self.handler
            if handler is not self._handle_of:  # set, or replaced, since the last request
                self._handle = handler.handle if handler is not None else _no_handle
                self._handle_of = handler
            self._handle(ex)
        except Exception:
            log.exception("handler failed")
            if ex.state != S.DONE:
                if ex.written:
                    ex._abort_client()
                else:
                    ex.error(500, "Internal Server Error")

    def protocol(self) -> ServerProtocol:
        return ServerProtocol(self)

    def tls_protocol(self) -> ServerProtocol:
        conn = ServerProtocol(self)
        conn.tls = True
        return conn

    async def listen(self, host: str, port: int, **kwargs: Any) -> asyncio.Server:
        # A duck-typed protocol: the compiled ServerProtocol cannot subclass asyncio.Protocol.
        # A TLS listener's connections say so (``conn.tls``), known without asking the
        # transport on every request.
        factory = self.tls_protocol if kwargs.get("ssl") is not None else self.protocol
        srv = await self.loop.create_server(
            factory, host, port, **kwargs  # type: ignore[arg-type]
        )
        self._servers.append(srv)
        if self._head_sweeper is None:
            self._head_sweeper = self.loop.call_later(self._head_period, self._sweep_heads)
        return srv

    def _sweep_heads(self) -> None:
        self.head_tick = tick = self.head_tick + 1
        for conn in list(self.connections):
            started = conn.head_tick
            if started >= 0 and tick - started > HEAD_TICKS:
                conn.head_timeout()
        self._head_sweeper = self.loop.call_later(self._head_period, self._sweep_heads)

    def connection_closed(self, conn: ServerProtocol) -> None:
        self.tunnels.discard(conn)
        if self._idle_waiter is not None and not self._busy():
            if not self._idle_waiter.done():
                self._idle_waiter.set_result(None)

    def _busy(self) -> bool:
        return any(c.current is not None and not c.tunnel for c in self.connections) or any(
            h.busy() for h in self.h2conns
        )

    async def shutdown(self) -> None:
        """Like Go's ``Server.Shutdown``: stop accepting, close idle connections, wait for the
        busy ones to finish their exchange. Tunnels are left to ``drain_tunnels``."""
        for srv in self._servers:
            srv.close()
        self.draining_connections = True
        while True:
            for c in list(self.connections):
                if c.current is None and not c.tunnel:
                    c.close()
            for h in list(self.h2conns):
                h.goaway()  # in-flight streams finish; new ones are refused
            if not self._busy():
                return
            self._idle_waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._idle_waiter), 0.5)
            except asyncio.TimeoutError:
                pass
            self._idle_waiter = None

    async def drain_tunnels(self, timeout: float) -> None:
        deadline = monotonic() + timeout
        while self.tunnels and monotonic() < deadline:
            await asyncio.sleep(0.05)
        for c in list(self.tunnels):
            c.abort()

    def close(self) -> None:
        if self._head_sweeper is not None:
            self._head_sweeper.cancel()
            self._head_sweeper = None
        for srv in self._servers:
            srv.close()
        for c in list(self.connections):
            c.abort()
        for h in list(self.h2conns):
            h.abort()
        self.deadlines.close()
