"""Rows: one measurement of (target, CC, variant, connections, size), their medians, and the
ratios against HAProxy."""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BENCH_REVISION,
    H2_SHAPE,
    HELLO_SIZE,
    HOST,
    STOP_TIMEOUT,
    VARIANTS,
    BenchError,
    Children,
    log_tail,
    pin_tree,
    tree_cpu_seconds,
    tree_cpu_times,
    tree_rss_bytes,
    variant_env,
)
from targets import Server, start_activator, start_haproxy, start_queue_proxy
from wrk import run_h2load, run_wrk

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
    scheme = "https" if getattr(args, "protocol", "") == "https" and server is not app else "http"
    url = f"{scheme}://{HOST}:{server.port}{args.size_paths[row.size]}"
    headers: tuple[str, ...] = ()
    if row.target == "activator":
        ns, name = BENCH_REVISION
        headers = (f"Knative-Serving-Namespace: {ns}", f"Knative-Serving-Revision: {name}")
    h2c = getattr(args, "protocol", "http1") == "h2c"
    cpus = getattr(args, "cpus", None)
    front = cpus[0] if cpus is not None else None  # --layout split: with the proxy
    if h2c:
        clients, streams = h2_shape(row.cc)
        log = lua.with_name("h2load.log")
        if args.warmup > 0:
            run_h2load(children, url, args.warmup, clients, streams, log, headers, front)
    elif args.warmup > 0:
        run_wrk(children, url, args.warmup, row.connections, lua, headers, front)
    (user0, sys0), app0 = tree_cpu_times(server.proc.pid), tree_cpu_seconds(app.proc.pid)
    if h2c:
        result, text = run_h2load(children, url, args.duration, clients, streams, log, headers,
                                  front)
    else:
        result, text = run_wrk(children, url, args.duration, row.connections, lua, headers,
                               front)
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


def h2_shape(cc: int | None) -> tuple[int, int]:
    """--protocol h2c: (connections, streams per connection) for a row at ``cc``."""
    return H2_SHAPE[0] if not cc else H2_SHAPE["cc"]


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
    h2c = getattr(args, "protocol", "http1") == "h2c"
    certs = getattr(args, "certs", None)  # --protocol https: the pair's directory
    try:
        if certs is not None and target in ("activator", "haproxy-pod"):
            raise BenchError(f"{target} has no TLS row (the activator does not serve TLS yet)")
        if target == "direct":
            server = app
        elif target == "haproxy":
            assert cc is not None
            server = start_haproxy(children, tmp, cc, app.port, args.ready_timeout, h2c,
                                   certs=certs)
        elif target == "activator":
            assert cc is not None
            extra = dict(VARIANTS["default"])
            extra.update(args.proxy_env)
            pod = start_queue_proxy(
                children, tmp, cc, app.port, "pod", extra, args.proxy_cmd, args.ready_timeout,
                h2c,
            )
            server = start_activator(children, tmp, cc, pod, args.ready_timeout)
        elif target == "haproxy-pod":
            assert cc is not None
            extra = dict(VARIANTS["default"])
            extra.update(args.proxy_env)
            pod = start_queue_proxy(
                children, tmp, cc, app.port, "pod", extra, args.proxy_cmd, args.ready_timeout,
                h2c,
            )
            server = start_haproxy(children, tmp, cc, pod.port, args.ready_timeout, h2c)
        else:
            assert cc is not None
            extra = variant_env(variant)
            extra.update(args.proxy_env)
            server = start_queue_proxy(
                children, tmp, cc, app.port, variant, extra, args.proxy_cmd, args.ready_timeout,
                h2c, certs=certs,
            )
        cpus = getattr(args, "cpus", None)
        if cpus is not None:  # --layout split
            if server is not app:
                pin_tree(server.proc.pid, cpus[0])
            if pod is not None:
                pin_tree(pod.proc.pid, cpus[1])
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


def tracing_cost(rows: list[Summary]) -> list[dict[str, Any]]:
    """Per CC (connections, size), the CPU per request of each queue-proxy[trace*] row against
    queue-proxy[default] (medians): what tracing costs at that sampling rate."""
    qp = {
        (r.variant, r.cc, r.connections, r.size): r
        for r in rows
        if r.target == "queue-proxy" and r.ok
    }
    out = []
    for (variant, cc, conn, size), traced in qp.items():
        default = qp.get(("default", cc, conn, size))
        if not variant.startswith("trace") or default is None:
            continue
        d, t = default.median("cpu_us_per_req"), traced.median("cpu_us_per_req")
        out.append(
            {
                "variant": variant,
                "cc": cc,
                "connections": conn,
                "size": size,
                "default_cpu_us_per_req": d,
                "traced_cpu_us_per_req": t,
                "traced_cpu_us_per_req_range": list(traced.spread("cpu_us_per_req")),
                "cpu_ratio": _div(t, d),
                "rps_ratio": _div(traced.median("rps"), default.median("rps")),
            }
        )
    return out


def _div(a: float, b: float) -> float | None:
    return a / b if b else None
