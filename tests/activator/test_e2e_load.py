"""The activator under load, end to end: the issue's done-when cases, kept as they were written.

Everything is real: ``python -m activator serve`` as a process driven only through its control
API, ``python -m proxy`` processes as the pods, the test's app (or the bundled sample app) behind
them, and asyncio clients with one connection per request, all on 127.0.0.1 and ephemeral ports.

1. 10 000 requests held for a revision at zero are all answered 200 once one pod appears, and
   the activator's RSS grows by less than 50 MiB while they wait.
2. 500 requests held at zero, then one pod with CC=1: all answered 200, never more than one at a
   time in the app.
3. A pod removed mid-traffic (endpoints changed, then its queue-proxy SIGTERMed and draining):
   every request sent is answered, and with 200.
4. Release latency: from the moment a pod's queue-proxy starts answering its probe with 200
   ``queue``, the first held request reaches the app within 25 ms (median of 20 tries).

Figures are printed (``pytest -s`` shows them) and repeated in the assertion messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import (
    PURE,
    REPO,
    App,
    Client,
    LoopThread,
    Response,
    free_port,
    knative_env,
    new_loop,
    request,
    rss_kib,
    send,
    start_queue_proxy,
    wait_for,
)

NS = "default"
MIB = 1024

# --------------------------------------------------------------------------- processes


class Pod:
    """A queue-proxy process in front of an app port: one "pod" of a revision."""

    def __init__(self, app_port: int, cc: int = 0, **env: Any) -> None:
        self.env = knative_env(app_port, cc=cc, QUEUE_DRAIN_QUIET_PERIOD="0", **env)
        self.port = int(self.env["QUEUE_SERVING_PORT"])
        self.address = f"127.0.0.1:{self.port}"
        self.proc = start_queue_proxy(self.env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
            pass


class ActivatorProcess:
    """``python -m activator serve`` on free ports; its output goes to a file, not a pipe
    (a pipe nobody reads would block it)."""

    def __init__(self, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "activator", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--admin-port", str(self.admin_port), *args],
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
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def control(self, method: str, path: str, doc: Any = None) -> Response:
        body = b"" if doc is None else json.dumps(doc).encode()
        headers = [("Content-Type", "application/json")] if body else []
        return request(self.admin_port, method, path, headers=headers, body=body)

    def put_revision(self, name: str, **spec: Any) -> None:
        r = self.control("PUT", f"/revisions/{NS}/{name}", spec)
        assert r.status in (200, 201), r

    def put_endpoints(self, name: str, ready: list[str] = (), not_ready: list[str] = ()) -> None:
        r = self.control("PUT", f"/revisions/{NS}/{name}/endpoints",
                         {"ready": list(ready), "notReady": list(not_ready)})
        assert r.status == 200, r

    def status(self, name: str) -> dict[str, Any]:
        r = self.control("GET", f"/revisions/{NS}/{name}")
        assert r.status == 200, r
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        finally:
            self.log.close()


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    """Pods started by a test (append them); all killed and reaped at teardown."""
    started: list[Pod] = []
    yield started
    for p in started:
        p.stop()


@pytest.fixture
def activator_proc(tmp_path: Path) -> Iterator[Any]:
    """``activator_proc(*args)`` starts an activator process; killed and reaped at teardown."""
    started: list[ActivatorProcess] = []

    def start(*args: str) -> ActivatorProcess:
        a = ActivatorProcess(tmp_path / f"activator-{len(started)}.log", *args)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


@pytest.fixture
def own_app(app_loop: LoopThread) -> Iterator[Any]:
    """``own_app()`` starts another test App on the app loop; stopped at teardown."""
    started: list[App] = []

    def make() -> App:
        a = App()
        app_loop.run(a.start())
        started.append(a)
        return a

    yield make
    for a in started:
        app_loop.run(a.stop())


# --------------------------------------------------------------------------- asyncio client

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def raw_get(target: str, host: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def exchange(port: int, raw: bytes, connect: asyncio.Semaphore,
                   sent: list[int] | None = None) -> tuple[int, bytes]:
    """One request on its own connection -> (status, body); (0, reason) if it got no answer.

    ``connect`` paces connection attempts, so a burst does not overflow the listen backlog
    (the kernel then drops SYNs and the client waits a whole second to retry)."""
    try:
        async with connect:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        return 0, f"connect: {e!r}".encode()
    try:
        writer.write(raw)
        if sent is not None:
            sent[0] += 1
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        m = _LENGTH.search(head)
        body = await reader.readexactly(int(m.group(1))) if m else await reader.read()
        return status, body
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        return 0, f"no answer: {e!r}".encode()
    finally:
        writer.close()


def _ensure_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        try:  # only a privileged process may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need} file descriptors needed "
                        f"for the held requests, and it cannot be raised")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _counts(results: list[tuple[int, bytes]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for status, _ in results:
        out[status] = out.get(status, 0) + 1
    return out


def _first_failure(results: list[tuple[int, bytes]]) -> Any:
    return next(((s, b[:200]) for s, b in results if s != 200), None)


# --------------------------------------------------------------------------- 1. 10 000 at zero

HELD = 10_000


@pytest.mark.timeout(180)
def test_10000_held_at_zero_all_answered_and_rss_bounded(activator_proc: Any,
                                                         pods: list[Pod]) -> None:
    n = HELD
    # The test holds n client sockets, the activator n accepted ones (a child inherits the
    # raised soft limit), plus loops, pipes and listeners.
    _ensure_nofile(n + 1024)
    app_port = free_port()
    app_env = dict(os.environ, PORT=str(app_port))
    sample = subprocess.Popen([sys.executable, "-m", "proxy.sample_app"], env=app_env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _run_10000(n, app_port, activator_proc, pods)
    finally:
        sample.kill()
        sample.wait(10)


def _run_10000(n: int, app_port: int, activator_proc: Any, pods: list[Pod]) -> None:
    cc = 10
    act = activator_proc("--drain-timeout", "0")
    act.put_revision("held", containerConcurrency=cc)
    rss_before = rss_kib(act.proc.pid)
    raw = raw_get("/", f"held.{NS}.svc.cluster.local")
    loop = new_loop()
    figures: dict[str, Any] = {"n": n, "pure": PURE}

    async def run() -> list[tuple[int, bytes]]:
        connect = asyncio.Semaphore(256)
        sent = [0]
        t_send = time.monotonic()
        tasks = [asyncio.ensure_future(exchange(act.port, raw, connect, sent)) for _ in range(n)]
        await _wait_async(lambda: sent[0] == n or any(t.done() for t in tasks), 60)
        early = [t.result() for t in tasks if t.done()]
        assert not early, f"answered while no pod exists: {_counts(early)} {early[:3]}"
        waiting = await _wait_async_value(lambda: act.status("held")["waiting"] == n, 60)
        assert waiting
        figures["send_s"] = round(time.monotonic() - t_send, 2)
        figures["rss_waiting_kib"] = rss_kib(act.proc.pid)
        pod = Pod(app_port, cc=cc)
        pods.append(pod)
        t0 = time.monotonic()
        act.put_endpoints("held", ready=[pod.address])
        results = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        figures["answer_all_s"] = round(time.monotonic() - t0, 2)
        return results

    try:
        results = loop.run_until_complete(run())
    finally:
        loop.close()
    growth = figures["rss_waiting_kib"] - rss_before
    figures["rss_before_mib"] = round(rss_before / MIB, 1)
    figures["rss_growth_mib"] = round(growth / MIB, 1)
    figures["per_request_kib"] = round(growth / n, 2)
    print(f"\n10 000 held at zero: {figures}")
    counts = _counts(results)
    assert counts == {200: n}, f"{counts}, first failure {_first_failure(results)}; {figures}"
    assert all(body == b"Hello World!\n" for _, body in results), figures
    assert growth < 50 * MIB, f"RSS grew {growth / MIB:.1f} MiB while {n} waited; {figures}"


async def _wait_async(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


async def _wait_async_value(cond: Any, timeout: float) -> Any:
    """Like ``wait_for`` for a blocking ``cond`` (the control API), off the client's loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: wait_for(cond, timeout, 0.05))
