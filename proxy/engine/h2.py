"""HTTP/2 over cleartext (h2c) in the engine: client connections that speak it, and pooled
upstream connections that multiplex streams to the next hop.

Theory of operation
-------------------
A client connection starts as HTTP/1.1 (``server.ServerProtocol``). If its first bytes are the
HTTP/2 connection preface (prior knowledge, as gRPC clients and ``curl --http2-prior-knowledge``
send it), ``serve`` hands the transport to an ``H2ServerConnection``; the ``ServerProtocol``
stays behind as the connection's identity (peer address, server) for its streams.

Each request stream becomes an ``H2Stream``: an ``Exchange`` (the handler's interface is the
same: ``fields``, ``respond``, ``error``, ``forward``, ``read_body``, ``arm_timeouts``,
``on_done``), so the queue-proxy's and the activator's policies (breaker, throttler, timeouts,
header rules, stats, metrics, request log) apply per stream, unchanged. The handler builds the
upstream head as for HTTP/1.1 (``proxy.headers.request_head``); ``h2_headers`` turns it into an
HTTP/2 header list, so the header rules live in one place.

A stream that came in over HTTP/2 goes to the next hop over h2c (Knative's auto transport):
``H2Pool`` keeps multiplexed connections per upstream address and opens another only when the
peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached on every one.

Flow control is end to end: DATA from one side is acknowledged to its sender (WINDOW_UPDATE) only
once it has been written to the other side, so a slow reader holds back its writer through the
windows, and each direction holds at most a window of data per stream. A transport whose write
buffer is full (``pause_writing``) stops the DATA sent on it until it drains.

The protocol state machine is ``proxy.engine.h2core`` (ours) or the ``h2`` library's (its
reference), as ``CORE`` says. This module compiles (``h2.pxd``: the connections, the pool and
``H2Stream`` are extension types, calling each other and the core in C); the compiled build
always runs ``h2core``, and the pure one is its twin (with the ``h2`` library by default).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import FlowControlError, ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from _speedups import fields as F
from _speedups._head_py import H2_DROPPED
from _speedups._select import compiled_allowed
from _speedups.head import h2_headers, scan_headers, valid_host
from _speedups.hpack import Decoder, Encoder
from proxy.engine import states as S
from proxy.engine.messages import HOP_BY_HOP, date_header
from proxy.engine.server import Exchange
from proxy.engine.timeouts import APPEND, RESPOND, expire
from proxy.engine.upstream import dial_error

# The HTTP/2 protocol core: ``proxy.engine.h2core`` (ours, lean), or the ``h2`` library (its
# reference, and the twin of the pure build). The compiled build of this module always runs
# the core (its connections are typed with it); the pure one runs what DATAPLANE_H2=core|h2
# chooses, by default the core where the compiled speedups are allowed, else the library.
COMPILED = not __file__.endswith(".py")
CORE = "core" if COMPILED else (
    os.environ.get("DATAPLANE_H2") or ("core" if compiled_allowed() else "h2"))
if CORE == "core":
    from proxy.engine.h2core import (
        ConnectionTerminated,
        Core,
        DataReceived,
        PingReceived,
        PriorityUpdated,
        RemoteSettingsChanged,
        RequestReceived,
        ResponseReceived,
        StreamEnded,
        StreamReset,
        TrailersReceived,
        UnknownFrameReceived,
        WindowUpdated,
    )
else:
    from h2.events import (  # type: ignore[assignment]
        ConnectionTerminated,
        DataReceived,
        PingReceived,
        PriorityUpdated,
        RemoteSettingsChanged,
        RequestReceived,
        ResponseReceived,
        StreamEnded,
        StreamReset,
        TrailersReceived,
        UnknownFrameReceived,
        WindowUpdated,
    )

if TYPE_CHECKING:
    from proxy.engine.server import Server, ServerProtocol

__all__ = [
    "PREFACE", "H2Pool", "H2ServerConnection", "H2Stream", "h2_headers", "serve", "upgrade"
]

log = logging.getLogger("proxy.engine")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
STREAM_WINDOW = 1 << 20  # what each client stream may send us before we acknowledge it
CONN_WINDOW = 4 << 20  # what a client connection's streams together may send us
# Upstream, what each stream may send us ahead of its client: a client that stops reading
# holds at most this much per stream (a stream ends only once its client has it all, so the
# revision timeout bounds it too). The connection's window covers 128 such streams: one
# client's stalled streams do not hold up the others' on a shared connection.
UPSTREAM_STREAM_WINDOW = 64 << 10
UPSTREAM_CONN_WINDOW = 8 << 20
# An HTTP/1.1 upstream (no windows): reading it pauses while this much of its answer waits for
# the client, and resumes below the low mark.
H1_HIGH = 256 << 10
H1_LOW = 64 << 10
MAX_STREAMS = 250  # concurrent streams a client may open (Go's http2 server default)
MAX_HEADER_LIST = 1 << 20  # Go's http.DefaultMaxHeaderBytes
DIAL_STREAMS = 100  # streams opened on an upstream connection before its SETTINGS arrive (Go)
# Abuse budgets, per client connection and per second (exceeded: GOAWAY ENHANCE_YOUR_CALM and
# the connection closes). Frames that cost us work but carry no request progress: PING,
# SETTINGS, PRIORITY, unknown frames, empty DATA (CVE-2019-9512/9515/9518 and kin)...
CONTROL_BUDGET = 1000
# ... and streams the client resets while we still work on them (Rapid Reset, CVE-2023-44487).
RESET_BUDGET = 200
# Bytes we may have queued for a client that does not read, beyond which it is cut off (the
# answers to its PINGs and SETTINGS would otherwise pile up without bound).
MAX_UNREAD = 4 << 20

# RFC 9113 8.2.2: never sent over HTTP/2 (and Host becomes :authority): the set h2_headers
# drops, one definition for both.
CONNECTION_SPECIFIC = H2_DROPPED

_END = 1
_TRAILERS = 2
_RESET = 3

_ERROR_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"x-content-type-options", b"nosniff"),
]


def _date() -> bytes:
    return date_header()[6:-2]  # "Date: ...\r\n"


def _lines(head_lines: bytes) -> list[tuple[bytes, bytes]]:
    """``Name: value\\r\\n`` lines as an HTTP/2 header list (lower-case names)."""
    out = []
    for line in head_lines.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            out.append((name.strip().lower(), value.strip()))
    return out


def _response_headers(status: int, headers: list, ended: bool) -> list[tuple[bytes, bytes]]:
    out = [(b":status", b"%d" % status)]
    has_date = False
    for name, value in headers:
        if name[:1] == b":" or name in CONNECTION_SPECIFIC:
            continue
        if name == b"date":
            has_date = True
        out.append((name, value))
    if not has_date and not ended:
        out.append((b"date", _date()))
    return out


def _acked(owner: Any, osid: int, n: int) -> None:
    """``n`` bytes queued by ``owner`` (see ``_Conn.queue_data``) are sent or dropped."""
    if owner is None:
        return
    if isinstance(owner, _Conn):
        owner.ack(osid, n)
    else:
        owner._h1_sent(n)


# --------------------------------------------------------------------------------------------
# One HTTP/2 connection, either side: outbound DATA queued per stream, sent as windows allow


class _Conn:
    """An ``h2`` connection over an asyncio transport, with per-stream send queues.

    ``queue_data`` never sends more than the peer's windows allow; each queued piece carries an
    ``ack`` called once it is sent (to acknowledge it to whoever sent it to us)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: bool,
                 local: dict[int, int]) -> None:
        self.loop = loop
        self.h2: Any = new_connection(client, local)
        self.transport: Any = None
        self.writable = True
        self.closed = False
        self.out: dict[int, deque[list[Any]]] = {}
        self.tail: dict[int, tuple[int, Any]] = {}
        self._soon = False

    # ------------------------------------------------------------------ writing

    def flush(self) -> None:
        self._soon = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def soon(self) -> None:
        """Flush once the current callback is done: what it sends goes in one write."""
        if not self._soon:
            self._soon = True
            self.loop.call_soon(self.flush)

    def queue_data(self, sid: int, data: bytes, owner: Any, osid: int, n: int) -> None:
        """Queues ``data`` for ``sid``; once it is sent (or dropped), its ``n`` flow-controlled
        bytes are acknowledged to ``owner``: the connection they came in on (stream ``osid``),
        or an ``H2Stream`` reading an HTTP/1.1 upstream, or nobody (None)."""
        if self.closed:
            _acked(owner, osid, n)
            return
        q = self.out.get(sid)
        if q is None:
            q = self.out[sid] = deque()
        q.append([data, owner, osid, n])
        if len(q) == 1:
            self.pump(sid)

    def queue_end(self, sid: int, trailers: list | None = None) -> None:
        self.tail[sid] = (_TRAILERS, trailers) if trailers else (_END, None)
        if not self.out.get(sid):
            self.pump(sid)

    def queue_reset(self, sid: int, code: int) -> None:
        """Drops what is queued on ``sid`` (acknowledging it) and resets the stream."""
        self._drop(sid)
        self.tail[sid] = (_RESET, code)
        self.pump(sid)

    def _drop(self, sid: int) -> None:
        q = self.out.pop(sid, None)
        if q:
            for item in q:
                _acked(item[1], item[2], item[3])

    def pump(self, sid: int) -> None:
        h2 = self.h2
        q = self.out.get(sid)
        try:
            while q and self.writable:
                item = q[0]
                data = item[0]
                window = h2.local_flow_control_window(sid)
                if window <= 0:
                    return
                size = min(window, h2.remote_settings.max_frame_size, len(data))
                last = size == len(data)
                end = last and len(q) == 1 and self.tail.get(sid, (0,))[0] == _END
                h2.send_data(sid, data if last else data[:size], end_stream=end)
                if end:
                    del self.tail[sid]
                if last:
                    q.popleft()
                    _acked(item[1], item[2], item[3])
                else:
                    item[0] = data[size:]
            if q:
                return
            self.out.pop(sid, None)
            tail = self.tail.pop(sid, None)
            if tail is not None:
                kind, arg = tail
                if kind == _END:
                    h2.end_stream(sid)
                elif kind == _TRAILERS:
                    h2.send_headers(sid, arg, end_stream=True)
                else:
                    h2.reset_stream(sid, arg)
        except (StreamClosedError, ProtocolError, FlowControlError, KeyError):
            # The stream closed under us (the peer reset it, or the connection is closing).
            self._drop(sid)
            self.tail.pop(sid, None)
        self.soon()

    def pump_all(self) -> None:
        for sid in list(self.out):
            self.pump(sid)
        for sid in [s for s in self.tail if s not in self.out]:
            self.pump(sid)

    def ack(self, sid: int, n: int) -> None:
        """``n`` flow-controlled bytes of ``sid`` have been passed on: the peer may send more."""
        if n and not self.closed:
            try:
                self.h2.acknowledge_received_data(n, sid)
            except (StreamClosedError, ProtocolError):
                return
            self.soon()

    # ------------------------------------------------------------------ asyncio callbacks

    def pause_writing(self) -> None:
        self.writable = False

    def resume_writing(self) -> None:
        self.writable = True
        self.pump_all()

    def eof_received(self) -> bool | None:
        return None


