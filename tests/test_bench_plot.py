"""bench/plot.py's pure part: which series it draws from run.py's JSON (no matplotlib needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

_PATH = Path(__file__).resolve().parent.parent / "bench" / "plot.py"
_spec = importlib.util.spec_from_file_location("bench_plot", _PATH)
assert _spec is not None and _spec.loader is not None
plot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot)


def _row(target: str, cc: int | None, conn: int, size: str, **kw: Any) -> dict[str, Any]:
    label = f"queue-proxy[{kw.pop('variant')}]" if target == "queue-proxy" else target
    row = {
        "target": target,
        "label": label,
        "cc": cc,
        "connections": conn,
        "size": size,
        "ok": True,
        "p50_us": 1000.0,
        "p99_us": 3000.0,
        "cpu_us_per_req": 20.0,
        "cpu_us_per_req_min": 18.0,
        "cpu_us_per_req_max": 22.0,
        "errors": 0,
    }
    row.update(kw)
    return row


DOC = {
    "meta": {"connections": [1, 50], "sizes": {"1k": ["/1k.bin", 1024], "1m": ["/1m.bin", 2**20]}},
    "rows": [
        _row("direct", None, 50, "1k", p50_us=100.0),
        _row("direct", None, 1, "1k", p50_us=50.0),
        _row("haproxy", 10, 1, "1k"),
        _row("queue-proxy", 10, 1, "1k", variant="default", cpu_us_per_req=40.0),
        _row("haproxy", 10, 50, "1k"),
        _row("queue-proxy", 10, 50, "1k", variant="default", errors=3),
        _row("haproxy", 0, 50, "1m"),
        _row("activator", 0, 50, "1m", ok=False),
    ],
}


def test_latency_series_by_connections_with_direct_in_every_column():
    rows = plot.rows_of(DOC)
    series = plot.latency_series(rows, 10, "1k")
    assert list(series) == ["direct", "haproxy", "queue-proxy[default]"]
    assert series["direct"] == [(1, 0.05, 3.0, 0), (50, 0.1, 3.0, 0)]
    assert series["queue-proxy[default]"][1] == (50, 1.0, 3.0, 3)
    assert list(plot.latency_series(rows, 0, "1k")) == ["direct"]


def test_cpu_bars_put_ours_beside_haproxy_and_leave_out_direct_and_failed_rows():
    rows = plot.rows_of(DOC)
    conns, bars = plot.cpu_bars(rows, 10, "1k")
    assert conns == [1, 50]
    assert list(bars) == ["haproxy", "queue-proxy[default]"]
    assert bars["queue-proxy[default]"][0] == (40.0, 18.0, 22.0)
    conns, bars = plot.cpu_bars(rows, 0, "1m")
    assert conns == [50] and list(bars) == ["haproxy"]  # the failed activator row is not drawn


def test_axes_sort_sizes_by_bytes_and_pick_a_cc():
    rows = plot.rows_of(DOC)
    assert plot.axes_of(rows) == ([0, 10], ["1k", "1m"])
    assert plot.axes_of(rows, cc=10) == ([10], ["1k", "1m"])
    assert plot.size_title("1m", DOC["meta"]) == "1 MiB responses"
    assert plot.size_title("13", {}) == "13 responses"


def test_results_from_before_connections_and_sizes_still_read():
    old = {"meta": {"connections": 50}, "rows": [{k: v for k, v in DOC["rows"][2].items()
                                                  if k not in ("connections", "size")}]}
    (row,) = plot.rows_of(old)
    assert (row["connections"], row["size"]) == (50, "13")
