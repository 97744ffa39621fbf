"""The local runtime explains and contains pod failures, as the kubelet does (issue 17).

End to end, ``python -m activator run`` as a process on a YAML file written here, its apps tiny
``python -c`` scripts, one runtime for all of it (CI's time is tight):

- an app that crashes with a message (exit 3 + a stderr line), one that exits at once, a
  command that is not there, and an app that listens on 8080 (its containerPort) and not on
  ``$PORT``: each failure is reported once, with the exit code and the last stderr lines (or
  ``command not found``, or the ``$PORT`` hint), and restarted after kubelet's CrashLoopBackOff
  (a short base here: the restarts follow the doubling, not a tight loop);
- requests for a failing revision get 503 within seconds, naming the revision and the reason
  (one sent while the revision's pod was still starting included); a revision that comes up
  serves again;
- a healthy service in the same file keeps serving throughout, and the runtime stays up; its
  pod, killed once after it was ready, is restarted at once and its requests wait for it (a
  single failure is not a crash loop);
- the apps' output is on the runtime's stdout, each line prefixed with its pod's name, and in
  one log file per pod under ``--log-dir``, appended across restarts;
- ``python`` in a command is the runtime's own interpreter: a ``python`` first on ``PATH`` that
  would fail is never run.

Plus, without processes: the back-off's sequence and reset, and ``Activator.fail_revision`` on
a held request.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REPO, LoopThread, request, wait_for

from activator.runtime.pods import CrashLoopBackOff, FailurePolicy

MARKER = "KN_FAILURES_MARKER"
DOMAIN = "default.example.com"
BASE = 0.2  # --crash-backoff BASE,CAP
CAP = 3.2
LISTEN_DEADLINE = 1.0

# The apps. Each prints a line to stdout as it starts (to count the starts).
HELLO = r"""
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header('Content-Length', '3'); self.end_headers()
        self.wfile.write(b'hi\n')
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H)
print('hello listening on', os.environ['PORT'], 'with', sys.executable, flush=True)
s.serve_forever()
"""
CRASH = ("import sys; print('starting', flush=True); "
         "print('boom: cannot connect to database', file=sys.stderr); sys.exit(3)")
QUICK = "pass"
DEAF = r"""
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 0)); s.listen()  # "8080": any port but $PORT
print('listening on 8080', flush=True)
time.sleep(600)
"""
# Serves once the flag file exists; exits 4 until then.
FLAKY = r"""
import http.server, os, sys
print('flaky starting', flush=True)
if not os.path.exists(sys.argv[1]):
    print('flaky: no flag yet', file=sys.stderr); sys.exit(4)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header('Content-Length', '3'); self.end_headers()
        self.wfile.write(b'up\n')
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
"""


def _service(name: str, command: list[str]) -> str:
    quoted = ", ".join(_yaml_str(c) for c in command)
    return (f"apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: {name}\n"
            f"spec:\n  template:\n    spec:\n      containers:\n        - command: [{quoted}]\n"
            "          ports:\n            - containerPort: 8080\n")


def _yaml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# --------------------------------------------------------------------------- the runtime


class Runtime:
    """``python -m activator run`` in its own session; its output lines with arrival times
    (stdout and stderr each: the runtime's messages may go to either, and stamped)."""

    def __init__(self, files: list[Path], env: dict[str, str], *args: str) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "activator", "run", *map(str, files), "--port", "0", *args],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.readers = [threading.Thread(target=self._read, args=(pipe, sink), daemon=True)
                        for pipe, sink in ((self.proc.stdout, self.out),
                                           (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    def _read(self, pipe: Any, sink: list[tuple[float, str]]) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                sink.append((time.monotonic() - self.t0, line))

    def text(self) -> list[str]:
        """Every line, stdout's then stderr's."""
        return [line for stream in self.streams() for _, line in stream]

    def streams(self) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
        with self.lock:
            return list(self.out), list(self.err)

    def output(self) -> str:
        out, err = self.streams()
        return ("stdout:\n" + "\n".join(f"{t:6.2f} {line}" for t, line in out)
                + "\nstderr:\n" + "\n".join(f"{t:6.2f} {line}" for t, line in err))

    def front_door(self) -> int:
        def port() -> int | None:
            for line in self.text():
                m = re.search(r"front door on http://[^ ]*:(\d+)", line)
                if m:
                    return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"the runtime exited {self.proc.returncode}: "
                                     f"{self.output()}")
            return None

        return wait_for(port, timeout=30, interval=0.02)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for t in self.readers:
            t.join(5)


def _with_marker(token: str, *also: str) -> list[int]:
    """The live processes started from here (whose environment holds our marker and ``also``)."""
    found = []
    want = {f"{MARKER}={token}".encode(), *(a.encode() for a in also)}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if want <= set(f.read().split(b"\0")):
                        with open(f"/proc/{d}/stat", "rb") as st:
                            if st.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                                found.append(int(d))
            except OSError:
                pass
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A token every process started from here inherits; any left at teardown is killed."""
    token = uuid.uuid4().hex
    yield token
    for pid in _with_marker(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def get(port: int, service: str, timeout: float = 5.0) -> tuple[int, bytes, float]:
    t0 = time.monotonic()
    r = request(port, headers=[("Host", f"{service}.{DOMAIN}")])
    took = time.monotonic() - t0
    assert took < timeout, (service, took)
    return r.status, r.body, took


_FAILURE = re.compile(r"\bdefault/(\S+): pod (\S+): (.*?); restarting (now|in (\S+) s) "
                      r"\((?:back-off, )?restart (\d+)\)(; last output:)?$")


def failures(rt: Runtime, pod: str) -> list[tuple[float, str, float, int, list[str]]]:
    """The pod's failure reports, on whichever stream: (when, what, announced delay, restart
    number, tail: the indented lines that follow)."""
    out = []
    for lines in rt.streams():
        for i, (t, line) in enumerate(lines):
            m = _FAILURE.search(line)
            if m and m.group(2) == pod:
                tail = []
                if m.group(7):
                    for _, more in lines[i + 1:]:
                        if not more[:1].isspace():
                            break
                        tail.append(more.strip())
                delay = 0.0 if m.group(4) == "now" else float(m.group(5))
                out.append((t, m.group(3), delay, int(m.group(6)), tail))
    return sorted(out)


def starts(rt: Runtime, pod: str, line: str) -> int:
    return sum(1 for text in rt.text() if text.endswith(f"{pod} | {line}"))


# --------------------------------------------------------------------------- end to end


@pytest.mark.timeout(90)
def test_failing_pods_are_explained_backed_off_and_refused(tmp_path: Path, marker: str) -> None:
    flag = tmp_path / "flag"
    services = {
        "hello": ["python", "-c", HELLO],
        "crash": ["python", "-c", CRASH],
        "quick": ["python3", "-c", QUICK],
        "nocmd": ["nosuchcmd", "--serve"],
        "deaf": ["python", "-c", DEAF],
        "flaky": ["python", "-c", FLAKY, str(flag)],
    }
    yaml = tmp_path / "services.yaml"
    yaml.write_text("---\n".join(_service(n, c) for n, c in services.items()))
    # A "python" first on PATH that is not the runtime's: were it run, every app would fail.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\necho 'wrong python' >&2\nexit 97\n")
    (fake / "python").chmod(0o755)
    (fake / "python3").symlink_to(fake / "python")
    env = {**os.environ, MARKER: marker, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    logs = tmp_path / "logs"
    rt = Runtime([yaml], env, "--crash-backoff", f"{BASE},{CAP}",
                 "--listen-deadline", str(LISTEN_DEADLINE), "--log-dir", str(logs))
    try:
        port = rt.front_door()
        # Sent at once: the deaf pod is still within its listen deadline, so this one is held,
        # then refused when the pod fails.
        status, body, took = get(port, "deaf")
        print(f"\n[held] deaf: {status} {body!r} after {took:.2f} s")
        assert status == 503, rt.output()
        assert body.startswith(
            b"revision deaf-00001 is failing: app did not listen on $PORT="), body

        # ---- the healthy service serves, with the runtime's own python
        status, body, _ = get(port, "hello")
        assert (status, body) == (200, b"hi\n"), rt.output()
        hello = [line for line in rt.text() if "hello-00001-pod-1 | hello " in line]
        assert hello and hello[0].endswith(f"with {sys.executable}"), rt.output()

        # ---- the back-off: watch the crashing app through CAP's restart
        crash = "crash-00001-pod-1"
        wait_for(lambda: len(failures(rt, crash)) >= 6, timeout=30, interval=0.05)
        reports = failures(rt, crash)
        delays = [d for _, _, d, _, _ in reports]
        print(f"[back-off] crash: delays {delays}, at "
              f"{[round(t - reports[0][0], 2) for t, *_ in reports]}")
        assert delays[:6] == pytest.approx([0, BASE, 2 * BASE, 4 * BASE, 8 * BASE, CAP]), (
            rt.output())
        assert [n for *_, n, _ in reports][:6] == [1, 2, 3, 4, 5, 6]
        for (t1, _, delay, _, _), (t2, *_) in zip(reports, reports[1:], strict=False):
            assert t2 - t1 >= delay - 0.05, (t1, t2, delay, rt.output())
        # A tight loop restarts dozens of times a second; the doubling, 6 times in 3 s.
        first = reports[0][0]
        in_window = [t for t, *_ in reports if t - first <= 3.0]
        assert len(in_window) <= 6, rt.output()

        # ---- one report per failure, with the exit code and the last stderr line
        for _, what, _, _, tail in reports:
            assert re.fullmatch(r"app exited with code 3 after \d+\.\d\d s", what), what
            assert tail == ["boom: cannot connect to database"], (what, tail)
        n = len(failures(rt, crash))
        assert n <= starts(rt, crash, "starting") <= n + 1, rt.output()
        # Its stdout and stderr on the console, prefixed with the pod's name.
        assert any(line.endswith(f"{crash} | boom: cannot connect to database")
                   for line in rt.text()), rt.output()

        quick = failures(rt, "quick-00001-pod-1")
        assert quick and all(re.fullmatch(r"app exited with code 0 after \d+\.\d\d s", w)
                             and not tail for _, w, _, _, tail in quick), quick
        nocmd = failures(rt, "nocmd-00001-pod-1")
        assert nocmd and all(w == "command not found: 'nosuchcmd'" for _, w, *_ in nocmd)
        assert [d for _, _, d, _, _ in nocmd][:3] == pytest.approx([0, BASE, 2 * BASE]), (
            rt.output())
        deaf = failures(rt, "deaf-00001-pod-1")
        assert deaf, rt.output()
        m = re.fullmatch(r"app did not listen on \$PORT=(\d+) within 1 s \(is it listening on "
                         r"8080, the containerPort\? it must listen on \$PORT\)", deaf[0][1])
        assert m, deaf[0][1]
        assert starts(rt, "deaf-00001-pod-1", "listening on 8080") >= 1

        # ---- 503 at once for every failing revision, naming it and why
        expected = {
            "crash": b"revision crash-00001 is failing: app exited with code 3: boom: cannot "
                     b"connect to database\n",
            "quick": b"revision quick-00001 is failing: app exited with code 0\n",
            "nocmd": b"revision nocmd-00001 is failing: command not found: 'nosuchcmd'\n",
            "deaf": (b"revision deaf-00001 is failing: app did not listen on $PORT="
                     + m.group(1).encode() + b" within 1 s (is it listening on 8080, the "
                     b"containerPort? it must listen on $PORT)\n"),
        }
        for name, want in expected.items():
            status, body, took = get(port, name)
            print(f"[refused] {name}: {status} {body!r} in {took * 1000:.0f} ms")
            assert (status, body) == (503, want), (name, status, body, rt.output())

        # ---- a revision that comes up serves again
        flaky = "flaky-00001-pod-1"
        wait_for(lambda: failures(rt, flaky), timeout=10, interval=0.05)
        status, body, _ = get(port, "flaky")
        assert status == 503 and b"app exited with code 4: flaky: no flag yet" in body, body
        flag.touch()
        wait_for(lambda: get(port, "flaky")[0] == 200, timeout=15, interval=0.1)
        assert get(port, "flaky")[:2] == (200, b"up\n")

        # ---- a ready pod that fails once is restarted at once, and its requests wait for it
        hello_app = _with_marker(marker, "K_REVISION=hello-00001")
        assert len(hello_app) == 1, hello_app
        os.kill(hello_app[0], signal.SIGKILL)
        killed = wait_for(lambda: failures(rt, "hello-00001-pod-1"), timeout=10, interval=0.02)
        assert re.fullmatch(r"app was killed by SIGKILL after \d+\.\d\d s", killed[0][1])
        assert killed[0][2:4] == (0.0, 1), killed
        status, body, took = get(port, "hello")
        print(f"[killed once] hello: {status} {body!r} in {took * 1000:.0f} ms")
        assert (status, body) == (200, b"hi\n"), rt.output()

        # ---- the healthy one still serves, the runtime is still up
        assert get(port, "hello")[:2] == (200, b"hi\n")
        assert rt.proc.poll() is None, rt.output()
        assert not any("wrong python" in line for line in rt.text()), rt.output()

        # ---- one log file per pod, appended across restarts
        files = sorted(p.name for p in logs.iterdir())  # nocmd's pod never spawned anything
        assert files == sorted(f"{n}-00001-pod-1.log" for n in services if n != "nocmd"), files
        text = (logs / f"{crash}.log").read_text()
        assert text.count("starting\n") >= 6, text
        assert text.count("boom: cannot connect to database\n") >= 6, text
    finally:
        rt.close()
    assert rt.proc.returncode == 0, rt.output()


# --------------------------------------------------------------------------- without processes


def test_crash_loop_back_off_doubles_to_its_cap_and_starts_over_after_a_long_run() -> None:
    b = CrashLoopBackOff(10.0, 300.0, 600.0)
    assert [b.failed(1.0) for _ in range(9)] == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert b.failed(599.0) == 300  # ran less than the reset: still backing off
    assert b.failed(600.0) == 0  # ran 10 minutes: over
    assert [b.failed(1.0) for _ in range(3)] == [10, 20, 40]
    with pytest.raises(ValueError):
        FailurePolicy(backoff_base=0)
    with pytest.raises(ValueError):
        FailurePolicy(backoff_base=2, backoff_cap=1)
    with pytest.raises(ValueError):
        FailurePolicy(listen_deadline=0)


@pytest.mark.timeout(30)
def test_fail_revision_refuses_held_and_new_requests_until_lifted() -> None:
    """The activator's API: a request held for a revision with no pod gets 503 and the reason
    as soon as the revision is marked failing; a new one at once; lifted, requests wait again."""
    from activator.activator import Activator

    lt = LoopThread()

    async def start() -> Activator:
        act = Activator(loop=lt.loop, drain_timeout=0)
        await act.start(host="127.0.0.1", port=0, admin_port=None, h2c_port=None,
                        tls_port=None)
        act.set_revision("default", "rev-00001", timeout_seconds=20)
        return act

    act = lt.run(start())
    try:
        port = act.ports["main"]
        headers = [("Knative-Serving-Revision", "rev-00001"),
                   ("Knative-Serving-Namespace", "default")]
        reason = "revision rev-00001 is failing: boom"

        def status() -> dict[str, Any]:
            return lt.call(lambda: act.revision_status("default", "rev-00001"))

        result: list[Any] = []
        held = threading.Thread(target=lambda: result.append(request(port, headers=headers)),
                                daemon=True)
        t0 = time.monotonic()
        held.start()
        wait_for(lambda: status()["waiting"] == 1)
        assert lt.call(lambda: act.fail_revision("default", "rev-00001", reason)) == 1
        held.join(5)
        assert (result[0].status, result[0].body) == (503, reason.encode() + b"\n")
        assert time.monotonic() - t0 < 5
        r = request(port, headers=headers)  # a new one: at once
        assert (r.status, r.body) == (503, reason.encode() + b"\n")
        assert status()["failure"] == reason and status()["waiting"] == 0
        # Lifted: a request waits again (until the revision is removed: 404).
        lt.call(lambda: act.fail_revision("default", "rev-00001", None))
        held = threading.Thread(target=lambda: result.append(request(port, headers=headers)),
                                daemon=True)
        held.start()
        wait_for(lambda: status()["waiting"] == 1)
        lt.call(lambda: act.remove_revision("default", "rev-00001"))
        held.join(5)
        assert result[-1].status == 404
    finally:
        lt.call(act.close)
        lt.stop()
