"""The queue-proxy process: its listeners, the drain on SIGTERM, and the Python API.

``QueueProxy(config)`` builds everything; ``await qp.start()`` binds the listeners (port 0 picks a
free port, see ``qp.ports``); ``await qp.drain()`` runs Knative's shutdown: health checks start
failing, the quiet period runs (each request restarts it), then the listeners stop accepting,
in-flight requests finish, upgraded connections get ``hijack_drain_period``, and ``drain``
returns. ``python -m proxy`` wires SIGTERM to it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from _speedups import fields as F
from proxy.config import Config
from proxy.engine.server import Server
from proxy.engine.upstream import UpstreamPool
from proxy.queue_proxy import QueueProxyHandler

__all__ = ["QueueProxy", "Drainer"]

log = logging.getLogger("proxy")

DRAIN_PATH = b"/wait-for-drain"


class Drainer:
    """Knative's drainer (knative.dev/pkg/network/handlers/drain.go) on an asyncio loop.

    ``drain()`` starts the quiet period and resolves when a whole period passes with no request;
    ``touch()`` (each request while draining) restarts it; ``reset()`` cancels the drain.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, quiet_period: float) -> None:
        self.loop = loop
        self.quiet_period = quiet_period
        self._timer: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] | None = None

    @property
    def draining(self) -> bool:
        return self._timer is not None

    def drain(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = self.loop.create_future()
            self._timer = self.loop.call_later(self.quiet_period, self._fire)
        return self._done

    def touch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self.loop.call_later(self.quiet_period, self._fire)

    def reset(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        done, self._done = self._done, None
        if done is not None and not done.done():
            done.set_result(None)

    def _fire(self) -> None:
        self._timer = None
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)
        # Stay "draining" for health checks: Knative's timer stays set after it fires.
        self._timer = self.loop.call_later(1e9, lambda: None)


class QueueProxy:
    """A queue-proxy: main, admin and stats listeners around one engine."""

    def __init__(self, config: Config, *, backend: str | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config
        self.loop = loop or asyncio.get_running_loop()
        self.backend = backend
        self.drainer = Drainer(self.loop, config.drain_quiet_period)
        self.ready: Any = lambda: True  # readiness of the user container (a callable)
        cc = config.container_concurrency
        self.pool = UpstreamPool(
            self.loop,
            config.user_host,
            config.user_port,
            backend=backend,
            max_idle=cc if cc > 0 else 1000,
            max_head=config.max_head_size,
        )
        self.server = Server(
            None,
            loop=self.loop,
            backend=backend,
            max_head=config.max_head_size,
            header_timeout=config.header_read_timeout,
        )
        self.handler = QueueProxyHandler(
            pool=self.pool,
            timeouts=self.server.timeouts(
                config.revision_timeout, config.response_start_timeout, config.idle_timeout
            ),
            container_concurrency=cc,
            health=self._health,
            drainer=self.drainer,
        )
        self.server.handler = self.handler
        self.admin = Server(_AdminHandler(self), loop=self.loop, backend=backend)
        self.ports: dict[str, int] = {}
        self.terminating = False  # SIGTERM (or drain()) seen
        self._stopped = self.loop.create_future()

    async def start(self) -> None:
        cfg = self.config
        host = cfg.bind_host
        main = await self.server.listen(host, cfg.serving_port, backlog=1024)
        self.ports["main"] = main.sockets[0].getsockname()[1]
        admin = await self.admin.listen(host, cfg.admin_port)
        self.ports["admin"] = admin.sockets[0].getsockname()[1]

    # --------------------------------------------------------------------- health

    def _health(self, ex: Any) -> None:
        if self.drainer.draining:
            ex.error(503, "shutting down")
            return
        value = ex.fields[F.K_NETWORK_PROBE] or b""
        if value != b"queue":
            ex.error(400, b"unexpected probe header value: " + value)
            return
        if self.ready():
            ex.respond(200, b"queue")
        else:
            ex.respond(503)

    # --------------------------------------------------------------------- drain

    async def drain(self) -> None:
        """Knative's SIGTERM path; returns when the queue-proxy may exit."""
        self.terminating = True
        await self.drainer.drain()
        await self.server.shutdown()
        await self.admin.shutdown()
        await self.server.drain_tunnels(self.config.hijack_drain_period)
        self.pool.close()
        if not self._stopped.done():
            self._stopped.set_result(None)

    async def wait_stopped(self) -> None:
        await self._stopped

    def close(self) -> None:
        self.server.close()
        self.admin.close()
        self.pool.close()
        if not self._stopped.done():
            self._stopped.set_result(None)


class _AdminHandler:
    """Port 8022: ``/wait-for-drain`` blocks until the drain ends (any method)."""

    def __init__(self, qp: QueueProxy) -> None:
        self.qp = qp

    def handle(self, ex: Any) -> None:
        path = ex.target.split(b"?", 1)[0]
        if path != DRAIN_PATH:
            ex.error(404, "404 page not found")
            return
        qp = self.qp
        loop = qp.loop
        waiter = qp.drainer.drain()

        def reset_if_no_sigterm() -> None:
            # Knative: with no SIGTERM within a second, the user container's liveness probe
            # is restarting it; do not hold that restart up.
            if not qp.terminating:
                qp.drainer.reset()

        loop.call_later(1.0, reset_if_no_sigterm)

        def finished(_f: Any) -> None:
            ex.respond(200)

        waiter.add_done_callback(finished)
