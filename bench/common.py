"""The bench harness's plumbing: its constants, child processes and their cleanup, ports,
readiness waits and the /proc readings (CPU time and RSS of a process tree)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "bench" / "out" / "results.json"

NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
WRK = "/usr/bin/wrk"
H2LOAD = "/usr/bin/h2load"  # --protocol h2c: the load (nghttp2-client)
NGHTTPD = "/usr/sbin/nghttpd"  # --protocol h2c: the app (nghttp2-server)
APT_PACKAGES = ["nginx-light", "haproxy", "wrk", "nghttp2-client", "nghttp2-server"]
# --protocol h2c: (connections, streams per connection) at CC=0 and at any other CC (inside
# Knative's queue of 10 x CC at CC=10).
H2_SHAPE = {0: (50, 10), "cc": (10, 5)}

HOST = "127.0.0.1"  # the only address any load is sent to
TARGETS = ("direct", "haproxy", "queue-proxy", "activator", "haproxy-pod")
TARGET_ALIASES = {
    "nginx": "direct", "qp": "queue-proxy", "proxy": "queue-proxy", "act": "activator"
}
# "haproxy-pod" is HAProxy where the activator sits in the activator row: in front of the same
# queue-proxy pod, so both pay for the same four busy processes on the machine's cores.
# The activator row: requests name this revision (Knative-Serving-* headers); its one pod is a
# queue-proxy (default variant) in front of nginx.
BENCH_REVISION = ("bench", "bench-00001")

# Queue-proxy variants: extra environment on top of the Knative environment below.
VARIANTS: dict[str, dict[str, str]] = {
    # Autoscaler stats off (and no request metrics): compare with "metrics" to see what stats
    # and Prometheus request metrics cost.
    "bare": {"QUEUE_STATS_ENABLED": "false"},
    "default": {},
    # Pure-Python data plane (the proxy is expected to skip its compiled speedups).
    "pure": {"DATAPLANE_NO_EXTENSIONS": "1"},
    # Request metrics on (Prometheus), as with Knative's observability config.
    "metrics": {"OBSERVABILITY_CONFIG": json.dumps({"requestMetrics": {"protocol": "prometheus"}})},
    # Tracing on (OBSERVABILITY_CONFIG's "tracing", http/protobuf) at sampling rates 1 and 0.1,
    # exporting to a stand-in collector in the bench's process that drops what it gets
    # (bench/otlp_sink.py): compare with "default" to see what tracing costs.
    "trace1": {"OBSERVABILITY_CONFIG": json.dumps({"tracing": {
        "protocol": "http/protobuf", "endpoint": "{otlp_sink}", "samplingRate": 1}})},
    "trace0.1": {"OBSERVABILITY_CONFIG": json.dumps({"tracing": {
        "protocol": "http/protobuf", "endpoint": "{otlp_sink}", "samplingRate": 0.1}})},
}
OTLP_SINK = "{otlp_sink}"  # in a variant's values: the URL of the bench's OTLP stand-in
_sink: Any = None


def variant_env(variant: str) -> dict[str, str]:
    """A variant's extra environment, the OTLP stand-in started (once) if it names it."""
    global _sink
    env = dict(VARIANTS[variant])
    if any(OTLP_SINK in v for v in env.values()):
        if _sink is None:
            from otlp_sink import OtlpSink

            _sink = OtlpSink().start()
        env = {k: v.replace(OTLP_SINK, _sink.url) for k, v in env.items()}
    return env

# --matrix: the grid. Options given explicitly override these.
MATRIX = {
    "cc": "0,1,10,100",
    "connections": "1,50,500",
    "sizes": "1k,64k,1m",
    "targets": "direct,haproxy,queue-proxy,activator",
}
DEFAULT_CC = "0,10"
DEFAULT_CONNECTIONS = "50"
MAX_CONNECTIONS = 2000  # HAProxy's global maxconn is 4096: a client and a server side each
# Response sizes (--sizes): "13" is GET / ("Hello World!\n" from nginx's config); any other size
# is a static file of that many bytes in nginx's www dir, GET /<size>.bin.
HELLO_SIZE = "13"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}
MAX_SIZE_BYTES = 64 * 1024 * 1024
# Soft RLIMIT_NOFILE for this process and its children (they inherit it): wrk, the proxies and
# nginx each hold one or two descriptors per connection; 1024, a common default, is short of
# 500 connections through a proxy.
OPEN_FILES = 16384

DEFAULT_REPEAT = 3  # measurements per row (1 with --quick)
MAX_REPEAT = 50
READY_TIMEOUT = 10.0  # seconds to wait for a started server to answer 200
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
WRK_TIMEOUT = "5s"  # wrk's per-request timeout (a timed-out request counts as an error)
WRK_GRACE = 30.0  # seconds past the run's duration before wrk itself is killed

CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk's done() hook prints exact numbers (latencies in microseconds) as one JSON line.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.1f,"duration_us":%.1f,"bytes":%.1f,' ..
    '"connect":%.1f,"read":%.1f,"write":%.1f,"status":%.1f,"timeout":%.1f,' ..
    '"mean_us":%.3f,"max_us":%.1f,"p50_us":%.1f,"p75_us":%.1f,"p90_us":%.1f,' ..
    '"p99_us":%.1f,"p999_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(75),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"""


class BenchError(RuntimeError):
    """A target that did not start, or a load run that did not complete."""


# --------------------------------------------------------------------------------------------
# Child processes and cleanup


