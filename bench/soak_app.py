"""The soak test's app (``bench/soak.py``): a plain-Python HTTP/1.1 server on ``127.0.0.1:$PORT``.

One thread per connection, keep-alive, requests read one after the other (pipelined ones too).
Every answer names the request it answers: ``X-Soak-Id`` (the ``id`` query parameter) and
``X-Soak-Pid`` (this process) in the head, and ``id=<id>`` at the start of the body.

=====================================  ================================================
``GET /echo?id=I[&sleep=MS]``          200 ``id=I pid=P\\n`` (after MS milliseconds)
``POST /upload?id=I``                  200 ``id=I len=N sha256=H\\n``: the body's length and
                                       sha256 (Content-Length or chunked bodies)
``GET /download?id=I&size=N``          200, ``id=I\\n`` then N bytes (random, seeded by I);
                                       ``X-Soak-Sha256`` is the sha256 of the whole body
``GET /ws?id=I`` + ``Upgrade``         101 (``Sec-WebSocket-Accept``), then every byte that
                                       comes is echoed back, raw, until EOF
``GET /reset?id=I&size=N&after=K``     a head for N bytes, K of them, then a reset
                                       (``SO_LINGER`` 0, close); ``after=-1``: the reset
                                       comes before any byte of the answer
``GET /stall?id=I&secs=S``             answers only after S seconds (past the revision timeout)
=====================================  ================================================
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024
PID = os.getpid()


class Conn:
    """A buffered reader over a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def fill(self) -> bool:
        data = self.sock.recv(256 * 1024)
        if not data:
            return False
        self.buf += data
        return True

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > MAX_HEAD or not self.fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self.fill():
                raise EOFError("EOF in a chunked body")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n: int, sink) -> None:  # noqa: ANN001 - a callable taking bytes
        while n > 0:
            if not self.buf and not self.fill():
                raise EOFError("EOF in a body")
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            n -= len(take)
            sink(take)

    def body(self, headers: dict[bytes, bytes], sink) -> int:  # noqa: ANN001
        """Reads the request body into ``sink``; returns its length."""
        total = 0

        def count(data: bytes) -> None:
            nonlocal total
            total += len(data)
            sink(data)

        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            while True:
                size = int(self.line().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.line():  # trailers, up to the empty line
                        pass
                    return total
                self.exactly(size, count)
                self.line()
        self.exactly(int(headers.get(b"content-length", b"0")), count)
        return total


def answer(sock: socket.socket, status: str, rid: str, body: bytes,
           extra: list[str] | None = None, close: bool = False) -> None:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", f"X-Soak-Id: {rid}",
             f"X-Soak-Pid: {PID}", "Content-Type: application/octet-stream"]
    lines += extra or []
    if close:
        lines.append("Connection: close")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def reset(sock: socket.socket) -> None:
    """Closes with a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def serve(sock: socket.socket) -> None:
    conn = Conn(sock)
    try:
        while True:
            head = conn.head()
            if head is None:
                return
            lines = head.split(b"\r\n")
            method, target, _version = lines[0].split(b" ", 2)
            headers: dict[bytes, bytes] = {}
            for ln in lines[1:]:
                name, _, value = ln.partition(b":")
                headers[name.strip().lower()] = value.strip()
            url = urlsplit(target.decode("latin-1"))
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            rid = q.get("id", "")
            close = headers.get(b"connection", b"").lower() == b"close"
            path = url.path
            if path == "/upload":
                h = hashlib.sha256()
                n = conn.body(headers, h.update)
                answer(sock, "200 OK", rid, f"id={rid} len={n} sha256={h.hexdigest()}\n".encode(),
                       close=close)
            elif path == "/download":
                conn.body(headers, lambda _b: None)
                size = int(q.get("size", "0"))
                body = f"id={rid}\n".encode() + random.Random(rid).randbytes(size)
                answer(sock, "200 OK", rid, body,
                       [f"X-Soak-Sha256: {hashlib.sha256(body).hexdigest()}"], close=close)
            elif path == "/ws" and headers.get(b"upgrade", b"").lower() == b"websocket":
                key = headers.get(b"sec-websocket-key", b"")
                accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
                sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                              f"X-Soak-Id: {rid}\r\nX-Soak-Pid: {PID}\r\n\r\n").encode())
                if conn.buf:
                    sock.sendall(conn.buf)
                    conn.buf = b""
                while True:
                    data = sock.recv(256 * 1024)
                    if not data:
                        return
                    sock.sendall(data)
            elif path == "/reset":
                conn.body(headers, lambda _b: None)
                size = int(q.get("size", "1048576"))
                after = int(q.get("after", "65536"))
                if after >= 0:
                    sock.sendall((f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n"
                                  f"X-Soak-Id: {rid}\r\nX-Soak-Pid: {PID}\r\n\r\n").encode()
                                 + b"r" * min(after, size))
                    time.sleep(0.05)  # the bytes leave before the reset
                reset(sock)
                return
            elif path == "/stall":
                conn.body(headers, lambda _b: None)
                time.sleep(float(q.get("secs", "10")))
                answer(sock, "200 OK", rid, f"id={rid} stalled\n".encode(), close=close)
            else:  # /echo and anything else
                conn.body(headers, lambda _b: None)
                ms = float(q.get("sleep", "0"))
                if ms:
                    time.sleep(ms / 1000.0)
                answer(sock, "200 OK", rid, f"id={rid} pid={PID}\n".encode(), close=close)
            if close:
                return
    except (OSError, EOFError, ValueError):
        return
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main() -> int:
    port = int(os.environ.get("PORT", "8080"))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1024)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        try:
            sock, _addr = srv.accept()
        except InterruptedError:  # pragma: no cover
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
