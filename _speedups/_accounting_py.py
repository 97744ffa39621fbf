"""Hot-path accounting, pure-Python twin: autoscaler request stats and histogram buckets.

``RequestStats`` mirrors knative.dev/networking pkg/http/stats: every request-in and request-out
event moves a time-weighted integral of concurrency forward; ``report(now)`` closes the window.
``Histogram`` keeps bucket counts per label key as one flat list (the buckets, +Inf, then the
sum); ``HistogramGroup`` keeps several histograms under one key, so that one lookup serves all the
values a request observes. ``_accounting_c.pyx`` is the compiled twin; callers import
``_speedups.accounting``.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

__all__ = ["RequestStats", "StatReport", "Histogram", "HistogramGroup"]


@dataclass(frozen=True)
class StatReport:
    average_concurrency: float = 0.0
    average_proxied_concurrency: float = 0.0
    request_count: float = 0.0
    proxied_request_count: float = 0.0


class RequestStats:
    """Time-weighted concurrency and arrival counts over a reporting window."""

    __slots__ = (
        "concurrency",
        "proxied_concurrency",
        "_last",
        "_seconds",
        "_integral",
        "_proxied_integral",
        "_count",
        "_proxied_count",
    )

    def __init__(self, now: float) -> None:
        self.concurrency = 0
        self.proxied_concurrency = 0
        self._last = now
        self._seconds = 0.0
        self._integral = 0.0
        self._proxied_integral = 0.0
        self._count = 0
        self._proxied_count = 0

    def _move(self, now: float) -> None:
        dt = now - self._last
        if dt > 0:
            self._seconds += dt
            self._integral += self.concurrency * dt
            self._proxied_integral += self.proxied_concurrency * dt
            self._last = now

    def request_in(self, now: float, proxied: bool = False) -> None:
        self._move(now)
        self.concurrency += 1
        self._count += 1
        if proxied:
            self.proxied_concurrency += 1
            self._proxied_count += 1

    def request_out(self, now: float, proxied: bool = False) -> None:
        self._move(now)
        self.concurrency -= 1
        if proxied:
            self.proxied_concurrency -= 1

    def report(self, now: float) -> StatReport:
        """Closes the window at ``now`` and starts the next one."""
        self._move(now)
        secs = self._seconds
        if secs > 0:
            avg = self._integral / secs
            pavg = self._proxied_integral / secs
        else:
            avg = pavg = 0.0
        report = StatReport(avg, pavg, float(self._count), float(self._proxied_count))
        self._seconds = 0.0
        self._integral = 0.0
        self._proxied_integral = 0.0
        self._count = 0
        self._proxied_count = 0
        return report



class Histogram:
    """Bucket counts per label key; ``snapshot()[key]`` = bucket counts, +Inf count, sum."""

    __slots__ = ("bounds", "series", "_n")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self.series: dict[Any, list[Any]] = {}
        self._n = len(bounds) + 2

    def observe(self, key: Any, value: float) -> None:
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = [0] * (self._n - 1) + [0.0]
        s[bisect_left(self.bounds, value)] += 1
        s[-1] += value

    def snapshot(self) -> dict[Any, list[Any]]:
        """{key: [bucket counts ..., +Inf count, sum]}: a copy, for a scrape."""
        return {key: list(s) for key, s in self.series.items()}


class HistogramGroup:
    """Up to four histograms observed together under one label key: one lookup for them all.

    ``bounds`` holds each histogram's bucket bounds. ``observe(key, v0, v1, v2, v3)`` adds each
    value to its histogram; a negative value is not observed (durations and sizes never are
    negative), nor are values past the last histogram. Keys are kept up to ``limit`` series in
    all, the last of which is the overflow: once ``limit - 1`` keys are in, a new key's values
    go to the ``None`` key (OpenTelemetry's cardinality limit, 2000 by default, and its
    ``otel.metric.overflow`` series), so label values taken from requests cannot grow memory
    without bound. ``snapshot()[key]`` = one list per histogram: bucket counts, +Inf, sum.
    """

    __slots__ = ("bounds", "series", "limit")

    def __init__(self, bounds: tuple[tuple[float, ...], ...], limit: int = 2000) -> None:
        self.bounds = tuple(tuple(float(b) for b in bs) for bs in bounds)
        if not 1 <= len(self.bounds) <= 4:
            raise ValueError("one to four histograms")
        if any(len(bs) > 64 for bs in self.bounds):
            raise ValueError("at most 64 buckets")
        if limit < 2:
            raise ValueError("limit: at least 2 (one key and the overflow)")
        self.limit = limit
        self.series: dict[Any, list[list[Any]]] = {}

    def observe(self, key: Any, v0: float, v1: float = -1.0, v2: float = -1.0,
                v3: float = -1.0) -> None:
        series = self.series
        s = series.get(key)
        if s is None:
            if len(series) >= self.limit - 1 and key is not None:
                key = None
                s = series.get(None)
            if s is None:
                s = series[key] = [[0] * (len(bs) + 1) + [0.0] for bs in self.bounds]
        for i, v in enumerate((v0, v1, v2, v3)[:len(s)]):
            if v >= 0:
                h = s[i]
                h[bisect_left(self.bounds[i], v)] += 1
                h[-1] += v

    def snapshot(self) -> dict[Any, list[list[Any]]]:
        """{key: [[bucket counts ..., +Inf count, sum] for each histogram]}: a copy."""
        return {key: [list(h) for h in s] for key, s in self.series.items()}
