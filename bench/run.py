#!/usr/bin/env python3
"""Benchmark harness: the queue-proxy against HAProxy doing the same job, in front of nginx.

One command, ``python bench/run.py``, runs on 127.0.0.1 only, with bounded durations:

* nginx (``/usr/sbin/nginx``) is the user container, started once from a generated config;
* for each container concurrency CC, HAProxy (``/usr/sbin/haproxy``) is set up as the same queue
  (one backend server = nginx, ``maxconn CC``, ``http-reuse always``, one thread), and the
  queue-proxy (``python -m proxy`` with Knative's environment) is started for each variant;
* wrk (``/usr/bin/wrk``, one thread, N connections) warms each target up, then measures it;
  a row is (target, CC, variant, connections, response size), with ``--connections 1,50,500``
  and ``--sizes 1k,64k,1m`` (static files nginx serves) as further dimensions (``--matrix``);
* the target's CPU (utime+stime of its process tree, from /proc) over the measured run gives
  CPU microseconds per request; VmRSS after the run gives its memory;
* every row is measured ``--repeat`` times (3), round-robin over all the rows, so that a burst
  of noise on a shared machine is spread over the targets instead of hitting one of them.

It prints a table of the medians (and the min-max of CPU per request), ratios of the
queue-proxy to HAProxy at the same CC (connections, size), and writes JSON, every run and the
medians, to ``bench/out/results.json``; ``--plot FILE.png`` draws it (``bench/plot.py``, the one
part that needs matplotlib). Every child process and the temp dir are cleaned up on exit, error,
Ctrl-C or SIGTERM. Otherwise only the standard library is used.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "bench" / "out" / "results.json"

NGINX = "/usr/sbin/nginx"
HAPROXY = "/usr/sbin/haproxy"
WRK = "/usr/bin/wrk"
APT_PACKAGES = ["nginx-light", "haproxy", "wrk"]

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
}

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


def wait_ready(
    name: str, proc: subprocess.Popen[bytes], port: int, path: str, log: Path, timeout: float
) -> float:
    """Polls GET http://127.0.0.1:port/path until it answers 200; returns the seconds it took."""
    start = time.monotonic()
    deadline = start + timeout
    last = "no answer"
    while True:
        if proc.poll() is not None:
            raise BenchError(
                f"{name} exited with status {proc.returncode} before it was ready; log:\n"
                + log_tail(log)
            )
        conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return time.monotonic() - start
            last = f"status {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
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


# --------------------------------------------------------------------------------------------
# The servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;

    server {{
        listen {host}:{port} reuseport;
        root {tmp}/www;
        location = / {{
            default_type text/plain;
            return 200 "Hello World!\\n";
        }}
        location / {{
            default_type application/octet-stream;
        }}
    }}
}}
"""


def start_nginx(
    children: Children, tmp: Path, ready_timeout: float, files: dict[str, int] | None = None
) -> Server:
    """nginx from a generated config; ``files`` maps paths (``/64k.bin``) to sizes in bytes:
    static files written to its www dir (``/1k.bin``, 1 KiB, is always there)."""
    port = free_port()
    www = tmp / "www"
    www.mkdir(exist_ok=True)
    for path, size in {"/1k.bin": 1024, **(files or {})}.items():
        (www / path.lstrip("/")).write_bytes(b"x" * (size - 1) + b"\n")
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=port))
    log = tmp / "nginx.out"
    argv = [NGINX, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)]
    proc = children.spawn("nginx", argv, log=log)
    server = Server("nginx", proc, port, log)
    try:
        server.ready_s = wait_ready("nginx", proc, port, "/", log, ready_timeout)
    except BenchError as exc:
        raise BenchError(f"{exc}\nerror_log:\n{log_tail(tmp / 'nginx-error.log')}") from None
    return server


HAPROXY_CONF = """\
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout queue 300s
    timeout http-request 300s
    timeout http-keep-alive 300s

frontend fe
    bind {host}:{port}
    default_backend be

backend be
    server app {host}:{upstream}{maxconn}
