"""``activator.activator.wire``: ``WireStatMessages`` bytes, the RFC 6455 client pieces, the sink.

The protobuf bytes are checked against the ``protobuf`` package, with Knative's messages
(pkg/autoscaler/metrics/stat.proto) built at run time from a ``FileDescriptorProto``, as in
tests/proxy/test_stats.py. ``WebsocketStatSink`` is run against a minimal websocket server
written here (its own handshake and frame decoding, so the client is not checked against
itself) on 127.0.0.1 with an ephemeral port; every wait is bounded and waits on a condition.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

# ---------------------------------------------------------------------------- the messages
from knative_proto import WireStatMessages

from activator.activator.stats import ConcurrencyReporter, RevisionStat
from activator.activator.wire import (
    DEFAULT_AUTOSCALER_URL,
    FrameReader,
    HandshakeError,
    WebsocketProtocolError,
    WebsocketStatSink,
    accept_key,
    check_handshake_response,
    encode_frame,
    encode_wire_stat_messages,
    handshake_request,
    parse_ws_url,
)


def parse(data: bytes) -> Any:
    return WireStatMessages.FromString(data)


def expected(reports: list[RevisionStat]) -> Any:
    """What Knative's ToWireStatMessages + Marshal produce: the Stat is always set."""
    out = WireStatMessages()
    for r in reports:
        m = out.messages.add(namespace=r.namespace, name=r.name)
        m.stat.SetInParent()
        m.stat.pod_name = r.pod_name
        m.stat.average_concurrent_requests = r.average_concurrency
        m.stat.request_count = r.request_count
    return out


def as_reports(msg: Any) -> list[RevisionStat]:
    return [
        RevisionStat(m.namespace, m.name, m.stat.pod_name, m.stat.average_concurrent_requests,
                     m.stat.request_count)
        for m in msg.messages
    ]


def rs(ns: str = "default", name: str = "hello-00001", pod: str = "activator-abc",
       avg: float = 1.0, count: float = 1.0) -> RevisionStat:
    return RevisionStat(ns, name, pod, avg, count)


ENCODE_CASES: list[tuple[str, list[RevisionStat]]] = [
    ("empty batch", []),
    ("one revision", [rs(avg=2.5, count=7.0)]),
    ("poke", [rs(avg=1.0, count=1.0)]),
    ("zero stat, pod name only", [rs(avg=0.0, count=0.0)]),
    ("all empty: stat still present", [rs(ns="", name="", pod="", avg=0.0, count=0.0)]),
    ("zero average, non-zero count", [rs(avg=0.0, count=3.0)]),
    ("fractions", [rs(avg=1 / 3, count=2.0), rs(name="b", avg=2 / 7, count=0.0)]),
    ("large values", [rs(avg=1e9, count=1e12)]),
    ("unicode names", [rs(ns="ñamespace", name="révision-名前-00001", pod="activator-ü")]),
    ("long names (2-byte lengths)", [rs(ns="n" * 63, name="r" * 200, pod="p" * 300)]),
    ("very long name (3-byte lengths)", [rs(name="x" * 20000)]),
    ("many revisions", [rs(ns=f"ns-{i % 13}", name=f"rev-{i:05d}", avg=i / 10, count=float(i))
                        for i in range(2000)]),
]


@pytest.mark.parametrize("name,reports", ENCODE_CASES, ids=[c[0] for c in ENCODE_CASES])
def test_encode_wire_stat_messages_matches_protobuf(name: str, reports: list[RevisionStat]) -> None:
    data = encode_wire_stat_messages(reports)
    msg = parse(data)
    assert len(msg.messages) == len(reports)
    for m, r in zip(msg.messages, reports, strict=True):
        assert (m.namespace, m.name) == (r.namespace, r.name)
        assert m.HasField("stat")
        assert m.stat.pod_name == r.pod_name
        assert m.stat.average_concurrent_requests == r.average_concurrency
        assert m.stat.request_count == r.request_count
        # The activator never sets these.
        assert m.stat.average_proxied_concurrent_requests == 0
        assert m.stat.proxied_request_count == 0
        assert m.stat.process_uptime == 0
        assert m.stat.timestamp == 0
    assert as_reports(msg) == reports
    # Byte for byte what the protobuf runtime (and gogo's proto3 Marshal) writes.
    assert data == expected(reports).SerializeToString(deterministic=True)


