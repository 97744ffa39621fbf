"""Knative's revision throttler, sans-IO: hold requests until a pod can take them, then pick one.

Theory of operation: two levels, as in Knative. A revision-wide ``Breaker`` (proxy/breaker.py)
counts the requests running through this activator against the revision's capacity and keeps the
waiters in arrival order; per-pod ``PodTracker``s (activator/lb.py) count each pod's share, and
the load-balancing policy picks a pod with a free slot for every request the breaker lets run.

- ``acquire(waiter)`` -> ``(ACQUIRED, pod)``, ``(QUEUED, None)`` or ``(FULL, None)`` (the caller
  answers 503 "pending request queue full").
- ``release(pod)`` -> the ``(waiter, pod)`` pairs that now run (at most one).
- ``cancel(waiter)`` takes a waiter out (client gone, revision timeout passed);
  ``waiters()`` lists them, oldest first.
- ``update_pods(healthy, cluster_address=None)`` and ``update_activators(index, count)`` ->
  the ``(waiter, pod)`` pairs that run at once because capacity appeared, oldest first.

Capacity (Knative's ``calculateCapacity``): CC x the number of healthy pods assigned to this
activator; with several activators each takes its slice of the sorted pod list (``assign_slice``,
CC > 0 only). When routing through a cluster address instead of pod addresses, every request goes
to that address and capacity is CC x healthy pods / activators, at least 1. CC = 0 is unlimited as
soon as one pod is healthy, 0 while none is.

Accounting invariant: the breaker's running count covers every request handed out, including
those on pods that have since been removed; the assigned trackers' ``in_flight`` sum to at most
that count. So whenever the breaker grants a slot (running < CC x assigned pods) some assigned pod
has a free slot, and the policy cannot come back empty-handed; Knative's "re-enqueue" loop for that
race is not needed here. A removed pod's tracker stays known until its last request is released,
so its releases keep counting right and, should the pod come back meanwhile, it never runs more
than CC requests (Knative starts a fresh tracker; we keep the count).

Waiting, as Knative's: the revision breaker takes ``queue_depth`` (breakerQueueDepth, 10 000) +
MaxInt32 requests in all, so its 503 "pending request queue full" practically never fires and
requests wait for a pod as long as their timeout allows (knative/serving throttler.go; the spec
said 10 000 waiters: the source wins). ``max_waiting`` (ours, 0: none) bounds the waiters for
an embedder that wants the 503 sooner.

Mirrors knative/serving pkg/activator/net/throttler.go (revisionThrottler: try, updateCapacity,
calculateCapacity, handleUpdate, handlePubEpsUpdate; pickIndices, assignSlice).
"""

from __future__ import annotations

import random
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

from activator.activator.lb import PodTracker, policy_for
from proxy.breaker import ACQUIRED, FULL, QUEUED, Breaker

__all__ = [
    "RevisionThrottler",
    "assign_slice",
    "infer_index",
    "ACQUIRED",
    "QUEUED",
    "FULL",
    "DEFAULT_QUEUE_DEPTH",
    "REVISION_MAX_CONCURRENCY",
]

DEFAULT_QUEUE_DEPTH = 10_000
# The revision breaker needs a finite size; Knative uses MaxInt32. Here it means unlimited (CC = 0).
REVISION_MAX_CONCURRENCY = 2**31 - 1

T = TypeVar("T")
Grant = tuple[Hashable, str]
_NO_GRANTS: list[Grant] = []  # shared, never mutated: release's common answer


def assign_slice(pods: Sequence[T], index: int, count: int) -> list[T]:
    """This activator's share of ``pods`` (sorted by address), as Knative's assignSlice.

    Index -1 (this activator is not in the revision's path yet), a single activator or at most
    one pod: all of them. More activators than pods: pod ``index % len(pods)``. Otherwise an equal
    slice each, and the ``len(pods) % count`` pods left at the end go one each to the first
    activators.
    """
    n = len(pods)
    if index == -1 or n <= 1 or count == 1:
        return list(pods)
    if count > n:
        begin = index % n
        return [pods[begin]]
    size = n // count
    begin = index * size
    mine = list(pods[begin : begin + size])
    remnants = n % count
    if index < remnants:
        mine.append(pods[n - remnants + index])
    return mine


