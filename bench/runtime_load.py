#!/usr/bin/env python3
"""Load on the local runtime with locust, from zero: cold start, requests/s, p50, p99, pods.

    pip install -e '.[bench]' --config-settings editable_mode=compat   # locust, matplotlib
    python bench/runtime_load.py --yaml examples/slow.yaml --path '/?sleep=200'
    python bench/runtime_load.py [--yaml examples/hello.yaml] [--users 20] [--duration 20]
                                 [--png bench/out/runtime_load.png]

1. Starts ``python -m activator run`` on a free port with the service at zero (its
   ``initial-scale`` set to 0, ``--allow-zero-initial-scale``).
2. Times the first request (the cold start: through the activator, a pod started for it).
3. Runs locust headless (``bench/locustfile.py``: ``--users`` users, each sending its next
   request as soon as the last one answered, for ``--duration`` seconds), printing a line every
   ``--every`` seconds: time, requests/s, errors, pods.
4. Stops everything and prints a table: requests/s, p50, p99, errors and pods over time, the
   whole run's figures, the cold start; then draws the PNG (``bench/runtime_load_plot.py``).

Time 0 is the cold request. Pods are the runtime's pod processes, read from /proc every half
second (``pods_of``). Load goes to 127.0.0.1 only and stops by itself. Every process it starts
carries a marker in its environment: on exit, on an error, on Ctrl-C or SIGTERM the runtime is
stopped (SIGINT: it stops every pod), anything still carrying the marker after that is killed,
and the temp dir (the service's YAML) is removed.

Exit status: 0; 1 when the runtime or locust failed (their output is shown) or a process had to
be killed; 2 when locust is not installed or an argument is wrong; 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "bench" / "locustfile.py"
DEFAULT_PNG = REPO / "bench" / "out" / "runtime_load.png"
INSTALL = "pip install -e '.[bench]' --config-settings editable_mode=compat"
MARKER = "RUNTIME_LOAD_MARKER"
REPORT_PREFIX = "runtime-load "  # bench/locustfile.py's per-second lines
SAMPLE_EVERY = 0.5  # seconds between two readings of the pod count
_FRONT_DOOR = re.compile(r"front door on http://127\.0\.0\.1:(\d+)")
_DECISION = re.compile(r"(\S+)/(\S+): (\d+) ready -> (\d+) desired")


class LoadError(RuntimeError):
    """The runtime or locust did not do its part; the message says which, with its output."""


# --------------------------------------------------------------------------------------------
# /proc: the runtime's pods


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1])


def _environ(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _live_pids() -> list[tuple[int, int]]:
    """(pid, parent pid) of every live process (zombies left out)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] != "Z":
                out.append((int(entry), st[1]))
    return out


def pods_of(runtime_pid: int) -> int:
    """How many pods the runtime runs now: its children whose environment holds ``K_REVISION``
    (each pod's app, which the runtime spawns with Knative's ``K_*`` variables; the pod's
    queue-proxy is the zygote's child, so no pod counts twice). A pod counts from its spawn to
    its exit, ready or not. The one place that knows how pods are found: it can read the
    runtime's status endpoint instead once there is one."""
    return sum(
        1 for pid, ppid in _live_pids()
        if ppid == runtime_pid and any(e.startswith(b"K_REVISION=") for e in _environ(pid))
    )


