"""The activator proper (Knative's pkg/activator), on the shared proxy engine.

- ``app``: ``Activator`` (the Python API: revisions, endpoints, start, drain), its request
  handler chain and its per-revision state;
- ``throttler`` and ``lb``: the sans-IO revision throttler and Knative's load-balancing policies;
- ``backends``: probing pods before they get traffic;
- ``stats`` and ``wire``: the concurrency reporter and Knative's websocket stat sink;
- ``control``: the small HTTP control API for controllers out of process.

May import ``proxy`` (engine and shared policy) and ``_speedups``; never the autoscaler or the
runtime. The names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import _speedups  # noqa: F401  (first: it decides where engine modules load from)
from _speedups._lazy import lazy_exports

if TYPE_CHECKING:
    from activator.activator.app import Activator, Revision, RevisionNotFound
    from activator.activator.control import ControlError, RevisionSpec
    from activator.activator.lb import (
        FirstAvailable,
        PodTracker,
        RandomChoice2,
        RoundRobin,
        policy_for,
    )
    from activator.activator.stats import ConcurrencyReporter, RevisionStat
    from activator.activator.throttler import (
        ACQUIRED,
        FULL,
        QUEUED,
        RevisionThrottler,
        assign_slice,
    )
    from activator.activator.wire import WebsocketStatSink

_EXPORTS = {
    "Activator": "activator.activator.app",
    "Revision": "activator.activator.app",
    "RevisionNotFound": "activator.activator.app",
    "ControlError": "activator.activator.control",
    "RevisionSpec": "activator.activator.control",
    "FirstAvailable": "activator.activator.lb",
    "PodTracker": "activator.activator.lb",
    "RandomChoice2": "activator.activator.lb",
    "RoundRobin": "activator.activator.lb",
    "policy_for": "activator.activator.lb",
    "ConcurrencyReporter": "activator.activator.stats",
    "RevisionStat": "activator.activator.stats",
    "ACQUIRED": "activator.activator.throttler",
    "FULL": "activator.activator.throttler",
    "QUEUED": "activator.activator.throttler",
    "RevisionThrottler": "activator.activator.throttler",
    "assign_slice": "activator.activator.throttler",
    "WebsocketStatSink": "activator.activator.wire",
}
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
    "Revision",
    "RevisionNotFound",
    "RevisionSpec",
    "RevisionStat",
    "RevisionThrottler",
    "RoundRobin",
    "WebsocketStatSink",
    "assign_slice",
    "policy_for",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
