#!/usr/bin/env python3
"""Draws bench/run.py's results: the comparison with HAProxy, seen rather than read.

    python bench/plot.py bench/out/results.json out.png [--cc 10]
    python bench/run.py ... --plot out.png         # the same, at the end of a run

For each CC (or only ``--cc``) and response size, two panels (a row per CC, a column per size;
with a single size, the two side by side):

* latency: p50 (solid) and p99 (dashed) against wrk's connection count, one line per target
  (direct nginx, the floor, is drawn in every column); a red cross marks a point whose runs had
  wrk errors;
* CPU: microseconds of the proxy's CPU per request, one bar per target side by side (HAProxy
  beside ours) for each connection count, with the min-max over the runs as a whisker. direct
  has no bar: its CPU is nginx's own, not a proxy's.

The data is taken from the JSON results only (``plot_results(doc, path)``). The functions that
pick the series out of it are pure and are tested without matplotlib. matplotlib is imported
only when drawing (``pip install matplotlib``); it is the only dependency outside the standard
library, and only this file needs it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# Warm colours for HAProxy, cool ones for ours, grey for nginx alone.
COLOURS = {
    "direct": "#7f7f7f",
    "haproxy": "#f28e2b",
    "haproxy-pod": "#b5651d",
    "activator": "#7b4fa0",
}
QUEUE_PROXY_COLOURS = ["#1f77b4", "#17becf", "#4e79a7", "#59a14f"]
# Bar and legend order: each of ours beside the HAProxy it is compared with.
TARGET_ORDER = ("direct", "haproxy", "queue-proxy", "haproxy-pod", "activator")


def rows_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows that succeeded, each with ``connections`` and ``size`` (results written before
    those existed get the run's one connection count and the size of GET /)."""
    meta = doc.get("meta", {})
    conn = meta.get("connections", 50)
    default_conn = conn[0] if isinstance(conn, list) and conn else conn
    out = []
    for row in doc.get("rows", []):
        if not row.get("ok", True):
            continue
        out.append(
            {
                **row,
                "connections": row.get("connections", default_conn),
                "size": row.get("size", "13"),
            }
        )
    return out


def _order(label: str) -> tuple[int, str]:
    target = label.split("[", 1)[0]
    rank = TARGET_ORDER.index(target) if target in TARGET_ORDER else len(TARGET_ORDER)
    return rank, label


def axes_of(rows: list[dict[str, Any]], cc: int | None = None) -> tuple[list[Any], list[str]]:
    """The columns (CCs; [None] when only direct ran) and the sizes, in order (sizes smallest
    first, by the digits of their label and k < m)."""
    ccs = sorted({r["cc"] for r in rows if r["cc"] is not None})
    if cc is not None:
        ccs = [c for c in ccs if c == cc]
    if not ccs:
        ccs = [None]
    units = {"": 1, "k": 1024, "m": 1024 * 1024}

    def size_key(label: str) -> tuple[float, str]:
        digits = label.rstrip("kmKM")
        unit = label[len(digits) :].lower()
        if digits.isdigit() and unit in units:
            return float(int(digits) * units[unit]), label
        return float("inf"), label

    sizes = sorted({r["size"] for r in rows}, key=size_key)
    return ccs, sizes


def _here(row: dict[str, Any], cc: Any, size: str) -> bool:
    # direct (no CC) belongs to every column: it is the floor the proxies add to.
    return row["size"] == size and (row["cc"] == cc or row["cc"] is None)


def latency_series(
    rows: list[dict[str, Any]], cc: Any, size: str
) -> dict[str, list[tuple[int, float, float, int]]]:
    """label -> [(connections, p50 ms, p99 ms, errors)] by connections, for one CC and size."""
    out: dict[str, list[tuple[int, float, float, int]]] = {}
    for r in rows:
        if _here(r, cc, size):
            point = (r["connections"], r["p50_us"] / 1e3, r["p99_us"] / 1e3, r.get("errors", 0))
            out.setdefault(r["label"], []).append(point)
    return {label: sorted(out[label]) for label in sorted(out, key=_order)}


