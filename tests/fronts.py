"""A queue-proxy or an activator in front of the test app: the same cases run against both.

The activator holds one revision whose only pod is the app itself (the app answers the
activator's readiness probe), so the activator's own upstream pool is the one under test;
requests name the revision with Knative-Serving-* headers (``Front.extra``). The fixtures
(``make_front``, ``front``) are in conftest.py.
"""

from __future__ import annotations

from typing import Any

from support import LoopThread, request

__all__ = ["FRONTS", "NS", "REV", "ROUTE", "Front"]

FRONTS = ["queue-proxy", "activator"]
NS, REV = "default", "hello-00001"
ROUTE = [("Knative-Serving-Namespace", NS), ("Knative-Serving-Revision", REV)]


class Front:
    """A queue-proxy or an activator in front of ``app``, on the proxy loop."""

    def __init__(self, kind: str, loop: LoopThread, port: int, pool: Any,
                 extra: list[tuple[str, str]]) -> None:
        self.kind = kind
        self.loop = loop
        self.port = port
        self._pool = pool
        self.extra = extra  # headers every request carries (the activator's routing)

    def on_pool(self, fn: Any) -> Any:
        """``fn(pool)`` on the loop, for the upstream pool to the app (looked up there: the
        activator makes it when the pod turns healthy)."""
        return self.loop.call(lambda: fn(self._pool()))

    def host_seen(self, req: Any) -> str | None:
        """The Host the request had, as the app sees it (the activator moves it)."""
        return req.header("K-Original-Host" if self.kind == "activator" else "Host")

    def request(self, method: str, target: str, headers: list | None = None) -> Any:
        return request(self.port, method, target, [*(headers or []), *self.extra])

    def raw_extra(self) -> bytes:
        return "".join(f"{n}: {v}\r\n" for n, v in self.extra).encode()
