"""Test helpers for HTTP/2: an app that speaks h2c (and HTTP/1.1) and answers what it saw, and
the fronts (a queue-proxy, or an activator in front of one) started on the proxy loop.

The app (``H2App``) is built on the ``h2`` library, the reference our engine is checked against.
Every request gets a JSON answer: method, path, headers, body length, whether it came over
HTTP/2. Paths with a meaning:

- ``/trailers``: the answer ends with trailers (``grpc-status: 0``, ``x-trailer: yes``);
- ``/trailers-only``: one HEADERS frame with END_STREAM and no body (gRPC's trailers-only);
- ``/reset``: RST_STREAM (INTERNAL_ERROR) instead of an answer;
- ``/reset-after``: the head and 5 bytes of body, then RST_STREAM (CANCEL);
- ``/hold``: no answer (``H2App.cancelled`` counts the streams the client side reset);
- ``/big?n=N``: N bytes of body, sent as the client's windows allow;
- ``/sink``: reads the request body (acknowledging it), answers its length and sha256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from support import LoopThread, wait_for

from proxy.config import Config
from proxy.engine.h2 import PREFACE

NS, REV = "default", "h2-00001"
ROUTE = (("knative-serving-namespace", NS), ("knative-serving-revision", REV))


class _H2Conn(asyncio.Protocol):
    def __init__(self, app: H2App, first: bytes, transport: Any) -> None:
        self.app = app
        self.transport = transport
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.conn.initiate_connection()
        self.streams: dict[int, dict[str, Any]] = {}
        self.sending: dict[int, bytes] = {}
        self.transport.write(self.conn.data_to_send())
        self.data_received(first)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except ProtocolError:
            self.transport.write(self.conn.data_to_send())
            self.transport.close()
            return
        for ev in events:
            if isinstance(ev, RequestReceived):
                hs = dict(ev.headers)
                self.streams[ev.stream_id] = {
                    "method": hs[b":method"].decode(),
                    "path": hs[b":path"].decode(),
                    "authority": hs.get(b":authority", b"").decode(),
                    "headers": [[n.decode(), v.decode()] for n, v in ev.headers
                                if not n.startswith(b":")],
                    "body_len": 0,
                    "sha": hashlib.sha256(),
                }
                self.app.requests.append(self.streams[ev.stream_id])
                path = hs[b":path"]
                if path == b"/reset":
                    self.conn.reset_stream(ev.stream_id, ErrorCodes.INTERNAL_ERROR)
                elif path == b"/reset-after":
                    self.conn.send_headers(ev.stream_id, [(b":status", b"200")])
                    self.conn.send_data(ev.stream_id, b"hello")
                    self.conn.reset_stream(ev.stream_id, ErrorCodes.CANCEL)
            elif isinstance(ev, DataReceived):
                s = self.streams.get(ev.stream_id)
                if s is not None:
                    s["body_len"] += len(ev.data)
                    s["sha"].update(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                self._answer(ev.stream_id)
            elif isinstance(ev, StreamReset):
                self.app.cancelled += 1
                self.sending.pop(ev.stream_id, None)
            elif isinstance(ev, WindowUpdated):
                for sid in list(self.sending):
                    self._send(sid)
            elif isinstance(ev, ConnectionTerminated):
                self.transport.close()
        self.transport.write(self.conn.data_to_send())

    def _answer(self, sid: int) -> None:
        s = self.streams.get(sid)
        if s is None:
            return
        path = s["path"]
        if path in ("/reset", "/reset-after", "/hold"):
            return
        if path == "/trailers-only":
            self.conn.send_headers(sid, [(b":status", b"200"), (b"content-type",
                                   b"application/grpc"), (b"grpc-status", b"5"),
                                   (b"grpc-message", b"not here")], end_stream=True)
            return
        if path.startswith("/big"):
            n = int(parse_qs(urlsplit(path).query)["n"][0])
            self.conn.send_headers(sid, [(b":status", b"200"),
                                         (b"content-length", b"%d" % n)])
            self.sending[sid] = _Zeros(n)
            self._send(sid)
            return
        doc = {k: v for k, v in s.items() if k != "sha"}
        doc["http2"] = True
        doc["sha256"] = s["sha"].hexdigest()
        body = json.dumps(doc).encode()
        trailers = path == "/trailers"
        self.conn.send_headers(sid, [(b":status", b"200"), (b"content-type",
                               b"application/json")])
        self.sending[sid] = body
        self._send(sid, [(b"grpc-status", b"0"), (b"x-trailer", b"yes")] if trailers else None)

    def _send(self, sid: int, trailers: Any = None) -> None:
        data = self.sending.get(sid)
        if data is None:
            return
        try:
            while data:
                window = self.conn.local_flow_control_window(sid)
                if window <= 0:
                    self.sending[sid] = data
                    return
                n = min(window, self.conn.max_outbound_frame_size, len(data))
                self.conn.send_data(sid, data[:n])
                data = data[n:]
            del self.sending[sid]
            if trailers:
                self.conn.send_headers(sid, trailers, end_stream=True)
            else:
                self.conn.end_stream(sid)
        except StreamClosedError:
            self.sending.pop(sid, None)


class _Zeros:
    """``n`` zero bytes to send, made a frame at a time (a 1 GiB body is never held)."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.block = b"\0" * 16384

    def __len__(self) -> int:
        return self.left

    def __getitem__(self, part: slice) -> Any:
        stop = part.stop
        if stop is None:  # data[n:]: what is left after n
            self.left -= part.start
            return self
        return self.block[:stop] if stop <= len(self.block) else b"\0" * stop