def test_zero_and_empty_fields_are_omitted() -> None:
    data = encode_wire_stat_messages([rs(ns="", name="r", pod="", avg=0.0, count=2.0)])
    msg = parse(data)
    (m,) = msg.messages
    assert [f.name for f, _ in m.ListFields()] == ["name", "stat"]
    assert [f.name for f, _ in m.stat.ListFields()] == ["request_count"]
    stat = b"\x21" + struct.pack("<d", 2.0)
    inner = b"\x12\x01r" + b"\x1a" + bytes((len(stat),)) + stat
    assert data == b"\x0a" + bytes((len(inner),)) + inner


def test_empty_stat_is_written_as_an_empty_field() -> None:
    # Knative's stat server skips messages whose Stat is nil: it must be on the wire.
    data = encode_wire_stat_messages([rs(ns="", name="", pod="", avg=0.0, count=0.0)])
    assert data == b"\x0a\x02\x1a\x00"
    assert parse(data).messages[0].HasField("stat")


def test_field_numbers() -> None:
    data = encode_wire_stat_messages([rs(ns="n", name="r", pod="p", avg=1.0, count=2.0)])
    stat = b"\x0a\x01p" + b"\x11" + struct.pack("<d", 1.0) + b"\x21" + struct.pack("<d", 2.0)
    inner = b"\x0a\x01n" + b"\x12\x01r" + b"\x1a" + bytes((len(stat),)) + stat
    assert data == b"\x0a" + bytes((len(inner),)) + inner


def test_encodes_a_real_report() -> None:
    cr = ConcurrencyReporter("activator-0")
    poke = cr.request_in(("default", "hello-00001"), 1.0)
    assert poke is not None
    cr.request_in(("default", "hello-00001"), 1.5)
    cr.request_in(("other", "world-00002"), 1.5)
    reports = [poke, *cr.report(2.0)]
    msg = parse(encode_wire_stat_messages(reports))
    assert as_reports(msg) == reports
    assert [(m.namespace, m.name) for m in msg.messages] == [
        ("default", "hello-00001"), ("default", "hello-00001"), ("other", "world-00002")]


def test_accepts_any_iterable() -> None:
    reports = [rs(name=f"r{i}") for i in range(3)]
    assert encode_wire_stat_messages(iter(reports)) == encode_wire_stat_messages(reports)


# ---------------------------------------------------------------------------- RFC 6455 pieces


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("url,want", [
    (DEFAULT_AUTOSCALER_URL,
     ("autoscaler.knative-serving.svc.cluster.local", 8080,
      "autoscaler.knative-serving.svc.cluster.local:8080", "/")),
    ("ws://127.0.0.1:9090/stats?x=1", ("127.0.0.1", 9090, "127.0.0.1:9090", "/stats?x=1")),
    ("ws://example.com", ("example.com", 80, "example.com", "/")),
    ("ws://[::1]:8080/p", ("::1", 8080, "[::1]:8080", "/p")),
])
def test_parse_ws_url(url: str, want: tuple) -> None:
    assert parse_ws_url(url) == want


@pytest.mark.parametrize("url", ["wss://a:1", "http://a:1", "ws://:80", "autoscaler:8080"])
def test_parse_ws_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        parse_ws_url(url)


def test_handshake_request() -> None:
    req = handshake_request("a:8080", "/", "dGhlIHNhbXBsZSBub25jZQ==")
    assert req.startswith(b"GET / HTTP/1.1\r\n")
    assert req.endswith(b"\r\n\r\n")
    lines = req.split(b"\r\n")[1:-2]
    assert {ln.split(b": ", 1)[0].lower(): ln.split(b": ", 1)[1] for ln in lines} == {
        b"host": b"a:8080",
        b"upgrade": b"websocket",
        b"connection": b"Upgrade",
        b"sec-websocket-key": b"dGhlIHNhbXBsZSBub25jZQ==",
        b"sec-websocket-version": b"13",
    }


KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GOOD = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")


def test_check_handshake_response_accepts() -> None:
    check_handshake_response(GOOD.encode(), KEY)
    # Case-insensitive names and tokens, extra Connection tokens, other headers.
    check_handshake_response(
        b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
        b"SEC-WEBSOCKET-ACCEPT: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nServer: x", KEY)


