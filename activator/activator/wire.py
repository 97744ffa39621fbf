"""The activator's stats on the wire: Knative's ``WireStatMessages`` over a websocket.

Two layers, as elsewhere in the codebase:

- Sans-IO. ``encode_wire_stat_messages`` writes Knative's ``WireStatMessages`` protobuf
  (pkg/autoscaler/metrics/stat.proto) by hand, like ``proxy.stats.encode_stat``: ``repeated
  WireStatMessage messages = 1``; ``WireStatMessage`` is ``string namespace = 1``, ``string
  name = 2``, ``Stat stat = 3``. The RFC 6455 client pieces: ``handshake_request`` /
  ``check_handshake_response`` (with the ``Sec-WebSocket-Accept`` check), ``encode_frame``
  (client frames are always masked) and ``FrameReader``, which splits the server's byte stream
  into frames.
- ``WebsocketStatSink``: a thin asyncio shell playing knative.dev/pkg/websocket's durable sending
  connection, as the activator's cmd/activator/main.go uses it towards
  ``ws://autoscaler.knative-serving.svc.cluster.local:8080``. It dials, handshakes, keeps the
  connection alive with pings (a pong, or any frame, must arrive within ``pong_timeout``) and
  redials with jittered exponential backoff when it drops. Called as a stat sink
  (``sink(reports)``), it sends each batch as one binary frame; a batch that cannot go now (not
  connected, or the socket's write buffer is over its bound) is dropped and counted, as Knative's
  ``SendRaw`` fails while disconnected. It never blocks and never raises into the caller.

Only ``ws://`` is supported: Knative's activator talks plain websocket to the autoscaler.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import cast
from urllib.parse import urlsplit

from _speedups.accounting import StatReport
from activator.activator.stats import RevisionStat
from proxy.stats import _varint, encode_stat

__all__ = [
    "DEFAULT_AUTOSCALER_URL",
    "FrameReader",
    "HandshakeError",
    "WebsocketProtocolError",
    "WebsocketStatSink",
    "accept_key",
    "check_handshake_response",
    "encode_frame",
    "encode_wire_stat_messages",
    "handshake_request",
    "parse_ws_url",
]

logger = logging.getLogger(__name__)

#: cmd/activator/main.go: "ws://" + the autoscaler service's hostname + ":8080".
DEFAULT_AUTOSCALER_URL = "ws://autoscaler.knative-serving.svc.cluster.local:8080"

# ---------------------------------------------------------------------------- protobuf


def _wire_stat_message(r: RevisionStat) -> bytes:
    out = bytearray()
    ns = r.namespace.encode()
    if ns:
        out += b"\x0a" + _varint(len(ns)) + ns
    name = r.name.encode()
    if name:
        out += b"\x12" + _varint(len(name)) + name
    # Knative always sets the Stat pointer, so the field is written even when the Stat is empty;
    # the autoscaler's stat server skips messages without one.
    stat = encode_stat(r.pod_name, StatReport(r.average_concurrency, 0.0, r.request_count, 0.0))
    out += b"\x1a" + _varint(len(stat)) + stat
    return bytes(out)


def encode_wire_stat_messages(reports: Iterable[RevisionStat]) -> bytes:
    """Knative's ``WireStatMessages`` for ``reports``, in order; proto3, zero fields omitted."""
    out = bytearray()
    for r in reports:
        msg = _wire_stat_message(r)
        out += b"\x0a" + _varint(len(msg)) + msg
    return bytes(out)


# ---------------------------------------------------------------------------- RFC 6455, sans-IO

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000

_MAX_HEAD = 16 * 1024


class HandshakeError(Exception):
    """The server's answer to the opening handshake is not a valid websocket upgrade."""


class WebsocketProtocolError(Exception):
    """The server broke RFC 6455 framing (the connection must be dropped)."""


