"""The engine's protocols without sockets, as uvicorn tests its own: a ``ServerProtocol`` and its
``UpstreamProtocol`` on fake transports, exact bytes in and out, both parser backends (the
``backend`` fixture of ``tests/conftest.py``), in both builds (compiled and pure).

The seams, both the engine's own:

- client side: ``Server.protocol()``, the factory ``Server.listen`` hands to ``create_server``;
  the test calls ``connection_made`` with a ``FakeTransport`` and feeds ``data_received``.
- upstream side: ``UpstreamPool`` dials with ``self.loop.create_connection(factory, host, port)``.
  The test's own event loop gets a ``FakeDialer`` as its ``create_connection``: it runs the
  pool's factory and binds the ``UpstreamProtocol`` to a ``FakeTransport``, so the pool's real
  dial path (``acquire`` -> ``_connect`` -> task -> ``_connected`` -> ``Exchange.attached``) and
  its keep-alive reuse (``release`` -> ``idle`` -> ``acquire``) run as they do in production.

A real asyncio loop runs (the dial is a task, pipelined requests are dispatched with
``call_soon``, timeouts are loop timers); ``settle`` runs it a few turns, ``wait_output`` until
a transport is written to. No socket is opened and nothing sleeps.

The engine writes a finished answer, and a request head with no body to follow, at the end of
the loop's pass (``Server.uncork``, ``UpstreamPool.uncork``): ``take()`` first lets the loop end
the pass it is in (one turn), as a real loop always does before it waits for a socket.

``FakeTransport`` models what the engine relies on from an asyncio transport, flow control
included: over its high-water mark (``set_write_buffer_limits``) a write calls the protocol's
``pause_writing``, and ``drain()`` (the kernel taking the bytes) calls ``resume_writing``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest

from proxy.engine import Server, UpstreamPool
from proxy.engine.upstream import UpstreamProtocol
from proxy.headers import drop_set, request_head

PEER = ("10.0.0.9", 4711)
UPSTREAM = ("127.0.0.1", 8080)
XFF = b"X-Forwarded-For: 10.0.0.9\r\n"
DROP = drop_set()

# An IMF-fixdate (RFC 9110 5.6.7), the only form the engine may write.
_DATE = re.compile(
    rb"Date: (?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\r\n"
)
NOW = b"Date: <now>\r\n"
# A Date an upstream sent: it must reach the client as it is (never masked: not "now").
OLD_DATE = b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


def _mask_now(m: re.Match[bytes]) -> bytes:
    when = parsedate_to_datetime(m.group(0)[6:-2].decode()).timestamp()
    return NOW if abs(when - time.time()) < 5 else m.group(0)


class FakeTransport:
    """What the engine calls on an asyncio transport, recorded; every byte written is kept."""

    def __init__(self, protocol: Any = None, peer: tuple[str, int] = PEER) -> None:
        self.protocol = protocol
        self.peer = peer
        self.out = bytearray()
        self.log: list[str] = []  # pause_reading, resume_reading, close, abort, in order
        self.reading = True
        self.closed = False
        self.aborted = False
        self.late = bytearray()  # written after close/abort (a real transport drops them)
        self.high = 64 * 1024  # asyncio's default watermarks
        self.low = 16 * 1024
        self.pending = 0  # bytes "not yet taken by the kernel"
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # take() ends its pass first

    # -- asyncio.WriteTransport
    def write(self, data: bytes) -> None:
        if self.closed:
            self.late += data
            return
        self.out += data
        self.pending += len(data)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        if self.pending > self.high and not self.writing_paused:
            self.writing_paused = True
            self.protocol.pause_writing()

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.write(line)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.high = 64 * 1024 if high is None else high
        self.low = self.high // 4 if low is None else low

    def get_write_buffer_size(self) -> int:
        return self.pending

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.low, self.high

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.log.append("write_eof")

    # -- asyncio.BaseTransport / ReadTransport
    def close(self) -> None:
        self.log.append("close")
        self.closed = True

    def abort(self) -> None:
        self.log.append("abort")
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.log.append("pause_reading")
        self.reading = False

    def resume_reading(self) -> None:
        self.log.append("resume_reading")
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_protocol(self, protocol: Any) -> None:  # the switch to HTTP/2
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.peer
        if name == "sockname":
            return ("10.0.0.1", 8012)
        return default  # "socket": none, so nothing does a syscall on it

    # -- test side
    def drain(self) -> None:
        """The kernel took everything: under the low-water mark, writing may resume."""
        self.pending = 0
        if self.writing_paused:
            self.writing_paused = False
            self.protocol.resume_writing()

    def take(self) -> bytes:
        """What was written since the last take, a Date of now shown as ``Date: <now>``."""
        loop = self.loop
        if loop is not None and not loop.is_running() and not loop.is_closed():
            loop.run_until_complete(asyncio.sleep(0))  # the callbacks due in this pass run
        data = _DATE.sub(_mask_now, bytes(self.out))
        self.out.clear()
        return data


class FakeDialer:
    """The loop's ``create_connection`` for ``UpstreamPool``: no socket, a ``FakeTransport``."""

    def __init__(self) -> None:
        self.dials: list[tuple[str, int]] = []
        self.transports: list[FakeTransport] = []
        self.protocols: list[Any] = []
        self.refuse = False
        self.high: int | None = None

    async def __call__(self, factory: Any, host: str, port: int, **kwargs: Any) -> Any:
        self.dials.append((host, port))
        if self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        proto = factory()
        transport = FakeTransport(proto, (host, port))
        transport.loop = asyncio.get_running_loop()
        if self.high is not None:
            transport.set_write_buffer_limits(self.high)
        proto.connection_made(transport)
        self.protocols.append(proto)
        self.transports.append(transport)
        return transport, proto

    @property
    def up(self) -> Any:
        assert len(self.protocols) == 1, self.dials
        return self.protocols[0]

    @property
    def ut(self) -> FakeTransport:
        assert len(self.transports) == 1, self.dials
        return self.transports[0]