# --------------------------------------------------------------------------------------------
# The client side: an HTTP/2 client connection and its request streams


def serve(conn: ServerProtocol, data: bytes) -> H2ServerConnection:
    """Switches ``conn`` (a ``ServerProtocol`` that has read the first bytes, ``data``, of an
    HTTP/2 connection with prior knowledge) to HTTP/2."""
    h = H2ServerConnection(conn)
    h.start(data)
    return h


_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
_UPGRADE_FAILED = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                   b"Connection: close\r\n\r\n")


def upgrade(conn: ServerProtocol, method: bytes, target: bytes, headers: list, lnames: list,
            values: list) -> H2ServerConnection | None:
    """An HTTP/1.1 request that asks for h2c (``Upgrade: h2c``, ``Connection: HTTP2-Settings``,
    no body) is answered as Go's h2c handler does: 101, then HTTP/2, the request being stream 1.
    A missing or bad HTTP2-Settings gets 500 (Go's answer) and the connection closes."""
    settings = [headers[i][1] for i, n in enumerate(lnames) if n == b"http2-settings"]
    h = H2ServerConnection(conn)
    try:
        if len(settings) != 1:
            raise ValueError("expected exactly one HTTP2-Settings")
        value = settings[0]
        # Go decodes it as unpadded base64url, strictly (Python's decoder skips bad bytes).
        if not _BASE64URL.fullmatch(value) or len(value) % 4 == 1:
            raise ValueError("HTTP2-Settings is not base64url")
        if len(base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4))) % 6:
            raise ValueError("HTTP2-Settings is not a list of settings")
        # Checked before the 101 on a throwaway connection: initiate_upgrade_connection
        # decodes and applies it, and may raise.
        new_connection(False, {}).initiate_upgrade_connection(settings[0])
    except Exception:  # noqa: BLE001 - any malformed value: Go answers 500
        conn.write(_UPGRADE_FAILED)
        conn.close()
        return None
    conn.flush()  # an answer held for the end of the pass (Server.uncork) goes first
    transport: Any = conn.transport
    transport.write(_SWITCHING)
    h.start(b"", settings[0])
    kept = [(n.lower(), v) for n, v in headers
            if n.lower() not in CONNECTION_SPECIFIC or n.lower() == b"host"]
    kept = [(n, v) for n, v in kept if n != b"te" or v.strip().lower() == b"trailers"]
    lnames2, values2, _flags = scan_headers(kept)
    ex = H2Stream(h, 1, method, target, kept, lnames2, values2, True)
    h.streams[1] = ex
    h.server.dispatch(ex)
    h.flush()
    return h