def cpu_bars(
    rows: list[dict[str, Any]], cc: Any, size: str
) -> tuple[list[int], dict[str, list[tuple[float, float, float] | None]]]:
    """The connection counts, and label -> [(CPU us/req, min, max) or None] at each of them,
    for one CC and size; proxies only (direct's CPU is nginx's)."""
    here = [r for r in rows if _here(r, cc, size) and r["target"] != "direct"]
    conns = sorted({r["connections"] for r in here})
    bars: dict[str, list[tuple[float, float, float] | None]] = {}
    for label in sorted({r["label"] for r in here}, key=_order):
        by_conn = {r["connections"]: r for r in here if r["label"] == label}
        values: list[tuple[float, float, float] | None] = []
        for c in conns:
            r = by_conn.get(c)
            if r is None:
                values.append(None)
                continue
            mid = r["cpu_us_per_req"]
            values.append(
                (mid, r.get("cpu_us_per_req_min", mid), r.get("cpu_us_per_req_max", mid))
            )
        bars[label] = values
    return conns, bars


def colour_of(label: str, labels: list[str]) -> str:
    """A fixed colour per target; queue-proxy variants take the blues in their order."""
    target = label.split("[", 1)[0]
    if target == "queue-proxy":
        variants = [x for x in labels if x.startswith("queue-proxy")]
        i = variants.index(label) if label in variants else 0
        return QUEUE_PROXY_COLOURS[i % len(QUEUE_PROXY_COLOURS)]
    return COLOURS.get(target, "#333333")


def size_title(size: str, meta: dict[str, Any]) -> str:
    """'64k' -> '64 KiB responses' (from meta.sizes when the run recorded the bytes)."""
    n = (meta.get("sizes", {}).get(size) or [None, None])[1]
    if n is None:
        return f"GET {size}" if size.startswith("/") else f"{size} responses"
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit} responses"
    return f"{n} B responses"


