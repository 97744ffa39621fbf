"""A port in use, for each command that listens: one stderr line naming the port and the flag or
variable that moves it, exit status 2, no traceback, no asyncio noise, no process left behind.
Real processes, a real listener holding the port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from support import REPO, free_port, knative_env, request, wait_for

from proxy.demo import _listener_is

MARKER = "KN_PORT_CLASH_MARKER"
NOISE = ("Traceback", "Task exception", "Exception ignored", "was never retrieved",
         "Unclosed", "ResourceWarning", "Error")


@pytest.fixture
def busy() -> Iterator[int]:
    """A port another server listens on (bound on every address, as the commands bind)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


def marked() -> set[int]:
    """Pids of live processes started by these tests (the marker in their environment)."""
    found = set()
    want = f"{MARKER}=".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if any(e.startswith(want) for e in f.read().split(b"\0")):
                    with open(f"/proc/{pid}/stat", "rb") as st:
                        if st.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                            found.add(int(pid))
        except OSError:
            continue
    return found


def refused(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Runs ``argv``; asserts exit status 2, one line on stderr, nothing left; returns it."""
    token = uuid.uuid4().hex
    proc = subprocess.run(argv, cwd=REPO, env={**(env or os.environ), MARKER: token},
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    err = proc.stderr.decode()
    # A stale compiled module's notice (someone's unbuilt edit) is not ours to judge.
    lines = [line for line in err.splitlines()
             if "stale compiled" not in line and "changed since it was built" not in line
             and not line.startswith("  ")]
    print(f"\n[{' '.join(argv[1:4])}] exit {proc.returncode}: {err.strip()}")
    assert proc.returncode == 2, err
    assert len(lines) == 1, err
    assert not any(n in lines[0] for n in NOISE), err
    assert "Traceback" not in err, err
    wait_for(lambda: not marked(), timeout=5)
    return lines[0]


@pytest.mark.timeout(60)
def test_activator_run_names_port(busy: int) -> None:
    line = refused([sys.executable, "-m", "activator", "run", "examples/hello.yaml",
                    "--port", str(busy)])
    assert line == (f"activator: port {busy} is in use (another server is listening there); "
                    "choose another with --port")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", ["--port", "--h2c-port", "--admin-port"])
def test_activator_serve_names_the_flag(busy: int, flag: str) -> None:
    ports = {"--port": "0", "--h2c-port": "0", "--admin-port": "0", flag: str(busy)}
    line = refused([sys.executable, "-m", "activator", "serve", "--metrics-port", "-1",
                    *(x for kv in ports.items() for x in kv)])
    assert line == (f"activator: port {busy} is in use (another server is listening there); "
                    f"choose another with {flag}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("variable", ["QUEUE_SERVING_PORT", "QUEUE_ADMIN_PORT"])
def test_queue_proxy_names_the_variable(busy: int, variable: str) -> None:
    env = {**os.environ, **knative_env(free_port()), "QUEUE_SERVING_PORT": "0",
           "QUEUE_ADMIN_PORT": "0", "QUEUE_METRICS_PORT": "0", variable: str(busy)}
    line = refused([sys.executable, "-m", "proxy"], env)
    assert line == (f"queue-proxy: port {busy} is in use (another server is listening there); "
                    f"choose another with {variable}")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("flag", ["--app-port", "--port"])
def test_demo_names_the_flag_and_starts_nothing(busy: int, flag: str) -> None:
    ports = {"--app-port": str(free_port()), "--port": str(free_port()),
             "--admin-port": str(free_port()), flag: str(busy)}
    line = refused([sys.executable, "-m", "proxy.demo", *(x for kv in ports.items() for x in kv)])
    assert line == (f"demo: port {busy} is in use (another server is listening there); "
                    f"choose another with {flag}")


@pytest.mark.timeout(60)
def test_demo_serves_once_its_own_children_listen() -> None:
    app_port, port = free_port(), free_port()
    token = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.demo", "--app-port", str(app_port), "--port", str(port),
         "--admin-port", str(free_port())],
        cwd=REPO, env={**os.environ, MARKER: token}, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert proc.stderr is not None
        ready = ""
        while "try: curl" not in ready:
            ready = proc.stderr.readline().decode()
            assert ready, "the demo ended before saying it was ready"
        r = request(port)
        assert (r.status, r.body) == (200, b"Hello World!\n"), r
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(15) == 0
        wait_for(lambda: not marked(), timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_the_demo_tells_its_own_listener_from_another() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert _listener_is(os.getpid(), port) is True
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE)
        try:
            assert _listener_is(child.pid, port) is False
        finally:
            child.communicate(b"")
