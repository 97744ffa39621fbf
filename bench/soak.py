"""Soak test of the local runtime: mixed load through the front door while faults happen.

    python bench/soak.py [--duration 600] [--seed N] [--json out.json] [--plot out.png]

Starts ``python -m activator run`` (front door on a free port of 127.0.0.1) with one Service,
``bench/soak_app.py`` as its container (containerConcurrency 4, min-scale 0, starting at zero,
a short revision timeout and a short scale-to-zero), then, for ``--duration`` seconds:

* **load**, from ``--workers`` threads, every request to 127.0.0.1 and carrying its own id
  (``?id=`` and ``X-Soak-Id``), which the app echoes: keep-alive clients (several requests on
  one connection), pipelined requests (several in one write), uploads (1-8 MiB, whose sha256
  the app echoes), downloads (1-16 MiB, hashed against the app's ``X-Soak-Sha256``), websockets
  (101, then raw bytes echoed), slow clients (head and body in small pieces, with pauses) and
  bursts of concurrent requests at and above containerConcurrency;
* **faults**, on a schedule drawn from ``--seed``: SIGKILL of a random pod process (an app or a
  queue-proxy sidecar, found in the runtime's process tree), requests the app resets mid-body
  (``SO_LINGER`` 0), requests that stall past ``timeoutSeconds``, and idle periods: the load
  stops until the revision has scaled to zero (no pod process left), then comes back (a cold
  start through the activator).

Every outcome is classified: ``ok``; a documented error answer (Knative's 502 with Go's error
text when a pod dies under a request, 503 ``pending request queue full`` / ``shutting down``,
504 ``request timeout`` / ``activator request timeout``); a connection error (by kind: before
the answer, or the body cut mid-way); or a failure: ``LOST`` (nothing at all within
``--client-timeout``), ``MIXED`` (another request's answer), ``CORRUPT`` (its own answer, wrong
bytes) or ``UNDOCUMENTED`` (any other answer). Any failure: exit status 1.

The runtime's RSS (its own VmRSS, and the sum over its process tree) is sampled every second.
At the end: the summary, ``--json`` (everything, samples included) and ``--plot`` (RSS and
requests/s over time with the faults marked; needs matplotlib). Every child is stopped and the
temp dir removed at the end, on Ctrl-C and on SIGTERM too.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import queue
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "bench" / "soak_app.py"
SERVICE, NAMESPACE, DOMAIN = "soak", "default", "example.com"
HOST = f"{SERVICE}.{NAMESPACE}.{DOMAIN}"
ADDR = "127.0.0.1"  # the only address any load goes to
MiB = 1 << 20

# The mixed load: kind -> weight (a worker's next operation is drawn with these weights).
LOAD_KINDS = {
    "keepalive": 30,
    "pipelined": 15,
    "upload": 10,
    "download": 10,
    "websocket": 10,
    "slow": 10,
    "burst": 5,
}
FAULT_REQUEST_KINDS = ("reset", "stall")
FAULT_KINDS = ("pod_kill", "reset", "stall", "idle")

# Knative's error answers, as the runtime, the activator and the queue-proxy give them (README:
# "Where it differs", activator/activator/app.py, proxy/engine/server.py and upstream.py).
_P = r"127\.0\.0\.1:\d+"
DOCUMENTED: list[tuple[int, re.Pattern[bytes], str]] = [
    (502, re.compile(rf"dial tcp {_P}: connect: connection refused\n".encode()),
     "502 dial: connection refused"),
    (502, re.compile(rf"dial tcp {_P}: no such pod\n".encode()), "502 dial: no such pod"),
    (502, re.compile(rf"dial tcp {_P}: connect: ([a-z ]+)\n".encode()), "502 dial: {0}"),
    (502, re.compile(rb"EOF\n"), "502 EOF"),
    (502, re.compile(rb"unexpected EOF\n"), "502 unexpected EOF"),
    (502, re.compile(rf"read tcp {_P}: read: connection reset by peer\n".encode()),
     "502 read: connection reset by peer"),
    (502, re.compile(rf"write tcp {_P}: write: broken pipe\n".encode()),
     "502 write: broken pipe"),
    (503, re.compile(rb"pending request queue full\n"), "503 pending request queue full"),
    (503, re.compile(rb"shutting down\n"), "503 shutting down"),
    (504, re.compile(rb"request timeout\n?"), "504 request timeout"),
    (504, re.compile(rb"activator request timeout\n?"), "504 activator request timeout"),
]
FAILURES = ("LOST", "MIXED", "CORRUPT", "UNDOCUMENTED")

_DECISION = re.compile(r"(\S+)/(\S+): (\d+) ready -> (\d+) desired")
_EXITED = re.compile(r": pod (\S+): .*; restarting ")


def documented(status: int, body: bytes) -> str | None:
    for st, pattern, label in DOCUMENTED:
        m = pattern.fullmatch(body) if st == status else None
        if m:
            return label.format(*(g.decode("latin-1") for g in m.groups()))
    return None


def is_failure(outcome: str) -> bool:
    return outcome.split(" ", 1)[0] in FAILURES


# --------------------------------------------------------------------------- HTTP client


class Lost(Exception):
    """Nothing came (neither an answer nor an error) within the client timeout."""


class Closed(Exception):
    """The connection ended (``kind``: eof, reset, broken pipe, ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _oserror_kind(exc: OSError) -> str:
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    return type(exc).__name__


class Response:
    __slots__ = ("status", "headers", "length", "digest", "body", "complete", "cut")

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.length = 0
        self.digest = ""
        self.body = b""  # the first KEEP bytes
        self.complete = False
        self.cut: str | None = None  # the connection's end, when it cut the body

    KEEP = 4096


class Client:
    """One connection to the front door, read through a buffer; every wait is bounded."""

    def __init__(self, timeout: float, port: int) -> None:
        self.timeout = timeout
        self.buf = bytearray()
        self.sock = socket.socket()
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.connect((ADDR, port))
        except TimeoutError:
            self.sock.close()
            raise Lost("connect") from None
        except OSError as exc:
            self.sock.close()
            raise Closed(_oserror_kind(exc)) from None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes, stop_on_answer: bool = True) -> bool:
        """Sends ``data``; False if an answer (or the connection's end) came first (the server
        answered without reading it all: a 502, a 504): read it then. ``stop_on_answer``
        False (pipelined requests, a tunnel's echo): everything is sent regardless."""
        view = memoryview(data)
        rlist = [self.sock] if stop_on_answer else []
        while view:
            try:
                r, w, _ = select.select(rlist, [self.sock], [], self.timeout)
            except (OSError, ValueError) as exc:
                raise Closed(type(exc).__name__) from None
            if r:
                return False
            if not w:
                raise Lost("send: the server reads nothing and says nothing")
            try:
                n = self.sock.send(view[: 256 * 1024])
            except TimeoutError:
                raise Lost("send") from None
            except OSError as exc:
                raise Closed(_oserror_kind(exc)) from None
            view = view[n:]
        return True

    def _fill(self) -> None:
        try:
            data = self.sock.recv(256 * 1024)
        except TimeoutError:
            raise Lost("recv") from None
        except OSError as exc:
            raise Closed(_oserror_kind(exc)) from None
        if not data:
            raise Closed("eof")
        self.buf += data

    def recv_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill()

    def read_response(self) -> Response:
        """One response. Raises Lost, or Closed before the head; a body cut by the connection's
        end is returned with ``cut`` set."""
        resp = Response()
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > 65536:
                raise Closed("head too large")
            self._fill()
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[: i + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        resp.status = int(parts[1])
        for ln in lines[1:]:
            name, _, value = ln.partition(":")
            key = name.strip().lower()
            value = value.strip()
            resp.headers[key] = f"{resp.headers[key]}, {value}" if key in resp.headers else value
        if resp.status == 101 or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.complete = True
            return resp
        h = hashlib.sha256()

        def take(data: bytes) -> None:
            h.update(data)
            if len(resp.body) < Response.KEEP:
                resp.body += data[: Response.KEEP - len(resp.body)]
            resp.length += len(data)

        try:
            if "chunked" in resp.headers.get("transfer-encoding", "").lower():
                while True:
                    size = int(self._line().split(b";", 1)[0].strip(), 16)
                    if size == 0:
                        while self._line():
                            pass
                        break
                    take(self.recv_exactly(size))
                    if self._line() != b"":
                        raise Closed("bad chunk framing")
            elif "content-length" in resp.headers:
                left = int(resp.headers["content-length"])
                while left:
                    if not self.buf:
                        self._fill()
                    piece = bytes(self.buf[:left])
                    del self.buf[: len(piece)]
                    left -= len(piece)
                    take(piece)
            else:  # close-delimited
                try:
                    while True:
                        if self.buf:
                            take(bytes(self.buf))
                            self.buf.clear()
                        self._fill()
                except Closed as exc:
                    if exc.kind != "eof":
                        raise
        except Closed as exc:
            resp.cut = exc.kind
            resp.digest = h.hexdigest()
            return resp
        resp.digest = h.hexdigest()
        resp.complete = True
        return resp


def request_head(method: str, path: str, rid: str, *, length: int | None = None,
                 chunked: bool = False, extra: tuple[str, ...] = ()) -> bytes:
    sep = "&" if "?" in path else "?"
    lines = [f"{method} {path}{sep}id={rid} HTTP/1.1", f"Host: {HOST}", f"X-Soak-Id: {rid}",
             "User-Agent: soak"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    lines += extra
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunked_body(body: bytes, rng: random.Random) -> bytes:
    out = []
    i = 0
    while i < len(body):
        n = rng.randint(1, 512 * 1024)
        piece = body[i: i + n]
        out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        i += n
    out.append(b"0\r\n\r\n")
    return b"".join(out)


# --------------------------------------------------------------------------- outcomes


def judge(resp: Response, rid: str, check: Any = None) -> str:
    """The outcome of one complete-or-cut answer to request ``rid``. ``check(resp)`` validates a
    200 (returns None, or what is wrong with it)."""
    other = resp.headers.get("x-soak-id")
    if other is not None and other != rid:
        return f"MIXED answer of {other}"
    m = re.match(rb"id=(\S+)", resp.body)
    if m and m.group(1).decode("latin-1") != rid and resp.status in (200, 206):
        return f"MIXED body of {m.group(1).decode('latin-1')}"
    if resp.cut is not None:
        return f"conn cut mid-body ({resp.cut})"
    if resp.status == 200:
        if other is None:
            return "UNDOCUMENTED 200 without X-Soak-Id"
        wrong = check(resp) if check is not None else None
        return f"CORRUPT {wrong}" if wrong else "ok"
    label = documented(resp.status, resp.body)
    if label is not None:
        return label
    return f"UNDOCUMENTED {resp.status} {resp.body[:80]!r}"


def _echo_check(rid: str) -> Any:
    def check(resp: Response) -> str | None:
        if not resp.body.startswith(f"id={rid} pid=".encode()):
            return f"echo body {resp.body[:60]!r}"
        return None
    return check


def _upload_check(rid: str, n: int, digest: str) -> Any:
    want = f"id={rid} len={n} sha256={digest}\n".encode()

    def check(resp: Response) -> str | None:
        return None if resp.body == want else f"upload echo {resp.body[:100]!r}"
    return check


def _download_check(rid: str, size: int) -> Any:
    def check(resp: Response) -> str | None:
        if resp.length != size + len(f"id={rid}\n"):
            return f"download of {resp.length} bytes, {size} asked"
        if resp.headers.get("x-soak-sha256") != resp.digest:
            return "download sha256 differs from the app's"
        return None
    return check


# --------------------------------------------------------------------------- the soak


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.tag = f"{args.seed % 100000:05d}"
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.failures: list[dict[str, Any]] = []
        self.not_ok: list[tuple[float, float, str, str]] = []  # (start, end, kind, outcome)
        self.done_total = 0
        self.faults: list[dict[str, Any]] = []
        self.samples: list[list[float]] = []
        self.decisions: list[tuple[float, int, int]] = []
        self.exited_pods: list[tuple[float, str]] = []
        self.runtime_lines: list[tuple[float, str]] = []
        self.runtime_alerts: list[str] = []
        self.idle_cycles: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.go = threading.Event()  # set while the load runs (cleared for idle periods)
        self.go.set()
        self.busy = 0  # operations in flight (workers and fault requests)
        self.busy_cv = threading.Condition(self.lock)
        self.t0 = 0.0
        self.port = 0
        self.rt: subprocess.Popen[str] | None = None
        self.marker = f"soak-{os.getpid()}-{args.seed}"
        self.tmp = Path(tempfile.mkdtemp(prefix="soak-"))
        self.pods_now = (0, 0)  # (apps, sidecars) at the last sample
        self.wall0 = time.time()
        self.load_end = 0.0
        self.runtime_died = False

    # ------------------------------------------------------------------ ids and records

    def rid(self) -> str:
        return f"{self.tag}-{next(self.ids)}"

    def now(self) -> float:
        return time.monotonic() - self.t0

    def record(self, kind: str, rid: str, outcome: str, started: float,
               detail: str = "") -> None:
        took = time.monotonic() - started
        with self.lock:
            self.requests[kind] += 1
            self.outcomes[kind][outcome] += 1
            self.done_total += 1
            if outcome == "ok":
                self.latency[kind].append(took)
            if outcome != "ok" and len(self.not_ok) < 5000:
                end = self.now()
                self.not_ok.append((round(end - took, 3), round(end, 3), kind, outcome))
            if is_failure(outcome) and len(self.failures) < 200:
                self.failures.append({"t": round(self.now(), 3), "kind": kind, "id": rid,
                                      "outcome": outcome, "took_s": round(took, 3),
                                      "detail": detail})
        if is_failure(outcome) and self.a.verbose:
            print(f"  [{self.now():7.1f}s] {kind} {rid}: {outcome} {detail}", flush=True)

    def fault(self, kind: str, **detail: Any) -> None:
        with self.lock:
            self.faults.append({"t": round(self.now(), 3), "kind": kind, **detail})
        extra = " ".join(f"{k}={v}" for k, v in detail.items())
        print(f"  [{self.now():7.1f}s] fault {kind} {extra}", flush=True)

    # ------------------------------------------------------------------ the runtime

    def service_yaml(self) -> Path:
        a = self.a
        ann = {
            "autoscaling.knative.dev/min-scale": "0",
            "autoscaling.knative.dev/initial-scale": "0",
            "autoscaling.knative.dev/max-scale": str(a.max_scale),
        }
        if a.window >= 6:  # Knative's range for the annotation; shorter ones via the flag only
            ann["autoscaling.knative.dev/window"] = f"{int(a.window)}s"
        svc = {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"template": {
                "metadata": {"annotations": ann},
                "spec": {
                    "containerConcurrency": a.cc,
                    "timeoutSeconds": a.timeout_seconds,
                    "containers": [{"image": "soak-app (informational)",
                                    "command": [sys.executable, str(APP)]}],
                },
            }},
        }
        path = self.tmp / "soak.yaml"
        path.write_text(yaml.safe_dump(svc, sort_keys=False))
        return path

    def start_runtime(self) -> None:
        spec = self.service_yaml()
        env = dict(os.environ, SOAK_MARKER=self.marker)
        argv = [sys.executable, "-m", "activator", "run", str(spec), "--port", "0",
                "--allow-zero-initial-scale", "--stable-window", str(int(self.a.window)),
                "--scale-to-zero-grace-period", str(self.a.grace)]
        if self.a.keep_tmp:
            argv += ["--log-dir", str(self.tmp / "logs")]
        self.rt = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        ports: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._read_runtime, args=(ports,), daemon=True).start()
        try:
            self.port = ports.get(timeout=60)
        except queue.Empty:
            raise SystemExit("soak: the runtime did not print its front door in 60 s") from None

    def _read_runtime(self, ports: queue.Queue[int]) -> None:
        assert self.rt is not None and self.rt.stdout is not None
        for line in self.rt.stdout:
            line = line.rstrip("\n")
            t = self.now() if self.t0 else 0.0
            with self.lock:
                self.runtime_lines.append((t, line))
            m = re.search(r"front door on http://127\.0\.0\.1:(\d+)", line)
            if m:
                ports.put(int(m.group(1)))
            m = _DECISION.search(line)
            if m:
                with self.lock:
                    self.decisions.append((t, int(m.group(3)), int(m.group(4))))
                if self.a.verbose:
                    print(f"  [{t:7.1f}s] {line}", flush=True)
            m = _EXITED.search(line)
            if m:
                with self.lock:
                    self.exited_pods.append((t, m.group(1)))
            if ("Traceback" in line or "ERROR" in line or "did not start" in line
                    or "failed" in line):
                with self.lock:
                    self.runtime_alerts.append(f"{t:.1f}s {line}")

    def processes(self) -> dict[str, list[int]]:
        """The runtime's pod processes, from /proc: apps (its children running the app) and
        sidecars (the zygote's children)."""
        assert self.rt is not None
        kids: dict[int, list[int]] = defaultdict(list)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            st = _stat(int(entry))
            if st is not None and st[0] != "Z":
                kids[st[1]].append(int(entry))
        apps, sidecars, zygotes = [], [], []
        for pid in kids.get(self.rt.pid, []):
            cmd = _cmdline(pid)
            if "activator.runtime.zygote" in cmd:
                zygotes.append(pid)
            elif str(APP) in cmd:
                apps.append(pid)
        for z in zygotes:
            sidecars += kids.get(z, [])
        tree, todo = [], [self.rt.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += kids.get(pid, [])
        return {"apps": apps, "sidecars": sidecars, "zygote": zygotes, "tree": tree}

    def sampler(self) -> None:
        assert self.rt is not None
        next_at = time.monotonic()
        while not self.stop.is_set() and self.rt.poll() is None:
            procs = self.processes()
            rss = _rss(self.rt.pid)
            tree = sum(_rss(p) for p in procs["tree"])
            self.pods_now = (len(procs["apps"]), len(procs["sidecars"]))
            with self.lock:
                done = self.done_total
            self.samples.append([round(self.now(), 3), rss, tree, len(procs["apps"]),
                                 len(procs["sidecars"]), done, _cpu_seconds(self.rt.pid)])
            next_at += 1.0
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def stop_runtime(self) -> dict[str, Any]:
        """SIGINT (the runtime stops every pod), SIGKILL if it takes over 30 s; then any process
        still carrying our marker gets SIGKILL."""
        out: dict[str, Any] = {"exit": None, "stop_s": None, "left_behind": []}
        rt = self.rt
        if rt is None:
            return out
        t = time.monotonic()
        if rt.poll() is None:
            try:
                os.killpg(rt.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                rt.wait(30)
                out["stop_s"] = round(time.monotonic() - t, 2)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(rt.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rt.wait(10)
        out["exit"] = rt.returncode
        deadline = time.monotonic() + 5
        while True:
            left = _with_env(f"SOAK_MARKER={self.marker}")
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for pid in left:
            out["left_behind"].append(f"{pid} {_cmdline(pid)[:80]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return out

    # ------------------------------------------------------------------ load

    def begin(self) -> None:
        with self.lock:
            self.busy += 1

    def end(self) -> None:
        with self.busy_cv:
            self.busy -= 1
            self.busy_cv.notify_all()

    def worker(self, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        kinds = list(LOAD_KINDS)
        weights = list(LOAD_KINDS.values())
        while not self.stop.is_set():
            if not self.go.is_set():
                self.go.wait(0.5)
                continue
            self.begin()
            try:
                if not self.go.is_set() or self.stop.is_set():
                    continue
                kind = rng.choices(kinds, weights)[0]
                getattr(self, f"op_{kind}")(rng)
            except Exception as exc:  # noqa: BLE001 - a soak bug is reported, not fatal
                self.record("internal", "-", f"UNDOCUMENTED client error {exc!r}",
                            time.monotonic())
            finally:
                self.end()
            think = rng.random() * self.a.think
            if think:
                self.stop.wait(think)

    def connect(self, kind: str, rid: str, started: float) -> Client | None:
        """A connection to the front door (which never stops listening: a refusal fails)."""
        try:
            return Client(self.a.client_timeout, self.port)
        except Lost:
            self.record(kind, rid, "LOST connect", started)
        except Closed as exc:
            self.record(kind, rid, f"UNDOCUMENTED front door connect: {exc.kind}", started)
        return None

    def one(self, kind: str, build: Any) -> None:
        """A request on a connection of its own: ``build(rid)`` -> (what to send: bytes, or
        (bytes, pause before) pieces; the check of a 200)."""
        rid = self.rid()
        started = time.monotonic()
        c = self.connect(kind, rid, started)
        if c is None:
            return
        try:
            data, check = build(rid)
            self._send_read(c, kind, rid, started, data, check)
        finally:
            c.close()

    def _send_read(self, c: Client, kind: str, rid: str, started: float, data: Any,
                   check: Any) -> str:
        """Sends ``data`` (bytes, or a list of (bytes, pause) pieces) and judges the answer."""
        try:
            pieces = [(data, 0.0)] if isinstance(data, bytes) else data
            for piece, pause in pieces:
                if pause:
                    time.sleep(pause)
                if not c.send(piece):
                    break
            resp = c.read_response()
        except Lost as exc:
            outcome = "LOST"
            self.record(kind, rid, outcome, started, str(exc))
            return outcome
        except Closed as exc:
            outcome = f"conn {exc.kind} before the answer"
            self.record(kind, rid, outcome, started)
            return outcome
        outcome = judge(resp, rid, check)
        if kind in FAULT_REQUEST_KINDS and outcome == "ok":
            outcome = "UNDOCUMENTED the whole answer (the app never gives it)"
        self.record(kind, rid, outcome, started,
                    f"status {resp.status} body {resp.body[:120]!r}" if is_failure(outcome)
                    else "")
        return outcome

    def op_keepalive(self, rng: random.Random) -> None:
        started = time.monotonic()
        rid = self.rid()
        c = self.connect("keepalive", rid, started)
        if c is None:
            return
        try:
            for i in range(rng.randint(2, 10)):
                if i:
                    rid, started = self.rid(), time.monotonic()
                    if rng.random() < 0.5:
                        time.sleep(rng.random() * 0.05)
                sleep = rng.choice((0, 0, 0, 5, 20, 50))
                path = f"/echo?sleep={sleep}" if sleep else "/echo"
                out = self._send_read(c, "keepalive", rid, started,
                                      request_head("GET", path, rid), _echo_check(rid))
                if out != "ok":
                    break  # the connection is in an unknown state: a new one next time
        finally:
            c.close()

    def op_pipelined(self, rng: random.Random) -> None:
        started = time.monotonic()
        c = self.connect("pipelined", self.rid(), started)
        if c is None:
            return
        try:
            batch = []
            for _ in range(rng.randint(2, 6)):
                rid = self.rid()
                pick = rng.random()
                if pick < 0.6:
                    batch.append((rid, request_head("GET", "/echo", rid), _echo_check(rid)))
                elif pick < 0.8:
                    size = rng.randint(1, 64 * 1024)
                    batch.append((rid, request_head("GET", f"/download?size={size}", rid),
                                  _download_check(rid, size)))
                else:
                    body = rng.randbytes(rng.randint(0, 32 * 1024))
                    digest = hashlib.sha256(body).hexdigest()
                    batch.append((rid, request_head("POST", "/upload", rid, length=len(body))
                                  + body, _upload_check(rid, len(body), digest)))
            try:
                c.send(b"".join(b for _, b, _ in batch), stop_on_answer=False)
            except Lost as exc:
                for rid, _, _ in batch:
                    self.record("pipelined", rid, "LOST", started, str(exc))
                return
            except Closed as exc:
                for rid, _, _ in batch:
                    self.record("pipelined", rid, f"conn {exc.kind} before the answer",
                                started)
                return
            for i, (rid, _, check) in enumerate(batch):
                try:
                    resp = c.read_response()
                except Lost as exc:
                    for r, _, _ in batch[i:]:
                        self.record("pipelined", r, "LOST", started, str(exc))
                    return
                except Closed as exc:
                    for r, _, _ in batch[i:]:
                        self.record("pipelined", r, f"conn {exc.kind} before the answer",
                                    started)
                    return
                outcome = judge(resp, rid, check)
                self.record("pipelined", rid, outcome, started,
                            f"#{i} of {len(batch)} status {resp.status} {resp.body[:80]!r}"
                            if is_failure(outcome) else "")
                if resp.cut is not None or "close" in resp.headers.get("connection",
                                                                         "").lower():
                    # The server ends the connection here (HTTP/1.1: the requests after this
                    # one are not answered on it): they may or may not have reached the app.
                    for r, _, _ in batch[i + 1:]:
                        self.record("pipelined", r, "conn closed by the server after the "
                                    "answer before (Connection: close or a cut)", started)
                    return
        finally:
            c.close()

    def op_upload(self, rng: random.Random) -> None:
        size = rng.randint(1 * MiB, 8 * MiB)
        body = rng.randbytes(size)
        digest = hashlib.sha256(body).hexdigest()
        chunked = rng.random() < 0.25

        def build(rid: str) -> tuple[Any, Any]:
            if chunked:
                data = request_head("POST", "/upload", rid, chunked=True) + chunked_body(
                    body, rng)
            else:
                data = request_head("POST", "/upload", rid, length=size) + body
            return data, _upload_check(rid, size, digest)

        self.one("upload", build)

    def op_download(self, rng: random.Random) -> None:
        size = rng.randint(1 * MiB, 16 * MiB)
        self.one("download", lambda rid: (request_head("GET", f"/download?size={size}", rid),
                                          _download_check(rid, size)))

    def op_slow(self, rng: random.Random) -> None:
        def pieces_of(data: bytes, biggest: int, budget: float) -> list[tuple[bytes, float]]:
            out, i = [], 0
            while i < len(data):
                n = rng.randint(1, biggest)
                out.append((data[i: i + n], min(budget, rng.uniform(0.01, 0.08))))
                budget = max(0.0, budget - out[-1][1])
                i += n
            return out

        def build(rid: str) -> tuple[Any, Any]:
            if rng.random() < 0.5:
                head = request_head("GET", "/echo", rid)
                return pieces_of(head, 24, 1.0), _echo_check(rid)
            body = rng.randbytes(rng.randint(1, 64 * 1024))
            digest = hashlib.sha256(body).hexdigest()
            head = request_head("POST", "/upload", rid, length=len(body))
            return (pieces_of(head, 24, 0.6) + pieces_of(body, 8192, 0.6),
                    _upload_check(rid, len(body), digest))

        self.one("slow", build)

    def op_websocket(self, rng: random.Random) -> None:
        rid = self.rid()
        started = time.monotonic()
        c = self.connect("websocket", rid, started)
        if c is None:
            return
        try:
            key = base64.b64encode(rng.randbytes(16)).decode()
            head = request_head("GET", "/ws", rid, extra=(
                "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13"))
            try:
                c.send(head)
                resp = c.read_response()
            except Lost as exc:
                self.record("websocket", rid, "LOST", started, str(exc))
                return
            except Closed as exc:
                self.record("websocket", rid, f"conn {exc.kind} before the answer", started)
                return
            if resp.status != 101:
                outcome = judge(resp, rid)
                if outcome == "ok":  # a 200 to an upgrade: the app always switches
                    outcome = "UNDOCUMENTED 200 to an upgrade"
                self.record("websocket", rid, outcome, started,
                            f"status {resp.status} {resp.body[:80]!r}")
                return
            if resp.headers.get("x-soak-id") != rid:
                self.record("websocket", rid, f"MIXED 101 of {resp.headers.get('x-soak-id')}",
                            started)
                return
            accept = base64.b64encode(hashlib.sha1(
                key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
            if resp.headers.get("sec-websocket-accept") != accept:
                self.record("websocket", rid, "CORRUPT Sec-WebSocket-Accept", started)
                return
            outcome = "ok"
            for i in range(rng.randint(1, 5)):
                msg = rng.randbytes(rng.randint(1, 64 * 1024))
                if i == 0:
                    msg = f"id={rid}\n".encode() + msg
                try:
                    c.send(msg, stop_on_answer=False)
                    echo = c.recv_exactly(len(msg))
                except Lost as exc:
                    outcome = "LOST"
                    self.record("websocket", rid, outcome, started, f"echo {i}: {exc}")
                    return
                except Closed as exc:
                    outcome = f"conn tunnel cut ({exc.kind})"
                    break
                if echo != msg:
                    m = re.match(rb"id=(\S+)", echo)
                    outcome = (f"MIXED echo of {m.group(1).decode('latin-1')}" if m and m.group(1)
                               != rid.encode() else "CORRUPT echo differs")
                    break
            self.record("websocket", rid, outcome, started)
        finally:
            c.close()

    def op_burst(self, rng: random.Random) -> None:
        n = rng.randint(self.a.cc, 3 * self.a.cc)
        sleep = rng.choice((50, 100, 200, 300))
        gate = threading.Barrier(n, timeout=10)

        def one() -> None:
            try:
                gate.wait()
            except threading.BrokenBarrierError:
                pass
            self.one("burst", lambda rid: (request_head("GET", f"/echo?sleep={sleep}", rid),
                                           _echo_check(rid)))

        threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.a.client_timeout + 15)

    # ------------------------------------------------------------------ faults

    def fault_requests(self, kind: str, rng: random.Random) -> None:
        """Requests the app answers wrongly on purpose, each in its own thread."""
        def run(path: str) -> None:
            try:
                self.one(kind, lambda rid: (request_head("GET", path, rid), None))
            finally:
                self.end()

        n = rng.randint(1, 3)
        paths = []
        for _ in range(n):
            if kind == "reset":
                after = rng.choice((-1, 0, 4096, 65536, 65536, 512 * 1024))
                paths.append(f"/reset?size={MiB}&after={after}")
            else:
                paths.append(f"/stall?secs={self.a.timeout_seconds + 3}")
        self.fault(kind, requests=n, paths=",".join(p.split("?", 1)[1] for p in paths))
        for p in paths:
            self.begin()  # before the thread starts: an idle period waits for it
            threading.Thread(target=run, args=(p,), daemon=True).start()

    def kill_pod(self, rng: random.Random) -> bool:
        procs = self.processes()
        choices = [("app", p) for p in procs["apps"]] + [("sidecar", p)
                                                         for p in procs["sidecars"]]
        if not choices:
            return False
        role, pid = rng.choice(choices)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.fault("pod_kill", role=role, pid=pid, pods=len(procs["apps"]))
        return True

    def idle(self) -> None:
        """The load stops until the revision is at zero (no pod process), then comes back."""
        started = self.now()
        self.go.clear()
        self.fault("idle", phase="start")
        with self.busy_cv:
            self.busy_cv.wait_for(lambda: self.busy == 0 or self.stop.is_set(),
                                  timeout=self.a.client_timeout + 20)
        quiet_at = self.now()
        limit = time.monotonic() + self.a.window + self.a.grace + 60
        zero_at = None
        while time.monotonic() < limit and not self.stop.is_set():
            with self.lock:
                last = self.decisions[-1] if self.decisions else None
            if last is not None and last[2] == 0 and self.pods_now == (0, 0):
                procs = self.processes()
                if not procs["apps"] and not procs["sidecars"]:
                    zero_at = self.now()
                    break
            self.stop.wait(0.2)
        cycle: dict[str, Any] = {"start": round(started, 3), "quiet": round(quiet_at, 3),
                                 "zero": None if zero_at is None else round(zero_at, 3)}
        if zero_at is None:
            print(f"  [{self.now():7.1f}s] idle: not at zero after "
                  f"{self.now() - quiet_at:.0f} s", flush=True)
        if not self.stop.is_set():
            # The way back: one request from zero (a cold start through the activator).
            t = time.monotonic()
            self.one("wake", lambda rid: (request_head("GET", "/echo", rid), _echo_check(rid)))
            cycle["cold_start_s"] = round(time.monotonic() - t, 3)
        self.go.set()
        cycle["end"] = round(self.now(), 3)
        self.idle_cycles.append(cycle)
        print(f"  [{self.now():7.1f}s] idle: quiet {cycle['quiet'] - cycle['start']:.1f} s "
              f"after the stop, zero at +{(zero_at or 0) - quiet_at:.1f} s, cold start "
              f"{cycle.get('cold_start_s', 0) * 1000:.0f} ms", flush=True)

    def schedule(self) -> list[tuple[float, str]]:
        """Fault times (seconds from the start) from the seed: idle periods evenly spread,
        the other faults uniformly in the rest; every kind at least once."""
        d = self.a.duration
        rng = self.rng
        events: list[tuple[float, str]] = []
        n_idle = max(1, int(d // 120))
        for k in range(n_idle):
            events.append((d * (k + 0.5 + rng.uniform(-0.1, 0.1)) / (n_idle + 0.5), "idle"))
        for kind, every in (("pod_kill", 25.0), ("reset", 20.0), ("stall", 30.0)):
            n = max(1, round(d / every))
            for k in range(n):
                events.append((d * (0.05 + 0.85 * (k + rng.uniform(0.1, 0.9)) / n), kind))
        return sorted(events)

    def faults_loop(self) -> None:
        events = self.schedule()
        done: Counter[str] = Counter()
        rng = random.Random(self.seed + 1)
        end = self.a.duration
        pending = list(events)
        while pending and not self.stop.is_set() and self.now() < end:
            at, kind = pending[0]
            wait = at - self.now()
            if wait > 0:
                self.stop.wait(min(wait, 0.5))
                continue
            pending.pop(0)
            if kind == "idle":
                self.idle()
            elif kind == "pod_kill":
                for _ in range(50):  # at most 10 s for a pod to exist
                    if self.kill_pod(rng) or self.stop.wait(0.2):
                        break
            else:
                self.fault_requests(kind, rng)
            done[kind] += 1
        # A run too short for its schedule still has each kind of fault once.
        for kind in ("pod_kill", "reset", "stall"):
            if not done[kind] and not self.stop.is_set():
                if kind == "pod_kill":
                    for _ in range(50):
                        if self.kill_pod(rng) or self.stop.wait(0.2):
                            break
                else:
                    self.fault_requests(kind, rng)

    # ------------------------------------------------------------------ the run

    def run(self) -> int:
        a = self.a
        print(f"soak: seed {self.seed}, {a.duration:.0f} s, {a.workers} workers, CC {a.cc}, "
              f"timeoutSeconds {a.timeout_seconds}, window {a.window:.0f} s, grace {a.grace} s,"
              f" extensions {'off' if os.environ.get('DATAPLANE_NO_EXTENSIONS') else 'on'}",
              flush=True)
        self.t0 = time.monotonic()
        self.start_runtime()
        print(f"soak: runtime pid {self.rt.pid if self.rt else '-'}, front door "
              f"http://{ADDR}:{self.port} (Host: {HOST})", flush=True)
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        workers = [threading.Thread(target=self.worker, args=(i,), daemon=True)
                   for i in range(a.workers)]
        for w in workers:
            w.start()
        faults = threading.Thread(target=self.faults_loop, daemon=True)
        faults.start()
        next_report = 30.0
        assert self.rt is not None
        while self.now() < a.duration:
            if self.rt.poll() is not None:
                print(f"soak: the runtime exited ({self.rt.returncode}) during the run",
                      flush=True)
                self.runtime_alerts.append(f"runtime exited {self.rt.returncode} mid-run")
                self.runtime_died = True
                break
            time.sleep(0.2)
            if self.now() >= next_report:
                next_report += 30.0
                with self.lock:
                    done = self.done_total
                    bad = sum(n for c in self.outcomes.values() for o, n in c.items()
                              if is_failure(o))
                rss = self.samples[-1][1] if self.samples else 0
                print(f"  [{self.now():7.1f}s] {done} requests, {bad} failed, runtime RSS "
                      f"{rss / MiB:.1f} MiB, pods {self.pods_now[0]}", flush=True)
        # The fault schedule ends first: a kind of fault it has not run yet runs now (a short
        # run whose idle period took the time of its other faults), under load.
        faults.join(a.client_timeout + a.window + a.grace + 90)
        self.load_end = self.now()
        self.go.set()
        self.stop.set()
        for t in workers:
            t.join(a.client_timeout + 20)
        with self.busy_cv:  # fault requests still in flight
            self.busy_cv.wait_for(lambda: self.busy == 0, timeout=a.client_timeout + 20)
        sampler.join(5)
        return 0


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, utime, stime) of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data.rsplit(")", 1)[1].split()
    return rest[0], int(rest[1]), int(rest[11]), int(rest[12])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    st = _stat(pid)
    return 0.0 if st is None else (st[2] + st[3]) / os.sysconf("SC_CLK_TCK")


def _with_env(needle: str) -> list[int]:
    """Live processes whose environment holds ``needle`` (``NAME=value``)."""
    want = needle.encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read() + b"\0"
        except OSError:
            continue
        st = _stat(int(entry))
        if (b"\0" + want in b"\0" + env) and st is not None and st[0] != "Z":
            found.append(int(entry))
    return found


# --------------------------------------------------------------------------- the report


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def scale_to_zero_cycles(soak: Soak) -> int:
    """Decisions to zero followed by one back up, with no pod process seen in between."""
    cycles = 0
    zero_at: float | None = None
    for t, _ready, desired in soak.decisions:
        if desired == 0:
            zero_at = t if zero_at is None else zero_at
        elif zero_at is not None:
            if any(zero_at <= s[0] <= t and s[3] == 0 and s[4] == 0 for s in soak.samples):
                cycles += 1
            zero_at = None
    return cycles


def report(soak: Soak, stopped: dict[str, Any], wall: float) -> dict[str, Any]:
    a = soak.a
    samples = soak.samples
    rss = [s[1] for s in samples if s[1]]
    tree = [s[2] for s in samples if s[2]]
    totals: Counter[str] = Counter()
    for c in soak.outcomes.values():
        totals.update(c)
    failures = {o: n for o, n in totals.items() if is_failure(o)}
    lost = sum(n for o, n in totals.items() if o.startswith("LOST"))
    mixed = sum(n for o, n in totals.items() if o.startswith("MIXED"))
    faults = Counter(f["kind"] for f in soak.faults if f.get("phase") in (None, "start"))
    # The ordinary requests' error answers and connection errors, and how many of them were
    # under a pod kill (in flight when it came, or started within 2.5 s after it: the dead pod
    # is still routed until the runtime has seen it exit).
    kills = [f["t"] for f in soak.faults if f["kind"] == "pod_kill"]
    ordinary = [e for e in soak.not_ok if e[2] not in FAULT_REQUEST_KINDS]
    near_kill = sum(1 for start, end, _k, _o in ordinary
                    if any(start <= k + 2.5 and end >= k - 0.1 for k in kills))
    # RSS growth over the second half of the run (a leak shows as a steady slope).
    half = [s for s in samples if s[0] >= soak.load_end / 2 and s[1]]
    slope = None
    if len(half) >= 10:
        n = len(half)
        mx = sum(s[0] for s in half) / n
        my = sum(s[1] for s in half) / n
        den = sum((s[0] - mx) ** 2 for s in half)
        if den:
            slope = sum((s[0] - mx) * (s[1] - my) for s in half) / den * 60 / MiB
    doc: dict[str, Any] = {
        "meta": {
            "seed": soak.seed, "duration_s": a.duration, "wall_s": round(wall, 1),
            "load_s": round(soak.load_end, 1), "workers": a.workers, "cc": a.cc,
            "timeout_seconds": a.timeout_seconds, "stable_window_s": a.window,
            "scale_to_zero_grace_s": a.grace, "max_scale": a.max_scale,
            "client_timeout_s": a.client_timeout,
            "extensions": not os.environ.get("DATAPLANE_NO_EXTENSIONS"),
            "commit": _git_head(), "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(soak.wall0)),
        },
        "requests_total": sum(soak.requests.values()),
        "requests_by_kind": dict(soak.requests),
        "outcomes_total": dict(totals.most_common()),
        "outcomes_by_kind": {k: dict(c.most_common()) for k, c in soak.outcomes.items()},
        "latency_ok_ms": {k: {"p50": round(_pct(v, 0.5) * 1000, 1),
                              "p99": round(_pct(v, 0.99) * 1000, 1), "n": len(v)}
                          for k, v in soak.latency.items() if v},
        "failures": failures,
        "lost": lost,
        "mixed": mixed,
        "failure_examples": soak.failures[:50],
        "errors_of_ordinary_requests": len(ordinary),
        "errors_of_ordinary_requests_near_a_pod_kill": near_kill,
        "not_ok": soak.not_ok,
        "faults_by_kind": {k: faults.get(k, 0) for k in FAULT_KINDS},
        "faults": soak.faults,
        "pods_killed": faults.get("pod_kill", 0),
        "pods_replaced": len(soak.exited_pods),
        "scale_to_zero_cycles": scale_to_zero_cycles(soak),
        "idle_cycles": soak.idle_cycles,
        "rss": {
            "runtime_start": rss[0] if rss else None,
            "runtime_end": rss[-1] if rss else None,
            "runtime_max": max(rss) if rss else None,
            "runtime_at_10pct": next((s[1] for s in samples
                                      if s[0] >= soak.load_end * 0.1 and s[1]), None),
            "tree_start": tree[0] if tree else None,
            "tree_end": tree[-1] if tree else None,
            "tree_max": max(tree) if tree else None,
            "runtime_slope_second_half_mib_per_min": None if slope is None else round(slope, 3),
        },
        "runtime_cpu_s": samples[-1][6] if samples else None,
        "runtime": {**stopped, "decisions": len(soak.decisions),
                    "alerts": soak.runtime_alerts[:50]},
        "samples_fields": ["t", "runtime_rss", "tree_rss", "apps", "sidecars",
                           "requests_done", "runtime_cpu_s"],
        "samples": samples,
    }
    doc["ok"] = not failures and not stopped.get("left_behind") and not soak.runtime_died
    return doc


def _git_head() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def print_summary(doc: dict[str, Any]) -> None:
    m = doc["meta"]
    print()
    print(f"soak: {m['wall_s']:.0f} s (load {m['load_s']:.0f} s), seed {m['seed']}, "
          f"commit {m['commit']}, extensions {'on' if m['extensions'] else 'off'}")
    print(f"requests: {doc['requests_total']}")
    for kind, n in sorted(doc["requests_by_kind"].items(), key=lambda kv: -kv[1]):
        outs = doc["outcomes_by_kind"][kind]
        lat = doc["latency_ok_ms"].get(kind)
        lat_s = f"  (ok p50 {lat['p50']} ms, p99 {lat['p99']} ms)" if lat else ""
        print(f"  {kind:10} {n:7}{lat_s}")
        for o, k in outs.items():
            print(f"      {k:7}  {o}")
    print("outcomes:")
    for o, n in doc["outcomes_total"].items():
        print(f"  {n:7}  {o}")
    print(f"errors of the ordinary requests: {doc['errors_of_ordinary_requests']}, "
          f"{doc['errors_of_ordinary_requests_near_a_pod_kill']} of them under a pod kill")
    print(f"lost: {doc['lost']}, mixed: {doc['mixed']}, other failures: "
          f"{sum(doc['failures'].values()) - doc['lost'] - doc['mixed']}")
    f = doc["faults_by_kind"]
    print(f"faults: {f['pod_kill']} pods killed ({doc['pods_replaced']} replaced), "
          f"{f['reset']} resets, {f['stall']} stalls, {f['idle']} idle periods; "
          f"scale-to-zero cycles seen: {doc['scale_to_zero_cycles']}")
    colds = [c.get("cold_start_s") for c in doc["idle_cycles"] if c.get("cold_start_s")]
    if colds:
        print("cold starts after idle: " + ", ".join(f"{c * 1000:.0f} ms" for c in colds))
    r = doc["rss"]
    if r["runtime_start"]:
        print(f"runtime RSS: start {r['runtime_start'] / MiB:.1f} MiB, end "
              f"{r['runtime_end'] / MiB:.1f} MiB, max {r['runtime_max'] / MiB:.1f} MiB; "
              f"at 10% of the run {(r['runtime_at_10pct'] or 0) / MiB:.1f} MiB; slope over the "
              f"second half {r['runtime_slope_second_half_mib_per_min']} MiB/min")
        print(f"tree RSS (runtime, zygote, pods): start {r['tree_start'] / MiB:.1f} MiB, end "
              f"{r['tree_end'] / MiB:.1f} MiB, max {r['tree_max'] / MiB:.1f} MiB")
    rt = doc["runtime"]
    print(f"runtime: {doc['runtime_cpu_s']} s CPU, stopped in {rt['stop_s']} s (exit "
          f"{rt['exit']}), {len(rt['left_behind'])} processes left behind")
    for line in rt["alerts"]:
        print(f"  runtime said: {line}")
    for ex in doc["failure_examples"][:10]:
        print(f"  FAILED {ex}")
    if doc.get("interrupted"):
        print("soak: interrupted before the end")
    print("soak: " + ("PASS" if doc["ok"] else "FAIL"))


def plot(doc: dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: --plot needs matplotlib (pip install matplotlib); no plot drawn")
        return
    s = doc["samples"]
    if not s:
        return
    t = [x[0] for x in s]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(t, [x[1] / MiB for x in s], color="#1f77b4", label="runtime (front door, activator,"
             " KPA)")
    ax1.set_ylabel("runtime RSS (MiB)")
    ax1.set_ylim(bottom=0, top=max(x[1] for x in s) / MiB * 1.3)
    axt = ax1.twinx()
    axt.plot(t, [x[2] / MiB for x in s], color="#7f7f7f", lw=0.8, label="whole tree (+ pods)")
    axt.set_ylabel("tree RSS (MiB)", color="#7f7f7f")
    axt.set_ylim(bottom=0)
    rps = [0.0] + [(b[5] - a_[5]) / max(1e-9, b[0] - a_[0]) for a_, b in zip(s, s[1:],
                                                                           strict=False)]
    ax2.plot(t, rps, color="#59a14f", lw=0.8, label="requests/s")
    ax2.set_ylabel("requests/s")
    ax2.set_xlabel("seconds")
    ax2.set_ylim(bottom=0)
    axp = ax2.twinx()
    axp.step(t, [x[3] for x in s], where="post", color="#b07aa1", lw=0.8, label="pods")
    axp.set_ylabel("pods", color="#b07aa1")
    axp.set_ylim(bottom=0, top=max(1, max(x[3] for x in s)) + 1)
    # Pods killed: lines across both panels; resets and stalls: marks along the top.
    kills = [f["t"] for f in doc["faults"] if f["kind"] == "pod_kill"]
    for ax in (ax1, ax2):
        for i, x in enumerate(kills):
            ax.axvline(x, color="#d62728", lw=0.7, alpha=0.6,
                       label="pod killed" if ax is ax1 and i == 0 else None)
    top = ax1.get_ylim()[1]
    for kind, mark, colour, y in (("reset", "v", "#ff7f0e", 0.96), ("stall", "x", "#8c564b",
                                                                     0.90)):
        xs = [f["t"] for f in doc["faults"] if f["kind"] == kind]
        if xs:
            ax1.plot(xs, [top * y] * len(xs), mark, color=colour, ms=4, ls="none",
                     label=f"{kind} requests")
    for i, cyc in enumerate(doc["idle_cycles"]):
        for ax in (ax1, ax2):
            ax.axvspan(cyc["start"], cyc["end"], color="#cccccc", alpha=0.5,
                       label="idle (to zero and back)" if ax is ax1 and i == 0 else None)
    h1, l1 = ax1.get_legend_handles_labels()
    h2, l2 = axt.get_legend_handles_labels()
    ax1.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=7, ncol=3)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = axp.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=7)
    m = doc["meta"]
    ax1.set_title(f"soak: {doc['requests_total']} requests in {m['load_s']:.0f} s, "
                  f"{doc['pods_killed']} pods killed, {doc['scale_to_zero_cycles']} scale-to-zero"
                  f" cycles, {doc['lost']} lost, {doc['mixed']} mixed", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def _raise_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600.0, help="seconds of the run (600)")
    p.add_argument("--seed", type=int, default=None, help="the fault schedule's and the "
                   "load's seed (random by default; printed)")
    p.add_argument("--json", default=None, help="write the whole result here")
    p.add_argument("--plot", default=None, help="draw RSS and requests/s over time (PNG)")
    p.add_argument("--workers", type=int, default=6, help="load threads (6)")
    p.add_argument("--think", type=float, default=0.02,
                   help="up to this many seconds between a worker's operations (0.02)")
    p.add_argument("--cc", type=int, default=4, help="containerConcurrency (4)")
    p.add_argument("--timeout-seconds", type=int, default=5,
                   help="the revision's timeoutSeconds (5); stalls last 3 s longer")
    p.add_argument("--window", type=float, default=6.0,
                   help="the KPA's stable window, seconds (6; below 6 only through the "
                        "runtime's --stable-window, Knative's annotation refuses it)")
    p.add_argument("--grace", type=float, default=2.0,
                   help="scale-to-zero grace period, seconds (2)")
    p.add_argument("--max-scale", type=int, default=5, help="max-scale annotation (5)")
    p.add_argument("--client-timeout", type=float, default=30.0,
                   help="seconds of silence before a request counts as LOST (30)")
    p.add_argument("--keep-tmp", action="store_true",
                   help="keep the temp dir (the YAML, each pod's logs) and say where")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every failure and scale decision as it happens")
    a = p.parse_args(argv)
    if a.seed is None:
        a.seed = int.from_bytes(os.urandom(4), "big")
    if a.client_timeout <= a.timeout_seconds + 3:
        p.error("--client-timeout must exceed --timeout-seconds + 3 (a stall's length)")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started ignoring it
    soak = Soak(a)
    t = time.monotonic()
    interrupted = False
    stopped: dict[str, Any] = {}
    try:
        soak.run()
    except KeyboardInterrupt:
        interrupted = True
        print("\nsoak: interrupted; stopping", flush=True)
        soak.load_end = soak.now() if soak.t0 else 0.0
    finally:
        soak.go.set()
        soak.stop.set()
        try:
            stopped = soak.stop_runtime()
        finally:
            if a.keep_tmp:
                print(f"soak: temp dir kept: {soak.tmp}")
            else:
                shutil.rmtree(soak.tmp, ignore_errors=True)
    doc = report(soak, stopped, time.monotonic() - t)
    if interrupted:
        doc["ok"] = False
        doc["interrupted"] = True
    print_summary(doc)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(doc, indent=1))
        print(f"soak: wrote {a.json}")
    if a.plot:
        plot(doc, a.plot)
        if Path(a.plot).exists():
            print(f"soak: drew {a.plot}")
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
