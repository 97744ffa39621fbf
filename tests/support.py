"""Test support: loops in threads, a scriptable upstream app, and a raw HTTP/1.1 client.

Everything talks over real sockets on 127.0.0.1 with ephemeral ports. Waits are bounded and
wait on conditions (``wait_for``), never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PURE = bool(os.environ.get("DATAPLANE_NO_EXTENSIONS"))


def new_loop() -> asyncio.AbstractEventLoop:
    if not PURE:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


class LoopThread:
    """An event loop running in a daemon thread; ``run(coro)`` waits for a result."""

    def __init__(self, uv: bool = True) -> None:
        self.loop = new_loop() if uv else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper(), timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


def wait_for(cond: Callable[[], Any], timeout: float = 5.0, interval: float = 0.005) -> Any:
    """Polls ``cond`` until it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing is bound to, for a process to listen on later: taken below the kernel's
    ephemeral range, so that the connections made meanwhile (whose local ports the kernel picks
    from that range) cannot take it first. Checked on 0.0.0.0, where the queue-proxy binds."""
    top = min(_ephemeral_low(), 32768)
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, top)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


# ---------------------------------------------------------------------------- the upstream app


class Request:
    def __init__(self, method: str, target: str, version: str, headers: list) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # list of (name, value) str, as received
        self.body = b""
        self.trailers: list = []
        self.complete = False  # its whole body was read (routes that read one)
        path, _, query = target.partition("?")
        self.path = path
        self.query = dict(urllib.parse.parse_qsl(query))

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]


class App:
    """A scriptable HTTP/1.1 upstream with keep-alive, for the proxy to stand in front of.

    Routes (by path): ``/`` and ``/echo`` answer JSON describing the request; ``/sleep?ms=``;
    ``/stream?n=&ms=`` (chunked, one chunk every ms); ``/sse``; ``/download?size=`` (length
    known, or ``&chunked=1``); ``/upload`` (counts and hashes the body as it streams);
    ``/trailers``; ``/status?code=``; ``/ws`` (101, then echoes raw bytes); ``/raw/...``
    scripted broken responses; ``/close-after`` (answers, then closes the idle connection).
    ``hook`` may be set to a coroutine function ``(req, writer) -> bool`` that takes over.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.connections = 0
        self.open_connections = 0
        self.active = 0
        self.max_active = 0
        self.port = 0
        self.server: asyncio.AbstractServer | None = None
        self.hook: Any = None
        self.probe_hook: Any = None  # like hook, asked first (an activator's readiness probe)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0, limit=2**20)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ", 2)
                if len(parts) != 3:  # not HTTP/1.x (an HTTP/2 client's frames, say)
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                    return
                method, target, version = parts
                headers = []
                for line in lines[1:]:
                    if line:
                        n, _, v = line.partition(":")
                        headers.append((n, v.strip()))
                req = Request(method, target, version, headers)
                self.requests.append(req)
                keep = await self._serve(req, reader, writer)
                if not keep:
                    return
        finally:
            self.open_connections -= 1
            try:
                writer.close()
            except Exception:
                pass

    async def _read_body(self, req: Request, reader: asyncio.StreamReader,
                         sink: Callable[[bytes], None] | None = None) -> None:
        te = (req.header("transfer-encoding") or "").lower()
        chunks = []

        def take(data: bytes) -> None:
            if sink is not None:
                sink(data)
            else:
                chunks.append(data)

        if "chunked" in te:
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        line = await reader.readuntil(b"\r\n")
                        if line == b"\r\n":
                            break
                        n, _, v = line.decode("latin-1").partition(":")
                        req.trailers.append((n, v.strip()))
                    break
                remaining = size
                while remaining:
                    data = await reader.read(min(remaining, 2**20))
                    if not data:
                        raise ConnectionError("eof in chunk")
                    take(data)
                    remaining -= len(data)
                await reader.readexactly(2)
        else:
            length = int(req.header("content-length") or 0)
            while length:
                data = await reader.read(min(length, 2**20))
                if not data:
                    raise ConnectionError("eof in body")
                take(data)
                length -= len(data)
        req.body = b"".join(chunks)
        req.complete = True

    async def _serve(self, req: Request, reader: asyncio.StreamReader,
                     w: asyncio.StreamWriter) -> bool:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._route(req, reader, w)
        finally:
            self.active -= 1

    async def _route(self, req: Request, reader: asyncio.StreamReader,
                     w: asyncio.StreamWriter) -> bool:
        path, q = req.path, req.query
        if self.probe_hook is not None:
            handled = await self.probe_hook(req, reader, w)
            if handled is not None:
                return handled
        if self.hook is not None:
            handled = await self.hook(req, reader, w)
            if handled is not None:
                return handled
        if path == "/upload":
            h = hashlib.sha256()
            count = 0

            def sink(data: bytes) -> None:
                nonlocal count
                count += len(data)
                h.update(data)

            await self._read_body(req, reader, sink)
            body = json.dumps({"bytes": count, "sha256": h.hexdigest()}).encode()
            await send(w, 200, body, [("Content-Type", "application/json")])
            return True
        if path == "/ws":
            if (req.header("upgrade") or "").lower() != "websocket":
                await send(w, 400, b"not an upgrade\n")
                return True
            w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n")
            while True:
                data = await reader.read(65536)
                if not data:
                    return False
                w.write(data)
                await w.drain()
        await self._read_body(req, reader)
        if path in ("/", "/echo"):
            body = json.dumps(
                {
                    "method": req.method,
                    "target": req.target,
                    "version": req.version,
                    "headers": req.headers,
                    "body": req.body.decode("latin-1"),
                    "trailers": req.trailers,
                }
            ).encode()
            await send(w, 200, body, [("Content-Type", "application/json")])
        elif path == "/sleep":
            await asyncio.sleep(int(q.get("ms", "100")) / 1000)
            await send(w, 200, b"slept")
        elif path == "/stream":
            n, ms = int(q.get("n", "3")), int(q.get("ms", "50"))
            ctype = q.get("type", "text/plain")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype.encode() +
                    b"\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(n):
                piece = f"chunk{i}\n".encode()
                w.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await w.drain()
                await asyncio.sleep(ms / 1000)
            w.write(b"0\r\n\r\n")
        elif path == "/download":
            size = int(q.get("size", "1024"))
            chunked = q.get("chunked") == "1"
            block = b"x" * 65536
            if chunked:
                w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            else:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            left = size
            while left:
                piece = block[: min(left, len(block))]
                w.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                left -= len(piece)
                await w.drain()
            if chunked:
                w.write(b"0\r\n\r\n")
        elif path == "/trailers":
            w.write(b"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n")
        elif path == "/bighead":  # an answer whose head carries X-Big of ``kib`` KiB
            big = b"b" * (int(q.get("kib", "1")) * 1024)
            w.write(b"HTTP/1.1 200 OK\r\nX-Big: " + big + b"\r\nContent-Length: 2\r\n\r\nok")
        elif path == "/status":
            code = int(q.get("code", "200"))
            await send(w, code, b"" if code in (204, 304) else b"status body")
        elif path == "/close-after":
            await send(w, 200, b"bye")
            await w.drain()
            await asyncio.sleep(int(q.get("ms", "20")) / 1000)
            return False
        elif path.startswith("/raw/"):
            kind = path[5:]
            if kind == "garbage":
                w.write(b"THIS IS NOT HTTP\r\n\r\n")
            elif kind == "mid-close":
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            elif kind == "chunked-mid-close":
                w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            elif kind == "close-delimited":
                w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
            elif kind == "no-response":
                pass
            await w.drain()
            return False
        else:
            await send(w, 404, b"no route\n")
        await w.drain()
        return True


