"""The activator's load-balancing policies, sans-IO: which pod gets the next request.

Theory of operation: a ``PodTracker`` is one backend as the activator sees it: its address, how
many requests this activator has running on it (``in_flight``) and how many it may run at once
(``capacity``, containerConcurrency; 0 means unlimited). A policy's ``pick(targets)`` chooses a
tracker with a free slot, *reserves* that slot (``in_flight += 1``) and returns it; the caller
calls ``tracker.release()`` when the request is done. ``None`` means no target has a free slot
and the request has to wait. Choosing and reserving are one step so that a caller cannot pick a
pod and forget to count it (Knative's policies hand back the reservation with the pick too).

Which policy serves a revision depends on its containerConcurrency (``policy_for``):

- CC = 0: power of two random choices (``RandomChoice2``): two distinct random trackers, the one
  with fewer requests in flight wins, a tie is a coin toss. Trackers are unlimited here.
- 1 <= CC <= 3: ``FirstAvailable``, the first tracker in the given order with a free slot, so
  that the few slots of the first pods fill before the next pod is touched.
- CC > 3: ``RoundRobin`` over the trackers with a free slot, starting after the last pick.

Targets are passed in sorted address order (the throttler keeps them so). Randomness comes from an
injected ``random.Random``, so a seeded one makes every choice reproducible. Nothing here knows
about sockets or time.

Mirrors knative/serving pkg/activator/net/lb_policy.go (randomChoice2Policy,
firstAvailableLBPolicy, newRoundRobinPolicy) and the podTracker of throttler.go.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = [
    "PodTracker",
    "LBPolicy",
    "RandomChoice2",
    "FirstAvailable",
    "RoundRobin",
    "policy_for",
]


class PodTracker:
    """One backend: ``capacity`` slots (0 = unlimited), ``in_flight`` of them in use."""

    __slots__ = ("address", "capacity", "in_flight")

    def __init__(self, address: str, capacity: int = 0, in_flight: int = 0) -> None:
        self.address = address
        self.capacity = capacity
        self.in_flight = in_flight

    def __repr__(self) -> str:
        return (f"PodTracker(address={self.address!r}, capacity={self.capacity}, "
                f"in_flight={self.in_flight})")

    @property
    def has_free_slot(self) -> bool:
        return self.capacity == 0 or self.in_flight < self.capacity

    def reserve(self) -> None:
        if not self.has_free_slot:
            raise RuntimeError(f"pod {self.address} has no free slot")
        self.in_flight += 1

    def release(self) -> None:
        if self.in_flight <= 0:
            raise RuntimeError(f"release and reserve are not paired for pod {self.address}")
        self.in_flight -= 1


class LBPolicy:
    """The policies' base (PERF: compiled, the throttler calls ``pick`` as C)."""

    __slots__ = ()

    def pick(self, targets: Sequence[PodTracker]) -> PodTracker | None:
        """Reserves a slot on a tracker with a free slot and returns it, or None."""
        raise NotImplementedError


class RandomChoice2(LBPolicy):
    """Power of two random choices on ``in_flight``; for unlimited (CC = 0) trackers."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def pick(self, targets: Sequence[PodTracker]) -> PodTracker | None:
        n = len(targets)
        if n == 0:
            return None
        if n == 1:
            chosen = targets[0]
        else:
            first, second = 0, 1
            if n > 2:
                # Two distinct indices: draw the second from n - 1 values and skip over the first.
                first = self._rng.randrange(n)
                second = self._rng.randrange(n - 1)
                if second >= first:
                    second += 1
            a, b = targets[first], targets[second]
            if a.in_flight != b.in_flight:
                chosen = a if a.in_flight < b.in_flight else b
            else:
                chosen = a if self._rng.random() < 0.5 else b
        # PERF: no free-slot scan; with CC = 0 every tracker is unlimited (as in Knative).
        cap = chosen.capacity
        if cap and chosen.in_flight >= cap:
            return None
        chosen.in_flight += 1
        return chosen


class FirstAvailable(LBPolicy):
    """The first tracker, in the order given, with a free slot; for 1 <= CC <= 3."""

    __slots__ = ()

    def pick(self, targets: Sequence[PodTracker]) -> PodTracker | None:
        for tracker in targets:
            cap = tracker.capacity
            if not cap or tracker.in_flight < cap:  # PERF: has_free_slot + reserve, inlined
                tracker.in_flight += 1
                return tracker
        return None


class RoundRobin(LBPolicy):
    """Round robin over the trackers with a free slot, starting after the last pick; CC > 3."""

    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(self, targets: Sequence[PodTracker]) -> PodTracker | None:
        n = len(targets)
        if self._next >= n:  # the target list shrank since the last pick
            self._next = 0
        start = self._next
        for i in range(n):
            p = start + i
            if p >= n:
                p -= n
            tracker = targets[p]
            cap = tracker.capacity
            if not cap or tracker.in_flight < cap:  # PERF: has_free_slot + reserve, inlined
                tracker.in_flight += 1
                self._next = p + 1
                return tracker
        return None


def policy_for(container_concurrency: int, rng: random.Random | None = None) -> LBPolicy:
    """The policy Knative uses for a revision with this containerConcurrency."""
    if container_concurrency < 0:
        raise ValueError(f"container concurrency must be 0 or greater, got {container_concurrency}")
    if container_concurrency == 0:
        return RandomChoice2(rng if rng is not None else random.Random())
    if container_concurrency <= 3:
        return FirstAvailable()
    return RoundRobin()
