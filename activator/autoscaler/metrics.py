"""The per-second observation a revision's decider is fed, sans-IO.

Knative's metric collector (pkg/autoscaler/metrics/collector.go, ``collection.record``) turns each
scraped pod ``Stat`` into two numbers and records both into the revision's buckets:

- concurrency: ``AverageConcurrentRequests - AverageProxiedConcurrentRequests``;
- requests per second: ``RequestCount - ProxiedRequestCount``.

The proxied part was already counted by the activator, whose own stats (its average concurrency
and its request count per revision, proxied fields zero) are recorded into the same buckets. The
decider then scales on the one its ``metric`` names (``concurrency`` by default, ``rps`` with
``autoscaling.knative.dev/metric: rps``, target per pod 200 by default).

``MetricObserver`` does that for one revision, once a second: the caller hands it what the
second's scrape of the ready pods gave (``PodSample`` each, their one-second window) and what the
activator reported in the second (``activator(...)``), and ``observe(now, has_pods)`` returns the
value to record, or None when nothing should be recorded:

- at most one value per wall-clock second: the decider adds up what is recorded within a second,
  so a late tick followed by a prompt one would count a second twice;
- nothing while the revision has no pod and the activator reported nothing and the value is 0
  (Knative's scraper has nothing to scrape then); otherwise every second is recorded, zeros
  included, so a quiet revision's average falls and it can reach zero.

Time is passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from activator.autoscaler.config import CONCURRENCY, RPS

__all__ = ["MetricObserver", "PodSample"]


@dataclass(frozen=True, slots=True)
class PodSample:
    """The fields of one pod's (or the activator's) ``Stat`` the autoscaler reads, over one
    second."""

    average_concurrency: float = 0.0
    average_proxied_concurrency: float = 0.0
    request_count: float = 0.0
    proxied_request_count: float = 0.0

    def value(self, metric: str) -> float:
        """What Knative's collector records for ``metric``: the sample minus its proxied part."""
        if metric == RPS:
            return self.request_count - self.proxied_request_count
        return self.average_concurrency - self.average_proxied_concurrency


class MetricObserver:
    """One revision's observation for its decider, a value a second (see the module docstring)."""

    __slots__ = ("metric", "_activator", "_activator_seen", "_last_second")

    def __init__(self, metric: str = CONCURRENCY) -> None:
        if metric not in (CONCURRENCY, RPS):
            raise ValueError(f"metric {metric!r} is not supported by the KPA")
        self.metric = metric
        self._activator = 0.0
        self._activator_seen = False
        self._last_second = -1

    def activator(self, sample: PodSample) -> None:
        """The activator's report for this revision in the current second (the last one wins:
        it reports once a second)."""
        self._activator = sample.value(self.metric)
        self._activator_seen = True

    def observe(self, now: float, pods: Iterable[PodSample], has_pods: bool) -> float | None:
        """The second's value (ready pods' samples plus the activator's report), or None.

        ``has_pods``: whether the revision has any pod at all (ready or starting). The
        activator's report is consumed either way.
        """
        metric = self.metric
        value = sum(p.value(metric) for p in pods) + self._activator
        had_activator = self._activator_seen
        self._activator = 0.0
        self._activator_seen = False
        second = int(now)
        if second == self._last_second:
            return None
        if not (has_pods or had_activator or value):
            return None
        self._last_second = second
        return value
