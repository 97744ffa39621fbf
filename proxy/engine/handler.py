"""What the engine asks of a handler: the one method it calls for each request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from proxy.engine.server import Exchange

__all__ = ["Handler"]


class Handler(Protocol):
    """The policy behind a ``Server``: the queue-proxy's, the activator's, the runtime's front
    door, or your own. ``handle`` is called once per request, in the loop, as soon as its head
    is read; it must not block. It answers (``ex.respond``, ``ex.error``) or forwards
    (``ex.head_out = ...; ex.forward(pool)``), now or later, and may set ``ex.on_done``."""

    def handle(self, ex: Exchange) -> None: ...