def new_connection(client: bool, local: dict[int, int]) -> Any:
    """A sans-IO HTTP/2 connection of the selected core (``CORE``), announcing ``local``."""
    if CORE == "core":
        return Core(client, local)
    conn = H2Connection(config=_client_config() if client else _server_config())
    conn.local_settings = Settings(client=client, initial_values=local)  # type: ignore[arg-type]
    # HPACK: the compiled codec when built (else the hpack library's, as h2 has it).
    conn.encoder = Encoder()
    conn.decoder = Decoder()
    conn.decoder.max_header_list_size = local.get(SettingCodes.MAX_HEADER_LIST_SIZE,
                                                  MAX_HEADER_LIST)
    return conn


def _server_config() -> H2Configuration:
    return H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=True,
        normalize_inbound_headers=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


class H2ServerConnection(_Conn):
    """A client connection that speaks HTTP/2; its streams are ``H2Stream`` exchanges."""

    def __init__(self, conn: ServerProtocol) -> None:
        server = conn.server
        super().__init__(server.loop, False, {
            SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
            SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
        })
        self.conn = conn
        self.server: Server = server
        self.transport = conn.transport
        self.streams: dict[int, H2Stream] = {}
        self.goaway_sent = False
        self.budget_second = 0
        self.controls = 0
        self.resets = 0

    def start(self, data: bytes, settings: bytes | None = None) -> None:
        """Takes the transport over; ``settings``: the HTTP2-Settings of an h2c upgrade."""
        conn = self.conn
        server = self.server
        server.connections.discard(conn)
        conn.head_tick = -1
        conn.closing = True  # the HTTP/1.1 side reads nothing more
        server.h2conns.add(self)
        self.transport.set_protocol(self)
        h2 = self.h2
        if settings is None:
            h2.initiate_connection()
        else:
            h2.initiate_upgrade_connection(settings)
        h2.increment_flow_control_window(CONN_WINDOW - 65535)
        if data:
            self.data_received(data)
        else:
            self.flush()

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: Any) -> None:  # pragma: no cover - set_protocol
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            events: list[Any] = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._fatal(exc)
            return
        second = int(self.loop.time())
        if second != self.budget_second:
            self.budget_second = second
            self.controls = self.resets = 0
        for ev in events:
            t = type(ev)
            if t is DataReceived:
                if not ev.data and ev.stream_ended is None:
                    self.controls += 1
                ex = self.streams.get(ev.stream_id)
                if ex is not None and ex.state != S.DONE:
                    ex.h2_data(ev.data, ev.flow_controlled_length)
                else:
                    self.ack(ev.stream_id, ev.flow_controlled_length)
            elif t is PingReceived or t is PriorityUpdated or t is UnknownFrameReceived:
                self.controls += 1
            elif t is RequestReceived:
                self._request(ev.stream_id, ev.headers, ev.stream_ended is not None)
            elif t is StreamEnded:
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.h2_end()
            elif t is TrailersReceived:
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.trailers = list(ev.headers)
            elif t is WindowUpdated:
                self.pump_all()
            elif t is RemoteSettingsChanged:
                self.controls += 1
                self.pump_all()
            elif t is StreamReset:
                ex = self.streams.pop(ev.stream_id, None)
                self._drop(ev.stream_id)
                self.tail.pop(ev.stream_id, None)
                if ex is not None:
                    if ex.state != S.DONE:
                        self.resets += 1
                    ex.client_gone()
                    if self.resets > RESET_BUDGET:
                        break  # nothing more of this read runs: GOAWAY below
            elif t is ConnectionTerminated:
                self._peer_goaway()
            if self.controls > CONTROL_BUDGET:
                break
        if self.controls > CONTROL_BUDGET or self.resets > RESET_BUDGET:
            self._calm()
            return
        self.flush()
        t = self.transport
        if t is not None and t.get_write_buffer_size() > MAX_UNREAD:
            self.abort()  # it sends and never reads: nothing we queue would ever arrive

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.h2conns.discard(self)
        streams = list(self.streams.values())
        self.streams.clear()
        self.out.clear()
        self.tail.clear()
        for ex in streams:
            ex.client_gone()
        self.server.connection_closed(self.conn)

    # ------------------------------------------------------------------ streams

    def _request(self, sid: int, raw: list, ended: bool) -> None:
        method = path = authority = None
        headers = []
        host = None
        for name, value in raw:
            if name[:1] == b":":
                if name == b":method":
                    method = value
                elif name == b":path":
                    path = value
                elif name == b":authority":
                    authority = value
            elif name == b"host":
                if host is None:
                    host = value
            else:
                headers.append((name, value))
        if authority is None:
            authority = host  # Go: r.Host is :authority, else the Host field
        if authority is not None:
            headers.insert(0, (b"host", authority))
        lnames, values, flags = scan_headers(headers)
        ex = H2Stream(self, sid, method or b"", path or b"", headers, lnames, values, ended)
        self.streams[sid] = ex
        if self.goaway_sent:
            ex.h2_refuse()
            return
        why = None
        if flags:
            why = "conflicting Content-Length headers" if flags & F.FLAG_CONFLICTING_LENGTH \
                else "too many Host headers"
        elif method == b"CONNECT":
            why = "CONNECT is not supported"
        elif not path or (path[0] != 47 and path != b"*"):
            why = "malformed request target"
        elif authority is not None and authority and not valid_host(authority):
            why = "malformed Host header"
        if why is not None:
            ex.started = monotonic()
            ex.error(400, why)
            return
        self.server.dispatch(ex)

    def finished(self, ex: H2Stream) -> None:
        """``ex`` has its whole answer queued: once it is sent, the stream is forgotten (and a
        request body still coming is refused with RST_STREAM NO_ERROR, as Go does)."""
        sid = ex.sid
        if sid not in self.out and sid not in self.tail:
            self._forget(ex)

    def _forget(self, ex: H2Stream) -> None:
        if self.streams.get(ex.sid) is ex:
            del self.streams[ex.sid]
            if not ex.in_ended and not self.closed:
                try:
                    self.h2.reset_stream(ex.sid, ErrorCodes.NO_ERROR)
                except (StreamClosedError, ProtocolError):
                    pass
                self.soon()
        if self.goaway_sent and not self.streams:
            self.close()
        elif not self.streams and self.server.draining_connections:
            self.goaway()

    def pump(self, sid: int) -> None:
        _Conn.pump(self, sid)
        if sid not in self.out and sid not in self.tail:
            ex = self.streams.get(sid)
            if ex is not None:
                if ex.state == S.DONE:
                    self._forget(ex)
                elif ex.ending:
                    ex._finish()  # the end of the answer is on its way: the exchange is done

    # ------------------------------------------------------------------ ending

    def goaway(self) -> None:
        """Graceful shutdown (Go's): GOAWAY NO_ERROR naming the last stream taken; the streams
        in flight finish, new ones are refused, and the connection closes when none is left."""
        if self.goaway_sent or self.closed:
            return
        self.goaway_sent = True
        self.flush()
        frame = GoAwayFrame(stream_id=0, last_stream_id=self.h2.highest_inbound_stream_id,
                            error_code=0)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame.serialize())
        if not self.streams:
            self.close()

    def _peer_goaway(self) -> None:
        self.goaway_sent = True  # the client will open no more streams
        if not self.streams:
            self.close()

    def _calm(self) -> None:
        """Over an abuse budget: GOAWAY ENHANCE_YOUR_CALM, then the connection closes (its
        streams are cancelled: their on_done runs, their upstream streams are reset)."""
        try:
            self.h2.close_connection(error_code=ErrorCodes.ENHANCE_YOUR_CALM)
        except ProtocolError:
            pass
        self.flush()
        self.close()

    def _fatal(self, exc: ProtocolError) -> None:
        code = getattr(exc, "error_code", None) or ErrorCodes.PROTOCOL_ERROR
        try:
            self.h2.close_connection(error_code=code)
        except ProtocolError:
            pass
        self.flush()
        self.close()

    def close(self) -> None:
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def busy(self) -> bool:
        return any(ex.state != S.DONE for ex in self.streams.values())


