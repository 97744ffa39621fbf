"""The activator's concurrency reporter, sans-IO: per-revision stats for the autoscaler.

Theory of operation (Knative's pkg/activator/handler/concurrency_reporter.go): every request
that enters the activator is counted against its revision from arrival until its response is
done, so the in-flight figure is "waiting in the throttler + forwarded to a pod". Each revision
gets a ``RequestStats`` (the queue-proxy's time-weighted integral, _speedups/accounting) that
``request_in`` / ``request_out`` move forward; ``report(now)``, called on the 1 s tick, closes
every revision's window and returns one ``RevisionStat`` each: the average concurrency over the
window and the arrivals in it.

The poke: a request for a revision with no entry creates one and ``request_in`` returns a report
of concurrency 1, count 1, for the caller to send at once, so a revision at zero starts scaling
without waiting for the tick. The next regular report of that entry subtracts the poke: 1 from
its count, and 1 from its average concurrency, floored at 0 (the window's true average may be
below 1). An entry is dropped in the report where its window's average concurrency is 0 and
nothing is in flight; that zero report is still returned, once. The next request recreates the
entry and pokes again.

Where this follows Knative's source rather than the spec's prose (spec/activator.md section 5):

- The poke is subtracted from the average concurrency too, not only from the count.
- "No traffic" means a window average of 0 (Knative's test is on ``AverageConcurrency`` alone):
  requests that arrive and leave at the same instant add 0 request-seconds, so such an entry
  still reports their count and is then dropped.
- A new entry's first window starts at its first request, not at the previous tick (Knative's
  ``NewRequestStats(event.Time)``), so the first average covers a shorter span.
- An empty ``report`` list means nothing to send (Knative only sends non-empty batches).

Knative keeps a per-entry reference count so that deletion never races a request holding the
entry; here the event loop is single-threaded, so the in-flight count itself is the guard.
``request_out`` without a matching ``request_in`` (unknown revision, or nothing in flight) is
ignored: concurrency never goes negative. In Knative it cannot happen, the out-event is recorded
on the entry returned by the in-event.

Time is passed in (monotonic seconds), so tests drive it with a fake clock. Sinks are plain
callables ``sink(reports)``, called with the poke (a one-item list) and with each non-empty tick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The module, not the class: the compiled build cimports the class (stats.pxd) for C calls.
from _speedups import accounting

__all__ = ["ConcurrencyReporter", "RevisionKey", "RevisionStat", "StatSink"]

RevisionKey = tuple[str, str]
"""(namespace, name) of a revision, Knative's ``types.NamespacedName``."""


@dataclass(frozen=True, slots=True)
class RevisionStat:
    """One revision's ``StatMessage`` as Knative's activator sends it: the key, and a ``Stat``
    with only ``pod_name``, ``average_concurrent_requests`` and ``request_count`` set (the
    proxied fields, uptime and timestamp stay zero)."""

    namespace: str
    name: str
    pod_name: str
    average_concurrency: float
    request_count: float

    @property
    def key(self) -> RevisionKey:
        return (self.namespace, self.name)


StatSink = Callable[[list[RevisionStat]], None]
"""Where reports go: called from the event loop; must not block or raise."""


class ConcurrencyReporter:
    """Per-revision time-weighted concurrency and request counts, reported on a tick."""

    __slots__ = ("pod_name", "_stats", "_poked", "_last_key", "_last")

    def __init__(self, pod_name: str) -> None:
        #: The activator's own pod name, sent as ``Stat.pod_name``.
        self.pod_name = pod_name
        self._stats: dict[RevisionKey, accounting.RequestStats] = {}
        # Entries whose next report subtracts the poke (Knative's ``firstRequest``).
        self._poked: set[RevisionKey] = set()
        # PERF: the entry of the key last asked for, found by identity (a revision passes the
        # same tuple each time): no tuple hash and dict lookup per request. Dropping an entry
        # (report) clears it.
        self._last_key: RevisionKey | None = None
        self._last: accounting.RequestStats | None = None

    def request_in(self, key: RevisionKey, now: float) -> RevisionStat | None:
        """A request for ``key`` arrived. Returns the poke to send at once for a revision with
        no entry, else None."""
        if key is self._last_key:
            stats = self._last
        else:
            stats = self._stats.get(key)
            if stats is not None:
                self._last_key, self._last = key, stats
        if stats is not None:
            stats.request_in(now)
            return None
        stats = self._stats[key] = accounting.RequestStats(now)
        self._last_key, self._last = key, stats
        stats.request_in(now)
        self._poked.add(key)
        return RevisionStat(key[0], key[1], self.pod_name, 1.0, 1.0)

    def request_out(self, key: RevisionKey, now: float) -> None:
        """A request for ``key`` is done (answered, failed or given up while waiting)."""
        stats = self._last if key is self._last_key else self._stats.get(key)
        if stats is not None and stats.concurrency > 0:
            stats.request_out(now)

    def report(self, now: float) -> list[RevisionStat]:
        """Closes every revision's window at ``now``: one report each, in first-seen order.
        Entries with a zero average and nothing in flight are dropped after this report."""
        poked = self._poked
        self._poked = set()
        pod = self.pod_name
        out: list[RevisionStat] = []
        idle: list[RevisionKey] = []
        for key, stats in self._stats.items():
            r = stats.report(now)
            avg = r.average_concurrency
            count = r.request_count
            if avg == 0.0 and stats.concurrency == 0:
                idle.append(key)
            if key in poked:
                # The count includes the poked request (the entry was created by it), so it
                # cannot go below 0; the average can, hence the floor.
                avg = max(avg - 1.0, 0.0)
                count -= 1.0
            out.append(RevisionStat(key[0], key[1], pod, avg, count))
        if idle:
            self._last_key = self._last = None
        for key in idle:
            del self._stats[key]
        return out

    def in_flight(self, key: RevisionKey) -> int:
        """Requests for ``key`` in the activator now (waiting or forwarded)."""
        stats = self._stats.get(key)
        return 0 if stats is None else int(stats.concurrency)

    def __contains__(self, key: object) -> bool:
        return key in self._stats

    def __len__(self) -> int:
        return len(self._stats)