def parse_ws_url(url: str) -> tuple[str, int, str, str]:
    """``ws://host[:port][/path][?query]`` -> (host, port, Host header, request target)."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// URLs are supported, not {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or 80
    host_header = f"[{host}]" if ":" in host else host
    if port != 80:
        host_header += f":{port}"
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return host, port, host_header, target


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``Sec-WebSocket-Key: key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def _new_key() -> str:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def handshake_request(host_header: str, target: str, key: str) -> bytes:
    """The client's opening handshake (RFC 6455 section 4.1)."""
    return (
        f"GET {target} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode("ascii")


def check_handshake_response(head: bytes, key: str) -> None:
    """Validates the server's response head (status line and headers, without the blank line)
    against RFC 6455 section 4.1's client checks; raises ``HandshakeError``."""
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1."):
        raise HandshakeError(f"not an HTTP/1.x response: {lines[0]!r}")
    if status[1] != "101":
        raise HandshakeError(f"expected status 101, got {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HandshakeError(f"malformed header line {line!r}")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if headers.get("upgrade", "").lower() != "websocket":
        raise HandshakeError(f"bad Upgrade header: {headers.get('upgrade')!r}")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if "upgrade" not in tokens:
        raise HandshakeError(f"bad Connection header: {headers.get('connection')!r}")
    if headers.get("sec-websocket-accept") != accept_key(key):
        raise HandshakeError(f"bad Sec-WebSocket-Accept: {headers.get('sec-websocket-accept')!r}")
    # We asked for neither an extension nor a subprotocol, so none may be chosen.
    for name in ("sec-websocket-extensions", "sec-websocket-protocol"):
        if headers.get(name):
            raise HandshakeError(f"unrequested {name}: {headers[name]!r}")


def _mask(payload: bytes, mask_key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    # PERF: one big-int XOR instead of a per-byte loop; ~1 ms for 1 MB, stats batches are KBs.
    stream = (mask_key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, mask_key: bytes | None = None) -> bytes:
    """One final, masked client frame (RFC 6455 section 5.2); ``mask_key`` defaults to 4 fresh
    random bytes."""
    if mask_key is None:
        mask_key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask_key + _mask(payload, mask_key)


class FrameReader:
    """Splits the server's byte stream into ``(fin, opcode, payload)`` frames.

    Server frames must be unmasked, without reserved bits; control frames final and at most
    125 bytes; any frame at most ``max_payload`` bytes. Otherwise ``WebsocketProtocolError``."""

    __slots__ = ("max_payload", "_buf")

    def __init__(self, max_payload: int = 1 << 20) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[bool, int, bytes]]:
        buf = self._buf
        buf += data
        frames: list[tuple[bool, int, bytes]] = []
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            fin, opcode = bool(b0 & 0x80), b0 & 0x0F
            if b0 & 0x70:
                raise WebsocketProtocolError("reserved bits set")
            if b1 & 0x80:
                raise WebsocketProtocolError("masked frame from the server")
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                (n,) = struct.unpack_from("!H", buf, pos + 2)
                head = 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            if opcode & 0x8:
                if not fin or n > 125:
                    raise WebsocketProtocolError("fragmented or oversized control frame")
            elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                raise WebsocketProtocolError(f"unknown opcode {opcode:#x}")
            if n > self.max_payload:
                raise WebsocketProtocolError(f"frame of {n} bytes is over the limit")
            if len(buf) - pos - head < n:
                break
            start = pos + head
            frames.append((fin, opcode, bytes(buf[start : start + n])))
            pos = start + n
        if pos:
            del buf[:pos]
        return frames


def _close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


# ---------------------------------------------------------------------------- the asyncio shell


class _ClientProtocol(asyncio.Protocol):
    """One websocket connection: handshake, then frames; the sink owns reconnection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, key: str) -> None:
        self._loop = loop
        self._request = request
        self._key = key
        self._head = bytearray()
        self._reader: FrameReader | None = None
        self._close_sent = False
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.last_seen = loop.time()

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance-checked: uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        try:
            if self._reader is None:
                data = self._handshake_data(data)
                if self._reader is None or not data:
                    return
            self.last_seen = self._loop.time()
            for _fin, opcode, payload in self._reader.feed(data):
                self._frame(opcode, payload)
        except (HandshakeError, WebsocketProtocolError) as e:
            self._fail(e)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        err = exc or ConnectionResetError("connection closed")
        if not self.handshake.done():
            self.handshake.set_exception(err)
        if not self.lost.done():
            self.lost.set_result(None)

    # internals

    def _handshake_data(self, data: bytes) -> bytes:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > _MAX_HEAD:
                raise HandshakeError("response head too large")
            return b""
        check_handshake_response(bytes(self._head[:end]), self._key)
        rest = bytes(self._head[end + 4 :])
        self._head = bytearray()
        self._reader = FrameReader()
        if not self.handshake.done():
            self.handshake.set_result(None)
        return rest

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self.send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            # Echo the status code (RFC 6455 section 5.5.1) and close: the close handshake is
            # done, and a server that never closes TCP must not hold the connection open.
            code = payload[:2] if len(payload) >= 2 else b""
            self.send_close(code)
            if self.transport is not None:
                self.transport.close()
        # Pongs only refresh last_seen; data frames from the autoscaler are not expected.

    def _fail(self, err: Exception) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(err)
        else:
            logger.warning("autoscaler websocket: %s", err)
        if self.transport is not None:
            self.transport.abort()

    # used by the sink

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    def send_close(self, payload: bytes) -> None:
        if not self._close_sent:
            self._close_sent = True
            self.send(OP_CLOSE, payload)

    def write_buffer_size(self) -> int:
        return 0 if self.transport is None else self.transport.get_write_buffer_size()


class WebsocketStatSink:
    """Sends stat batches to the autoscaler over a durable websocket connection.

    ``start()`` (inside a running loop) begins dialing; ``connected`` says whether a batch would
    go out now; ``sink(reports)`` sends one ``WireStatMessages`` binary frame or drops the batch
    (``dropped`` counts them, ``sent`` counts those written); ``await close()`` stops for good.

    Defaults follow knative.dev/pkg/websocket: 3 s handshake timeout; backoff from 100 ms, x1.3 a
    step, up to 50 % jitter (Knative gives up after 20 steps and starts over at 100 ms; here the
    delay stays at ``backoff_max``, about Knative's last step); a ping every 10/3 s and the
    connection given up when nothing has arrived for 10 s. After a connection drops the first
    redial waits ``backoff_initial`` (Knative redials at once), so a server that accepts and
    closes at once is not hammered.
    """

    def __init__(
        self,
        url: str = DEFAULT_AUTOSCALER_URL,
        *,
        handshake_timeout: float = 3.0,
        backoff_initial: float = 0.1,
        backoff_factor: float = 1.3,
        backoff_max: float = 15.0,
        backoff_jitter: float = 0.5,
        ping_interval: float = 10.0 / 3,
        pong_timeout: float = 10.0,
        max_write_buffer: int = 1 << 20,
        on_connect: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self._host, self._port, self._host_header, self._target = parse_ws_url(url)
        self.handshake_timeout = handshake_timeout
        self.backoff_initial = backoff_initial
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.backoff_jitter = backoff_jitter
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.max_write_buffer = max_write_buffer
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        #: Batches written to the socket / dropped (not connected, buffer full, or an error).
        self.sent = 0
        self.dropped = 0
        #: Successful handshakes so far.
        self.connects = 0
        self._protocol: _ClientProtocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._connected_event: asyncio.Event | None = None

    # ------------------------------------------------------------------ public

    @property
    def connected(self) -> bool:
        p = self._protocol
        return p is not None and p.transport is not None and not p.transport.is_closing()

    def start(self) -> None:
        """Starts dialing in the running loop; idempotent."""
        if self._task is None and not self._closed:
            self._connected_event = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_connected(self) -> None:
        """Waits until connected (bound it with ``asyncio.wait_for``)."""
        if self._connected_event is None:
            raise RuntimeError("start() the sink first")
        while not self.connected:
            await self._connected_event.wait()
            if not self.connected:
                # Set but already lost (the dial loop clears it in a moment): don't spin.
                self._connected_event.clear()

    def __call__(self, reports: Sequence[RevisionStat]) -> None:
        if not reports:
            return
        try:
            p = self._protocol
            if p is None or not self.connected or p.write_buffer_size() > self.max_write_buffer:
                self.dropped += 1
                return
            p.send(OP_BINARY, encode_wire_stat_messages(reports))
            self.sent += 1
        except Exception:
            self.dropped += 1
            logger.exception("autoscaler websocket: could not send %d stats", len(reports))

    async def close(self) -> None:
        """Sends a close frame, closes the connection and stops redialing; idempotent."""
        self._closed = True
        p, self._protocol = self._protocol, None
        if p is not None and p.transport is not None:
            p.send_close(_close_payload(CLOSE_NORMAL))
            p.transport.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ internals

    def _delay(self, step: int) -> float:
        base = min(self.backoff_initial * self.backoff_factor**step, self.backoff_max)
        return base * (1.0 + random.random() * self.backoff_jitter)

    async def _run(self) -> None:
        step = -1  # the first dial goes at once
        failures = 0
        while not self._closed:
            if step >= 0:
                await asyncio.sleep(self._delay(step))
            step += 1
            try:
                protocol = await asyncio.wait_for(self._dial(), self.handshake_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                failures += 1
                # Knative logs every failure; one warning per outage is enough here.
                log = logger.warning if failures == 1 else logger.debug
                log("autoscaler websocket %s: cannot connect: %r", self.url, e)
                continue
            step = failures = 0
            self.connects += 1
            self._protocol = protocol
            assert self._connected_event is not None
            self._connected_event.set()
            logger.info("autoscaler websocket %s: connected", self.url)
            self._callback(self.on_connect)
            try:
                await self._keepalive(protocol)
            finally:
                self._connected_event.clear()
                if self._protocol is protocol:
                    self._protocol = None
                # close() has already closed it gracefully (flushing its close frame).
                if not self._closed and protocol.transport is not None:
                    protocol.transport.abort()
            if not self._closed:
                logger.warning("autoscaler websocket %s: connection lost, redialing", self.url)
                self._callback(self.on_disconnect)

    async def _dial(self) -> _ClientProtocol:
        loop = asyncio.get_running_loop()
        key = _new_key()
        request = handshake_request(self._host_header, self._target, key)
        transport, protocol = await loop.create_connection(
            lambda: _ClientProtocol(loop, request, key), self._host, self._port
        )
        try:
            await protocol.handshake
        except BaseException:
            transport.abort()
            raise
        return protocol

    async def _keepalive(self, protocol: _ClientProtocol) -> None:
        loop = asyncio.get_running_loop()
        while not protocol.lost.done():
            await asyncio.wait([protocol.lost], timeout=self.ping_interval)
            if protocol.lost.done():
                return
            if loop.time() - protocol.last_seen > self.pong_timeout:
                logger.warning("autoscaler websocket %s: no pong within %.1fs",
                               self.url, self.pong_timeout)
                return
            protocol.send(OP_PING, b"")

    @staticmethod
    def _callback(fn: Callable[[], None] | None) -> None:
        if fn is not None:
            try:
                fn()
            except Exception:
                logger.exception("autoscaler websocket callback failed")
