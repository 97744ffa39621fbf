"""Knative's activator and KPA scaling stub; reuses ``proxy.engine`` for the bytes.

So far: the sans-IO revision throttler and the load-balancing policies (the activator process,
backends, stats and the KPA stub come in the next issues).
"""

from __future__ import annotations

from activator.lb import FirstAvailable, PodTracker, RandomChoice2, RoundRobin, policy_for
from activator.throttler import ACQUIRED, FULL, QUEUED, RevisionThrottler, assign_slice

__all__ = [
    "ACQUIRED",
    "FULL",
    "QUEUED",
    "FirstAvailable",
    "PodTracker",
    "RandomChoice2",
    "RevisionThrottler",
    "RoundRobin",
    "assign_slice",
    "policy_for",
]
