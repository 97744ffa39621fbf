"""Draws a ``bench/runtime_load.py`` run: the load, its latency and the pods over time.

Three panels over one time axis (seconds since the cold request, time 0):

* requests/s, each locust second, with its errors as red crosses;
* latency: p50 (solid) and p99 (dashed) of each second, in ms on a log scale, and the cold
  start (the first request, from zero) as a dot at its own time;
* pods: the runtime's pod processes as read from /proc (``runtime_load.pods_of``), and the
  pods the autoscaler wanted (the runtime's ``ready -> desired`` lines) as a dashed step.

``series(doc)`` picks the lines out of the run's document and is pure (tested without
matplotlib); ``plot_runtime_load(doc, path)`` imports matplotlib only to draw, and raises
ImportError without it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Series = tuple[list[float], list[float]]


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def series(doc: dict[str, Any]) -> dict[str, Series]:
    """Each line as (x, y): ``rps`` and ``errors`` (seconds with errors only) at each window's
    end, ``p50`` and ``p99`` (windows with requests only), ``pods`` (every reading),
    ``desired`` (a step: each decision, held until the next, drawn to the last reading) and
    ``cold`` (one point: its end, its latency)."""
    out: dict[str, Series] = {k: ([], []) for k in
                              ("rps", "errors", "p50", "p99", "pods", "desired", "cold")}
    for w in doc["windows"]:
        span = w["t1"] - w["t0"]
        out["rps"][0].append(w["t1"])
        out["rps"][1].append(len(w["ms"]) / span if span > 0 else 0.0)
        n_err = sum(w["errors"].values())
        if n_err:
            out["errors"][0].append(w["t1"])
            out["errors"][1].append(float(n_err))
        if w["ms"]:
            for key, q in (("p50", 0.5), ("p99", 0.99)):
                out[key][0].append(w["t1"])
                out[key][1].append(_percentile(w["ms"], q))
    for t, n in doc["pods"]:
        out["pods"][0].append(t)
        out["pods"][1].append(float(n))
    end = doc["pods"][-1][0] if doc["pods"] else None
    for t, _ready, desired in doc["decisions"]:
        out["desired"][0].append(t)
        out["desired"][1].append(float(desired))
    if out["desired"][0] and end is not None and end > out["desired"][0][-1]:
        out["desired"][0].append(end)
        out["desired"][1].append(out["desired"][1][-1])
    cold = doc.get("cold_start") or {}
    if "ms" in cold:
        out["cold"] = ([cold["ms"] / 1000], [cold["ms"]])
    return out


def title(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    return (f"{m['host']}: GET {m['path']}, {m['users']} users, {m['duration']:g} s, "
            f"from zero (local runtime, extensions {'on' if m['extensions'] else 'off'})")


def plot_runtime_load(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    s = series(doc)
    fig, (ax_rps, ax_lat, ax_pods) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax_rps.plot(*s["rps"], color="#1f77b4", label="requests/s")
    if s["errors"][0]:
        ax_rps.plot(*s["errors"], "x", color="#d62728", label="errors in that second")
    ax_rps.set_ylabel("requests/s")
    ax_rps.set_ylim(bottom=0)
    ax_rps.legend(loc="lower right", fontsize=8)

    ax_lat.plot(*s["p50"], color="#4e79a7", label="p50")
    ax_lat.plot(*s["p99"], "--", color="#f28e2b", label="p99")
    if s["cold"][0]:
        ax_lat.plot(*s["cold"], "o", color="#d62728", label="cold start (first request)")
    ax_lat.set_yscale("log")
    ax_lat.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    # Of the minor ticks (2..9 x 10^n) only 2 and 5 are labelled: fewer labels, still readable.
    ax_lat.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _pos: f"{v:g}" if f"{v:e}"[0] in "25" else ""))
    ax_lat.set_ylabel("latency (ms)")
    ax_lat.legend(loc="upper right", fontsize=8)

    ax_pods.step(*s["pods"], where="post", color="#59a14f", label="pods (processes)")
    if s["desired"][0]:
        ax_pods.step(*s["desired"], "--", where="post", color="#7f7f7f",
                     label="desired (autoscaler)")
    ax_pods.set_ylabel("pods")
    ax_pods.set_ylim(bottom=0)
    ax_pods.set_xlabel("seconds since the first request")
    ax_pods.legend(loc="lower right", fontsize=8)

    for ax in (ax_rps, ax_lat, ax_pods):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title(doc), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