@pytest.mark.parametrize("head", [
    GOOD.replace("101 Switching Protocols", "200 OK"),
    GOOD.replace("101 Switching Protocols", "403 Forbidden"),
    GOOD.replace("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
    GOOD.replace("Upgrade: websocket\r\n", ""),
    GOOD.replace("Upgrade: websocket", "Upgrade: h2c"),
    GOOD.replace("Connection: Upgrade", "Connection: keep-alive"),
    GOOD.replace("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", ""),
    GOOD + "\r\nSec-WebSocket-Extensions: permessage-deflate",
    GOOD + "\r\nSec-WebSocket-Protocol: chat",
    "SSH-2.0-OpenSSH_9.6",
    GOOD + "\r\nno colon here",
], ids=["200", "403", "bad-accept", "no-upgrade", "wrong-upgrade", "no-connection-upgrade",
        "no-accept", "extension", "subprotocol", "not-http", "malformed-header"])
def test_check_handshake_response_rejects(head: str) -> None:
    with pytest.raises(HandshakeError):
        check_handshake_response(head.encode(), KEY)


def decode_client_frame(data: bytes) -> tuple[bool, int, bytes, int]:
    """The test's own decoder: (fin, opcode, unmasked payload, bytes used); client frames must
    be masked."""
    b0, b1 = data[0], data[1]
    assert b1 & 0x80, "client frames must be masked"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        (n,) = struct.unpack("!H", data[2:4])
        pos = 4
    elif n == 127:
        (n,) = struct.unpack("!Q", data[2:10])
        pos = 10
    mask = data[pos:pos + 4]
    body = data[pos + 4:pos + 4 + n]
    assert len(body) == n
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
    return bool(b0 & 0x80), b0 & 0x0F, payload, pos + 4 + n


@pytest.mark.parametrize("n", [0, 1, 5, 125, 126, 127, 65535, 65536, 100_003])
def test_encode_frame_lengths(n: int) -> None:
    payload = bytes(i % 251 for i in range(n))
    frame = encode_frame(0x2, payload)
    fin, opcode, got, used = decode_client_frame(frame)
    assert (fin, opcode, got, used) == (True, 0x2, payload, len(frame))
    header = 2 if n < 126 else 4 if n < 65536 else 10
    assert len(frame) == header + 4 + n


def test_encode_frame_masks_with_the_given_key() -> None:
    frame = encode_frame(0x1, b"Hello", b"\x37\xfa\x21\x3d")
    assert frame == bytes.fromhex("818537fa213d7f9f4d5158")  # RFC 6455 section 5.7


def test_encode_frame_uses_fresh_masks() -> None:
    masks = {encode_frame(0x2, b"x")[2:6] for _ in range(20)}
    assert len(masks) > 1


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", b0, 126, n) + payload
    return struct.pack("!BBQ", b0, 127, n) + payload


def test_frame_reader_splits_and_reassembles() -> None:
    stream = (server_frame(0x9, b"ping!") + server_frame(0x2, b"x" * 300)
              + server_frame(0x2, b"y" * 70000) + server_frame(0x8, struct.pack("!H", 1012)))
    for step in (1, 3, 7, 1000, len(stream)):
        r = FrameReader()
        got: list[tuple[bool, int, bytes]] = []
        for i in range(0, len(stream), step):
            got += r.feed(stream[i:i + step])
        assert got == [(True, 0x9, b"ping!"), (True, 0x2, b"x" * 300),
                       (True, 0x2, b"y" * 70000), (True, 0x8, struct.pack("!H", 1012))]


@pytest.mark.parametrize("data", [
    bytes((0x82, 0x81)) + b"\x00\x00\x00\x00x",  # masked
    bytes((0xC2, 0x01)) + b"x",  # RSV1
    server_frame(0x9, b"p", fin=False),  # fragmented control frame
    server_frame(0x9, b"p" * 126),  # oversized control frame
    server_frame(0x3, b"x"),  # reserved opcode
    struct.pack("!BBQ", 0x82, 127, 1 << 40),  # over the size limit
])
def test_frame_reader_rejects(data: bytes) -> None:
    with pytest.raises(WebsocketProtocolError):
        FrameReader().feed(data)


# ---------------------------------------------------------------------------- a test server

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Conn:
    """One accepted websocket connection on the test server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 request: dict[str, str], target: str) -> None:
        self.reader = reader
        self.writer = writer
        self.request = request
        self.target = target
        self.frames: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.closed = asyncio.Event()

    def send(self, opcode: int, payload: bytes) -> None:
        self.writer.write(server_frame(opcode, payload))

    def abort(self) -> None:
        self.writer.transport.abort()  # type: ignore[attr-defined]


class WsServer:
    """A minimal websocket server: answers the handshake (or a scripted bad answer), then reads
    and unmasks client frames, answering pings; binary payloads from every connection go to
    ``binaries``."""

    def __init__(self, respond: Callable[[str], bytes] | None = None,
                 auto_pong: bool = True, read: bool = True) -> None:
        self.respond = respond
        self.auto_pong = auto_pong
        self.read = read
        self.attempts = 0
        self.conns: asyncio.Queue[Conn] = asyncio.Queue()
        self.binaries: asyncio.Queue[bytes] = asyncio.Queue()
        self.hold: asyncio.Event | None = None  # if set, handshakes wait for it
        self.server: asyncio.AbstractServer | None = None
        self.stopping = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/stats"

    async def stop(self) -> None:
        """Stops listening, closes every connection and waits for the handlers to end."""
        assert self.server is not None
        self.stopping.set()
        if self.hold is not None:
            self.hold.set()
        self.server.close()
        for w in self._writers:
            w.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5.0)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self._writers.append(writer)
        self.attempts += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        line, *rest = head.split("\r\n")
        request = {}
        for h in rest:
            if h:
                k, _, v = h.partition(":")
                request[k.strip().lower()] = v.strip()
        if self.hold is not None:
            await self.hold.wait()
        if self.stopping.is_set():
            writer.close()
            return
        key = request.get("sec-websocket-key", "")
        if self.respond is not None:
            writer.write(self.respond(key))
            await writer.drain()
            writer.close()
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        conn = Conn(reader, writer, request, line.split(" ")[1])
        self.conns.put_nowait(conn)
        try:
            while self.read:
                b0, b1 = await reader.readexactly(2)
                assert b1 & 0x80, "client frames must be masked"
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await reader.readexactly(8))
                mask = await reader.readexactly(4)
                body = await reader.readexactly(n)
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
                opcode = b0 & 0x0F
                assert b0 & 0x80, "the sink sends unfragmented messages"
                conn.frames.put_nowait((opcode, payload))
                if opcode == 0x2:
                    self.binaries.put_nowait(payload)
                elif opcode == 0x9 and self.auto_pong:
                    conn.send(0xA, payload)
            if not self.read:
                await self.stopping.wait()  # never read again
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            conn.closed.set()
            writer.close()


def run(body: Callable[[], Coroutine[Any, Any, Any]], loop_kind: str, timeout: float = 20.0) -> Any:
    if loop_kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(body(), timeout))
    finally:
        # A safety net: WsServer.stop() ends its handlers, so normally nothing is left.
        pending = asyncio.all_tasks(loop)
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def until(cond: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Polls ``cond`` on the loop until truthy; fails after ``timeout`` seconds."""

    async def poll() -> Any:
        while not (value := cond()):
            await asyncio.sleep(0.002)
        return value

    return await asyncio.wait_for(poll(), timeout)


async def within(aw: Awaitable[Any], timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(aw, timeout)


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    return request.param


BATCH = [rs(avg=1.0, count=1.0), rs(ns="team-b", name="wörld-00002", avg=2.25, count=9.0)]


# ---------------------------------------------------------------------------- the sink, live


def test_handshake_and_one_batch(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        url = await server.start()
        sink = WebsocketStatSink(url)
        try:
            assert not sink.connected
            sink.start()
            await within(sink.wait_connected())
            assert sink.connected and sink.connects == 1
            conn = await within(server.conns.get())
            port = url.split(":")[2].split("/")[0]
            assert conn.target == "/stats"
            assert conn.request["host"] == f"127.0.0.1:{port}"
            assert conn.request["upgrade"].lower() == "websocket"
            assert "upgrade" in conn.request["connection"].lower()
            assert conn.request["sec-websocket-version"] == "13"
            assert len(base64.b64decode(conn.request["sec-websocket-key"])) == 16

            sink(BATCH)
            payload = await within(server.binaries.get())
            assert as_reports(parse(payload)) == BATCH
            assert payload == encode_wire_stat_messages(BATCH)
            assert (sink.sent, sink.dropped) == (1, 0)

            sink([])  # nothing to send: neither sent nor dropped
            assert (sink.sent, sink.dropped) == (1, 0)
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_batches_arrive_in_order_as_separate_messages(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        sink = WebsocketStatSink(await server.start())
        try:
            sink.start()
            await within(sink.wait_connected())
            batches = [[rs(name=f"rev-{i}-{j}", count=float(i)) for j in range(i % 5 + 1)]
                       for i in range(50)]
            big = [rs(name=f"big-{i:04d}" + "x" * 100) for i in range(1000)]  # ~140 KB frame
            for b in [*batches, big]:
                sink(b)
            for b in [*batches, big]:
                assert as_reports(parse(await within(server.binaries.get()))) == b
            assert sink.sent == 51
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


@pytest.mark.parametrize("how", ["close-frame", "tcp-reset"])
def test_reconnects_after_the_server_drops_the_connection(loop_kind: str, how: str) -> None:
    async def body() -> None:
        server = WsServer()
        events: list[str] = []
        sink = WebsocketStatSink(await server.start(), backoff_initial=0.01,
                                 on_connect=lambda: events.append("up"),
                                 on_disconnect=lambda: events.append("down"))
        try:
            sink.start()
            await within(sink.wait_connected())
            first = await within(server.conns.get())
            sink(BATCH[:1])
            assert as_reports(parse(await within(server.binaries.get()))) == BATCH[:1]

            # Hold the next handshake so that the disconnected state can be observed.
            server.hold = asyncio.Event()
            if how == "close-frame":
                # As Knative's stat server does on shutdown: 1012 "Restarting".
                first.send(0x8, struct.pack("!H", 1012) + b"Restarting")
                while (frame := await within(first.frames.get()))[0] != 0x8:
                    assert frame[0] == 0x2  # the batch above
                assert frame[1] == struct.pack("!H", 1012)  # the code is echoed
            else:
                first.abort()
            await until(lambda: not sink.connected)
            await within(first.closed.wait())

            sink(BATCH)  # while disconnected: dropped, counted, no exception
            sink(BATCH)
            assert (sink.sent, sink.dropped) == (1, 2)
            await until(lambda: server.attempts >= 2)

            server.hold.set()
            await within(sink.wait_connected())
            second = await within(server.conns.get())
            assert second is not first
            assert sink.connects == 2
            assert events == ["up", "down", "up"]
            sink(BATCH)
            assert as_reports(parse(await within(server.binaries.get()))) == BATCH
            assert server.binaries.empty()  # the dropped batches were not queued
            assert (sink.sent, sink.dropped) == (2, 2)
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def _bad_accept(key: str) -> bytes:
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")


def _forbidden(key: str) -> bytes:
    return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"


def _no_upgrade(key: str) -> bytes:
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
    return b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"


def _hang_up(key: str) -> bytes:
    return b""


def _garbage(key: str) -> bytes:
    return b"\x00\xff" * 10000  # no end of head within the limit


@pytest.mark.parametrize("respond", [_bad_accept, _forbidden, _no_upgrade, _hang_up, _garbage],
                         ids=["bad-accept", "403", "no-upgrade", "hang-up", "garbage"])
def test_bad_handshake_is_not_connected_and_retries(
        loop_kind: str, respond: Callable[[str], bytes]) -> None:
    async def body() -> None:
        server = WsServer(respond=respond)
        sink = WebsocketStatSink(await server.start(), backoff_initial=0.01, backoff_max=0.05)
        try:
            sink.start()
            await until(lambda: server.attempts >= 3)  # retried with backoff
            assert not sink.connected
            assert sink.connects == 0
            sink(BATCH)  # no exception
            assert (sink.sent, sink.dropped) == (0, 1)
            assert server.binaries.empty()
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_handshake_timeout(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        server.hold = asyncio.Event()  # never answers
        sink = WebsocketStatSink(await server.start(), handshake_timeout=0.05,
                                 backoff_initial=0.01)
        try:
            sink.start()
            await until(lambda: server.attempts >= 2)
            assert not sink.connected
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_connection_refused_retries_without_raising(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        url = await server.start()
        await server.stop()  # nothing listens on that port now
        sink = WebsocketStatSink(url, backoff_initial=0.01, backoff_max=0.02)
        sink.start()
        try:
            task = sink._task
            assert task is not None
            await asyncio.sleep(0)
            for _ in range(3):
                sink(BATCH)
            assert not sink.connected and sink.dropped == 3
            assert not task.done()  # still redialing
        finally:
            await sink.close()
        assert task.done()

    run(body, loop_kind)


def test_answers_pings_and_sends_its_own(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        sink = WebsocketStatSink(await server.start(), ping_interval=0.02)
        try:
            sink.start()
            await within(sink.wait_connected())
            conn = await within(server.conns.get())
            # The client pings on its own.
            opcode, payload = await within(conn.frames.get())
            assert (opcode, payload) == (0x9, b"")
            # And answers the server's ping with the same payload.
            conn.send(0x9, b"are you there")
            while (frame := await within(conn.frames.get())) != (0xA, b"are you there"):
                assert frame == (0x9, b"")
            assert sink.connected and sink.connects == 1
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_no_pong_drops_the_connection_and_redials(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer(auto_pong=False)
        sink = WebsocketStatSink(await server.start(), ping_interval=0.02, pong_timeout=0.1,
                                 backoff_initial=0.01)
        try:
            sink.start()
            await within(sink.wait_connected())
            first = await within(server.conns.get())
            await within(first.closed.wait())  # the client gave up on it
            await within(server.conns.get())  # and dialed again
            await until(lambda: sink.connects >= 2)
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_protocol_error_from_the_server_drops_the_connection(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        sink = WebsocketStatSink(await server.start(), backoff_initial=0.01)
        try:
            sink.start()
            await within(sink.wait_connected())
            first = await within(server.conns.get())
            first.writer.write(bytes((0x82, 0x81)) + b"\x01\x02\x03\x04x")  # a masked frame
            await within(first.closed.wait())
            await within(server.conns.get())
            await within(sink.wait_connected())
            sink(BATCH)
            assert as_reports(parse(await within(server.binaries.get()))) == BATCH
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_full_write_buffer_drops_batches(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer(read=False)  # reads nothing after the handshake
        sink = WebsocketStatSink(await server.start(), max_write_buffer=64 * 1024)
        try:
            sink.start()
            await within(sink.wait_connected())
            big = [rs(name="x" * 250_000)]
            for _ in range(400):  # the socket buffers fill long before this
                sink(big)
                await asyncio.sleep(0)
                if sink.dropped:
                    break
            assert sink.dropped >= 1 and sink.sent >= 1
            assert sink.connected
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_sink_never_raises(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        sink = WebsocketStatSink(await server.start())
        try:
            sink(BATCH)  # before start: dropped
            assert sink.dropped == 1
            sink.start()
            sink.start()  # idempotent
            await within(sink.wait_connected())
            sink([object()])  # type: ignore[list-item]  # not a RevisionStat: dropped, logged
            assert (sink.sent, sink.dropped) == (0, 2)
            assert sink.connected
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)


def test_close_sends_a_close_frame_and_stops(loop_kind: str) -> None:
    async def body() -> None:
        server = WsServer()
        sink = WebsocketStatSink(await server.start())
        sink.start()
        await within(sink.wait_connected())
        conn = await within(server.conns.get())
        task = sink._task
        await within(sink.close())
        assert task is not None and task.done()
        opcode, payload = await within(conn.frames.get())
        assert (opcode, payload) == (0x8, struct.pack("!H", 1000))
        await within(conn.closed.wait())
        assert not sink.connected
        sink(BATCH)
        assert sink.dropped == 1
        await sink.close()  # idempotent
        sink.start()  # no restart after close
        assert sink._task is None
        assert server.attempts == 1
        await server.stop()

    run(body, loop_kind)


def test_reporter_to_sink_end_to_end(loop_kind: str) -> None:
    """The activator's wiring: the poke goes at once, then the tick's batch."""

    async def body() -> None:
        server = WsServer()
        sink = WebsocketStatSink(await server.start())
        cr = ConcurrencyReporter("activator-xyz")
        try:
            sink.start()
            await within(sink.wait_connected())
            key = ("default", "hello-00001")
            poke = cr.request_in(key, 100.0)
            assert poke is not None
            sink([poke])
            cr.request_in(key, 100.5)
            cr.request_out(key, 100.75)
            reports = cr.report(101.0)
            if reports:
                sink(reports)
            got = [as_reports(parse(await within(server.binaries.get()))) for _ in range(2)]
            assert got[0] == [RevisionStat("default", "hello-00001", "activator-xyz", 1.0, 1.0)]
            (tick,) = got[1]
            assert tick.average_concurrency == pytest.approx(0.25)  # 1.25 - the poke
            assert tick.request_count == 1.0
        finally:
            await sink.close()
            await server.stop()

    run(body, loop_kind)
