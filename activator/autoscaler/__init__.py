"""The KPA autoscaler (Knative's pkg/autoscaler), sans-IO: time is passed in, nothing here
sleeps, reads a clock or does IO.

- ``config``: ``ScalingConfig``, Knative's autoscaling annotations and config-autoscaler
  defaults, with the webhook's validation (``AnnotationError``);
- ``buckets``: the per-second metric windows (linear and weighted averages);
- ``metrics``: the per-second observation a decider is fed (concurrency, or requests per second
  for ``metric: rps``), from pod and activator stats;
- ``decider``: ``Decider``, Knative's autoscaler Scale plus the KPA reconciler's bounds and
  scale-to-zero rules.

Imports nothing from the activator or the runtime (nor from ``proxy``). The names below load on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from _speedups._lazy import lazy_exports

if TYPE_CHECKING:
    from activator.autoscaler.buckets import TimedBuckets, WeightedBuckets
    from activator.autoscaler.config import (
        ANNOTATION_KEYS,
        CONCURRENCY,
        HPA_CLASS,
        KPA_CLASS,
        RPS,
        AnnotationError,
        ScalingConfig,
    )
    from activator.autoscaler.decider import Decider, Decision
    from activator.autoscaler.metrics import MetricObserver, PodSample

_EXPORTS = {
    "TimedBuckets": "activator.autoscaler.buckets",
    "WeightedBuckets": "activator.autoscaler.buckets",
    "ANNOTATION_KEYS": "activator.autoscaler.config",
    "CONCURRENCY": "activator.autoscaler.config",
    "HPA_CLASS": "activator.autoscaler.config",
    "KPA_CLASS": "activator.autoscaler.config",
    "RPS": "activator.autoscaler.config",
    "AnnotationError": "activator.autoscaler.config",
    "ScalingConfig": "activator.autoscaler.config",
    "Decider": "activator.autoscaler.decider",
    "Decision": "activator.autoscaler.decider",
    "MetricObserver": "activator.autoscaler.metrics",
    "PodSample": "activator.autoscaler.metrics",
}
__all__ = [
    "ANNOTATION_KEYS",
    "CONCURRENCY",
    "HPA_CLASS",
    "KPA_CLASS",
    "RPS",
    "AnnotationError",
    "Decider",
    "Decision",
    "MetricObserver",
    "PodSample",
    "ScalingConfig",
    "TimedBuckets",
    "WeightedBuckets",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
