"""Revision timeouts, sans-IO: what fires when, and what it does to the response.

Knative arms three timers when a request enters its handler (pkg/http/handler/timeout.go):

- total (``REVISION_TIMEOUT_SECONDS``), always armed;
- response start (``REVISION_RESPONSE_START_TIMEOUT_SECONDS``), only until the first byte of the
  response is written, never re-armed;
- idle (``REVISION_IDLE_TIMEOUT_SECONDS``), restarted by every write of the response.

When one fires and nothing was written yet the client gets 504 with body ``request timeout``;
when the response has started (total or idle) the same text is appended to the body and the
response ends. Upstream work is abandoned either way.

Theory of operation: every deadline of one kind has the same delay, so deadlines come due in the
order they were set. ``DeadlineFifo`` keeps them in an insertion-ordered dict: setting, clearing
and restarting one (``touch``: move it to the back) are O(1), and only the front is ever
looked at. The asyncio shell keeps one loop timer for the earliest front among its queues.
No per-request timer object is made. ``expire`` decides what a firing deadline does.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = [
    "DeadlineFifo",
    "TOTAL",
    "RESPONSE_START",
    "IDLE",
    "RESPOND",
    "APPEND",
    "IGNORE",
    "expire",
    "TIMEOUT_BODY",
]

TIMEOUT_BODY = b"request timeout"

TOTAL = "total"
RESPONSE_START = "response-start"
IDLE = "idle"

RESPOND = "respond"  # answer 504 with the timeout body
APPEND = "append"  # append the timeout body to the started response and end it
IGNORE = "ignore"  # nothing to do


def expire(kind: str, written: bool) -> str:
    """What a deadline of ``kind`` does when it fires, given whether the response started."""
    if not written:
        return RESPOND
    if kind == RESPONSE_START:
        return IGNORE
    return APPEND


class DeadlineFifo:
    """Deadlines that all share one delay, so they fall due in the order they were set."""

    __slots__ = ("delay", "_items")

    def __init__(self, delay: float) -> None:
        if delay <= 0:
            raise ValueError("delay must be positive")
        self.delay = delay
        self._items: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: Hashable) -> bool:
        return item in self._items

    def add(self, item: Hashable, now: float) -> float:
        """Sets ``item`` due at ``now + delay``; returns that deadline."""
        deadline = now + self.delay
        items = self._items
        items.pop(item, None)  # re-adding moves it to the back, where its new deadline belongs
        items[item] = deadline
        return deadline

    def touch(self, item: Hashable, now: float) -> None:
        """Restarts ``item``'s delay from ``now`` (moves it to the back)."""
        items = self._items
        if items.pop(item, None) is not None:
            items[item] = now + self.delay

    def discard(self, item: Hashable) -> None:
        self._items.pop(item, None)

    def next_deadline(self) -> float | None:
        for deadline in self._items.values():
            return deadline
        return None

    def expired(self, now: float) -> list[Hashable]:
        """Removes and returns the items due at ``now`` or before, oldest first."""
        items = self._items
        due = []
        for item, deadline in items.items():
            if deadline > now:
                break
            due.append(item)
        for item in due:
            del items[item]
        return due