def plot_results(doc: dict[str, Any], out: Path | str, cc: int | None = None) -> None:
    """Writes the PNG. Raises ModuleNotFoundError (name 'matplotlib') without matplotlib."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    meta = doc.get("meta", {})
    rows = rows_of(doc)
    ccs, sizes = axes_of(rows, cc)
    labels = sorted({r["label"] for r in rows}, key=_order)
    # One (latency, CPU) pair of panels per (CC, size): with one size, the pair side by side
    # and a row per CC; with more, a column per size and two rows per CC.
    if len(sizes) == 1:
        nrows, ncols = len(ccs), 2
    else:
        nrows, ncols = 2 * len(ccs), len(sizes)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(max(10.0, 4.8 * ncols), 1.0 + 3.3 * nrows),
        squeeze=False,
        constrained_layout=True,
    )
    for i, c in enumerate(ccs):
        for j, size in enumerate(sizes):
            if len(sizes) == 1:
                lat_ax, cpu_ax = axes[i][0], axes[i][1]
            else:
                lat_ax, cpu_ax = axes[2 * i][j], axes[2 * i + 1][j]
            where = f"{'no CC' if c is None else f'CC={c}'}, {size_title(size, meta)}"
            _draw_latency(lat_ax, latency_series(rows, c, size), labels, where)
            _draw_cpu(cpu_ax, *cpu_bars(rows, c, size), labels, where)

    handles = [
        Line2D([], [], color=colour_of(label, labels), lw=6, label=label) for label in labels
    ]
    handles += [
        Line2D([], [], color="black", ls="-", marker="o", ms=4, label="p50"),
        Line2D([], [], color="black", ls="--", marker="^", ms=4, label="p99"),
        Line2D([], [], color="red", ls="", marker="x", ms=8, mew=2, label="wrk errors"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(8, len(handles)),
        fontsize=8,
        frameon=False,
    )
    conn = meta.get("connections")
    conn_text = ",".join(map(str, conn)) if isinstance(conn, list) else str(conn)
    load = f"wrk -t1 -c{conn_text}"
    if meta.get("protocol") == "h2c":
        load = "h2c: h2load -t1, 50 conns x 10 streams at CC=0, 10 x 5 at CC>0"
    fig.suptitle(
        f"bench/run.py, {meta.get('time', '')}, git {meta.get('git')}\n"
        f"{meta.get('duration_s')} s x {meta.get('repeat')} run(s) per row (medians), "
        f"{load}, {meta.get('cpus')} CPUs",
        fontsize=10,
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _draw_latency(
    ax: Any, series: dict[str, list[tuple[int, float, float, int]]], labels: list[str], where: str
) -> None:
    all_conns = sorted({p[0] for points in series.values() for p in points})
    for label, points in series.items():
        xs = [p[0] for p in points]
        colour = colour_of(label, labels)
        ax.plot(xs, [p[1] for p in points], "-o", color=colour, ms=4)
        ax.plot(xs, [p[2] for p in points], "--^", color=colour, ms=4)
        for x, _p50, p99, errors in points:
            if errors:
                ax.plot([x], [p99], "x", color="red", ms=9, mew=2)
                ax.annotate(
                    f"{errors} err",
                    (x, p99),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color="red",
                )
    from matplotlib.ticker import FuncFormatter, NullLocator

    if all_conns and all_conns[-1] >= 10 * all_conns[0]:
        ax.set_xscale("log")
    if all_conns:
        ax.set_xticks(all_conns)
        ax.set_xticklabels([str(x) for x in all_conns])
        ax.xaxis.set_minor_locator(NullLocator())
    # Log scale when the latencies span a decade or more (1 against 500 connections do).
    values = [v for points in series.values() for p in points for v in p[1:3] if v > 0]
    scale = "linear"
    if values and max(values) >= 10 * min(values):
        scale = "log"
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    else:
        ax.set_ylim(bottom=0, top=max(values, default=1.0) * 1.15)
    ax.set_title(f"latency p50 / p99, {where}", fontsize=9)
    ax.set_xlabel("connections", fontsize=8)
    ax.set_ylabel(f"ms ({scale} scale)", fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=7)


def _draw_cpu(
    ax: Any,
    conns: list[int],
    bars: dict[str, list[tuple[float, float, float] | None]],
    labels: list[str],
    where: str,
) -> None:
    width = 0.8 / max(1, len(bars))
    for k, (label, values) in enumerate(bars.items()):
        colour = colour_of(label, labels)
        for x, v in enumerate(values):
            if v is None:
                continue
            mid, lo, hi = v
            pos = x - 0.4 + width * (k + 0.5)
            ax.bar(pos, mid, width * 0.9, color=colour)
            ax.errorbar(
                pos, mid, yerr=[[mid - lo], [hi - mid]], color="black", lw=0.8, capsize=2
            )
            ax.annotate(
                f"{mid:.0f}",
                (pos, hi),
                textcoords="offset points",
                xytext=(0, 2),
                ha="center",
                fontsize=6,
            )
    ax.set_xticks(range(len(conns)))
    ax.set_xticklabels([f"{x} conn" for x in conns])
    ax.set_title(f"proxy CPU per request (min-max), {where}", fontsize=9)
    ax.set_ylabel("CPU µs / request", fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    ax.tick_params(labelsize=7)
    ax.margins(y=0.15)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Draw bench/run.py's JSON results as a PNG.")
    p.add_argument("results", type=Path, help="results JSON (bench/out/results.json)")
    p.add_argument("out", type=Path, help="PNG to write")
    p.add_argument("--cc", type=int, default=None, help="only this CC (default: one column each)")
    args = p.parse_args(argv)
    doc = json.loads(args.results.read_text())
    try:
        plot_results(doc, args.out, args.cc)
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("matplotlib"):
            raise
        print("plot: matplotlib is not installed (pip install matplotlib)", file=sys.stderr)
        return 1
    print(f"plot: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
