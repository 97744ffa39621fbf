"""Knative's activator, its KPA autoscaler and a local runtime, in three rooms.

- ``activator.activator``: the activator proper (Knative's pkg/activator): holds requests for a
  revision with no ready pod, probes pods, throttles to their capacity, reports concurrency, and
  its control API. It runs on ``proxy.engine`` and may import ``proxy`` and ``_speedups``.
- ``activator.autoscaler``: the KPA (Knative's pkg/autoscaler): annotations and config, metric
  buckets, the per-second observation and the decider. Sans-IO; it imports nothing from the
  other two rooms.
- ``activator.runtime``: Knative Service YAML run on one machine, processes as pods (``python -m
  activator run``). It uses the other two through their public APIs; only the entry point
  (``activator.__main__``) imports it.

This package's own names are the activator's public API, loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import _speedups  # noqa: F401  (first: it decides where engine modules load from)
from _speedups._lazy import lazy_exports

if TYPE_CHECKING:
    from activator.activator import (
        ACQUIRED,
        FULL,
        QUEUED,
        Activator,
        ConcurrencyReporter,
        ControlError,
        FirstAvailable,
        PodTracker,
        RandomChoice2,
        RevisionNotFound,
        RevisionSpec,
        RevisionStat,
        RevisionThrottler,
        RoundRobin,
        assign_slice,
        policy_for,
    )

__all__ = [
    "ACQUIRED",
    "FULL",
    "QUEUED",
    "Activator",
    "ConcurrencyReporter",
    "ControlError",
    "FirstAvailable",
    "PodTracker",
    "RandomChoice2",
    "RevisionNotFound",
    "RevisionSpec",
    "RevisionStat",
    "RevisionThrottler",
    "RoundRobin",
    "assign_slice",
    "policy_for",
]

__getattr__, __dir__ = lazy_exports(__name__, dict.fromkeys(__all__, "activator.activator"))