class Children:
    """Every process and temp dir this harness makes, so that all of them are cleaned up."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.tmpdirs: list[Path] = []
        self.keep_tmp = False

    def mkdtemp(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="qp-bench-"))
        self.tmpdirs.append(path)
        return path

    def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        capture: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Starts a child in its own session (Ctrl-C reaches only us; we stop it)."""
        if capture:
            out: Any = subprocess.PIPE
            err: Any = subprocess.PIPE
        elif log is not None:
            out = open(log, "ab")  # noqa: SIM115 - handed to the child, closed below
            err = subprocess.STDOUT
        else:
            out = err = subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            if log is not None and not capture:
                out.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> float | None:
        """SIGTERM to the child's process group, SIGKILL after ``timeout``, then reap it.

        Returns the seconds it took to exit after SIGTERM, or None if it had to be killed.
        """
        took: float | None = 0.0
        if proc.poll() is None:
            start = time.monotonic()
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
                took = time.monotonic() - start
            except subprocess.TimeoutExpired:
                took = None
                _signal_group(proc, signal.SIGKILL)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self.procs = [(n, p) for n, p in self.procs if p is not proc]
        return took

    def cleanup(self) -> None:
        """Stops every child (newest first) and removes the temp dirs. Safe to call twice."""
        try:
            if _is_main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this
        except ValueError:
            pass
        for _name, proc in reversed(list(self.procs)):
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for _name, proc in reversed(list(self.procs)):
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    print(f"bench: could not reap pid {proc.pid}", file=sys.stderr)
        self.procs.clear()
        if not self.keep_tmp:
            for path in self.tmpdirs:
                shutil.rmtree(path, ignore_errors=True)
        elif self.tmpdirs:
            print(f"bench: kept temp dir(s): {', '.join(map(str, self.tmpdirs))}", file=sys.stderr)
        self.tmpdirs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # The child leads its own session, so its process group id is its pid. Signal it only while
    # the child is unreaped (its pid cannot have been reused then).
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_exit(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------------------------
# Ports, readiness, /proc


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _http11_get(port: int, path: str, tls: bool = False) -> int:
    conn = (http.client.HTTPSConnection(HOST, port, timeout=1.0,
                                        context=ssl._create_unverified_context()) if tls
            else http.client.HTTPConnection(HOST, port, timeout=1.0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def https_get(port: int, path: str) -> int:
    """``_http11_get`` over TLS (the bench's self-signed pair: not verified)."""
    return _http11_get(port, path, tls=True)


def wait_ready(
    name: str, proc: subprocess.Popen[bytes], port: int, path: str, log: Path, timeout: float,
    get: Any = None,
) -> float:
    """Polls GET http://127.0.0.1:port/path (``get``: HTTP/1.1, or ``h2_get``) until it answers
    200; returns the seconds it took."""
    get = get or _http11_get
    start = time.monotonic()
    deadline = start + timeout
    last = "no answer"
    while True:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with status {proc.returncode} before it was ready; log:\n"
                + log_tail(log)
            )
        try:
            status = get(port, path)
            if status == 200:
                return time.monotonic() - start
            last = f"status {status}"
        except Exception as exc:  # noqa: BLE001 - any failure is "not yet"
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise BenchError(
                f"{name} not ready on {HOST}:{port} after {timeout:.0f}s ({last}); log:\n"
                + log_tail(log)
            )
        time.sleep(0.05)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it, found through the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def layout_cpus(layout: str) -> tuple[set[int], set[int]] | None:
    """``--layout split``: (front, back), the CPUs this process may use cut in two halves: the
    load generator and the proxy under test on the first, everything behind the proxy (the
    app; the activator's pod) on the second, as on separate nodes. ``free``: None (the
    scheduler places every process)."""
    if layout == "free":
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise BenchError("--layout split needs 2 CPUs or more")
    half = len(cpus) // 2
    return set(cpus[:half]), set(cpus[half:])


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` and its descendants to ``cpus`` (a thread made later inherits)."""
    for p in descendants(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass  # gone meanwhile


def taskset(argv: list[str], cpus: set[int] | None) -> list[str]:
    """``argv`` to run on ``cpus`` (None: as it is)."""
    if cpus is None:
        return argv
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus)), *argv]


def tree_cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) seconds of the process tree, each with what its reaped children used."""
    user = system = 0
    for p in descendants(pid):
        fields = _proc_stat(p)
        if fields is not None:
            # fields[i] is stat field i+3: utime 14, stime 15, cutime 16, cstime 17.
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
    return user / CLK_TCK, system / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of the process tree, plus what its reaped children used (cutime+cstime)."""
    return sum(tree_cpu_times(pid))


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    return total


def h2_get(port: int, path: str, timeout: float = 1.0) -> int:
    """One GET over h2c (prior knowledge); returns the status (the ``h2`` library, a
    dependency of the package, speaks HTTP/2 for the readiness checks)."""
    import socket

    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import ResponseReceived, StreamEnded, StreamReset

    conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode()),
                          (b":authority", f"{HOST}:{port}".encode())], end_stream=True)
    status = 0
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, ResponseReceived):
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, (StreamEnded, StreamReset)):
                    return status
            sock.sendall(conn.data_to_send())
    return status


def wait_ready_h2(
    name: str, proc: subprocess.Popen[bytes], port: int, path: str, log: Path, timeout: float
) -> float:
    """``wait_ready`` over h2c."""
    return wait_ready(name, proc, port, path, log, timeout, h2_get)
