"""The loop side of ``proxy.engine.timeouts.DeadlineFifo``: one loop timer for many deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from time import monotonic
from typing import Any

from proxy.engine.timeouts import DeadlineFifo

__all__ = ["Deadlines", "Queue", "clock"]

# The engine's clock is time.monotonic: the loop's own epoch (call_at takes it) at full
# resolution. uvloop's loop.time() is read once per loop pass in whole milliseconds, so a
# request shorter than that measured 0 s (no concurrency, a 0 ms latency).
clock = monotonic

_INF = float("inf")


class Queue:
    """A ``DeadlineFifo`` tied to a ``Deadlines`` timer and an expiry callback."""

    __slots__ = ("fifo", "on_expire", "_owner")

    def __init__(self, owner: Deadlines, delay: float, on_expire: Callable[[Any], None]):
        self.fifo = DeadlineFifo(delay)
        self.on_expire = on_expire
        self._owner = owner

    def add(self, item: Hashable, now: float) -> None:
        """Starts ``item``'s deadline at ``now`` (the engine's clock)."""
        owner = self._owner
        deadline = self.fifo.add(item, now)
        if deadline < owner.armed_at:
            owner.arm(deadline)

    def touch(self, item: Hashable) -> None:
        self.fifo.touch(item, self._owner._time())

    def discard(self, item: Hashable) -> None:
        self.fifo.discard(item)

    def __contains__(self, item: Hashable) -> bool:
        return item in self.fifo


class Deadlines:
    """Keeps one ``loop.call_at`` armed for the earliest deadline of all its queues."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._time = monotonic  # the engine's clock (above); the loop's call_at shares its epoch
        self.armed_at = _INF
        self._handle: asyncio.TimerHandle | None = None
        self._queues: list[Queue] = []

    def queue(self, delay: float, on_expire: Callable[[Any], None]) -> Queue:
        q = Queue(self, delay, on_expire)
        self._queues.append(q)
        return q

    def arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self.armed_at = when
        self._handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.armed_at = _INF
        now = monotonic()
        for q in self._queues:
            for item in q.fifo.expired(now):
                q.on_expire(item)
        nxt = _INF
        for q in self._queues:
            d = q.fifo.next_deadline()
            if d is not None and d < nxt:
                nxt = d
        if nxt < self.armed_at:
            self.arm(nxt)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed_at = _INF
