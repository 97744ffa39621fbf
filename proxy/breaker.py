"""Knative's breaker, sans-IO: at most ``capacity`` requests run, ``queue_depth`` more wait.

Theory of operation: a request enters with ``acquire(waiter)``. ``in_flight`` counts every
request inside the breaker, running or waiting; when it has reached ``queue_depth + capacity``
the answer is ``FULL`` (Knative: 503 "pending request queue full"). Otherwise the request either
takes a free slot at once (``ACQUIRED``) or waits in arrival order (``QUEUED``). ``release()``
frees a slot and hands it straight to the oldest waiter, which it returns so that the caller can
resume it; ``cancel(waiter)`` takes a waiter out (its client went away, or its deadline passed).
Nothing here knows about sockets, tasks or time: the waiter is any hashable token.

Mirrors knative/serving pkg/queue/breaker.go (Breaker.Maybe with its semaphore). Go wakes
waiters in roughly FIFO order through a channel; we make FIFO exact.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Breaker", "ACQUIRED", "QUEUED", "FULL"]

ACQUIRED = 0
QUEUED = 1
FULL = 2


class Breaker:
    __slots__ = ("capacity", "queue_depth", "total_slots", "in_flight", "active", "_waiters")

    def __init__(self, queue_depth: int, max_concurrency: int, initial_capacity: int | None = None):
        if queue_depth <= 0:
            raise ValueError(f"queue depth must be greater than 0, got {queue_depth}")
        if max_concurrency < 0:
            raise ValueError(f"max concurrency must be 0 or greater, got {max_concurrency}")
        capacity = max_concurrency if initial_capacity is None else initial_capacity
        if not 0 <= capacity <= max_concurrency:
            raise ValueError("initial capacity must be between 0 and max concurrency")
        self.queue_depth = queue_depth
        self.total_slots = queue_depth + max_concurrency
        self.capacity = capacity
        self.in_flight = 0  # running + waiting
        self.active = 0  # running
        # dict as an ordered set: O(1) append, pop-oldest and removal of any waiter.
        self._waiters: dict[Hashable, None] = {}

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def acquire(self, waiter: Hashable) -> int:
        if self.in_flight >= self.total_slots:
            return FULL
        self.in_flight += 1
        if self.active < self.capacity:
            self.active += 1
            return ACQUIRED
        self._waiters[waiter] = None
        return QUEUED

    def release(self) -> Hashable | None:
        """A running request is done. Returns the waiter that now holds its slot, if any."""
        if self.active <= 0:
            raise RuntimeError("release and acquire are not paired")
        self.active -= 1
        self.in_flight -= 1
        if self._waiters and self.active < self.capacity:
            waiter = next(iter(self._waiters))
            del self._waiters[waiter]
            self.active += 1
            return waiter
        return None

    def cancel(self, waiter: Hashable) -> bool:
        """Takes a waiter out of the queue; False if it was not waiting."""
        try:
            del self._waiters[waiter]
        except KeyError:
            return False
        self.in_flight -= 1
        return True

    def update_capacity(self, capacity: int) -> list[Hashable]:
        """Changes the number of slots; returns the waiters that now run."""
        if capacity < 0:
            raise ValueError("capacity must be 0 or greater")
        self.capacity = capacity
        granted = []
        while self._waiters and self.active < self.capacity:
            waiter = next(iter(self._waiters))
            del self._waiters[waiter]
            self.active += 1
            granted.append(waiter)
        return granted