class _Sniff(asyncio.Protocol):
    """HTTP/2 if the first bytes are the preface, else HTTP/1.1 (h11)."""

    def __init__(self, app: H2App) -> None:
        self.app = app
        self.h2: _H2Conn | None = None
        self.h11: h11.Connection | None = None
        self.transport: Any = None
        self.buf = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.h2 is not None:
            self.h2.data_received(data)
            return
        if self.h11 is None:
            self.buf += data
            if len(self.buf) < len(PREFACE) and PREFACE.startswith(self.buf):
                return
            data, self.buf = self.buf, b""
            if data.startswith(PREFACE):
                self.h2 = _H2Conn(self.app, data, self.transport)
                return
            self.h11 = h11.Connection(h11.SERVER)
        self.h11.receive_data(data)
        self._h11_events()

    def _h11_events(self) -> None:
        c = self.h11
        assert c is not None
        req: Any = None
        size = 0
        while True:
            ev = c.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                break
            if isinstance(ev, h11.Request):
                req = ev
                self.app.requests.append({"method": ev.method.decode(), "http2": False})
            elif isinstance(ev, h11.Data):
                size += len(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                body = json.dumps({"http2": False, "body_len": size}).encode()
                self.transport.write(c.send(h11.Response(status_code=200, headers=[
                    ("content-length", str(len(body))), ("content-type", "application/json")])))
                self.transport.write(c.send(h11.Data(data=body)))
                self.transport.write(c.send(h11.EndOfMessage()))
                c.start_next_cycle()
        del req

    def connection_lost(self, exc: Exception | None) -> None:
        pass


class H2App:
    def __init__(self, loop: LoopThread) -> None:
        self.loop = loop
        self.requests: list[dict[str, Any]] = []
        self.cancelled = 0

        async def start() -> Any:
            return await asyncio.get_running_loop().create_server(
                lambda: _Sniff(self), "127.0.0.1", 0)

        self.server = loop.run(start())
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.loop.call(self.server.close)


class Front:
    """A queue-proxy (``kind`` "queue-proxy") or an activator in front of one ("activator"),
    in front of the app on ``app_port``."""

    def __init__(self, kind: str, loop: LoopThread, port: int, qp: Any, act: Any) -> None:
        self.kind = kind
        self.loop = loop
        self.port = port
        self.qp = qp
        self.act = act
        self.metadata: tuple = ROUTE if act is not None else ()

    def curl_headers(self) -> list[str]:
        out = []
        for n, v in self.metadata:
            out += ["-H", f"{n}: {v}"]
        return out

    def close(self) -> None:
        if self.act is not None:
            self.loop.call(self.act.close)
        self.loop.call(self.qp.close)


def start_front(kind: str, loop: LoopThread, app_port: int, backend: str, cc: int = 0,
                timeout: float = 30.0, **config: Any) -> Front:
    from proxy.app import QueueProxy

    cfg = Config(bind_host="127.0.0.1", serving_port=0, admin_port=0, metrics_port=0,
                 prometheus_port=0, user_port=app_port, revision_timeout=timeout,
                 drain_quiet_period=0.5, pod="h2-pod", container_concurrency=cc, **config)

    async def build_qp() -> Any:
        qp = QueueProxy(cfg, backend=backend)
        await qp.start()
        return qp

    qp = loop.run(build_qp())
    if kind == "queue-proxy":
        return Front(kind, loop, qp.ports["main"], qp, None)
    from activator.activator.app import Activator

    async def build_act() -> Any:
        act = Activator(backend=backend, drain_timeout=0)
        await act.start("127.0.0.1", 0, None, None)
        act.set_revision(NS, REV, timeout_seconds=int(timeout), container_concurrency=cc)
        act.set_endpoints(NS, REV, ready=[f"127.0.0.1:{qp.ports['main']}"])
        return act

    act = loop.run(build_act())
    rev = loop.call(lambda: act.revision(NS, REV))
    wait_for(lambda: loop.call(lambda: rev.healthy))
    return Front(kind, loop, act.ports["main"], qp, act)