async def send(w: asyncio.StreamWriter, status: int, body: bytes = b"",
               headers: list | None = None) -> None:
    head = [f"HTTP/1.1 {status} X\r\n".encode()]
    for n, v in headers or []:
        head.append(f"{n}: {v}\r\n".encode())
    if status not in (204, 304):
        head.append(b"Content-Length: %d\r\n" % len(body))
    w.write(b"".join(head) + b"\r\n" + body)
    await w.drain()


class Gate:
    """App routes for holding requests.

    ``/gate``: held until ``open()``, then 200 ``gated``.
    ``/hold``: never answered; counts in ``dropped`` when the proxy closes the app connection.
    """

    def __init__(self, app: App, app_loop: LoopThread) -> None:
        self.app_loop = app_loop
        self.event = asyncio.Event()
        self.dropped = 0
        self.held = 0

        async def hook(req: Any, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
            if req.path == "/gate":
                self.held += 1
                await self.event.wait()
                await send(w, 200, b"gated")
                return True
            if req.path == "/hold":
                try:
                    await reader.read(1)  # only EOF (or a reset) ends this
                except ConnectionError:
                    pass
                self.dropped += 1
                return False
            return None

        app.hook = hook

    def open(self) -> None:
        self.app_loop.loop.call_soon_threadsafe(self.event.set)


# ---------------------------------------------------------------------------- the client


class Response:
    def __init__(self, version: str, status: int, headers: list, body: bytes,
                 trailers: list, raw_head: bytes) -> None:
        self.version = version
        self.status = status
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.raw_head = raw_head
        self.cut = False  # a chunked body that ended without its terminating chunk

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class Client:
    """A raw HTTP/1.1 client on one socket: send exact bytes, read responses one by one."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("connection closed")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed mid-body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head_request: bool = False, interim: bool = False,
                      allow_cut: bool = False) -> Response:
        """Reads one response; 1xx responses are skipped unless ``interim``. A chunked body
        that the server ends by closing, without the terminating chunk, raises EOFError, or
        with ``allow_cut`` comes back with what arrived and ``cut`` set."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill():
                    raise EOFError("connection closed before a response")
            raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = raw_head.decode("latin-1").split("\r\n")
            version, status_s = lines[0].split(" ", 2)[:2]
            status = int(status_s)
            headers = []
            for line in lines[1:]:
                n, _, v = line.partition(":")
                headers.append((n, v.strip()))
            if 100 <= status < 200 and status != 101 and not interim:
                continue
            break
        resp = Response(version, status, headers, b"", [], raw_head)
        if head_request or status in (204, 304) or 100 <= status < 200:
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            parts = []
            try:
                while True:
                    size = int(self._line().split(b";")[0], 16)
                    if size == 0:
                        while True:
                            line = self._line()
                            if not line:
                                break
                            n, _, v = line.decode("latin-1").partition(":")
                            resp.trailers.append((n, v.strip()))
                        break
                    parts.append(self._exact(size))
                    self._exact(2)
            except EOFError:
                if not allow_cut:
                    raise
                resp.cut = True
            resp.body = b"".join(parts)
        elif resp.header("content-length") is not None:
            resp.body = self._exact(int(resp.header("content-length") or 0))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the server closes (EOF or reset) within ``timeout`` with nothing more."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        self.buf += data
        return data == b""


def request(port: int, method: str = "GET", target: str = "/", headers: list | None = None,
            body: bytes = b"", version: str = "1.1") -> Response:
    """One request on a fresh connection."""
    lines = [f"{method} {target} HTTP/{version}"]
    hs = list(headers or [])
    if not any(n.lower() == "host" for n, _ in hs) and version == "1.1":
        hs.insert(0, ("Host", "example.com"))
    if body and not any(n.lower() in ("content-length", "transfer-encoding") for n, _ in hs):
        hs.append(("Content-Length", str(len(body))))
    for n, v in hs:
        lines.append(f"{n}: {v}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with Client(port) as c:
        c.send(raw)
        return c.read_response(head_request=method == "HEAD")


# ---------------------------------------------------------------------------- processes


def knative_env(user_port: int, cc: int = 0, **extra: Any) -> dict[str, str]:
    """A queue-proxy environment as Knative sets it, on free ports."""
    env = dict(os.environ)
    env.update(
        {
            "CONTAINER_CONCURRENCY": str(cc),
            "QUEUE_SERVING_PORT": str(free_port()),
            "QUEUE_SERVING_TLS_PORT": str(free_port()),
            "USER_PORT": str(user_port),
            "REVISION_TIMEOUT_SECONDS": "300",
            "SERVING_NAMESPACE": "default",
            "SERVING_CONFIGURATION": "hello",
            "SERVING_REVISION": "hello-00001",
            "SERVING_POD": "hello-00001-deployment-abc",
            "SERVING_POD_IP": "127.0.0.1",
            "SERVING_LOGGING_CONFIG": "",
            "SERVING_LOGGING_LEVEL": "info",
            "QUEUE_ADMIN_PORT": str(free_port()),
            "QUEUE_METRICS_PORT": str(free_port()),
            "METRICS_PROMETHEUS_PORT": str(free_port()),
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_queue_proxy(env: dict[str, str]) -> subprocess.Popen:
    """``python -m proxy`` as a real process; returns once its serving port accepts."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy"], env=env, cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    port = int(env["QUEUE_SERVING_PORT"])

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"queue-proxy exited: {proc.stderr.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_for(up, timeout=10)
    return proc


class QueueProxyPod:
    """A queue-proxy process in front of an app port: one "pod" of a revision, for the activator
    tests. ``start_queue_proxy`` gives the process stdout/stderr pipes; they are read here all
    along (the tail kept for diagnostics), else a queue-proxy that logs (one line per failed
    readiness probe) blocks on a full pipe after about 250 lines."""

    def __init__(self, app_port: int, cc: int = 0, **env: Any) -> None:
        self.env = knative_env(app_port, cc=cc, **{"QUEUE_DRAIN_QUIET_PERIOD": "0", **env})
        self.port = int(self.env["QUEUE_SERVING_PORT"])
        self.address = f"127.0.0.1:{self.port}"
        self.proc = start_queue_proxy(self.env)
        self.tail = b""
        self.readers = [threading.Thread(target=self._drain, args=(pipe,), daemon=True)
                        for pipe in (self.proc.stdout, self.proc.stderr)]
        for t in self.readers:
            t.start()

    def _drain(self, pipe: Any) -> None:
        for line in iter(pipe.readline, b""):
            self.tail = (self.tail + line)[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for t in self.readers:
            t.join(5)


class ActivatorProcess:
    """``python -m activator serve`` on free ports, driven through its control API. Its output
    goes to a file, not a pipe (a pipe nobody reads would block it)."""

    def __init__(self, log_path: Path, *args: str, namespace: str = "default") -> None:
        self.namespace = namespace  # of the revisions put_revision & co. name
        self.port = free_port()
        self.admin_port = free_port()
        self.h2c_port = free_port()
        # Its Prometheus port (Knative's 9090 by default): a free one, so runs side by side.
        self.metrics_port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "activator", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--admin-port", str(self.admin_port),
             "--h2c-port", str(self.h2c_port), "--metrics-port", str(self.metrics_port),
             *args],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_for(self._up, timeout=15)

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"activator exited {self.proc.returncode}: {self.output()}")
        try:
            socket.create_connection(("127.0.0.1", self.admin_port), timeout=0.2).close()
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def control(self, method: str, path: str, doc: Any = None) -> Response:
        body = b"" if doc is None else json.dumps(doc).encode()
        headers = [("Content-Type", "application/json")] if body else []
        return request(self.admin_port, method, path, headers=headers, body=body)

    def put_revision(self, name: str, **spec: Any) -> None:
        r = self.control("PUT", f"/revisions/{self.namespace}/{name}", spec)
        assert r.status in (200, 201), r

    def put_endpoints(self, name: str, ready: Sequence[str] = (),
                      not_ready: Sequence[str] = ()) -> None:
        r = self.control("PUT", f"/revisions/{self.namespace}/{name}/endpoints",
                         {"ready": list(ready), "notReady": list(not_ready)})
        assert r.status == 200, r

    def status(self, name: str) -> dict[str, Any]:
        r = self.control("GET", f"/revisions/{self.namespace}/{name}")
        assert r.status == 200, r
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        finally:
            self.log.close()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


_STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


def unstamp(line: str) -> str:
    """A line of the local runtime's console without its time stamp (``12:04:05 ``)."""
    return _STAMP.sub("", line, count=1)
