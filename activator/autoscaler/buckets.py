"""Knative's metric windows: per-second buckets with the linear or weighted average, sans-IO.

Buckets (pkg/autoscaler/aggregation/bucketing.go): 1 s buckets in a ring the size of the window.
Records within one second add up (Knative sums the scraper's and the activator's stats per
bucket), a gap between records zeroes the skipped buckets, a gap of a whole window starts afresh.
The default algorithm is the *linear* average over the buckets since the first write (a partial
window while the window has not filled up, or when recent seconds are missing); the
exponentially weighted average exists in Knative only behind the
``autoscaling.knative.dev/metric-aggregation-algorithm: weighted-exponential`` annotation, and so
here. Each window has its own ring (as in Knative), so ``TimedBuckets.average(now)`` takes no
window argument.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["TimedBuckets", "WeightedBuckets"]


def _round6(x: float) -> float:
    # Knative's roundToNDigits(6, x).
    return math.copysign(math.floor(abs(x) * 1e6 + 0.5), x) / 1e6



# --- windows ------------------------------------------------------------------------------------


class TimedBuckets:
    """A window of 1 s buckets with Knative's linear average (TimedFloat64Buckets).

    ``record(now, value)`` adds ``value`` to the bucket of second floor(now). ``average(now)``
    divides the sum of the buckets within the window by the number of seconds between the first
    and the last write (at most the window): a partial window while it fills up and when recent
    seconds have no record; 0 once the last write is a whole window old.
    """

    __slots__ = ("_window", "_buckets", "_first", "_last")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 s")
        self._window = window
        self._buckets = [0.0] * window
        self._first: int | None = None
        self._last: int | None = None

    @property
    def window(self) -> int:
        return self._window

    def is_empty(self, now: float) -> bool:
        """No write for more than a window (Knative's IsEmpty): the decider has no data."""
        return self._last is None or math.floor(now) - self._last > self._window

    def record(self, now: float, value: float) -> None:
        t = math.floor(now)
        n = self._window
        if self._last is None or t - self._last >= n:
            # First write, or a whole window without one: start afresh.
            self._buckets = [0.0] * n
            self._first = self._last = t
        elif t > self._last:
            # Zero the seconds skipped since the last write, and this one.
            for second in range(self._last + 1, t + 1):
                self._buckets[second % n] = 0.0
            self._last = t
        elif t <= self._last - n:
            return  # older than the window: dropped
        assert self._first is not None
        if t < self._first:
            self._first = t
        self._buckets[t % n] += value

    def _span(self) -> int:
        assert self._first is not None and self._last is not None
        return self._last - self._first + 1

    def average(self, now: float) -> float:
        if self._last is None:
            return 0.0
        t = math.floor(now)
        n = self._window
        gap = t - self._last
        if gap <= 0:
            total = math.fsum(self._buckets)
            return _round6(total / min(self._span(), n))
        if gap < n:
            # PERF: summing the live buckets each time (n <= 3600, every 2 s) instead of keeping a
            # running total as Knative does: no float drift that could keep a quiet revision > 0.
            total = math.fsum(self._buckets[s % n] for s in range(t - n + 1, self._last + 1))
            return _round6(total / min(self._span(), n - gap))
        return 0.0


class WeightedBuckets(TimedBuckets):
    """Knative's WeightedFloat64Buckets: exponentially decaying weights, newest heaviest.

    The smoothing coefficient is chosen so the weights over the window add up to 99.99%, and is at
    least 0.2. Seconds without a record since the last write count as zeros.
    """

    __slots__ = ("_smoothing",)

    def __init__(self, window: int) -> None:
        super().__init__(window)
        self._smoothing = max(1 - (1 - 0.9999) ** (1 / window), 0.2)

    @property
    def smoothing_coefficient(self) -> float:
        return self._smoothing

    def average(self, now: float) -> float:
        if self.is_empty(now):
            return 0.0
        assert self._last is not None
        t = math.floor(now)
        n = self._window
        multiplier = self._smoothing
        count = n
        if t > self._last:
            skipped = t - self._last
            multiplier *= (1 - self._smoothing) ** skipped
            count -= skipped
        result = 0.0
        for i in range(count):
            result += self._buckets[(self._last - i) % n] * multiplier
            multiplier *= 1 - self._smoothing
        return result


class _MaxWindow:
    """The maximum over the last ``size`` indexes (Knative's max.TimeWindow, descending minima)."""

    __slots__ = ("_size", "_entries")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: deque[tuple[int, int]] = deque()

    def record(self, index: int, value: int) -> None:
        entries = self._entries
        while entries and value >= entries[-1][1]:
            entries.pop()  # smaller and older: can never be the maximum again
        while entries and index - entries[0][0] >= self._size:
            entries.popleft()
        if entries and entries[-1][0] == index:
            value = max(value, entries.pop()[1])
        entries.append((index, value))

    def current(self) -> int:
        return self._entries[0][1]
