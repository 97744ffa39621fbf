"""Per-stream semantics over h2c through the queue-proxy and the activator: trailers,
trailers-only answers, resets in both directions, timeouts, Knative's headers, local answers,
drain with GOAWAY. The client is the ``h2`` library over a real socket."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from support import wait_for


class Answer:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = b""
        self.trailers: dict[bytes, bytes] = {}
        self.ended = False
        self.reset: int | None = None
        self.frames_of_head_with_end = False
        self.count_only = False  # big bodies: count the bytes, keep none
        self.received = 0

    @property
    def status(self) -> int:
        return int(self.headers.get(b":status", b"0"))

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """An HTTP/2 client (prior knowledge) on a real socket, driven synchronously."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.answers: dict[int, Answer] = {}
        self.goaway: ConnectionTerminated | None = None
        self.closed = False
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", headers: list | None = None,
                body: bytes | None = None, end: bool = True,
                authority: str = "example.com") -> int:
        sid = self.conn.get_next_available_stream_id()
        hs = [(":method", method), (":scheme", "http"), (":path", path),
              (":authority", authority), *(headers or [])]
        self.conn.send_headers(sid, [(n.encode(), v.encode()) for n, v in hs],
                               end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        self.answers[sid] = Answer()
        self._flush()
        return sid

    def reset(self, sid: int) -> None:
        self.conn.reset_stream(sid, ErrorCodes.CANCEL)
        self._flush()

    def pump(self, until: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return
            assert time.monotonic() < deadline, "no answer in time"
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.closed = True
                return
            for ev in self.conn.receive_data(data):
                a = self.answers.get(getattr(ev, "stream_id", 0))
                if isinstance(ev, ResponseReceived) and a is not None:
                    a.headers = dict(ev.headers)
                    a.frames_of_head_with_end = ev.stream_ended is not None
                elif isinstance(ev, DataReceived) and a is not None:
                    a.received += len(ev.data)
                    if not a.count_only:
                        a.body += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                        ev.stream_id)
                elif isinstance(ev, TrailersReceived) and a is not None:
                    a.trailers = dict(ev.headers)
                elif isinstance(ev, StreamEnded) and a is not None:
                    a.ended = True
                elif isinstance(ev, StreamReset) and a is not None:
                    a.reset = ev.error_code
                elif isinstance(ev, ConnectionTerminated):
                    self.goaway = ev
            self._flush()

    def answer(self, sid: int, timeout: float = 10.0) -> Answer:
        a = self.answers[sid]
        self.pump(lambda: a.ended or a.reset is not None, timeout)
        return a

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def make(h2app: Any, proxy_loop: Any, backend: str) -> Any:
    from h2_app import start_front

    made: list[Any] = []
    clients: list[Client] = []

    def make_front(kind: str, **kw: Any) -> tuple[Any, Client]:
        f = start_front(kind, proxy_loop, h2app.port, backend, **kw)
        made.append(f)
        c = Client(f.port)
        clients.append(c)
        return f, c

    yield make_front
    for c in clients:
        c.close()
    for f in made:
        f.close()


KINDS = ["queue-proxy", "activator"]


def route(front: Any) -> list[tuple[str, str]]:
    return list(front.metadata)


@pytest.mark.parametrize("kind", KINDS)
def test_trailers_reach_the_client(make: Any, kind: str) -> None:
    f, c = make(kind)
    a = c.answer(c.request("/trailers", headers=route(f)))
    assert a.status == 200 and a.json()["http2"] is True
    assert a.trailers == {b"grpc-status": b"0", b"x-trailer": b"yes"}


@pytest.mark.parametrize("kind", KINDS)
def test_trailers_only_stays_one_headers_frame(make: Any, kind: str) -> None:
    f, c = make(kind)
    a = c.answer(c.request("/trailers-only", headers=route(f)))
    assert a.frames_of_head_with_end  # HEADERS with END_STREAM: gRPC's trailers-only
    assert a.headers[b"grpc-status"] == b"5" and a.headers[b"grpc-message"] == b"not here"
    assert a.body == b""


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_reset_before_the_answer_is_a_502(make: Any, kind: str) -> None:
    f, c = make(kind)
    a = c.answer(c.request("/reset", headers=route(f)))
    assert a.status == 502
    assert b"INTERNAL_ERROR" in a.body


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_reset_after_the_head_resets_the_client_stream(make: Any,
                                                                   kind: str) -> None:
    f, c = make(kind)
    a = c.answer(c.request("/reset-after", headers=route(f)))
    assert a.status == 200
    assert a.reset == ErrorCodes.CANCEL  # the app's code, passed on
    assert not a.ended


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_cancel_reaches_the_app(make: Any, h2app: Any, kind: str) -> None:
    f, c = make(kind)
    sid = c.request("/hold", headers=route(f))
    wait_for(lambda: any(r["path"] == "/hold" for r in h2app.requests))
    c.reset(sid)
    wait_for(lambda: h2app.cancelled >= 1)
    # The connection goes on.
    assert c.answer(c.request("/after", headers=route(f))).status == 200


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_before_the_answer_is_knatives_504(make: Any, kind: str) -> None:
    f, c = make(kind, timeout=1.0)
    a = c.answer(c.request("/hold", headers=route(f)))
    assert a.status == 504
    body = b"activator request timeout\n" if kind == "activator" else b"request timeout\n"
    assert a.body in (b"request timeout", b"activator request timeout", body)


@pytest.mark.parametrize("kind", KINDS)
def test_many_streams_on_one_connection(make: Any, kind: str) -> None:
    f, c = make(kind)
    sids = [c.request(f"/s{i}", headers=route(f)) for i in range(40)]
    for i, sid in enumerate(sids):
        a = c.answer(sid)
        assert a.status == 200 and a.json()["path"] == f"/s{i}"


@pytest.mark.parametrize("kind", KINDS)
def test_upload_is_relayed_whole(make: Any, kind: str) -> None:
    f, c = make(kind)
    body = bytes(range(256)) * 8192  # 2 MiB: more than the windows
    sid = c.request("/sink", "POST", headers=route(f), body=None, end=False)
    view = memoryview(body)
    while view:
        window = c.conn.local_flow_control_window(sid)
        if window == 0:
            c.pump(lambda: c.conn.local_flow_control_window(sid) > 0)
            continue
        n = min(window, c.conn.max_outbound_frame_size, len(view))
        c.conn.send_data(sid, bytes(view[:n]))
        view = view[n:]
        c._flush()
    c.conn.end_stream(sid)
    c._flush()
    a = c.answer(sid)
    assert a.json()["body_len"] == len(body)


def test_queue_proxy_headers_over_http2(make: Any, h2app: Any) -> None:
    f, c = make("queue-proxy")
    a = c.answer(c.request("/h", headers=[("k-original-host", "public.example.com"),
                                          ("x-forwarded-for", "10.0.0.1"),
                                          ("x-forwarded-proto", "https")]))
    seen = a.json()
    assert seen["authority"] == "public.example.com"
    hs = dict((n, v) for n, v in seen["headers"])
    assert "k-original-host" not in hs
    assert hs["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert hs["forwarded"] == "for=10.0.0.1;proto=https"


def test_activator_marks_the_request_and_keeps_the_host(make: Any, h2app: Any) -> None:
    f, c = make("activator")
    a = c.answer(c.request("/h", headers=route(f), authority="hello.example.com"))
    seen = a.json()
    hs = dict((n, v) for n, v in seen["headers"])
    assert hs.get("k-proxy-request") == "activator" or "k-proxy-request" not in hs
    assert seen["authority"] == "hello.example.com"


def test_probes_are_answered_over_http2(make: Any, h2app: Any) -> None:
    f, c = make("queue-proxy")
    a = c.answer(c.request("/", headers=[("user-agent", "kube-probe/1.30"),
                                         ("k-network-probe", "queue")]))
    assert a.status == 200 and a.body == b"queue"
    a = c.answer(c.request("/", headers=[("k-network-probe", "probe"),
                                         ("k-network-hash", "abc")]))
    assert a.status == 200 and a.headers[b"k-network-hash"] == b"abc"
    assert h2app.requests == []


def test_stats_count_streams(make: Any, h2app: Any) -> None:
    f, c = make("queue-proxy", cc=0)
    stats = f.qp.stats
    sids = [c.request("/hold") for _ in range(3)]
    wait_for(lambda: f.loop.call(lambda: stats.concurrency) == 3)
    for sid in sids:
        c.reset(sid)
    wait_for(lambda: f.loop.call(lambda: stats.concurrency) == 0)


def test_drain_sends_goaway_and_in_flight_streams_finish(make: Any, h2app: Any) -> None:
    from test_h2_protection import DATA, GOAWAY, HEADERS, Raw

    f, c = make("queue-proxy")
    raw = Raw(f.port)
    try:
        raw.send(raw.headers(1, "/hold"), raw.headers(3, "/big?n=30000"))
        assert raw.read_until(lambda fs: any(k == HEADERS and s == 3 for k, _f, s, _ in fs))
        f.loop.call(lambda: f.loop.loop.create_task(f.qp.server.shutdown()))
        # GOAWAY NO_ERROR names the last stream taken; stream 3 still ends whole.
        assert raw.read_until(lambda fs: any(k == GOAWAY for k, *_ in fs))
        assert raw.goaway() == 0
        last = [int.from_bytes(p[:4], "big") for k, _f, _s, p in raw.frames if k == GOAWAY]
        assert last == [3]
        raw.read_until(lambda fs: any(k == DATA and fl & 1 and s == 3 for k, fl, s, _ in fs))
        body = b"".join(p for k, _f, s, p in raw.frames if k == DATA and s == 3)
        assert len(body) == 30000
        # A new stream after the GOAWAY is refused (REFUSED_STREAM): the client may retry it.
        raw.send(raw.headers(5, "/late"))
        assert raw.read_until(lambda fs: any(k == 3 and s == 5 for k, _f, s, _ in fs))
        assert all(r["path"] != "/late" for r in h2app.requests)
    finally:
        raw.close()