# ---------------------------------------------------------------------------- handlers


class Answer:
    """Answers every request itself: 200, ``method target`` as a text/plain body."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def handle(self, ex: Any) -> None:
        self.seen.append(ex.target)
        ex.respond(200, ex.method + b" " + ex.target, b"Content-Type: text/plain\r\n")


class Hold:
    """Keeps every exchange for the test to answer."""

    def __init__(self) -> None:
        self.held: list[Any] = []

    def handle(self, ex: Any) -> None:
        self.held.append(ex)


class Echo:
    """Answers with the request body (``Exchange.read_body``)."""

    def handle(self, ex: Any) -> None:
        ex.read_body(lambda body: ex.respond(200, body))


class Forward:
    """Forwards every request through ``pool``, the head rewritten as the queue-proxy does."""

    def __init__(self, pool: UpstreamPool, timeouts: Any = None) -> None:
        self.pool = pool
        self.timeouts = timeouts
        self.done: list[int] = []

    def handle(self, ex: Any) -> None:
        ex.on_done = lambda e: self.done.append(e.resp_status)
        if self.timeouts is not None:
            ex.arm_timeouts(self.timeouts)
        ex.head_out = request_head(ex, DROP)
        ex.forward(self.pool)


# ---------------------------------------------------------------------------- plumbing


class Env:
    def __init__(self, loop: asyncio.AbstractEventLoop, backend: str, dialer: FakeDialer):
        self.loop = loop
        self.backend = backend
        self.dialer = dialer
        self.servers: list[Any] = []
        self.pools: list[UpstreamPool] = []

    def client(self, handler: Any, max_head: int = 64 * 1024) -> tuple[Any, FakeTransport]:
        server = Server(handler, loop=self.loop, backend=self.backend, max_head=max_head)
        self.servers.append(server)
        proto = server.protocol()
        transport = FakeTransport(proto)
        transport.loop = self.loop
        proto.connection_made(transport)
        return proto, transport

    def pool(self) -> UpstreamPool:
        pool = UpstreamPool(self.loop, *UPSTREAM, backend=self.backend)
        self.pools.append(pool)
        return pool

    def forwarding(self, **kw: Any) -> tuple[Any, FakeTransport, UpstreamPool, Forward]:
        pool = self.pool()
        handler = Forward(pool, **kw)
        proto, t = self.client(handler)
        return proto, t, pool, handler

    def settle(self, turns: int = 8) -> None:
        """Runs the loop a few turns: a dial task, a ``call_soon`` dispatch."""

        async def turn() -> None:
            for _ in range(turns):
                await asyncio.sleep(0)

        self.loop.run_until_complete(turn())

    def wait_output(self, t: FakeTransport, timeout: float = 0.5) -> None:
        """Runs the loop until ``t`` is written to (a loop timer firing, say)."""
        t.waiter = self.loop.create_future()
        self.loop.run_until_complete(asyncio.wait_for(t.waiter, timeout))
        t.waiter = None


@pytest.fixture
def env(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    loop = asyncio.new_event_loop()
    dialer = FakeDialer()
    monkeypatch.setattr(loop, "create_connection", dialer)
    e = Env(loop, backend, dialer)
    yield e
    for server in e.servers:
        server.close()
    for pool in e.pools:
        pool.close()
    e.settle(2)
    loop.close()


def ok(body: bytes, extra: bytes = b"", http10: bool = False) -> bytes:
    """``Answer``'s response, Date masked."""
    return b"HTTP/1.%d 200 OK\r\nContent-Type: text/plain\r\n%sContent-Length: %d\r\n%s\r\n%s" % (
        0 if http10 else 1, NOW, len(body), extra, body)