class H2Stream(Exchange):
    """One request stream of an HTTP/2 client connection: an ``Exchange`` for the handler."""

    __slots__ = ("h2c", "sid", "in_ended", "up", "up_sid", "h2_buf", "ending", "via_http11",
                 "h1_queued", "h1_paused")

    def __init__(self, h2c: H2ServerConnection, sid: int, method: bytes, target: bytes,
                 headers: list, lnames: list, fields: list, ended: bool) -> None:
        super().__init__(h2c.conn, method, target, False, headers, lnames, fields)
        self.h2c = h2c
        self.sid = sid
        self.in_ended = ended  # the client's END_STREAM came
        self.body_done = ended
        # No length and more to come: chunked, should it go to an HTTP/1.1 upstream.
        self.chunked = not ended and fields[F.CONTENT_LENGTH] is None
        self.up: H2UpstreamConnection | None = None
        self.up_sid = 0
        self.h2_buf: list[tuple[bytes, int]] = []  # body (and its flow-controlled size) held
        # The upstream's answer is all in, queued for the client: the exchange ends (on_done,
        # timeouts off) when the last of it is sent, as Go's handler returns only then.
        self.ending = False
        # Forward over HTTP/1.1 instead of h2c (an ingress in front of a revision whose port
        # is not named h2c: the local runtime's front door sets it).
        self.via_http11 = False
        self.h1_queued = 0  # HTTP/1.1 upstream: response bytes queued for the client
        self.h1_paused = False

    # ------------------------------------------------------------------ handler API

    def respond(self, status: int, body: bytes = b"", head_lines: bytes = b"",
                close: bool = False) -> None:
        if self.state == S.DONE:
            return
        self._h2_detach()
        headers = [(b":status", b"%d" % status), *_lines(head_lines),
                   (b"date", _date()), (b"content-length", b"%d" % len(body))]
        self._local(status, headers, body)

    def error(self, status: int, text: Any, close: bool = False) -> None:
        if self.state == S.DONE:
            return
        self._h2_detach()
        body = (text.encode() if isinstance(text, str) else text) + b"\n"
        headers = [(b":status", b"%d" % status), *_ERROR_HEADERS,
                   (b"date", _date()), (b"content-length", b"%d" % len(body))]
        self._local(status, headers, body)

    def _local(self, status: int, headers: list, body: bytes) -> None:
        self.resp_status = status
        self.resp_bytes = len(body)
        self.resp_local = True
        self.written = True
        h2c = self.h2c
        if self.method == b"HEAD":
            body = b""
        try:
            h2c.h2.send_headers(self.sid, headers, end_stream=not body)
        except (StreamClosedError, ProtocolError):
            self._finish()
            return
        if body:
            h2c.queue_data(self.sid, body, None, 0, 0)
            h2c.queue_end(self.sid)
        h2c.soon()
        self._finish()

    def forward(self, pool: Any) -> None:
        if self.state != S.WAITING:
            return
        if self.via_http11:
            Exchange.forward(self, pool)  # the pool's HTTP/1.1 connections: attached() below
            return
        self.state = S.CONNECTING
        h2_pool(pool).acquire(self)

    def read_body(self, callback: Callable[[bytes], None], limit: int = 1 << 20) -> None:
        if self.state != S.WAITING:
            return
        if self.body_done:
            body = b"".join([d for d, _n in self.h2_buf])
            self.h2_buf = []
            callback(body)
            return
        self.body_reader = (callback, limit)
        if self.body_size > limit:
            self.error(413, "http: request body too large")
            return
        # A body read here is bounded by ``limit``: acknowledge what came, so more may come.
        for _d, n in self.h2_buf:
            self.h2c.ack(self.sid, n)

    def on_timeout(self, kind: str) -> None:
        if self.state == S.DONE:
            return
        action = expire(kind, self.written)
        if action == RESPOND:
            self._h2_detach()
            self.respond(504, self.timeout_body, b"Content-Type: text/plain; charset=utf-8\r\n")
        elif action == APPEND:
            # Knative's text goes out, then RST_STREAM: the client must not take the cut body
            # for complete.
            self._h2_detach()
            h2c = self.h2c
            if h2c.out.get(self.sid):
                # The client's window holds back what came before: it will not take the text
                # either. Reset now (what was queued is dropped, and acknowledged upstream).
                h2c.queue_reset(self.sid, ErrorCodes.INTERNAL_ERROR)
            else:
                h2c.queue_data(self.sid, self.timeout_body, None, 0, 0)
                h2c.tail[self.sid] = (_RESET, ErrorCodes.INTERNAL_ERROR)
                h2c.pump(self.sid)
            self._finish()

    # ------------------------------------------------------------------ request side

    def h2_data(self, data: bytes, n: int) -> None:
        if self.state != S.DONE:
            self.req_bytes += len(data)
        if self.state == S.FORWARDING:
            up = self.up
            if up is not None:
                up.queue_data(self.up_sid, data, self.h2c, self.sid, n)
                return
            h1 = self.upstream
            if h1 is not None:
                h1.send_body(data, self.chunked)
                self.h2c.ack(self.sid, n)  # its transport's buffer holds it now
                return
        buf = self.h2_buf
        buf.append((data, n))
        self.body_size += len(data)
        reader = self.body_reader
        if reader is not None:
            if self.body_size > reader[1]:
                self.body_reader = None
                self.error(413, "http: request body too large")
            else:
                self.h2c.ack(self.sid, n)

    def h2_end(self) -> None:
        if self.in_ended:
            return  # END_STREAM came on the HEADERS: the request was complete from the start
        self.in_ended = True
        if self.state == S.DONE:
            self.h2c.finished(self)
            return
        self.body_done = True
        if self.state == S.FORWARDING:
            up = self.up
            if up is not None:
                up.queue_end(self.up_sid, self.trailers)
                return
            h1 = self.upstream
            if h1 is not None:
                h1.send_body_end(self.chunked, self.trailers or [])
                return
        reader = self.body_reader
        if reader is not None and self.state == S.WAITING:
            self.body_reader = None
            body = b"".join([d for d, _n in self.h2_buf])
            self.h2_buf = []
            reader[0](body)

    def h2_refuse(self) -> None:
        """A stream opened after our GOAWAY: never run (the client may retry it elsewhere)."""
        self.state = S.DONE
        h2c = self.h2c
        h2c.streams.pop(self.sid, None)
        try:
            h2c.h2.reset_stream(self.sid, ErrorCodes.REFUSED_STREAM)
        except (StreamClosedError, ProtocolError):
            pass

    # ------------------------------------------------------------------ upstream side

    def h2_attached(self, up: H2UpstreamConnection, sid: int) -> list[tuple[bytes, bytes]]:
        """An upstream stream is ours: returns the request headers to open it with."""
        self.up = up
        self.up_sid = sid
        self.state = S.FORWARDING
        return h2_headers(self.head_out)

    def h2_send_held(self) -> None:
        """After the upstream stream is open: the body that came while it was being opened."""
        up: Any = self.up
        buf = self.h2_buf
        if buf:
            self.h2_buf = []
            self.body_size = 0
            for data, n in buf:
                up.queue_data(self.up_sid, data, self.h2c, self.sid, n)
        if self.body_done:
            up.queue_end(self.up_sid, self.trailers)

    def h2_response_head(self, status: int, headers: list, ended: bool) -> None:
        """The upstream's response head (``headers``: as the client gets it, ``_relayed``)."""
        if self.state == S.DONE:
            return
        if status < 200:
            return  # 1xx: informational, not relayed
        self.resp_status = status
        self._written()
        try:
            self.h2c.h2.send_headers(self.sid, headers, end_stream=ended)
        except (StreamClosedError, ProtocolError):
            self.client_gone()
            return
        self.h2c.soon()
        if ended:
            self._up_done()
            self._finish()

    def h2_response_data(self, data: bytes, up: H2UpstreamConnection, usid: int,
                         n: int) -> None:
        if self.state == S.DONE:
            up.ack(usid, n)
            return
        self.resp_bytes += len(data)
        if self.idle_q is not None:
            self.idle_q.touch(self)
        self.h2c.queue_data(self.sid, data, up, usid, n)

    def h2_response_end(self, trailers: list | None) -> None:
        if self.state == S.DONE:
            return
        self._up_done()
        self.ending = True
        self.h2c.queue_end(self.sid, _strip(trailers) if trailers else None)

    def h2_upstream_reset(self, code: int) -> None:
        """The upstream reset its stream: before the answer, a 502; after, the reset goes on
        to the client with its code."""
        if self.state == S.DONE:
            return
        self._up_done()
        if not self.written:
            self.error(502, f"stream error: stream ID {self.up_sid}; {_code_name(code)}")
            return
        self.h2c.queue_reset(self.sid, code)
        self._finish()

    def upstream_failed(self, reason: Any) -> None:
        if self.state == S.DONE:
            return
        self._up_done()
        if not self.written:
            self.error(502, reason)
            return
        self.h2c.queue_reset(self.sid, ErrorCodes.INTERNAL_ERROR)
        self._finish()

    def _up_done(self) -> None:
        self.up = None

    def _h2_detach(self) -> None:
        up = self.up
        if up is not None:
            self.up = None
            up.cancel(self.up_sid)
        h1 = self.upstream
        if h1 is not None:
            self.upstream = None
            h1.abandon()

    # ------------------------------------------------------------------ HTTP/1.1 upstream
    # (``via_http11``): the calls an ``upstream.UpstreamProtocol`` makes on its exchange.

    def attached(self, upstream: Any) -> None:
        self.upstream = upstream
        self.state = S.FORWARDING
        out = self.head_out
        buf = self.h2_buf
        if buf:
            self.h2_buf = []
            self.body_size = 0
            parts = [out]
            for d, n in buf:
                if self.chunked:
                    if d:
                        parts.append(b"%x\r\n%s\r\n" % (len(d), d))
                else:
                    parts.append(d)
                self.h2c.ack(self.sid, n)
            out = b"".join(parts)
        if self.body_done and self.chunked:
            parts = [out, b"0\r\n"]
            for name, value in self.trailers or []:
                parts.append(name + b": " + value + b"\r\n")
            parts.append(b"\r\n")
            out = b"".join(parts)
        upstream.send_head(out, self)

    def response_head(self, status: int, headers: Any, lnames: Any, values: Any,
                      tokens: list) -> None:
        if self.state == S.DONE or status < 200:
            return
        if status == 101:
            self.upstream_failed("an upgrade cannot be relayed over HTTP/2")
            return
        drop = CONNECTION_SPECIFIC | HOP_BY_HOP
        out = [(ln, headers[i][1]) for i, ln in enumerate(lnames)
               if ln not in drop and ln not in tokens]
        self._h1_head(status, out)

    def response_plain(self, status: int, lines: bytes, has_date: bool) -> None:
        if self.state == S.DONE:
            return
        self._h1_head(status, [(n, v) for n, v in _lines(lines)
                               if n not in CONNECTION_SPECIFIC])

    def _h1_head(self, status: int, headers: list) -> None:
        self.resp_status = status
        self._written()
        try:
            self.h2c.h2.send_headers(self.sid, _response_headers(status, headers, False))
        except (StreamClosedError, ProtocolError):
            self.client_gone()
            return
        self.h2c.soon()

    def response_body(self, data: bytes) -> None:
        if self.state == S.DONE or not data:
            return
        self.resp_bytes += len(data)
        if self.idle_q is not None:
            self.idle_q.touch(self)
        self.h1_queued += len(data)
        self.h2c.queue_data(self.sid, data, self, 0, len(data))
        if self.h1_queued > H1_HIGH and not self.h1_paused and self.upstream is not None:
            self.h1_paused = True  # the client's window holds it back: stop reading the app
            self.upstream.pause_reading()

    def _h1_sent(self, n: int) -> None:
        self.h1_queued -= n
        if self.h1_paused and self.h1_queued < H1_LOW:
            self.h1_paused = False
            up = self.upstream
            if up is not None:
                up.resume_reading()

    def response_end(self, trailers: Any) -> None:
        if self.state == S.DONE:
            return
        self.ending = True
        self.h2c.queue_end(self.sid, _strip(trailers) if trailers else None)

    # ------------------------------------------------------------------ endings

    def _finish(self) -> None:
        if self._finish_state():
            self.h2c.finished(self)

    def client_gone(self) -> None:
        if self.state == S.DONE:
            return
        self._h2_detach()
        self._finish_state()

    def _abort_client(self) -> None:
        # A handler failed after the response started: reset the stream, not the connection.
        self._h2_detach()
        self.h2c.queue_reset(self.sid, ErrorCodes.INTERNAL_ERROR)
        self._finish()