"""


def start_haproxy(
    children: Children, tmp: Path, cc: int, upstream: int, ready_timeout: float
) -> Server:
    port = free_port()
    conf = tmp / f"haproxy-cc{cc}.cfg"
    maxconn = f" maxconn {cc}" if cc > 0 else ""
    conf.write_text(HAPROXY_CONF.format(host=HOST, port=port, upstream=upstream, maxconn=maxconn))
    log = tmp / f"haproxy-cc{cc}.out"
    check = subprocess.run(
        [HAPROXY, "-c", "-q", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        raise BenchError(f"haproxy rejected its config {conf}:\n{check.stdout}{check.stderr}")
    # -db: stay in the foreground, no master process: the pid we spawn is the one that works.
    proc = children.spawn("haproxy", [HAPROXY, "-db", "-f", str(conf)], log=log)
    server = Server("haproxy", proc, port, log)
    server.ready_s = wait_ready("haproxy", proc, port, "/", log, ready_timeout)
    return server


def proxy_env(
    cc: int, upstream: int, ports: dict[str, int], extra: dict[str, str]
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CONTAINER_CONCURRENCY": str(cc),
            "QUEUE_SERVING_PORT": str(ports["serving"]),
            "QUEUE_SERVING_TLS_PORT": str(ports["tls"]),
            "USER_PORT": str(upstream),
            "REVISION_TIMEOUT_SECONDS": "300",
            "SERVING_NAMESPACE": "bench",
            "SERVING_CONFIGURATION": "bench",
            "SERVING_REVISION": "bench-00001",
            "SERVING_POD": "bench-pod",
            "SERVING_POD_IP": HOST,
            "SERVING_LOGGING_CONFIG": "",
            "SERVING_LOGGING_LEVEL": "info",
            "QUEUE_ADMIN_PORT": str(ports["admin"]),
            "QUEUE_METRICS_PORT": str(ports["metrics"]),
            "METRICS_PROMETHEUS_PORT": str(ports["prometheus"]),
            # Not Knative's: no 30 s drain on SIGTERM between rows.
            "QUEUE_DRAIN_QUIET_PERIOD": "0",
        }
    )
    env.update(extra)
    return env


def start_queue_proxy(
    children: Children,
    tmp: Path,
    cc: int,
    upstream: int,
    variant: str,
    extra_env: dict[str, str],
    cmd: list[str],
    ready_timeout: float,
) -> Server:
    names = ("serving", "tls", "admin", "metrics", "prometheus")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = proxy_env(cc, upstream, ports, extra_env)
    log = tmp / f"queue-proxy-{variant}-cc{cc}.out"
    proc = children.spawn("queue-proxy", cmd, log=log, env=env, cwd=REPO_ROOT)
    server = Server("queue-proxy", proc, ports["serving"], log, info={"ports": ports})
    server.ready_s = wait_ready(
        f"queue-proxy ({' '.join(cmd)})", proc, server.port, "/", log, ready_timeout
    )
    return server


def _control(port: int, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
    body = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=body, method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def start_activator(
    children: Children, tmp: Path, cc: int, pod: Server, ready_timeout: float
) -> Server:
    """``python -m activator serve`` with one revision whose one pod is ``pod``."""
    port, admin = free_ports(2)
    log = tmp / f"activator-cc{cc}.out"
    argv = [sys.executable, "-m", "activator", "serve", "--host", HOST, "--port", str(port),
            "--admin-port", str(admin), "--drain-timeout", "0"]
    proc = children.spawn("activator", argv, log=log, cwd=REPO_ROOT)
    server = Server("activator", proc, port, log)
    start = time.monotonic()
    ns, name = BENCH_REVISION
    path = f"/revisions/{ns}/{name}"
    deadline = start + ready_timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"activator exited ({proc.returncode}):\n{log_tail(log)}")
        try:
            _control(admin, "PUT", path, {"containerConcurrency": cc, "timeoutSeconds": 300})
            break
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"activator's control API did not answer:\n{log_tail(log)}"
                ) from None
            time.sleep(0.05)
    _control(admin, "PUT", path + "/endpoints", {"ready": [f"{HOST}:{pod.port}"]})
    while not _control(admin, "GET", path)["healthyPods"]:
        if time.monotonic() > deadline:
            raise BenchError(f"activator never saw its pod healthy:\n{log_tail(log)}")
        time.sleep(0.02)
    server.ready_s = time.monotonic() - start
    return server


# --------------------------------------------------------------------------------------------
# wrk

_TIME_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def time_to_us(token: str) -> float:
    """wrk's time notation ('612.00us', '1.20ms', '2.00s', '1.00m') in microseconds."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)", token.strip())
    if not m:
        raise ValueError(f"not a wrk time: {token!r}")
    return float(m.group(1)) * _TIME_UNITS_US[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """Reads wrk's --latency report (and the WRKJSON line of our done() hook, if present).

    The JSON line, when there, gives exact microseconds; the text report is the fallback.
    """
    out: dict[str, Any] = {}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["duration_s"] = time_to_us(m.group(2)) / 1e6
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", text, re.M)
        if m:
            out[f"p{pct}_us"] = time_to_us(m.group(1))
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        out["mean_us"] = time_to_us(m.group(1))
        out["max_us"] = time_to_us(m.group(3))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors.update(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors["status"] = int(m.group(1))

    m = re.search(r"^WRKJSON (\{.*\})\s*$", text, re.M)
    if m:
        exact = json.loads(m.group(1))
        out["requests"] = int(exact["requests"])
        out["duration_s"] = exact["duration_us"] / 1e6
        if out["duration_s"] > 0:
            out["rps"] = out["requests"] / out["duration_s"]
        for key in ("mean_us", "max_us", "p50_us", "p75_us", "p90_us", "p99_us", "p999_us"):
            out[key] = float(exact[key])
        for key in errors:
            errors[key] = int(exact[key])
        out["exact"] = True
    if "requests" not in out or "rps" not in out:
        raise BenchError(f"could not parse wrk's output:\n{text}")
    out["errors"] = errors
    out["errors_total"] = sum(errors.values())
    return out


def run_wrk(
    children: Children,
    url: str,
    duration: int,
    connections: int,
    lua: Path,
    headers: tuple[str, ...] = (),
) -> tuple[dict[str, Any], str]:
    assert url.startswith(f"http://{HOST}:"), url  # load goes to loopback only
    argv = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(lua),
    ]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    proc = children.spawn("wrk", argv, capture=True)
    try:
        out, err = proc.communicate(timeout=duration + WRK_GRACE)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise BenchError(f"wrk did not finish within {duration + WRK_GRACE:.0f}s") from None
    children.stop(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        detail = text + err.decode(errors="replace")
        raise BenchError(f"wrk exited with {proc.returncode}:\n{detail}")
    return parse_wrk(text), text


# --------------------------------------------------------------------------------------------
# Rows


@dataclass
class Row:
    """One measurement of one row (target, CC, variant, connections, size)."""

    target: str
    variant: str
    cc: int | None
    connections: int = 50  # wrk's
    size: str = HELLO_SIZE  # the response size's label (--sizes), or the --path
    run: int = 1  # which repeat of this row (1-based)
    seq: int = 0  # position in the whole interleaved sequence of measurements (1-based)
    ok: bool = False
    error: str = ""
    rps: float = 0.0
    requests: int = 0
    duration_s: float = 0.0
    p50_us: float = 0.0
    p99_us: float = 0.0
    cpu_s: float = 0.0
    cpu_us_per_req: float = 0.0
    user_us_per_req: float = 0.0  # the split of cpu_us_per_req: user space ...
    sys_us_per_req: float = 0.0  # ... and the kernel (its system calls, mostly)
    app_cpu_us_per_req: float = 0.0
    rss_bytes: int = 0
    errors: int = 0
    error_detail: dict[str, int] = field(default_factory=dict)
    ready_s: float = 0.0
    stop_s: float | None = 0.0  # seconds from SIGTERM to exit; None = needed SIGKILL
    wrk: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.target if self.target != "queue-proxy" else f"queue-proxy[{self.variant}]"


def measure(
    children: Children,
    server: Server,
    app: Server,
    row: Row,
    args: argparse.Namespace,
    lua: Path,
) -> None:
    url = f"http://{HOST}:{server.port}{args.size_paths[row.size]}"
    headers: tuple[str, ...] = ()
    if row.target == "activator":
        ns, name = BENCH_REVISION
        headers = (f"Knative-Serving-Namespace: {ns}", f"Knative-Serving-Revision: {name}")
    if args.warmup > 0:
        run_wrk(children, url, args.warmup, row.connections, lua, headers)
    (user0, sys0), app0 = tree_cpu_times(server.proc.pid), tree_cpu_seconds(app.proc.pid)
    result, text = run_wrk(children, url, args.duration, row.connections, lua, headers)
    (user1, sys1), app1 = tree_cpu_times(server.proc.pid), tree_cpu_seconds(app.proc.pid)
    rss = tree_rss_bytes(server.proc.pid)
    if server.proc.poll() is not None:
        raise BenchError(
            f"{server.name} exited ({server.proc.returncode}) during the run; log:\n"
            + log_tail(server.log)
        )
    reqs = result["requests"]
    row.ok = True
    row.rps = result["rps"]
    row.requests = reqs
    row.duration_s = result["duration_s"]
    row.p50_us = result.get("p50_us", 0.0)
    row.p99_us = result.get("p99_us", 0.0)
    row.cpu_s = (user1 - user0) + (sys1 - sys0)
    row.cpu_us_per_req = row.cpu_s * 1e6 / reqs if reqs else 0.0
    row.user_us_per_req = (user1 - user0) * 1e6 / reqs if reqs else 0.0
    row.sys_us_per_req = (sys1 - sys0) * 1e6 / reqs if reqs else 0.0
    row.app_cpu_us_per_req = (app1 - app0) * 1e6 / reqs if reqs else 0.0
    row.rss_bytes = rss
    row.errors = result["errors_total"]
    row.error_detail = result["errors"]
    row.ready_s = server.ready_s
    row.wrk = {k: v for k, v in result.items() if k not in ("errors", "errors_total")}
    if args.verbose:
        print(text, file=sys.stderr)


def run_row(
    children: Children,
    tmp: Path,
    app: Server,
    target: str,
    cc: int | None,
    variant: str,
    args: argparse.Namespace,
    lua: Path,
    run: int = 1,
    seq: int = 0,
    connections: int | None = None,
    size: str | None = None,
) -> Row:
    """Measures one row once; a server other than nginx is started for it and stopped after."""
    connections = args.connections[0] if connections is None else connections
    size = args.sizes[0] if size is None else size
    row = Row(target, variant, cc, connections, size, run=run, seq=seq)
    ccs = "-" if cc is None else str(cc)
    ccs += _dims(args, connections, size)
    print(
        f"bench: [{seq}] {row.label} cc={ccs} (run {run}/{args.repeat}) ...",
        file=sys.stderr,
        flush=True,
    )
    server: Server | None = None
    pod: Server | None = None
    try:
        if target == "direct":
            server = app
        elif target == "haproxy":
            assert cc is not None
            server = start_haproxy(children, tmp, cc, app.port, args.ready_timeout)
        elif target == "activator":
            assert cc is not None
            extra = dict(VARIANTS["default"])
            extra.update(args.proxy_env)
            pod = start_queue_proxy(
                children, tmp, cc, app.port, "pod", extra, args.proxy_cmd, args.ready_timeout
            )
            server = start_activator(children, tmp, cc, pod, args.ready_timeout)
        elif target == "haproxy-pod":
            assert cc is not None
            extra = dict(VARIANTS["default"])
            extra.update(args.proxy_env)
            pod = start_queue_proxy(
                children, tmp, cc, app.port, "pod", extra, args.proxy_cmd, args.ready_timeout
            )
            server = start_haproxy(children, tmp, cc, pod.port, args.ready_timeout)
        else:
            assert cc is not None
            extra = dict(VARIANTS[variant])
            extra.update(args.proxy_env)
            server = start_queue_proxy(
                children, tmp, cc, app.port, variant, extra, args.proxy_cmd, args.ready_timeout
            )
        measure(children, server, app, row, args, lua)
    except BenchError as exc:
        row.ok = False
        row.error = str(exc)
        print(f"bench: {row.label} cc={ccs} FAILED: {exc}", file=sys.stderr, flush=True)
    finally:
        if pod is not None:
            children.stop(pod.proc)
        if server is not None and server is not app:
            row.stop_s = children.stop(server.proc)
            if row.stop_s is None:
                print(
                    f"bench: {row.label} ignored SIGTERM for {STOP_TIMEOUT:.0f}s; killed",
                    file=sys.stderr,
                    flush=True,
                )
    if row.ok:
        print(
            f"bench:   {row.rps:,.0f} req/s, p99 {row.p99_us / 1e3:.3f} ms, "
            f"{row.cpu_us_per_req:.1f} CPU us/req (user {row.user_us_per_req:.1f}, "
            f"system {row.sys_us_per_req:.1f}), {row.errors} errors",
            file=sys.stderr,
            flush=True,
        )
    return row


def _dims(args: argparse.Namespace, connections: int, size: str) -> str:
    """The suffix ' conn=N size=S' of a row's name, for the dimensions that take more than one
    value in this run (none: the progress lines read as they always did)."""
    out = ""
    if len(args.connections) > 1:
        out += f" conn={connections}"
    if len(args.sizes) > 1:
        out += f" size={size}"
    return out


# A row: (target, CC, variant, connections, size).
RowKey = tuple[str, int | None, str, int, str]

# The figures that get a median over the runs of a row.
MEDIAN_FIELDS = ("rps", "p50_us", "p99_us", "cpu_us_per_req", "user_us_per_req", "sys_us_per_req",
                 "app_cpu_us_per_req", "rss_bytes")


@dataclass
class Summary:
    """One row (target, CC, variant, connections, size) over its repeats: the medians of the
    runs that succeeded."""

    target: str
    variant: str
    cc: int | None
    connections: int = 50
    size: str = HELLO_SIZE
    runs: list[Row] = field(default_factory=list)

    @property
    def key(self) -> RowKey:
        return (self.target, self.cc, self.variant, self.connections, self.size)

    @property
    def label(self) -> str:
        return self.target if self.target != "queue-proxy" else f"queue-proxy[{self.variant}]"

    @property
    def good(self) -> list[Row]:
        return [r for r in self.runs if r.ok]

    @property
    def ok(self) -> bool:
        return bool(self.good)

    def median(self, name: str) -> float:
        """The median of a figure over the successful runs (0.0 if there are none)."""
        values = [float(getattr(r, name)) for r in self.good]
        return statistics.median(values) if values else 0.0

    def spread(self, name: str) -> tuple[float, float]:
        values = [float(getattr(r, name)) for r in self.good]
        return (min(values), max(values)) if values else (0.0, 0.0)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.good)

    @property
    def error_detail(self) -> dict[str, int]:
        """wrk's errors by kind (connect, read, write, timeout, status), summed over the runs."""
        out: dict[str, int] = {}
        for r in self.good:
            for kind, n in r.error_detail.items():
                out[kind] = out.get(kind, 0) + n
        return out

    def to_json(self) -> dict[str, Any]:
        cpu_min, cpu_max = self.spread("cpu_us_per_req")
        medians: dict[str, Any] = {name: self.median(name) for name in MEDIAN_FIELDS}
        medians["rss_bytes"] = round(medians["rss_bytes"])
        return {
            "target": self.target,
            "variant": self.variant,
            "cc": self.cc,
            "connections": self.connections,
            "size": self.size,
            "label": self.label,
            "ok": self.ok,
            "runs_ok": len(self.good),
            "runs_total": len(self.runs),
            # Medians over the successful runs, under the same names as in each run.
            **medians,
            "cpu_us_per_req_min": cpu_min,
            "cpu_us_per_req_max": cpu_max,
            "errors": self.errors,  # total over the successful runs
            "error_detail": self.error_detail,
            "runs": [{**asdict(r), "label": r.label} for r in self.runs],
        }


def summarize(todo: list[RowKey], runs: list[Row]) -> list[Summary]:
    """Groups the runs by row, in the order of ``todo``."""
    by_key = {
        (t, cc, v, conn, size): Summary(t, v, cc, conn, size) for t, cc, v, conn, size in todo
    }
    for r in sorted(runs, key=lambda r: r.seq):
        by_key[(r.target, r.cc, r.variant, r.connections, r.size)].runs.append(r)
    return list(by_key.values())


def ratios(rows: list[Summary]) -> list[dict[str, Any]]:
    """Each queue-proxy and activator row against the HAProxy row at the same CC, connections
    and size (medians); the activator also against HAProxy in its place (haproxy-pod), same
    topology."""

    def at(r: Summary) -> tuple[int | None, int, str]:
        return (r.cc, r.connections, r.size)

    haproxy = {at(r): r for r in rows if r.target == "haproxy" and r.ok}
    in_place = {at(r): r for r in rows if r.target == "haproxy-pod" and r.ok}
    out = []
    pairs = []
    for r in rows:
        if r.target in ("queue-proxy", "activator") and r.ok and at(r) in haproxy:
            pairs.append((r, haproxy[at(r)], r.label))
        if r.target == "activator" and r.ok and at(r) in in_place:
            pairs.append((r, in_place[at(r)], "activator vs haproxy-pod"))
    for r, h, label in pairs:
        out.append(
            {
                "label": label,
                "variant": r.variant,
                "cc": r.cc,
                "connections": r.connections,
                "size": r.size,
                # wrk errors in either row (a 503 counts as a request: the ratios mislead then)
                "errors": r.errors + h.errors,
                "cpu_ratio": _div(r.median("cpu_us_per_req"), h.median("cpu_us_per_req")),
                # the CPU split, ours against theirs: (user, system) us/request
                "user_us": (r.median("user_us_per_req"), h.median("user_us_per_req")),
                "sys_us": (r.median("sys_us_per_req"), h.median("sys_us_per_req")),
                "p99_ratio": _div(r.median("p99_us"), h.median("p99_us")),
                "p50_ratio": _div(r.median("p50_us"), h.median("p50_us")),
                "rps_ratio": _div(r.median("rps"), h.median("rps")),
                "rss_ratio": _div(r.median("rss_bytes"), h.median("rss_bytes")),
            }
        )
    return out


def stats_cost(rows: list[Summary]) -> list[dict[str, Any]]:
    """Per CC (connections, size), the CPU per request of queue-proxy[metrics] against
    queue-proxy[bare] (medians): what the autoscaler stats and the Prometheus request metrics
    cost together."""
    qp = {
        (r.variant, r.cc, r.connections, r.size): r
        for r in rows
        if r.target == "queue-proxy" and r.ok
    }
    out = []
    for (variant, cc, conn, size), bare in qp.items():
        metrics = qp.get(("metrics", cc, conn, size))
        if variant != "bare" or metrics is None:
            continue
        b, m = bare.median("cpu_us_per_req"), metrics.median("cpu_us_per_req")
        ratio = _div(m, b)
        out.append(
            {
                "cc": cc,
                "connections": conn,
                "size": size,
                "bare_cpu_us_per_req": b,
                "metrics_cpu_us_per_req": m,
                "bare_cpu_us_per_req_range": list(bare.spread("cpu_us_per_req")),
                "metrics_cpu_us_per_req_range": list(metrics.spread("cpu_us_per_req")),
                "cost_pct": None if ratio is None else (ratio - 1.0) * 100.0,
            }
        )
    return out


def _div(a: float, b: float) -> float | None:
    return a / b if b else None


# --------------------------------------------------------------------------------------------
# Output


def format_table(
    rows: list[Summary], rat: list[dict[str, Any]], cost: list[dict[str, Any]], repeat: int
) -> str:
    # conn and size get columns only when they take more than one value, so that the default
    # table reads as it always did.
    by_conn = len({r.connections for r in rows}) > 1
    by_size = len({r.size for r in rows}) > 1

    def dims(cc: int | None, connections: int, size: str) -> list[str]:
        cells = ["-" if cc is None else str(cc)]
        if by_conn:
            cells.append(str(connections))
        if by_size:
            cells.append(size)
        return cells

    def where(d: dict[str, Any]) -> str:
        out = f"CC={d['cc']}"
        if by_conn:
            out += f" conn={d['connections']}"
        if by_size:
            out += f" size={d['size']}"
        return out

    header = [
        "target",
        "CC",
        *(["conn"] if by_conn else []),
        *(["size"] if by_size else []),
        "runs",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU us/req",
        "CPU min-max",
        "RSS MiB",
        "errors",
    ]
    lines: list[list[str]] = []
    for r in rows:
        at = dims(r.cc, r.connections, r.size)
        n_ok, n = len(r.good), len(r.runs)
        runs = str(n) if n_ok == n else f"{n_ok}/{n}"
        if not r.ok:
            lines.append([r.label, *at, runs, "FAILED", "", "", "", "", "", ""])
            continue
        lo, hi = r.spread("cpu_us_per_req")
        lines.append(
            [
                r.label,
                *at,
                runs,
                f"{r.median('rps'):,.0f}",
                f"{r.median('p50_us') / 1e3:.3f}",
                f"{r.median('p99_us') / 1e3:.3f}",
                f"{r.median('cpu_us_per_req'):.1f}",
                f"{lo:.1f}-{hi:.1f}",
                f"{r.median('rss_bytes') / 2**20:.1f}",
                str(r.errors),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    if repeat == 1:
        note = "1 run per row (use --repeat N for medians and the spread of CPU us/req)"
    else:
        note = (
            f"medians of {repeat} runs per row (CPU min-max: the spread of CPU us/req over "
            "the runs; errors: total over the runs)"
        )
    out = [
        note,
        "",
        fmt(header),
        fmt(["-" * w for w in widths]),
    ]
    out += [fmt(line) for line in lines]
    # wrk's errors by kind, for every row that had some (the issue asks for none at 500
    # connections): printed only when there are errors, or when connections vary.
    erred = [r for r in rows if r.ok and r.errors]
    if erred:
        out += ["", "errors (wrk, total over the runs):"]
        for r in erred:
            kinds = ", ".join(f"{k} {n}" for k, n in r.error_detail.items())
            cc = "-" if r.cc is None else r.cc
            at = where({"cc": cc, "connections": r.connections, "size": r.size})
            out.append(f"  {r.label} {at}: {r.errors} ({kinds})")
    elif by_conn:
        top = max(r.connections for r in rows)
        out += ["", f"errors: none in any row (up to {top} connections)"]
    same = "CC" + (", connections" if by_conn else "") + (", size" if by_size else "")
    if rat or cost:
        out += ["", "ratios (from the medians):"]
    if rat:
        out += [f"against haproxy at the same {same} (lower is better, except req/s):"]
        for q in rat:
            out.append(
                f"  {q['label']} {where(q)}: "
                f"CPU/req x{_fx(q['cpu_ratio'])}, p99 x{_fx(q['p99_ratio'])}, "
                f"p50 x{_fx(q['p50_ratio'])}, req/s x{_fx(q['rps_ratio'])}, "
                f"RSS x{_fx(q['rss_ratio'])}; user {q['user_us'][0]:.1f}/{q['user_us'][1]:.1f}, "
                f"system {q['sys_us'][0]:.1f}/{q['sys_us'][1]:.1f} us"
                + (f" [{q['errors']} wrk errors: not comparable]" if q["errors"] else "")
            )
    if cost:
        out += [f"queue-proxy[metrics] against queue-proxy[bare] at the same {same}:"]
        for c in cost:
            pct = "n/a" if c["cost_pct"] is None else f"{c['cost_pct']:+.1f}%"
            (blo, bhi), (mlo, mhi) = (
                c["bare_cpu_us_per_req_range"],
                c["metrics_cpu_us_per_req_range"],
            )
            out.append(
                f"  {where(c)}: stats+metrics cost: {pct} CPU/req "
                f"(bare {c['bare_cpu_us_per_req']:.1f} [{blo:.1f}-{bhi:.1f}], "
                f"metrics {c['metrics_cpu_us_per_req']:.1f} [{mlo:.1f}-{mhi:.1f}] us/req)"
            )
    return "\n".join(out)


def _fx(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _version(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (p.stdout + p.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def _git_rev() -> str | None:
    try:
        p = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() or None


def write_json(
    path: Path,
    args: argparse.Namespace,
    rows: list[Summary],
    rat: list[dict[str, Any]],
    cost: list[dict[str, Any]],
    table: str,
) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": {
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git": _git_rev(),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "loadavg_before": list(args.loadavg_before),
            "cpu_busy_before": args.cpu_busy_before,
            "python": sys.version.split()[0],
            "nginx": _version([NGINX, "-v"]),
            "haproxy": _version([HAPROXY, "-v"]),
            "wrk": _version([WRK, "-v"]),
            "proxy_cmd": args.proxy_cmd,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "order": "interleaved: every row once, then every row again, and so on",
            "connections": args.connections,  # a list (one value unless --connections lists more)
            "wrk_threads": 1,
            "path": args.path,
            # Response size (a row's "size") -> [request path, body bytes or null if unknown].
            "sizes": {s: [args.size_paths[s], args.size_bytes[s]] for s in args.sizes},
            "cc": args.cc,
            "targets": args.targets,
            "variants": {v: {**VARIANTS[v], **args.proxy_env} for v in args.variants},
        },
        # Per row: the medians over its successful runs, and every run under "runs".
        "rows": [r.to_json() for r in rows],
        "ratios_vs_haproxy": rat,
        "stats_metrics_cost": cost,
        "table": table,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    return doc


# --------------------------------------------------------------------------------------------
# Command line


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark the queue-proxy against HAProxy and direct nginx on 127.0.0.1.",
    )
    p.add_argument("--duration", type=int, default=10, help="measured seconds per run (10)")
    p.add_argument(
        "--warmup", type=int, default=None, help="warm-up seconds per run (2; 1 with --quick)"
    )
    p.add_argument(
        "--quick", action="store_true", help="2 s measured runs, 1 s warm-ups, --repeat 1"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help=f"measure every row N times, interleaved; report medians ({DEFAULT_REPEAT}; "
        "1 with --quick)",
    )
    p.add_argument(
        "--connections",
        default=None,
        help=f"wrk connections, comma-separated: one row each ({DEFAULT_CONNECTIONS})",
    )
    p.add_argument(
        "--cc", default=None, help=f"container concurrencies, comma-separated ({DEFAULT_CC})"
    )
    p.add_argument(
        "--sizes",
        default=None,
        help="response sizes, comma-separated: 13 (GET /, the default), 1k, 64k, 1m, ...: one "
        "row each (static files nginx serves)",
    )
    p.add_argument(
        "--targets",
        default=None,
        help=f"comma-separated, from {', '.join(TARGETS)} (all)",
    )
    p.add_argument(
        "--matrix",
        action="store_true",
        help="the whole grid: --cc {cc} --connections {connections} --sizes {sizes} --targets "
        "{targets} (options given explicitly win); long: the time is printed first".format(
            **MATRIX
        ),
    )
    p.add_argument(
        "--variants",
        default="default",
        help=f"queue-proxy variants, comma-separated, from {', '.join(VARIANTS)}, or 'all'"
        " (default)",
    )
    p.add_argument(
        "--proxy-cmd",
        default=None,
        help="command that runs the queue-proxy (shell words; default: PYTHON -m proxy)",
    )
    p.add_argument(
        "--proxy-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every queue-proxy run (repeatable)",
    )
    p.add_argument(
        "--path", default="/", help="request path ('/' = 13-byte body, '/1k.bin' = 1 KiB)"
    )
    p.add_argument(
        "--ready-timeout",
        type=float,
        default=READY_TIMEOUT,
        help=f"seconds to wait for a server to answer ({READY_TIMEOUT:.0f})",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON results ({DEFAULT_OUT})")
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="also draw the results (latency by connections, CPU per request) with matplotlib",
    )
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    p.add_argument(
        "--install",
        action="store_true",
        help=f"apt-get install {' '.join(APT_PACKAGES)} if a tool is missing",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print wrk's raw output")
    args = p.parse_args(argv)

    if args.quick:
        args.duration = 2
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.repeat is None:
        args.repeat = 1 if args.quick else DEFAULT_REPEAT
    if not 1 <= args.repeat <= MAX_REPEAT:
        p.error(f"--repeat must be between 1 and {MAX_REPEAT}")
    if args.duration < 1 or args.warmup < 0:
        p.error("--duration must be >= 1, --warmup >= 0")
    if args.duration > 600 or args.warmup > 60:
        p.error("runs are bounded: --duration <= 600, --warmup <= 60")
    preset = MATRIX if args.matrix else {}
    if args.cc is None:
        args.cc = preset.get("cc", DEFAULT_CC)
    if args.connections is None:
        args.connections = preset.get("connections", DEFAULT_CONNECTIONS)
    if args.sizes is None:
        args.sizes = preset.get("sizes")
    if args.targets is None:
        args.targets = preset.get("targets", ",".join(TARGETS))
    try:
        args.connections = sorted({int(c) for c in _csv(args.connections)})
    except ValueError:
        p.error(f"--connections: not a list of integers: {args.connections!r}")
    if not args.connections or not 1 <= min(args.connections) <= max(args.connections) <= (
        MAX_CONNECTIONS
    ):
        p.error(f"--connections: give one or more integers from 1 to {MAX_CONNECTIONS}")
    try:
        args.cc = sorted({int(c) for c in _csv(args.cc)})
    except ValueError:
        p.error(f"--cc: not a list of integers: {args.cc!r}")
    if not args.cc or min(args.cc) < 0:
        p.error("--cc: give one or more integers >= 0")
    targets = [TARGET_ALIASES.get(t, t) for t in _csv(args.targets)]
    bad = [t for t in targets if t not in TARGETS]
    if bad or not targets:
        p.error(f"--targets: unknown {bad}; choose from {', '.join(TARGETS)}")
    args.targets = [t for t in TARGETS if t in targets]
    variants = list(VARIANTS) if args.variants.strip() == "all" else _csv(args.variants)
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        p.error(f"--variants: unknown {bad}; choose from {', '.join(VARIANTS)} or 'all'")
    args.variants = list(dict.fromkeys(variants))
    args.proxy_cmd = (
        shlex.split(args.proxy_cmd) if args.proxy_cmd else [sys.executable, "-m", "proxy"]
    )
    env: dict[str, str] = {}
    for item in args.proxy_env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--proxy-env: expected KEY=VALUE, got {item!r}")
        env[key] = value
    args.proxy_env = env
    if not args.path.startswith("/"):
        p.error("--path must start with '/'")
    # A row's size is a label; args.size_paths maps it to the request path, args.size_bytes to
    # the body's length (None: whatever --path returns).
    if args.sizes is None:
        label = HELLO_SIZE if args.path == "/" else args.path
        args.sizes = [label]
        args.size_paths = {label: args.path}
        args.size_bytes = {label: len(b"Hello World!\n") if args.path == "/" else None}
    else:
        if args.path != "/":
            p.error("--path and --sizes: give one or the other")
        try:
            sizes = sorted({parse_size(s) for s in _csv(args.sizes)}, key=lambda s: s[1])
        except ValueError as exc:
            p.error(f"--sizes: {exc}")
        if not sizes:
            p.error("--sizes: give one or more sizes")
        args.sizes = [label for label, _ in sizes]
        args.size_paths = {label: size_path(label) for label, _ in sizes}
        args.size_bytes = dict(sizes)
    return args


def parse_size(text: str) -> tuple[str, int]:
    """'64k' -> ('64k', 65536): a response size (bytes, or k / m for KiB / MiB) and its label."""
    m = re.fullmatch(r"([0-9]+)\s*([kKmM]?)(?:i?[bB])?", text.strip())
    if not m:
        raise ValueError(f"not a size (13, 1k, 64k, 1m, ...): {text!r}")
    unit = m.group(2).lower()
    size = int(m.group(1)) * SIZE_UNITS[unit]
    if not 1 <= size <= MAX_SIZE_BYTES:
        raise ValueError(f"{text!r}: sizes go from 1 byte to {MAX_SIZE_BYTES // 2**20}m")
    return f"{int(m.group(1))}{unit}", size


def size_path(label: str) -> str:
    """The request path that returns a response of this size: GET / for 13 bytes (nginx's
    Hello World), else the static file GET /<label>.bin that start_nginx writes."""
    return "/" if label == HELLO_SIZE else f"/{label}.bin"


def check_tools(install: bool) -> None:
    missing = [t for t in (NGINX, HAPROXY, WRK) if not os.access(t, os.X_OK)]
    if missing and install:
        print(f"bench: installing {' '.join(APT_PACKAGES)}", file=sys.stderr)
        subprocess.run(["apt-get", "update"], check=False, timeout=600)
        subprocess.run(["apt-get", "install", "-y", *APT_PACKAGES], check=False, timeout=600)
        missing = [t for t in (NGINX, HAPROXY, WRK) if not os.access(t, os.X_OK)]
    if missing:
        raise SystemExit(
            f"bench: missing {', '.join(missing)}; install them with:\n"
            f"  apt-get install -y {' '.join(APT_PACKAGES)}\n(or run with --install)"
        )


def machine_busy(interval: float = 0.5) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    total0, idle0 = sample()
    time.sleep(interval)
    total1, idle1 = sample()
    total = total1 - total0
    return 1.0 - (idle1 - idle0) / total if total > 0 else 0.0


def plan(args: argparse.Namespace) -> list[RowKey]:
    """The rows, in table order: by size, then connections, then as always (direct, then per
    CC haproxy beside the queue-proxy and the activator), so each row sits by its HAProxy."""
    rows: list[RowKey] = []
    for size in args.sizes:
        for conn in args.connections:
            if "direct" in args.targets:
                rows.append(("direct", None, "-", conn, size))
            for cc in args.cc:
                if "haproxy" in args.targets:
                    rows.append(("haproxy", cc, "-", conn, size))
                if "queue-proxy" in args.targets:
                    rows.extend(("queue-proxy", cc, v, conn, size) for v in args.variants)
                if "activator" in args.targets:
                    rows.append(("activator", cc, "-", conn, size))
                if "haproxy-pod" in args.targets:
                    rows.append(("haproxy-pod", cc, "-", conn, size))
    return rows


def raise_open_files(connections: int) -> None:
    """Raises the soft RLIMIT_NOFILE of this process, which the children inherit, so that wrk
    and the proxies can hold ``connections`` connections (two sockets each through a proxy)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    need = 2 * connections + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        print(
            f"bench: warning: the open-files limit is {soft} (hard limit {hard}), short of the "
            f"{need} that {connections} connections need; expect connect errors",
            file=sys.stderr,
        )


def _about(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 600 else f"{seconds:.0f}s (~{seconds / 60:.0f} min)"


def draw(doc: dict[str, Any], out: Path) -> None:
    """bench/plot.py's plot_results, loaded from its file (bench is not a package); without
    matplotlib, one line says so and the run's exit status stays as it is."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_plot", Path(__file__).with_name("plot.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.plot_results(doc, out)
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("matplotlib"):
            raise
        print(
            "bench: no plot: matplotlib is not installed (pip install matplotlib)",
            file=sys.stderr,
        )
        return
    print(f"plot: {out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_tools(args.install)
    args.loadavg_before = os.getloadavg()
    args.cpu_busy_before = machine_busy()
    if args.cpu_busy_before > 0.15:
        print(
            f"bench: warning: the machine is {args.cpu_busy_before:.0%} busy before the run; "
            "other load skews these numbers",
            file=sys.stderr,
        )

    raise_open_files(max(args.connections))

    children = Children()
    children.keep_tmp = args.keep_tmp
    atexit.register(children.cleanup)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGHUP, _raise_exit)

    todo = plan(args)
    per_row = args.warmup + args.duration
    total = len(todo) * args.repeat
    conns = ",".join(map(str, args.connections))
    sizes = f", sizes {','.join(args.sizes)}" if len(args.sizes) > 1 else ""
    print(
        f"bench: {len(todo)} rows x {args.repeat} runs, interleaved, "
        f"each {args.warmup}s warm-up + {args.duration}s; "
        f"{conns} connections{sizes}, about {_about(total * (per_row + 1))}",
        file=sys.stderr,
    )
    if args.matrix:
        quick = len(todo) * (1 + 2 + 1)
        print(
            f"bench: --matrix takes long: about {_about(total * (per_row + 1))} for "
            f"{len(todo)} rows (--quick: about {_about(quick)}); Ctrl-C stops it and "
            "cleans up",
            file=sys.stderr,
        )
    runs: list[Row] = []
    try:
        tmp = children.mkdtemp()
        lua = tmp / "report.lua"
        lua.write_text(WRK_LUA)
        files = {args.size_paths[s]: n for s, n in args.size_bytes.items() if s != HELLO_SIZE}
        app = start_nginx(children, tmp, args.ready_timeout, files)
        # Round-robin: every row once, then every row again, ... so that a burst of noise
        # on the machine is shared between the targets rather than landing on one of them.
        for run in range(1, args.repeat + 1):
            for target, cc, variant, conn, size in todo:
                seq = len(runs) + 1
                runs.append(
                    run_row(
                        children, tmp, app, target, cc, variant, args, lua, run, seq, conn, size
                    )
                )
    except KeyboardInterrupt:
        print("\nbench: interrupted; cleaning up", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        children.cleanup()

    rows = summarize(todo, runs)
    rat = ratios(rows)
    cost = stats_cost(rows)
    table = format_table(rows, rat, cost, args.repeat)
    print(table)
    doc = write_json(args.out, args, rows, rat, cost, table)
    print(f"\nresults: {args.out}", file=sys.stderr)
    if args.plot is not None:
        draw(doc, args.plot)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