def go_error(status: bytes, text: bytes, close: bool = True) -> bytes:
    """What ``Exchange.error`` (Go's ``http.Error``) writes, Date masked."""
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\n" + NOW
            + b"Content-Length: %d\r\n" % (len(text) + 1)
            + (b"Connection: close\r\n" if close else b"") + b"\r\n" + text + b"\n")


def refused(status: bytes, text: bytes = b"") -> bytes:
    """What Go's server writes itself for a head it cannot read (``parsers.refusal``): no Date,
    no length, the connection closed after; ``text`` for the few reasons it names."""
    line = status + (b": " + text if text else b"")
    return (b"HTTP/1.1 " + line + b"\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\n\r\n" + (line if status[:3] != b"501" else
                                          b"Unsupported transfer encoding"))


# ---------------------------------------------------------------------------- answered locally


def test_a_get_is_answered_with_exact_bytes(env: Env) -> None:
    handler = Answer()
    proto, t = env.client(handler)
    proto.data_received(b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    raw = bytes(t.out)
    # The Date is the engine's own (after the handler's lines, before the length), an
    # IMF-fixdate of now; its value aside, the bytes are exact.
    head = raw.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert [h.split(b":")[0] for h in head[1:]] == [b"Content-Type", b"Date", b"Content-Length"]
    assert _DATE.fullmatch(head[2] + b"\r\n")
    assert t.take() == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + NOW
                        + b"Content-Length: 14\r\n\r\nGET /hello?x=1")
    assert handler.seen == [b"/hello?x=1"]
    assert t.log == [] and not t.closed  # kept alive, never paused


def test_two_pipelined_requests_in_one_read_are_answered_in_order(env: Env) -> None:
    handler = Answer()
    proto, t = env.client(handler)
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"HEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    head2 = ok(b"HEAD /2")[: -len(b"HEAD /2")]  # the length of the body, not the body
    assert t.take() == ok(b"GET /1") + head2
    assert handler.seen == [b"/1", b"/2"]
    assert not t.closed and t.reading


