"""Dialling the app as Knative's ``DialWithBackOff`` (``proxy.engine.upstream.dial_with_backoff``):
a dial that times out is tried again with longer timeouts (50 ms, then 1.4 times longer, 15 more
tries, about 20 s in all); a refused one fails at once. A listener whose accept queue is full
stands for an app that is up but not accepting (the kernel drops the SYNs)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import free_port, new_loop, request

from proxy.engine.upstream import DIAL_BACKOFF, DialTimeout, dial_with_backoff


class FullListener:
    """A listening socket whose accept queue is full: connects to it hang until ``serve``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):  # a backlog of 0 still queues one; the rest wait in SYN_SENT
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(c)
        self._thread: threading.Thread | None = None
        self.stopped = False

    def serve(self) -> None:
        """Accepts from now on, answering each request on each connection 200 "ok"."""
        self.sock.settimeout(0.2)

        def run() -> None:
            while not self.stopped:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    continue
                threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        conn.settimeout(10)
        buf = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    _, _, buf = buf.partition(b"\r\n\r\n")
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped = True
        for c in self.fillers:
            c.close()
        self.sock.close()


@pytest.fixture
def full() -> Iterator[FullListener]:
    f = FullListener()
    yield f
    f.close()


def test_the_schedule_is_knatives() -> None:
    assert DIAL_BACKOFF == (0.05, 1.4, 15)
    # 50 ms, then 15 tries each 1.4 times longer (jitter aside): about 19.4 s of timeouts.
    total = 0.05 + sum(0.05 * 1.4**k for k in range(15))
    assert 19 < total < 20


@pytest.mark.timeout(30)
def test_every_try_timing_out_is_gos_error(full: FullListener) -> None:
    loop = new_loop()
    try:
        t0 = time.monotonic()
        with pytest.raises(DialTimeout) as info:
            loop.run_until_complete(dial_with_backoff(
                loop, asyncio.Protocol, "127.0.0.1", full.port, backoff=(0.02, 1.4, 3)))
        took = time.monotonic() - t0
    finally:
        loop.close()
    # 4 tries: 20 + 20 + 28 + 39 ms of timeouts, 3 sleeps of 30-60 ms between them
    assert 0.1 < took < 5, took
    message = str(info.value)
    assert message.startswith(f"timed out dialing 127.0.0.1:{full.port} after 0.")
    assert message.endswith("s")


@pytest.mark.timeout(30)
def test_a_refused_dial_is_not_tried_again() -> None:
    port = free_port()
    loop = new_loop()
    try:
        t0 = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            loop.run_until_complete(dial_with_backoff(loop, asyncio.Protocol, "127.0.0.1", port))
        assert time.monotonic() - t0 < 0.5  # not 20 s of backoff
    finally:
        loop.close()


@pytest.mark.timeout(60)
def test_an_app_that_starts_accepting_late_gets_the_request(
        make_proxy: Any, full: FullListener) -> None:
    proxy = make_proxy(user_port=full.port)
    result: dict[str, Any] = {}

    def client() -> None:
        result["r"] = request(proxy.port, "GET", "/late")

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.3)  # the point of the test: several tries time out before the app accepts
    assert "r" not in result
    full.serve()
    t.join(30)
    r = result["r"]
    assert r.status == 200 and r.body == b"ok", r
