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
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# bench/ is not a package: its modules import each other by name. Run as a script, bench/ is
# already sys.path[0]; loaded from its path (importlib), it is put there first.
_BENCH = str(Path(__file__).resolve().parent)
if not any(Path(p or ".").resolve() == Path(_BENCH) for p in sys.path):
    sys.path.insert(0, _BENCH)

from common import (  # noqa: E402
    APT_PACKAGES,
    DEFAULT_CC,
    DEFAULT_CONNECTIONS,
    DEFAULT_OUT,
    DEFAULT_REPEAT,
    H2LOAD,
    HAPROXY,
    HELLO_SIZE,
    MATRIX,
    MAX_CONNECTIONS,
    MAX_REPEAT,
    MAX_SIZE_BYTES,
    NGHTTPD,
    NGINX,
    OPEN_FILES,
    READY_TIMEOUT,
    SIZE_UNITS,
    TARGET_ALIASES,
    TARGETS,
    VARIANTS,
    WRK,
    WRK_LUA,
    BenchError,
    Children,
    _raise_exit,
    layout_cpus,
    pin_tree,
)
from report import format_table, write_json  # noqa: E402
from rows import (  # noqa: E402
    Row,
    RowKey,
    ratios,
    run_row,
    stats_cost,
    summarize,
    tracing_cost,
)
from targets import make_pair, start_nghttpd, start_nginx  # noqa: E402

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
        "--protocol", choices=("http1", "h2c", "https"), default="http1",
        help="http1: wrk against nginx (the default); h2c: h2load (one thread, 50 connections "
             "x 10 streams at CC=0, 10 x 5 at other CCs) against nghttpd --no-tls, HAProxy "
             "with proto h2 on both sides; https: wrk over TLS 1.3 to HAProxy (bind ... ssl) "
             "and to the queue-proxy's TLS port, the same self-signed pair (openssl), nginx "
             "plain behind (targets direct, haproxy, queue-proxy)",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="warm-up seconds per run (2; 1 with --quick)"
    )
    p.add_argument(
        "--layout", choices=("free", "split"), default="free",
        help="free: the scheduler places every process (the default); split: the load "
             "generator and the proxy under test on the first half of the CPUs, all behind it "
             "(the app; the activator's or HAProxy's pod) on the second, as on separate nodes",
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
    tools = (NGINX, HAPROXY, WRK, H2LOAD, NGHTTPD)
    missing = [t for t in tools if not os.access(t, os.X_OK)]
    if missing and install:
        print(f"bench: installing {' '.join(APT_PACKAGES)}", file=sys.stderr)
        subprocess.run(["apt-get", "update"], check=False, timeout=600)
        subprocess.run(["apt-get", "install", "-y", *APT_PACKAGES], check=False, timeout=600)
        missing = [t for t in tools if not os.access(t, os.X_OK)]
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
    args.cpus = None
    try:
        tmp = children.mkdtemp()
        lua = tmp / "report.lua"
        lua.write_text(WRK_LUA)
        files = {args.size_paths[s]: n for s, n in args.size_bytes.items() if s != HELLO_SIZE}
        if args.protocol == "https":
            args.certs = make_pair(tmp)
        if args.protocol == "h2c":
            app = start_nghttpd(children, tmp, args.ready_timeout)
        else:
            app = start_nginx(children, tmp, args.ready_timeout, files)
        args.cpus = layout_cpus(args.layout)
        if args.cpus is not None:
            pin_tree(app.proc.pid, args.cpus[1])
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
    tracing = tracing_cost(rows)
    table = format_table(rows, rat, cost, args.repeat, tracing)
    if args.cpus is not None:
        front, back = (",".join(map(str, sorted(c))) for c in args.cpus)
        table = (f"layout split: wrk and the proxy under test on CPU {front}; the app and the "
                 f"activator's or HAProxy's pod on CPU {back}\n" + table)
    print(table)
    doc = write_json(args.out, args, rows, rat, cost, table, tracing)
    print(f"\nresults: {args.out}", file=sys.stderr)
    if args.plot is not None:
        draw(doc, args.plot)
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
