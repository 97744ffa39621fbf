"""The engine's protocols without sockets, as uvicorn tests its own: a ``ServerProtocol`` and an
``UpstreamProtocol`` on fake transports, exact bytes in and out.

The seams: ``Server.protocol()`` makes the client side (what ``create_server`` would call), and
an ``UpstreamProtocol`` on a fake transport is put in its ``UpstreamPool``'s idle list, which
``pool.acquire`` takes before dialling. A real event loop runs (the engine arms timers on it),
but no socket is opened. Both parser backends, in both builds (compiled and pure).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest

from proxy.engine import Server, UpstreamPool
from proxy.engine.upstream import UpstreamProtocol
from proxy.headers import drop_set, request_head

_DATE = re.compile(rb"Date: [^\r]+\r\n")
DROP = drop_set()


class FakeTransport:
    """What the engine calls on a transport, recorded."""

    def __init__(self, peer: tuple[str, int] = ("10.0.0.9", 4711)) -> None:
        self.out = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.peer = peer

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.out += data

    def writelines(self, lines: list[bytes]) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def take(self) -> bytes:
        """What was written since the last take, with the Date header's value masked."""
        data = _DATE.sub(b"Date: *\r\n", bytes(self.out))
        self.out.clear()
        return data


class Answer:
    """Answers every request itself: 200 with ``method target`` as the body."""

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bytes]] = []

    def handle(self, ex: Any) -> None:
        self.seen.append((ex.method, ex.target))
        ex.respond(200, ex.method + b" " + ex.target, b"Content-Type: text/plain\r\n")