def marked(marker: str) -> list[int]:
    """Live processes (not this one) whose start-up environment holds ``MARKER=marker``."""
    want = f"{MARKER}={marker}".encode()
    me = os.getpid()
    return [pid for pid, _ in _live_pids() if pid != me and want in _environ(pid)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------------
# The figures: pure functions of the run's document (tested without a runtime)


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def pods_at(doc: dict[str, Any], t: float) -> int | None:
    """The last pod count read at or before ``t`` (None before the first reading)."""
    found = None
    for ts, n in doc["pods"]:
        if ts > t:
            break
        found = n
    return found


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The whole load's figures: requests, errors (by kind), requests/s over the load's span,
    p50 and p99 over every request, the most pods and the pods at the end."""
    windows = doc["windows"]
    ms = [m for w in windows for m in w["ms"]]
    errors: Counter[str] = Counter()
    for w in windows:
        errors.update(w["errors"])
    span = windows[-1]["t1"] - windows[0]["t0"] if windows else 0.0
    pods = [n for _, n in doc["pods"]]
    return {
        "requests": len(ms),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors.most_common()),
        "rps": len(ms) / span if span > 0 else 0.0,
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "load_s": span,
        "pods_max": max(pods, default=0),
        "pods_end": pods[-1] if pods else 0,
    }


def rows(doc: dict[str, Any], width: int) -> list[dict[str, Any]]:
    """The load cut into spans of ``width`` of locust's one-second windows: per span its end,
    requests/s, p50, p99, errors, and the pods read last by its end."""
    windows = doc["windows"]
    out = []
    for i in range(0, len(windows), width):
        ws = windows[i:i + width]
        ms = [m for w in ws for m in w["ms"]]
        t0, t1 = ws[0]["t0"], ws[-1]["t1"]
        out.append({
            "t": t1,
            "rps": len(ms) / (t1 - t0) if t1 > t0 else 0.0,
            "p50_ms": percentile(ms, 0.50),
            "p99_ms": percentile(ms, 0.99),
            "errors": sum(sum(w["errors"].values()) for w in ws),
            "pods": pods_at(doc, t1),
        })
    return out


def row_width(duration: float) -> int:
    """Seconds per table row: about a dozen rows whatever the duration."""
    return max(1, math.ceil(duration / 12))


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def table(doc: dict[str, Any]) -> list[str]:
    """The report: what ran, the cold start, the load over time and as a whole, the errors by
    kind, the scale decisions."""
    meta, cold = doc["meta"], doc["cold_start"]
    s = summary(doc)
    out = [
        f"service {meta['host']} ({meta['yaml']}), GET {meta['path']}, {meta['users']} users, "
        f"{meta['duration']:g} s of load, extensions {'on' if meta['extensions'] else 'off'}",
        f"cold start (the first request, from zero): {cold['ms']:.0f} ms -> {cold['status']} "
        f"{cold['body']!r}",
        "",
        f"{'t (s)':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7} {'pods':>5}",
    ]
    for r in rows(doc, row_width(meta["duration"])):
        pods = "-" if r["pods"] is None else str(r["pods"])
        out.append(f"{r['t']:7.1f} {r['rps']:7.1f} {_ms(r['p50_ms']):>7} {_ms(r['p99_ms']):>7} "
                   f"{r['errors']:7d} {pods:>5}")
    out.append(f"{'all':>7} {s['rps']:7.1f} {_ms(s['p50_ms']):>7} {_ms(s['p99_ms']):>7} "
               f"{s['errors']:7d} {s['pods_max']:5d}  (pods: the most; {s['requests']} "
               f"requests in {s['load_s']:.1f} s)")
    if s["errors_by_kind"]:
        out.append("errors: " + ", ".join(f"{n} x {k}" for k, n in s["errors_by_kind"].items()))
    decisions = doc["decisions"]
    if decisions:
        out.append(f"scale decisions ({len(decisions)}; ready -> desired): " + ", ".join(
            f"{t:.1f} s {r}->{d}" for t, r, d in decisions[:12])
            + (", ..." if len(decisions) > 12 else ""))
    return out


# --------------------------------------------------------------------------------------------
# The run


class LoadRun:
    """The runtime, the cold request, locust and the pod sampler of one run; ``close`` undoes
    all of it, whatever state the run stopped in."""

    def __init__(self, a: argparse.Namespace) -> None:
        self.a = a
        self.marker = uuid.uuid4().hex
        self.tmp: Path | None = None
        self.rt: subprocess.Popen[str] | None = None
        self.locust: subprocess.Popen[str] | None = None
        self.port = 0
        self.host = ""
        self.t0 = 0.0  # wall clock of the cold request: locust's windows are in wall time
        self.lock = threading.Lock()
        self.rt_lines: deque[str] = deque(maxlen=200)
        self.locust_lines: deque[str] = deque(maxlen=200)
        self.decisions: list[tuple[float, int, int]] = []  # (wall time, ready, desired)
        self.windows: list[dict[str, Any]] = []
        self.pods: list[tuple[float, int]] = []  # (wall time, pods)
        self.final = False  # locust's last window came: its test ran to the end
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.cold: dict[str, Any] = {}

    def _thread(self, target: Any, *args: Any) -> threading.Thread:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def _env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, **{MARKER: self.marker}, **extra)

    # ------------------------------------------------------------------ the runtime

    def service_yaml(self) -> Path:
        """The service of ``--yaml`` at zero, written to the temp dir; relative working dirs
        still resolve against the original's directory."""
        src = Path(self.a.yaml)
        try:
            docs = [d for d in yaml.safe_load_all(src.read_text()) if d]
            svc = docs[0]
            tpl = svc["spec"]["template"]
            ns = svc["metadata"].get("namespace", "default")
            self.host = f"{svc['metadata']['name']}.{ns}.example.com"
            ann = tpl.setdefault("metadata", {}).setdefault("annotations", {})
            ann["autoscaling.knative.dev/initial-scale"] = "0"
            for c in tpl["spec"]["containers"]:
                wd = c.get("workingDir")
                c["workingDir"] = str(src.resolve().parent / wd) if wd else str(
                    src.resolve().parent)
        except (OSError, yaml.YAMLError, LookupError, TypeError, AttributeError) as exc:
            raise LoadError(f"{src}: not a Knative Service this can load ({exc!r})") from None
        assert self.tmp is not None
        path = self.tmp / "service.yaml"
        path.write_text(yaml.safe_dump(svc, sort_keys=False))
        return path

    def start_runtime(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="runtime-load-"))
        spec = self.service_yaml()
        argv = [sys.executable, "-m", "activator", "run", str(spec), "--port", "0",
                "--allow-zero-initial-scale"]
        self.rt = subprocess.Popen(argv, cwd=REPO, env=self._env(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        ports: queue.Queue[int] = queue.Queue()
        self._thread(self._read_runtime, ports)
        deadline = time.monotonic() + self.a.start_timeout
        while not self.port:
            try:
                self.port = ports.get(timeout=0.2)
            except queue.Empty:
                if self.rt.poll() is not None or time.monotonic() > deadline:
                    if self.rt.poll() is not None:
                        self._join_readers()  # all of its output, for the message
                    raise LoadError("the runtime did not start (exit "
                                    f"{self.rt.poll()}):\n" + self._tail(self.rt_lines)) from None

    def _read_runtime(self, ports: queue.Queue[int]) -> None:
        assert self.rt is not None and self.rt.stdout is not None
        for line in self.rt.stdout:
            line = line.rstrip("\n")
            now = time.time()
            with self.lock:
                self.rt_lines.append(line)
            m = _FRONT_DOOR.search(line)
            if m:
                ports.put(int(m.group(1)))
            m = _DECISION.search(line)
            if m:
                with self.lock:
                    self.decisions.append((now, int(m.group(3)), int(m.group(4))))

    def _sample_pods(self) -> None:
        assert self.rt is not None
        while True:
            n = pods_of(self.rt.pid)
            with self.lock:
                self.pods.append((time.time(), n))
            if self.stop.wait(SAMPLE_EVERY):
                return

    # ------------------------------------------------------------------ the cold start

    def cold_request(self) -> None:
        self.t0 = time.time()
        self._thread(self._sample_pods)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.a.start_timeout)
        try:
            conn.request("GET", self.a.path, headers={"Host": self.host})
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            raise LoadError(f"the first request failed: {exc!r}\n"
                            + self._tail(self.rt_lines)) from None
        finally:
            conn.close()
        ms = (time.time() - self.t0) * 1000
        self.cold = {"ms": ms, "status": resp.status,
                     "body": body[:60].decode("utf-8", "replace").strip()}
        print(f"cold start (the first request, from zero): {ms:.0f} ms -> {resp.status}",
              flush=True)
        if resp.status != 200:
            raise LoadError(f"the first request got {resp.status} {body[:200]!r}\n"
                            + self._tail(self.rt_lines))

    # ------------------------------------------------------------------ locust

    def run_locust(self) -> None:
        a = self.a
        argv = [sys.executable, "-m", "locust", "-f", str(a.locustfile), "--headless",
                "-u", str(a.users), "-r", str(a.users), "-t", f"{a.duration:g}s",
                "--host", f"http://127.0.0.1:{self.port}", "--only-summary",
                "--loglevel", "WARNING", "--exit-code-on-error", "0"]
        env = self._env(SERVICE_HOST=self.host, SERVICE_PATH=a.path, RUNTIME_LOAD_REPORT="1")
        print(f"locust: {a.users} users for {a.duration:g} s, GET {a.path} (Host: {self.host})",
              flush=True)
        self.locust = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)
        reader = self._thread(self._read_locust)
        deadline = time.monotonic() + a.duration + a.start_timeout
        next_line = time.monotonic() + a.every
        while self.locust.poll() is None:
            if time.monotonic() > deadline:
                raise LoadError(f"locust still running {a.duration + a.start_timeout:g} s "
                                "after it started:\n" + self._tail(self.locust_lines))
            if self.rt is not None and self.rt.poll() is not None:
                raise LoadError(f"the runtime exited ({self.rt.returncode}) during the load:\n"
                                + self._tail(self.rt_lines))
            if time.monotonic() >= next_line:
                next_line += a.every
                print(self.progress(), flush=True)
            time.sleep(0.1)
        self.stop.set()  # the pods are read while the load runs
        reader.join(5)  # the rest of locust's output
        if self.locust.returncode != 0 or not self.final:
            raise LoadError(f"locust failed (exit {self.locust.returncode}):\n"
                            + self._tail(self.locust_lines))

    def _read_locust(self) -> None:
        assert self.locust is not None and self.locust.stdout is not None
        for line in self.locust.stdout:
            line = line.rstrip("\n")
            if line.startswith(REPORT_PREFIX):
                w = json.loads(line[len(REPORT_PREFIX):])
                with self.lock:
                    self.windows.append(w)
                    self.final = self.final or bool(w.get("final"))
            else:
                with self.lock:
                    self.locust_lines.append(line)

    def progress(self) -> str:
        """``[  t s] N req/s, E errors, P pods``: the last complete second, errors so far."""
        with self.lock:
            windows = list(self.windows)
            pods = self.pods[-1][1] if self.pods else 0
        t = time.time() - self.t0
        if not windows:
            return f"  [{t:6.1f} s] locust starting, {pods} pods"
        last = windows[-1]
        span = last["to"] - last["from"]
        rps = len(last["ms"]) / span if span > 0 else 0.0
        errors = sum(n for w in windows for n in w["errors"].values())
        return f"  [{t:6.1f} s] {rps:5.0f} req/s, {errors} errors, {pods} pods"

    # ------------------------------------------------------------------ the end

    def doc(self) -> dict[str, Any]:
        """The run as a document (times in seconds since the cold request)."""
        with self.lock:
            return {
                "meta": {"yaml": self.a.yaml, "host": self.host, "path": self.a.path,
                         "users": self.a.users, "duration": self.a.duration,
                         "extensions": not os.environ.get("DATAPLANE_NO_EXTENSIONS")},
                "cold_start": self.cold,
                "windows": [{"t0": w["from"] - self.t0, "t1": w["to"] - self.t0,
                             "ms": w["ms"], "errors": w["errors"]} for w in self.windows],
                "pods": [[t - self.t0, n] for t, n in self.pods],
                "decisions": [[t - self.t0, r, d] for t, r, d in self.decisions],
            }

    def close(self) -> list[str]:
        """Stops locust (SIGTERM), then the runtime (SIGINT: it stops every pod), kills anything
        still carrying the marker, removes the temp dir. Returns what had to be killed."""
        self.stop.set()
        if self.locust is not None:
            _stop(self.locust, signal.SIGTERM, 10)
        if self.rt is not None:
            _stop(self.rt, signal.SIGINT, 30)
        self._join_readers()
        killed = []
        deadline = time.monotonic() + 5
        while (left := marked(self.marker)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            killed.append(f"{pid} {_cmdline(pid)[:100]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return killed

    def _join_readers(self) -> None:
        for t in self.threads:
            t.join(5)

    @staticmethod
    def _tail(lines: deque[str], n: int = 40) -> str:
        return "\n".join(f"  | {ln}" for ln in list(lines)[-n:]) or "  | (no output)"


def _stop(proc: subprocess.Popen[str], sig: int, grace: float) -> None:
    """``sig`` to the process's group, SIGKILL if it has not exited within ``grace`` s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--yaml", default=str(REPO / "examples" / "hello.yaml"),
                   help="the Knative Service to load (examples/hello.yaml)")
    p.add_argument("--path", default="/", help="request path (e.g. /?sleep=200 for slow.yaml)")
    p.add_argument("--users", type=int, default=20, help="locust users (20)")
    p.add_argument("--duration", type=float, default=20, help="seconds of load (20)")
    p.add_argument("--png", default=str(DEFAULT_PNG),
                   help="where to draw pods and latency over time (bench/out/runtime_load.png; "
                        "'' for none)")
    p.add_argument("--every", type=float, default=2.0, help="seconds between progress lines")
    p.add_argument("--start-timeout", type=float, default=60.0,
                   help="seconds for the runtime to start and for the first request")
    p.add_argument("--locustfile", default=str(LOCUSTFILE), 
                   help="the locust users to run (bench/locustfile.py; it must print its "
                        "per-second lines as that one does)")
    a = p.parse_args(argv)
    if a.users < 1 or not 0 < a.duration <= 3600 or a.every <= 0:
        p.error("--users must be at least 1, --duration in (0, 3600], --every above 0")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if importlib.util.find_spec("locust") is None:
        print(f"runtime_load: locust is not installed: {INSTALL}", file=sys.stderr)
        return 2

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C stops the run even when started in the background of a script (which ignores it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    run = LoadRun(a)
    status = 0
    try:
        run.start_runtime()
        print(f"runtime_load: python -m activator run {a.yaml} (at zero) on "
              f"http://127.0.0.1:{run.port}", flush=True)
        run.cold_request()
        run.run_locust()
    except LoadError as exc:
        print(f"runtime_load: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("runtime_load: interrupted; stopping every process it started", file=sys.stderr)
        status = 130
    finally:
        # A second Ctrl-C must not cut the cleanup short (it is bounded: about 1 s, 45 at most).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            killed = run.close()
        finally:
            signal.signal(signal.SIGINT, previous)
    if killed:
        print("runtime_load: killed what was left behind: " + "; ".join(killed),
              file=sys.stderr)
        status = status or 1
    if status:
        return status
    doc = run.doc()
    print()
    print("\n".join(table(doc)))
    if a.png:
        draw(doc, Path(a.png))
    return 0


def draw(doc: dict[str, Any], path: Path) -> None:
    """The PNG, or one line saying why not (the run's exit status is unaffected)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from runtime_load_plot import plot_runtime_load

    try:
        plot_runtime_load(doc, path)
    except ImportError:
        print(f"runtime_load: no PNG: matplotlib is not installed ({INSTALL})")
        return
    print(f"png: {path}")


if __name__ == "__main__":
    sys.exit(main())
