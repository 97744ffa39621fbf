"""``python -m proxy`` as a real process: configuration errors, serving, and SIGTERM.

The upstream app (``support.App``) runs in a loop thread of the test process; the queue-proxy
runs as a child process configured only through Knative's environment (``support.knative_env``).
Every process started here is killed at teardown.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import REPO, App, Client, LoopThread, knative_env, request, start_queue_proxy, wait_for

HEALTH = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]


@pytest.fixture(scope="module")
def app_thread() -> Iterator[LoopThread]:
    lt = LoopThread(uv=False)
    yield lt
    lt.stop()


@pytest.fixture
def upstream(app_thread: LoopThread) -> Iterator[App]:
    a = App()
    app_thread.run(a.start())
    yield a
    app_thread.run(a.stop())


@pytest.fixture
def spawn() -> Iterator[Any]:
    """``spawn(env)`` starts ``python -m proxy``; every process is killed at teardown."""
    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> subprocess.Popen:
        proc = start_queue_proxy(env)
        procs.append(proc)
        # An answer on the admin port, which is bound last, means start-up ran to its end.
        wait_for(lambda: admin_answers(int(env["QUEUE_ADMIN_PORT"])), timeout=10)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def admin_answers(port: int) -> bool:
    try:
        r = request(port, "GET", "/not-a-path")
    except OSError:
        return False
    assert r.status == 404, r
    return True


def run_to_exit(env: dict[str, str], timeout: float = 15) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, "-m", "proxy"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def send_raw(port: int, target: str, headers: list | None = None) -> Client:
    c = Client(port, timeout=15)
    lines = [f"GET {target} HTTP/1.1", "Host: example.com"]
    lines += [f"{n}: {v}" for n, v in headers or []]
    c.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    return c


# ---------------------------------------------------------------------------- a) config errors


@pytest.mark.parametrize("name", ["USER_PORT", "CONTAINER_CONCURRENCY", "QUEUE_SERVING_PORT",
                                  "REVISION_TIMEOUT_SECONDS", "SERVING_POD"])
def test_missing_required_variable(name):
    env = knative_env(1)
    del env[name]
    res = run_to_exit(env)
    assert res.returncode == 1, res
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert name in lines[0]
    assert res.stdout == b""


@pytest.mark.parametrize("name, value", [
    ("CONTAINER_CONCURRENCY", "abc"),
    ("CONTAINER_CONCURRENCY", " 5"),  # Go's ParseInt takes no spaces
    ("ENABLE_HTTP_FULL_DUPLEX", "yes"),  # nor ParseBool "yes"
    ("USER_PORT", "eighty"),
    ("REVISION_TIMEOUT_SECONDS", "1.5x"),
])
def test_unparsable_variable(name, value):
    env = knative_env(1, **{name: value})
    res = run_to_exit(env)
    assert res.returncode == 1, res
    lines = res.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert name in lines[0]


# ---------------------------------------------------------------------------- b) it serves


def test_serves_through_process(upstream, spawn):
    env = knative_env(upstream.port)
    spawn(env)
    port = int(env["QUEUE_SERVING_PORT"])
    r = request(port, "GET", "/echo?from=process", [("Knative-Serving-Revision", "hello-00001")])
    assert r.status == 200, r
    seen = r.json()
    assert seen["target"] == "/echo?from=process"
    names = {n.lower() for n, _ in seen["headers"]}
    assert "knative-serving-revision" not in names
    assert ["X-Forwarded-For", "127.0.0.1"] in seen["headers"]
    r = request(port, "GET", "/", HEALTH)
    assert r.status == 200, r
    assert r.body == b"queue"
    assert len(upstream.requests) == 1


def test_breaker_from_environment(upstream, spawn):
    env = knative_env(upstream.port, cc=1)
    spawn(env)
    port = int(env["QUEUE_SERVING_PORT"])
    clients = [send_raw(port, "/sleep?ms=300") for _ in range(11)]
    try:
        wait_for(lambda: upstream.active == 1 and len(upstream.requests) == 1)
        r = None

        # The 11 others may still be on their way in: retry until the breaker is full.
        def full() -> bool:
            nonlocal r
            r = request(port, "GET", "/echo")
            return r.status == 503

        t0 = time.monotonic()
        wait_for(full, timeout=2)
        assert time.monotonic() - t0 < 1.0
        assert r.body == b"pending request queue full\n"
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------------- c) SIGTERM


def test_sigterm_drains_in_flight_and_exits_0(upstream, spawn):
    env = knative_env(upstream.port, QUEUE_DRAIN_QUIET_PERIOD="1")
    proc = spawn(env)
    port = int(env["QUEUE_SERVING_PORT"])
    clients = [send_raw(port, "/sleep?ms=1500") for _ in range(20)]
    try:
        wait_for(lambda: upstream.active == 20)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # The signal is handled asynchronously (as in Go): poll, within the quiet period.
        checks: list = []
        wait_for(lambda: checks.append(request(port, "GET", "/", HEALTH))
                 or checks[-1].status == 503, timeout=0.8)
        assert all(r.status == 200 for r in checks[:-1]), checks
        r = checks[-1]
        assert r.body == b"shutting down\n"
        assert r.header("Content-Type") == "text/plain; charset=utf-8"
        assert r.header("X-Content-Type-Options") == "nosniff"
        # Ordinary requests are still served during the quiet period.
        r = request(port, "GET", "/echo")
        assert r.status == 200, r
        for c in clients:
            r = c.read_response()
            assert r.status == 200, r
            assert r.body == b"slept"
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 >= 1.0  # the quiet period was kept
    finally:
        for c in clients:
            c.close()


def test_sigterm_idle_exits_after_quiet_period(upstream, spawn):
    env = knative_env(upstream.port, QUEUE_DRAIN_QUIET_PERIOD="0.5")
    proc = spawn(env)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert time.monotonic() - t0 >= 0.4


def test_second_sigterm_exits_1_at_once(upstream, spawn):
    env = knative_env(upstream.port)  # the default 30 s quiet period
    proc = spawn(env)
    port = int(env["QUEUE_SERVING_PORT"])
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: request(port, "GET", "/", HEALTH).status == 503, timeout=3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 1
    assert time.monotonic() - t0 < 2.0


def test_sigterm_as_soon_as_serving(upstream):
    for _ in range(3):
        env = knative_env(upstream.port, QUEUE_DRAIN_QUIET_PERIOD="0.2")
        proc = subprocess.Popen([sys.executable, "-m", "proxy"], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            port = int(env["QUEUE_SERVING_PORT"])

            def accepts(proc: subprocess.Popen = proc, port: int = port) -> bool:
                assert proc.poll() is None, proc.communicate()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    return True
                except OSError:
                    return False

            wait_for(accepts, timeout=10, interval=0)
            proc.send_signal(signal.SIGTERM)  # the proxy serves: it must drain, then exit 0
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def test_wait_for_drain_returns_after_sigterm(upstream, spawn):
    env = knative_env(upstream.port, QUEUE_DRAIN_QUIET_PERIOD="1.5")
    proc = spawn(env)
    admin = int(env["QUEUE_ADMIN_PORT"])
    with Client(admin, timeout=15) as c:
        t0 = time.monotonic()
        c.send(b"POST /wait-for-drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        port = int(env["QUEUE_SERVING_PORT"])
        wait_for(lambda: request(port, "GET", "/", HEALTH).status == 503, timeout=3)
        proc.send_signal(signal.SIGTERM)
        r = c.read_response()
        assert r.status == 200, r
        # Not cut short by the 1 s reset: SIGTERM came, so the quiet period is waited out.
        assert time.monotonic() - t0 >= 1.3
    assert proc.wait(timeout=15) == 0