class Forward:
    """Forwards every request through ``pool`` with the real head rewriter."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    def handle(self, ex: Any) -> None:
        ex.head_out = request_head(ex, DROP)
        ex.forward(self.pool)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(params=["httptools", "h11"])
def backend(request: pytest.FixtureRequest) -> str:
    from proxy.engine.parsers import BACKENDS

    if request.param not in BACKENDS:
        pytest.skip(f"{request.param} is not installed")
    return str(request.param)


def client(loop: asyncio.AbstractEventLoop, backend: str, handler: Any,
           max_head: int = 64 * 1024) -> tuple[Any, FakeTransport]:
    server = Server(handler, loop=loop, backend=backend, max_head=max_head)
    proto = server.protocol()
    transport = FakeTransport()
    proto.connection_made(transport)
    return proto, transport


def upstream(loop: asyncio.AbstractEventLoop, backend: str) -> tuple[UpstreamPool, Any,
                                                                     FakeTransport]:
    pool = UpstreamPool(loop, "127.0.0.1", 8080, backend=backend)
    up = UpstreamProtocol(pool)
    transport = FakeTransport(("127.0.0.1", 8080))
    up.connection_made(transport)
    pool.release(up)  # idle: the next acquire takes it
    return pool, up, transport


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: *\r\n"
            b"Content-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


# ---------------------------------------------------------------------------- answered locally


def test_a_get_is_answered_with_exact_bytes(loop: Any, backend: str) -> None:
    proto, t = client(loop, backend, Answer())
    proto.data_received(b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.take() == ok(b"GET /hello?x=1")
    assert not t.closed


def test_pipelined_requests_are_answered_in_order(loop: Any, backend: str) -> None:
    handler = Answer()
    proto, t = client(loop, backend, handler)
    proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"HEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    head2 = ok(b"HEAD /2")[:-len(b"HEAD /2")]  # a HEAD answer has the length, not the body
    assert t.take() == ok(b"GET /1") + head2 + ok(b"GET /3")
    assert handler.seen == [(b"GET", b"/1"), (b"HEAD", b"/2"), (b"GET", b"/3")]
    assert t.reading  # the pipeline drained: reading resumed


def test_a_request_split_byte_by_byte(loop: Any, backend: str) -> None:
    proto, t = client(loop, backend, Answer())
    for byte in b"GET /slow HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n":
        assert t.take() == b""
        proto.data_received(bytes([byte]))
    assert t.take() == ok(b"GET /slow")


def test_a_malformed_request_line_gets_400_and_the_connection_closes(loop: Any,
                                                                     backend: str) -> None:
    handler = Answer()
    proto, t = client(loop, backend, handler)
    proto.data_received(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n")
    out = t.take()
    assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), out
    assert b"Connection: close\r\n" in out
    assert t.closed
    assert handler.seen == []  # never reached the handler


def test_an_oversized_head_gets_431(loop: Any, backend: str) -> None:
    handler = Answer()
    proto, t = client(loop, backend, handler, max_head=1024)
    proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 2048 + b"\r\n\r\n")
    out = t.take()
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), out
    assert t.closed and handler.seen == []


def test_connection_close_closes_after_the_answer(loop: Any, backend: str) -> None:
    proto, t = client(loop, backend, Answer())
    proto.data_received(b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                        b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n")
    assert t.take() == ok(b"GET /bye", b"Connection: close\r\n")
    assert t.closed


def test_http10_keep_alive_is_answered_as_asked(loop: Any, backend: str) -> None:
    proto, t = client(loop, backend, Answer())
    proto.data_received(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    expected = ok(b"GET /old", b"Connection: keep-alive\r\n").replace(b"HTTP/1.1", b"HTTP/1.0")
    assert t.take() == expected
    assert not t.closed
    proto.data_received(b"GET /last HTTP/1.0\r\n\r\n")  # no keep-alive: the last one
    assert t.take() == ok(b"GET /last", b"Connection: close\r\n").replace(b"HTTP/1.1",
                                                                         b"HTTP/1.0")
    assert t.closed


# ---------------------------------------------------------------------------- forwarded


def test_a_chunked_request_body_goes_upstream_rechunked(loop: Any, backend: str) -> None:
    pool, up, ut = upstream(loop, backend)
    proto, t = client(loop, backend, Forward(pool))
    proto.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n")
    proto.data_received(b"6\r\n world\r\n0\r\n\r\n")
    # Transfer-Encoding is hop-by-hop: the engine frames the body itself, after the headers.
    assert ut.take() == (b"POST /up HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.9\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    up.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    assert t.take() == b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nDate: *\r\n\r\nok"
    assert pool.idle == [up]  # the answer ended: the connection is back in the pool


def test_a_chunked_upstream_answer_is_relayed_chunked(loop: Any, backend: str) -> None:
    pool, up, ut = upstream(loop, backend)
    proto, t = client(loop, backend, Forward(pool))
    proto.data_received(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
    assert ut.take() == b"GET /stream HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.9\r\n\r\n"
    up.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: keep-alive\r\n\r\n3\r\nabc\r\n")
    up.data_received(b"2\r\nde\r\n0\r\n\r\n")
    assert t.take() == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: *\r\n\r\n"
                        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert not t.closed and pool.idle == [up]


def test_an_upstream_close_before_the_head_is_a_502(loop: Any, backend: str) -> None:
    pool, up, ut = upstream(loop, backend)
    proto, t = client(loop, backend, Forward(pool))
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    up.connection_lost(None)
    out = t.take()
    assert out.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), out
    assert out.endswith(b"\r\n\r\nEOF\n")
    assert pool.idle == []


def test_an_upstream_close_mid_body_cuts_the_client(loop: Any, backend: str) -> None:
    pool, up, ut = upstream(loop, backend)
    proto, t = client(loop, backend, Forward(pool))
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
    up.connection_lost(None)
    assert t.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nDate: *\r\n\r\nhalf"
    assert t.closed  # the client knows the body is short: the connection is cut


def test_stray_bytes_on_an_idle_upstream_connection_retire_it(loop: Any,
                                                              backend: str) -> None:
    pool, up, ut = upstream(loop, backend)
    up.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # nobody asked
    assert ut.closed
    assert not up.reusable(loop.time() + 1)


def test_a_full_client_transport_pauses_the_upstream(loop: Any, backend: str) -> None:
    pool, up, ut = upstream(loop, backend)
    proto, t = client(loop, backend, Forward(pool))
    proto.data_received(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
    proto.pause_writing()  # the client's transport buffer is over its high-water mark
    assert not ut.reading
    proto.resume_writing()
    assert ut.reading