class Refuse:
    """Answers 404 with Connection: close as soon as it has the head (the activator's unknown
    revision), before the body is read."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def handle(self, ex: Any) -> None:
        self.seen.append(ex.target)
        ex.respond(404, b"no\n", close=True)


def test_bytes_read_after_an_answer_that_closes_are_never_run(env: Env) -> None:
    # Found by the framing fuzzer: the loop may hand a read that was already due to a
    # protocol that has just closed its transport; a request in it must not run.
    handler = Refuse()
    proto, t = env.client(handler)
    proto.data_received(b"PUT /1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n")
    assert handler.seen == [b"/1"] and t.closed
    proto.data_received(b"z\r\n0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert handler.seen == [b"/1"]


def test_nothing_is_read_after_an_h2c_upgrade_served_over_http11(env: Env) -> None:
    # Found by the framing fuzzer (pure twin): llhttp takes the h2c request for an upgrade;
    # the engine serves it over HTTP/1.1 (one with a body is not switched to HTTP/2), and the
    # connection then ends. A request in a later read ran: the parser had been left running
    # after the "upgrade".
    handler = Answer()
    proto, t = env.client(handler)
    proto.data_received(b"POST /1 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
                        b"Content-Length: 3\r\n\r\nabc"
                        b"GET /hidden HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    proto.data_received(b"GET /later HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert handler.seen == [b"/1"]
    assert t.take().startswith(b"HTTP/1.1 200 OK\r\n") and t.closed


def test_pipelined_requests_wait_for_the_one_before(env: Env) -> None:
    handler = Hold()
    proto, t = env.client(handler)
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    # One exchange at a time: /2 and /3 are parsed and held, reading is paused meanwhile.
    assert [ex.target for ex in handler.held] == [b"/1"]
    assert t.log == ["pause_reading"]
    handler.held[0].respond(200, b"one")
    assert [ex.target for ex in handler.held] == [b"/1"]  # the next is dispatched by the loop
    env.settle()
    assert [ex.target for ex in handler.held] == [b"/1", b"/2"]
    handler.held[1].respond(200, b"two")
    env.settle()
    handler.held[2].respond(200, b"three")
    env.settle()
    assert t.take() == b"".join(
        b"HTTP/1.1 200 OK\r\n" + NOW + b"Content-Length: %d\r\n\r\n%s" % (len(b), b)
        for b in (b"one", b"two", b"three"))
    assert t.log == ["pause_reading", "resume_reading"]  # resumed once the queue emptied
    assert not t.closed


def test_a_request_split_byte_by_byte(env: Env) -> None:
    handler = Answer()
    proto, t = env.client(handler)
    for byte in b"GET /slow HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n":
        assert t.out == b"" and handler.seen == []
        proto.data_received(bytes([byte]))
    assert t.take() == ok(b"GET /slow")
    assert handler.seen == [b"/slow"]


def test_a_request_body_split_byte_by_byte(env: Env) -> None:
    proto, t = env.client(Echo())
    for byte in b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello":
        assert t.out == b""
        proto.data_received(bytes([byte]))
    assert t.take() == b"HTTP/1.1 200 OK\r\n" + NOW + b"Content-Length: 5\r\n\r\nhello"
    assert not t.closed


def test_a_malformed_request_line_gets_400_and_the_connection_closes(env: Env) -> None:
    handler = Answer()
    proto, t = env.client(handler)
    proto.data_received(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.take() == refused(b"400 Bad Request")
    assert t.log == ["close"] and not t.aborted
    assert handler.seen == []  # it never reached the handler
    proto.data_received(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.out == b"" and t.late == b"" and handler.seen == []


def test_a_malformed_pipelined_request_is_answered_after_the_good_one(env: Env) -> None:
    handler = Hold()
    proto, t = env.client(handler)
    proto.data_received(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /a b HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.out == b"" and [ex.target for ex in handler.held] == [b"/ok"]
    handler.held[0].respond(204)
    assert t.take() == (b"HTTP/1.1 204 No Content\r\n" + NOW + b"Content-Length: 0\r\n\r\n"
                        + refused(b"400 Bad Request"))
    assert t.closed


@pytest.mark.parametrize("ends", [True, False], ids=["whole-head", "unended-head"])
def test_a_head_over_the_limit_gets_431(env: Env, ends: bool) -> None:
    handler = Answer()
    proto, t = env.client(handler, max_head=1024)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 2048 + (b"\r\n\r\n" if ends else b"")
    proto.data_received(head)
    assert t.take() == refused(b"431 Request Header Fields Too Large")
    assert t.log == ["close"] and handler.seen == []


def test_connection_close_closes_after_the_response(env: Env) -> None:
    handler = Answer()
    proto, t = env.client(handler)
    proto.data_received(b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert t.take() == ok(b"GET /bye", b"Connection: close\r\n")
    assert t.log == ["close"]
    proto.data_received(b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert handler.seen == [b"/bye"] and t.out == b"" and t.late == b""


class LocalOrForward(Forward):
    """Answers ``/local`` itself, forwards the rest."""

    def __init__(self, pool: UpstreamPool) -> None:
        super().__init__(pool)
        self.seen: list[bytes] = []

    def handle(self, ex: Any) -> None:
        self.seen.append(ex.target)
        if ex.target == b"/local":
            ex.respond(200, b"bye")
        else:
            super().handle(ex)


def test_a_request_pipelined_after_connection_close_is_never_run(env: Env) -> None:
    # Was a bug with the h11 backend: its parser went on to the bytes after the message in the
    # same call, and on_head did not check that the connection was done.
    pool = env.pool()
    handler = LocalOrForward(pool)
    proto, t = env.client(handler)
    proto.data_received(b"GET /local HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                        b"POST /never HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    env.settle()
    assert t.take() == (b"HTTP/1.1 200 OK\r\n" + NOW
                        + b"Content-Length: 3\r\nConnection: close\r\n\r\nbye")
    assert t.log == ["close"]
    # Go's server never reads past a request that closes the connection: the POST must not
    # reach the handler, let alone the app.
    assert env.dialer.dials == [] and handler.seen == [b"/local"]


def test_http10_is_closed_unless_it_asks_for_keep_alive(env: Env) -> None:
    handler = Answer()
    proto, t = env.client(handler)
    # HTTP/1.0 needs no Host; keep-alive only when asked, and then said in the answer.
    proto.data_received(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert t.take() == ok(b"GET /old", b"Connection: keep-alive\r\n", http10=True)
    assert not t.closed
    proto.data_received(b"GET /last HTTP/1.0\r\n\r\n")
    assert t.take() == ok(b"GET /last", b"Connection: close\r\n", http10=True)
    assert t.log == ["close"]


def test_http10_chunked_request_is_refused(env: Env) -> None:
    proto, t = env.client(Answer())
    proto.data_received(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert t.take() == refused(b"501 Not Implemented")
    assert t.closed


def test_exchange_error_writes_go_style_bytes(env: Env) -> None:
    class Busy:
        def handle(self, ex: Any) -> None:
            ex.error(503, "pending request queue full")

    proto, t = env.client(Busy())
    proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.take() == go_error(b"503 Service Unavailable", b"pending request queue full",
                                close=False)
    assert not t.closed


def test_a_handler_that_raises_gets_500(env: Env) -> None:
    class Broken:
        def handle(self, ex: Any) -> None:
            raise RuntimeError("boom")

    proto, t = env.client(Broken())
    proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.take() == go_error(b"500 Internal Server Error", b"Internal Server Error",
                                close=False)


# ---------------------------------------------------------------------------- forwarded


def test_a_chunked_request_body_is_forwarded_with_exact_bytes(env: Env) -> None:
    proto, t, pool, handler = env.forwarding()
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                        b"Trailer: X-Sum\r\n\r\n5\r\nhello\r\n")
    env.settle()  # dialled: the head and the chunk held meanwhile go out together
    ut = env.dialer.ut
    assert env.dialer.dials == [UPSTREAM]
    # Transfer-Encoding and Trailer are hop-by-hop: the engine restates them after the
    # headers it keeps, and re-frames the decoded body.
    assert ut.take() == (b"POST /up HTTP/1.1\r\nHost: a\r\n" + XFF
                         + b"Transfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n")
    proto.data_received(b"6\r\n world\r\n")
    proto.data_received(b"0\r\nX-Sum: 11\r\n\r\n")
    assert ut.take() == b"6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n"
    env.dialer.up.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    assert t.take() == b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n" + NOW + b"\r\nok"
    assert list(pool.idle) == [env.dialer.up] and handler.done == [201]


def test_a_content_length_request_body_is_forwarded(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"PUT /k HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
    env.settle()
    proto.data_received(b"56789")
    assert env.dialer.ut.take() == (b"PUT /k HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
                                    + XFF + b"\r\n0123456789")


def test_a_content_length_response_is_relayed_with_exact_bytes(env: Env) -> None:
    proto, t, pool, handler = env.forwarding()
    proto.data_received(b"GET /doc HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    assert ut.take() == b"GET /doc HTTP/1.1\r\nHost: a\r\n" + XFF + b"\r\n"
    # The upstream's Date and headers pass as they are, hop-by-hop ones are cut.
    up.data_received(b"HTTP/1.1 200 Fine\r\nContent-Type: text/html\r\n" + OLD_DATE
                     + b"Keep-Alive: timeout=5\r\nContent-Length: 11\r\n\r\nhello")
    up.data_received(b" world")
    assert t.take() == (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" + OLD_DATE
                        + b"Content-Length: 11\r\n\r\nhello world")
    assert list(pool.idle) == [up] and not ut.closed and not t.closed
    assert handler.done == [200]


def test_a_chunked_response_is_relayed_chunked(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up = env.dialer.up
    up.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n"
                     b"Connection: keep-alive\r\n\r\n3\r\nabc\r\n")
    up.data_received(b"2\r\nde\r\n")
    up.data_received(b"0\r\nX-T: 1\r\n\r\n")
    assert t.take() == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n"
                        + NOW + b"\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n")
    assert list(pool.idle) == [up] and not t.closed


def test_an_http10_client_gets_a_close_delimited_body(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /old HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    assert ut.take() == b"GET /old HTTP/1.1\r\nHost: a\r\n" + XFF + b"\r\n"  # 1.1 upstream
    up.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
                     b"0\r\n\r\n")
    # No chunking for HTTP/1.0: the body is raw and ends with the connection.
    assert t.take() == b"HTTP/1.0 200 OK\r\nConnection: close\r\n" + NOW + b"\r\nabc"
    assert t.log == ["close"]
    assert list(pool.idle) == [up]  # the upstream side was framed: it is reusable


def test_the_upstream_connection_is_reused_for_the_next_request(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    for n in (b"1", b"2"):
        proto.data_received(b"GET /" + n + b" HTTP/1.1\r\nHost: a\r\n\r\n")
        env.settle()
        env.dialer.up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + n)
        assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" + NOW + b"\r\n" + n
    assert env.dialer.dials == [UPSTREAM]  # dialled once
    assert env.dialer.ut.take() == (b"GET /1 HTTP/1.1\r\nHost: a\r\n" + XFF + b"\r\n"
                                    b"GET /2 HTTP/1.1\r\nHost: a\r\n" + XFF + b"\r\n")


def test_heads_and_answers_go_out_together_at_the_end_of_the_loops_pass(env: Env) -> None:
    """HAProxy sends at the end of its pass, and so does the engine: the app (and the client)
    then wakes once for the pass's requests (answers), not once for each."""
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()  # dialled; the first head went out with the dial
    up, ut = env.dialer.up, env.dialer.ut
    ut.take()
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert bytes(t.out) == b""  # the answer waits for the pass to end
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")  # in the same pass
    assert bytes(ut.out) == b""  # so does the head, on the connection just released
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" + NOW + b"\r\n1"
    assert ut.take() == b"GET /2 HTTP/1.1\r\nHost: a\r\n" + XFF + b"\r\n"
    assert env.dialer.dials == [UPSTREAM]