def _strip(trailers: list) -> list:
    return [(n, v) for n, v in trailers if n[:1] != b":" and n not in CONNECTION_SPECIFIC]


def _code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"unknown error code 0x{code:x}"


# --------------------------------------------------------------------------------------------
# The upstream side: multiplexed h2c connections to one address


def _client_config() -> H2Configuration:
    return H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_inbound_headers=True,
        normalize_inbound_headers=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


def h2_pool(pool: Any) -> H2Pool:
    """The h2c pool beside an HTTP/1.1 ``UpstreamPool`` (same address, made on first use)."""
    h = pool.h2
    if h is None:
        h = pool.h2 = H2Pool(pool.loop, pool.host, pool.port, getattr(pool, "ssl_h2", None),
                             getattr(pool, "server_hostname", None))
    return h


class H2Pool:
    """h2c connections to one upstream address, each carrying up to the peer's
    SETTINGS_MAX_CONCURRENT_STREAMS streams; requests wait (in order) while every connection
    is full and another is being dialled."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int,
                 ssl: Any = None, server_hostname: str | None = None) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        # TLS (its context offering ALPN "h2"): h2 rather than h2c, as Go's h2 transport
        self.ssl = ssl
        self.server_hostname = server_hostname
        self.conns: list[H2UpstreamConnection] = []
        self.waiting: deque[H2Stream] = deque()
        self.dialling = 0
        self.closed = False
        self.dial_name = f"{host}:{port}"

    def acquire(self, ex: H2Stream) -> None:
        for c in self.conns:
            if c.capacity() > 0:
                c.open(ex)
                return
        self.waiting.append(ex)
        if not self.dialling:
            self._dial()

    def _dial(self) -> None:
        self.dialling += 1
        if self.ssl is None:
            coro = self.loop.create_connection(  # type: ignore[type-var]
                lambda: H2UpstreamConnection(self), self.host, self.port)
        else:
            coro = self.loop.create_connection(  # type: ignore[type-var]
                lambda: H2UpstreamConnection(self), self.host, self.port, ssl=self.ssl,
                server_hostname=self.server_hostname)
        task = self.loop.create_task(coro)
        task.add_done_callback(self._dialled)

    def _dialled(self, task: asyncio.Task) -> None:
        self.dialling -= 1
        exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if exc is not None:
            reason = dial_error(self.dial_name, exc)
            waiting = list(self.waiting)
            self.waiting.clear()
            for ex in waiting:
                if ex.state == S.CONNECTING:
                    ex.upstream_failed(reason)
            return
        _t, c = task.result()
        self.conns.append(c)
        self.serve_waiting()

    def serve_waiting(self) -> None:
        waiting = self.waiting
        while waiting:
            if waiting[0].state != S.CONNECTING:
                waiting.popleft()
                continue
            for c in self.conns:
                if c.capacity() > 0:
                    c.open(waiting.popleft())
                    break
            else:
                if not self.dialling and not self.closed:
                    self._dial()
                return


    def lost(self, c: H2UpstreamConnection) -> None:
        if c in self.conns:
            self.conns.remove(c)
        self.serve_waiting()

    def close(self) -> None:
        self.closed = True
        for c in list(self.conns):
            c.close()


class H2UpstreamConnection(_Conn):
    """One h2c connection to the upstream; each stream belongs to one ``H2Stream``."""

    def __init__(self, pool: H2Pool) -> None:
        super().__init__(pool.loop, True, {
            SettingCodes.ENABLE_PUSH: 0,
            SettingCodes.INITIAL_WINDOW_SIZE: UPSTREAM_STREAM_WINDOW,
            SettingCodes.MAX_HEADER_LIST_SIZE: 10 << 20,  # Go's transport reads 10 MiB
        })
        self.pool = pool
        self.streams: dict[int, H2Stream] = {}
        self.goaway = False
        self.settled = False  # the peer's SETTINGS came

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        h2 = self.h2
        h2.initiate_connection()
        h2.increment_flow_control_window(UPSTREAM_CONN_WINDOW - 65535)
        self.flush()

    def capacity(self) -> int:
        if self.goaway or self.closed:
            return 0
        limit = self.h2.remote_settings.max_concurrent_streams
        if not self.settled:
            limit = min(limit, DIAL_STREAMS)
        return limit - self.h2.open_outbound_streams

    def open(self, ex: H2Stream) -> None:
        h2 = self.h2
        sid = h2.get_next_available_stream_id()
        headers = ex.h2_attached(self, sid)
        end = ex.body_done and not ex.h2_buf and not ex.trailers
        try:
            h2.send_headers(sid, headers, end_stream=end)
        except ProtocolError as exc:
            ex.upstream_failed(f"http2: {exc}")
            return
        self.streams[sid] = ex
        if not end:
            ex.h2_send_held()
        self.soon()

    def cancel(self, sid: int) -> None:
        """The client side gave up on ``sid`` (its client left, a timeout): RST_STREAM CANCEL,
        which the app sees as a cancelled request."""
        if self.streams.pop(sid, None) is not None and not self.closed:
            self.queue_reset(sid, ErrorCodes.CANCEL)
            self.pool.serve_waiting()

    def data_received(self, data: bytes) -> None:
        try:
            events: list[Any] = self.h2.receive_data(data)
        except ProtocolError as exc:
            code = getattr(exc, "error_code", None) or ErrorCodes.PROTOCOL_ERROR
            try:
                self.h2.close_connection(error_code=code)
            except ProtocolError:
                pass
            self.flush()
            self._fail_all(f"http2: upstream protocol error: {exc}")
            self.close()
            return
        freed = False
        for ev in events:
            t = type(ev)
            if t is DataReceived:
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ex.h2_response_data(ev.data, self, ev.stream_id, ev.flow_controlled_length)
                else:
                    self.ack(ev.stream_id, ev.flow_controlled_length)
            elif t is ResponseReceived:
                ex = self.streams.get(ev.stream_id)
                if ex is not None:
                    ended = ev.stream_ended is not None
                    status, headers = _relayed(ev.headers, ended)
                    if ended:
                        del self.streams[ev.stream_id]
                        freed = True
                    ex.h2_response_head(status, headers, ended)
            elif t is TrailersReceived:
                ex = self.streams.pop(ev.stream_id, None)
                if ex is not None:
                    freed = True
                    ex.h2_response_end(list(ev.headers))
            elif t is StreamEnded:
                ex = self.streams.pop(ev.stream_id, None)
                if ex is not None:
                    freed = True
                    ex.h2_response_end(None)
            elif t is StreamReset:
                ex = self.streams.pop(ev.stream_id, None)
                self._drop(ev.stream_id)
                self.tail.pop(ev.stream_id, None)
                freed = True
                if ex is not None:
                    ex.h2_upstream_reset(ev.error_code)
            elif t is RemoteSettingsChanged:
                self.settled = True
                freed = True
                self.pump_all()
            elif t is WindowUpdated:
                self.pump_all()
            elif t is ConnectionTerminated:
                self.goaway = True
                last = ev.last_stream_id or 0
                for sid in [s for s in self.streams if s > last]:
                    # Never processed by the peer (RFC 9113 6.8): failed, not lost silently.
                    self.streams.pop(sid).upstream_failed("http2: server sent GOAWAY")
                self.pool.lost(self)
                if not self.streams:
                    self.close()
        self.flush()
        if freed:
            self.pool.serve_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.out.clear()
        self.tail.clear()
        self._fail_all("http2: upstream connection lost")
        self.pool.lost(self)

    def _fail_all(self, reason: str) -> None:
        streams = list(self.streams.values())
        self.streams.clear()
        for ex in streams:
            ex.upstream_failed(reason)

    def close(self) -> None:
        self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _relayed(headers: list, ended: bool) -> tuple[int, list]:
    """An upstream's response head as its client gets it: its status, and its fields as they
    came (the core has checked them: pseudo-headers first, lower case, no connection-specific
    field), less any other pseudo-header or a Host, and with a Date (Go's server adds one)
    where it has none and a body follows. PERF: the upstream's list itself, most often."""
    status = 502
    has_date = False
    clean = True
    for name, value in headers:
        if name == b":status":
            status = int(value) if len(value) == 3 and value.isdigit() else 502
        elif name == b"date":
            has_date = True
        elif name[:1] == b":" or name in CONNECTION_SPECIFIC:
            clean = False
    if clean and headers and headers[0][0] == b":status":
        out = headers if type(headers) is list else list(headers)
    else:
        out = [(b":status", b"%d" % status)]
        out += [(n, v) for n, v in headers if n[:1] != b":" and n not in CONNECTION_SPECIFIC]
    if not has_date and not ended:
        out.append((b"date", _date()))
    return status, out