class RevisionThrottler:
    __slots__ = (
        "container_concurrency",
        "queue_depth",
        "max_waiting",
        "activator_index",
        "activator_count",
        "_breaker",
        "_policy",
        "_trackers",
        "_live",
        "_healthy",
        "_assigned",
        "_cluster",
        "_backend_count",
    )

    def __init__(
        self,
        container_concurrency: int,
        *,
        queue_depth: int = DEFAULT_QUEUE_DEPTH,
        max_waiting: int = 0,
        activator_index: int = -1,
        activator_count: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        if container_concurrency < 0:
            raise ValueError(
                f"container concurrency must be 0 or greater, got {container_concurrency}"
            )
        if queue_depth <= 0:
            raise ValueError(f"queue depth must be greater than 0, got {queue_depth}")
        _check_activators(activator_index, activator_count)
        self.container_concurrency = container_concurrency
        if max_waiting < 0:
            raise ValueError(f"max waiting must be 0 (none) or greater, got {max_waiting}")
        self.queue_depth = queue_depth
        self.max_waiting = max_waiting
        self.activator_index = activator_index
        self.activator_count = activator_count
        self._breaker = Breaker(queue_depth, REVISION_MAX_CONCURRENCY, 0)
        self._policy = policy_for(container_concurrency, rng)
        # Every tracker with a reason to exist: healthy pods, the cluster address, and removed ones
        # whose requests still run. ``_live`` names the first two.
        self._trackers: dict[str, PodTracker] = {}
        self._live: set[str] = set()
        self._healthy: list[PodTracker] = []  # sorted by address
        self._assigned: list[PodTracker] = []  # this activator's slice of _healthy
        self._cluster: PodTracker | None = None
        self._backend_count = 0  # healthy pods, whether routed to directly or not

    # ------------------------------------------------------------------ state

    @property
    def capacity(self) -> int:
        """Requests this activator may run at once (REVISION_MAX_CONCURRENCY = unlimited)."""
        return self._breaker.capacity

    @property
    def active(self) -> int:
        """Requests running (handed a pod, not yet released)."""
        return self._breaker.active

    @property
    def waiting(self) -> int:
        return self._breaker.waiting

    @property
    def assigned_pods(self) -> list[str]:
        """Where requests may go now: this activator's pods, or the cluster address."""
        if self._cluster is not None:
            return [self._cluster.address]
        return [t.address for t in self._assigned]

    def pod_in_flight(self, address: str) -> int:
        tracker = self._trackers.get(address)
        return tracker.in_flight if tracker is not None else 0

    # ------------------------------------------------------------------ requests

    def acquire(self, waiter: Hashable) -> tuple[int, str | None]:
        """A request arrives. ``waiter`` is any hashable token, unique per request."""
        b = self._breaker
        if self.max_waiting and b.active >= b.capacity and b.waiting >= self.max_waiting:
            return FULL, None
        outcome = b.acquire(waiter)
        if outcome != ACQUIRED:
            return outcome, None
        return ACQUIRED, self._pick()

    def release(self, pod: str) -> list[Grant]:
        """A request on ``pod`` is done (even if the pod has been removed since)."""
        tracker = self._trackers.get(pod)
        if tracker is None or tracker.in_flight <= 0:
            raise RuntimeError(f"release for pod {pod!r} not paired with an acquire")
        tracker.in_flight -= 1  # PERF: PodTracker.release, inlined
        if not tracker.in_flight and pod not in self._live:
            del self._trackers[pod]
        waiter = self._breaker.release()
        return _NO_GRANTS if waiter is None else [(waiter, self._pick())]

    def cancel(self, waiter: Hashable) -> bool:
        """Takes a waiter out of the queue; False if it was not waiting."""
        return self._breaker.cancel(waiter)

    def waiters(self) -> list[Hashable]:
        """The requests waiting for a slot, oldest first (a copy: cancel them while iterating)."""
        return list(self._breaker._waiters)

    # ------------------------------------------------------------------ backends

    def update_pods(
        self, healthy: Iterable[str], cluster_address: str | None = None
    ) -> list[Grant]:
        """The revision's healthy pods now; with ``cluster_address``, route through it instead."""
        addresses = sorted(set(healthy))
        cc = self.container_concurrency
        live = set(addresses) if cluster_address is None else set()
        if cluster_address is not None:
            live.add(cluster_address)
        for address in live:
            # A pod that comes back while its old requests still run keeps its count.
            tracker = self._trackers.get(address)
            if tracker is None:
                tracker = self._trackers[address] = PodTracker(address)
            # The cluster address is bounded by the revision breaker alone.
            tracker.capacity = 0 if address == cluster_address else cc
        self._live = live
        for address in [a for a, t in self._trackers.items() if a not in live and t.in_flight == 0]:
            del self._trackers[address]
        if cluster_address is None:
            self._healthy = [self._trackers[a] for a in addresses]
            self._cluster = None
        else:
            self._healthy = []
            self._cluster = self._trackers[cluster_address]
        self._backend_count = len(addresses)
        return self._recompute()

    def update_activators(self, index: int, count: int) -> list[Grant]:
        """This activator is ``index`` (-1: not in the path yet) of ``count`` activators."""
        _check_activators(index, count)
        self.activator_index = index
        self.activator_count = count
        return self._recompute()

    # ------------------------------------------------------------------ internals

    def _recompute(self) -> list[Grant]:
        """Reassigns this activator's pods and resizes the breaker (Knative's updateCapacity)."""
        cc = self.container_concurrency
        n = self._backend_count
        if self._cluster is not None:
            self._assigned = []
            capacity = cc * n
            if capacity > 0:
                capacity = max(1, capacity // self.activator_count)
        else:
            # CC = 0 pods are unlimited, so there is nothing to share out: all are assigned.
            pods = self._healthy
            self._assigned = (
                pods if cc == 0 else assign_slice(pods, self.activator_index, self.activator_count)
            )
            capacity = cc * len(self._assigned)
        if n > 0 and (cc == 0 or capacity > REVISION_MAX_CONCURRENCY):
            capacity = REVISION_MAX_CONCURRENCY
        return [(waiter, self._pick()) for waiter in self._breaker.update_capacity(capacity)]

    def _pick(self) -> str:
        if self._cluster is not None:
            self._cluster.reserve()
            return self._cluster.address
        tracker = self._policy.pick(self._assigned)
        if tracker is None:  # the accounting invariant (module docstring) rules this out
            raise RuntimeError("revision breaker granted a slot but no assigned pod has one")
        return tracker.address


def infer_index(activators: Sequence[str], self_ip: str) -> int:
    """This activator's index among ``activators`` (sorted addresses), -1 if it is not there:
    Knative's inferIndex (it joins a revision's path up to 10 s after it turns healthy)."""
    i = bisect_left(activators, self_ip)
    return i if i < len(activators) and activators[i] == self_ip else -1


def _check_activators(index: int, count: int) -> None:
    if count < 1:
        raise ValueError(f"activator count must be 1 or greater, got {count}")
    if not -1 <= index < count:
        raise ValueError(f"activator index must be -1 or in [0, {count}), got {index}")