def test_an_answer_held_for_the_pass_goes_before_an_h2c_switch(env: Env) -> None:
    # Found by the framing fuzzer: the 101 went straight to the transport, ahead of the answer
    # before it, still held for the end of the pass; the client took the 101 for that answer.
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    env.dialer.up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    out = t.take()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n" + NOW + b"\r\n1"
    assert out.startswith(answer + b"HTTP/1.1 101 Switching Protocols\r\n"), out[:200]


def test_only_a_request_with_all_its_body_waits_and_never_after_its_exchange(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    ut.take(), t.take()
    # A body still to come: the head goes out at once (the app may answer before it).
    proto.data_received(b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n")
    assert bytes(ut.out).endswith(b"\r\n\r\n")
    proto.data_received(b"ab")
    assert bytes(ut.out).endswith(b"\r\n\r\nab")
    proto.data_received(b"cd")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
    assert t.take().endswith(b"\r\n\r\n2")
    # A client gone in the pass its head was held: nothing is written on that connection.
    ut.take()
    proto.data_received(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.connection_lost(None)
    assert ut.take() == b"" and ut.closed and list(pool.idle) == []


def test_a_forwarded_head_request_has_no_body(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up = env.dialer.up
    # A response to HEAD carries a length and no body: the parser must not wait for one.
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n" + NOW + b"\r\n"
    assert list(pool.idle) == [up] and not t.closed


def test_expect_100_continue_is_answered_once_the_upstream_is_attached(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                        b"Content-Length: 2\r\n\r\n")
    assert t.out == b""
    env.settle()
    assert t.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    proto.data_received(b"hi")
    assert env.dialer.ut.take() == (b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                                    b"Content-Length: 2\r\n" + XFF + b"\r\nhi")
    env.dialer.up.data_received(b"HTTP/1.1 100 Continue\r\n\r\n"
                                b"HTTP/1.1 204 No Content\r\n\r\n")
    assert t.take() == b"HTTP/1.1 204 No Content\r\n" + NOW + b"\r\n"  # one 100, ours


# ---------------------------------------------------------------------------- upstream failures


def test_an_upstream_close_before_the_head_is_a_502(env: Env) -> None:
    proto, t, pool, handler = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    env.dialer.up.connection_lost(None)
    assert t.take() == go_error(b"502 Bad Gateway", b"EOF", close=False)
    assert not t.closed  # the request was whole: the client connection lives on
    assert list(pool.idle) == [] and handler.done == [502]


def test_an_upstream_reset_before_the_head_is_a_502_saying_so(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    env.dialer.up.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
    assert t.take() == go_error(
        b"502 Bad Gateway", b"read tcp 127.0.0.1:8080: read: connection reset by peer",
        close=False)


def test_an_upstream_close_mid_body_resets_the_client(env: Env) -> None:
    proto, t, pool, handler = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    env.dialer.up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    env.dialer.up.connection_lost(None)
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n" + NOW + b"\r\nhalf"
    # Aborted, not closed: a clean FIN would let a client take the short body for whole.
    assert t.log == ["abort"]
    assert list(pool.idle) == [] and handler.done == [200]


def test_an_upstream_close_mid_chunked_body_resets_the_client(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    env.dialer.up.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"4\r\nhalf\r\n")
    env.dialer.up.connection_lost(None)
    # No terminating 0-chunk: the client sees a truncated message.
    assert t.take() == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + NOW
                        + b"\r\n4\r\nhalf\r\n")
    assert t.log == ["abort"]


def test_a_close_delimited_response_ends_with_the_upstream_close(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up = env.dialer.up
    up.data_received(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
    up.data_received(b"it")
    up.connection_lost(None)
    # Neither length nor chunks upstream: the client (1.1) gets it chunked, properly ended.
    assert t.take() == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        b"Transfer-Encoding: chunked\r\n" + NOW
                        + b"\r\n7\r\nall of \r\n2\r\nit\r\n0\r\n\r\n")
    assert not t.closed and list(pool.idle) == []


def test_a_refused_dial_is_a_502(env: Env) -> None:
    env.dialer.refuse = True
    proto, t, pool, handler = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert t.take() == go_error(b"502 Bad Gateway",
                                b"dial tcp 127.0.0.1:8080: connect: connection refused",
                                close=False)
    assert handler.done == [502]


def test_a_malformed_upstream_response_is_a_502(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    env.dialer.up.data_received(b"NOT HTTP AT ALL\r\n\r\n")
    # Go's 502 frame; the text is the parser's own, so it differs with the backend.
    reason = {"httptools": b"Expected HTTP/, RTSP/ or ICE/",
              "h11": b"illegal status line: bytearray(b'NOT HTTP AT ALL')"}[env.backend]
    assert t.take() == go_error(b"502 Bad Gateway", reason, close=False)
    assert env.dialer.ut.log == ["close"] and list(pool.idle) == []  # never reused


def test_the_total_timeout_answers_504_from_a_loop_timer(env: Env) -> None:
    pool = env.pool()
    server = Server(None, loop=env.loop, backend=env.backend)
    env.servers.append(server)
    server.handler = Forward(pool, timeouts=server.timeouts(0.05))
    proto = server.protocol()
    t = FakeTransport(proto)
    proto.connection_made(t)
    proto.data_received(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    env.wait_output(t)  # the upstream never answers; the deadline's timer fires
    assert t.take() == (b"HTTP/1.1 504 Gateway Timeout\r\n"
                        b"Content-Type: text/plain; charset=utf-8\r\n" + NOW
                        + b"Content-Length: 15\r\n\r\nrequest timeout")
    assert env.dialer.ut.log == ["abort"]  # the upstream work is abandoned
    assert list(pool.idle) == [] and server.handler.done == [504]


# ---------------------------------------------------------------------------- backpressure


def test_a_full_client_transport_pauses_the_upstream_until_it_drains(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    t.set_write_buffer_limits(high=64)
    proto.data_received(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + b"a" * 100)
    assert t.writing_paused and ut.log == ["pause_reading"]
    t.drain()
    assert ut.log == ["pause_reading", "resume_reading"]
    up.data_received(b"b" * 100)
    assert t.take().endswith(b"\r\n\r\n" + b"a" * 100 + b"b" * 100)
    assert t.log == []  # the client's own reading was never touched


def test_a_full_upstream_transport_pauses_the_client_until_it_drains(env: Env) -> None:
    env.dialer.high = 64
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\n\r\n")
    env.settle()
    ut = env.dialer.ut
    proto.data_received(b"x" * 100)
    assert ut.writing_paused and t.log == ["pause_reading"]
    ut.drain()
    assert t.log == ["pause_reading", "resume_reading"]
    proto.data_received(b"y" * 200)
    assert ut.take().endswith(b"\r\n\r\n" + b"x" * 100 + b"y" * 200)


def test_a_request_body_held_before_forwarding_pauses_the_client(env: Env) -> None:
    handler = Hold()
    proto, t = env.client(handler)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n")
    proto.data_received(b"z" * 70000)  # over the 64 KiB the engine holds for a handler
    assert t.log == ["pause_reading"]
    pool = env.pool()
    ex = handler.held[0]
    ex.head_out = request_head(ex, DROP)
    ex.forward(pool)
    env.settle()
    ut = env.dialer.ut
    assert ut.take() == (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n"
                         + XFF + b"\r\n" + b"z" * 70000)
    # The held body went upstream (PAUSE_BODY lifted), but it fills the upstream transport
    # past its 64 KiB mark (PAUSE_UPSTREAM): the client waits for the upstream now.
    assert t.log == ["pause_reading", "resume_reading", "pause_reading"]
    ut.drain()
    assert t.log[-1] == "resume_reading" and t.reading


def test_a_client_paused_by_a_full_upstream_is_resumed_after_the_exchange(env: Env) -> None:
    env.dialer.high = 64
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
                        + b"x" * 100)
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    assert ut.writing_paused and t.log == ["pause_reading"]
    # The app answers before the kernel took all of the body (a 413, or any early answer).
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + NOW + b"\r\nok"
    ut.drain()
    assert t.reading, t.log  # the next request on this connection can be read


def test_an_upstream_paused_for_its_client_reads_again_once_idle(env: Env) -> None:
    # The client could take no more (here its transport's buffer; over HTTP/2, its window,
    # which H2Stream.response_body checks in the middle of a read) and the same read ended
    # the answer: the connection went back to the pool paused. Left so, the next request on
    # it would never see its answer, nor the pool a close while it idles.
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    t.writing_paused = True  # over its high-water mark
    proto.pause_writing()
    assert not ut.reading
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert list(pool.idle) == [up] and ut.reading, ut.log
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + NOW + b"\r\nok"
    t.drain()
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert proto.current is not None and proto.current.upstream is up and ut.reading


def test_an_upstream_attached_while_the_client_is_full_is_paused(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    t.set_write_buffer_limits(high=64)
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"a" * 100)
    assert t.take().endswith(b"a" * 100)  # written at the end of the pass
    assert t.writing_paused  # the last write of /1 filled the client's buffer
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert proto.current is not None and proto.current.upstream is up  # reused, attached
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"b" * 500)
    assert not ut.reading, ut.log


# ---------------------------------------------------------------- an app that answers twice


@pytest.mark.parametrize("stray", [
    b"HTTP/1.1 200 OK\r\nCon",  # a second response begun in the same read
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY",  # a whole one
    b"\r\nX",  # anything but the empty lines llhttp skips between messages
])
def test_bytes_past_the_response_retire_the_upstream_connection(env: Env, stray: bytes) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + stray)
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + NOW + b"\r\nok"
    assert ut.closed and not up.reusable()
    # The next request dials a new connection: the stray bytes never answer it.
    proto.data_received(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    assert env.dialer.dials == [UPSTREAM, UPSTREAM]


def test_interim_responses_are_not_stray(env: Env) -> None:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    up.data_received(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    out = t.take()
    assert out.startswith(b"HTTP/1.1 103 Early Hints\r\n") and out.endswith(b"\r\n\r\nok")
    assert not ut.closed and list(pool.idle) == [up]


def test_bytes_waiting_on_an_idle_connection_are_found_at_reuse(env: Env) -> None:
    # For a request whose body is still to come (written at once): the loop may not have read
    # them yet, so the check at reuse asks the socket itself, however short the time the
    # connection sat idle. A request held for the end of the pass is checked then (below).
    a, b = socket.socketpair()
    try:
        pool = env.pool()
        up = UpstreamProtocol(pool)
        transport = FakeTransport(up)
        transport.get_extra_info = (  # type: ignore[method-assign]
            lambda name, default=None: a if name == "socket" else default)
        up.connection_made(transport)
        pool.release(up, None)
        assert up.reusable()
        b.sendall(b"HTTP/1.1 200 OK\r\n")
        assert not up.reusable()  # at once: no grace after the release
        assert up.reusable(held=True)  # no syscall: the loop's read in this pass tells
    finally:
        a.close()
        b.close()


# ------------------------------------ a request held for the end of the pass, and its connection


def _one_answered(env: Env) -> tuple[Any, FakeTransport, UpstreamPool, Any, FakeTransport]:
    proto, t, pool, _ = env.forwarding()
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    env.settle()
    up, ut = env.dialer.up, env.dialer.ut
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert t.take().endswith(b"\r\nok") and list(pool.idle) == [up]
    ut.out.clear()
    return proto, t, pool, up, ut


@pytest.mark.parametrize("what", ["bytes", "eof", "reset", "lost"])
def test_a_held_request_whose_connection_speaks_or_closes_first_goes_on_another(
        env: Env, what: str) -> None:
    # The client's request and the app's bytes, FIN or reset on the idle connection it takes
    # reach the loop in the same pass, the request first: no byte of it goes to that
    # connection; it goes on a new one, and the client gets that one's answer.
    proto, t, pool, up, ut = _one_answered(env)
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert up.pending is not None  # taken, and held for the end of the pass
    if what == "bytes":
        up.data_received(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
    elif what == "eof":
        assert not up.eof_received()  # then the transport closes itself
        ut.close()
    elif what == "reset":
        ut.abort()  # the loop's read failed: the transport is closing, connection_lost to come
    else:
        up.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
    env.settle()
    assert bytes(ut.out) == b"" and not ut.late, ut.log
    assert len(env.dialer.protocols) == 2
    up2, ut2 = env.dialer.protocols[1], env.dialer.transports[1]
    assert bytes(ut2.out).startswith(b"GET /2 HTTP/1.1\r\n")
    up2.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew")
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n" + NOW + b"\r\nnew"


def test_a_held_request_goes_whole_to_the_next_connection(env: Env) -> None:
    # A chunked body, all of it in before the connection was taken: the held bytes are the
    # whole request, framed, and go on as they are (no second terminator).
    proto, t, pool, up, ut = _one_answered(env)
    waiting: list[Any] = []

    class Hold:  # as the activator's throttler holds a request until a slot frees
        def handle(self, ex: Any) -> None:
            ex.head_out = request_head(ex, DROP)
            waiting.append(ex)

    proto.server.handler = Hold()
    proto.data_received(b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"3\r\nabc\r\n0\r\n\r\n")
    waiting[0].forward(pool)  # a slot: all of the body is in
    assert up.pending is not None
    up.data_received(b"x")
    env.settle()
    ut2 = env.dialer.transports[1]
    sent = bytes(ut2.out)
    assert sent.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n") and sent.count(b"0\r\n\r\n") == 1
    assert bytes(ut.out) == b""


def test_a_held_request_whose_client_left_is_not_resent(env: Env) -> None:
    proto, t, pool, up, ut = _one_answered(env)
    proto.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.connection_lost(None)  # the client went in the same pass
    up.data_received(b"x")
    env.settle()
    assert len(env.dialer.protocols) == 1 and bytes(ut.out) == b""
