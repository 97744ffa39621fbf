"""Knative's activator, its KPA scaling stub and a local runtime; reuses ``proxy.engine``.

- ``Activator`` (activator/app.py): the request path, revisions, probing, stats, control API;
- ``activator.throttler`` / ``activator.lb``: the sans-IO revision throttler and Knative's
  load-balancing policies;
- ``activator.stats`` / ``activator.wire``: the concurrency reporter and Knative's websocket
  stat sink (protobuf ``WireStatMessages``);
- ``activator.kpa``: the KPA decider, sans-IO;
- ``activator.service`` / ``activator.runtime`` / ``activator.pods``: Knative Service YAML run
  locally, processes as pods (``python -m activator run``).
"""

from __future__ import annotations

import _speedups  # noqa: F401  (first: with extensions off, it makes engine imports take source)
from activator.app import Activator, RevisionNotFound
from activator.control import ControlError, RevisionSpec
from activator.lb import FirstAvailable, PodTracker, RandomChoice2, RoundRobin, policy_for
from activator.stats import ConcurrencyReporter, RevisionStat
from activator.throttler import ACQUIRED, FULL, QUEUED, RevisionThrottler, assign_slice

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
