"""Knative's queue-proxy, as a small fast Python package.

``python -m proxy`` runs the sidecar from Knative's environment. To embed it::

    import asyncio
    from proxy import Config, QueueProxy

    async def main():
        qp = QueueProxy(Config(container_concurrency=10, serving_port=8012, user_port=8080))
        await qp.start()
        await qp.wait_stopped()

The rooms, lowest first (arrows point down only; tests/test_layers.py checks them):

- ``proxy.engine``: the HTTP proxy engine (sockets, exchanges, upstream pools, deadlines); it
  imports ``_speedups`` and nothing else of this project;
- the shared policy cores, sans-IO: ``breaker``, ``headers``, ``forwarded``, ``stats``,
  ``metrics``, ``readiness``, ``request_log`` (over ``gotemplate``, ``gofmt`` and ``gohttp``: Go's
  ``text/template``, ``fmt`` and ``*http.Request``), ``config``;
- the queue-proxy product: ``queue_proxy`` (its handler) and ``app`` (``QueueProxy``);
- entry points: ``__main__`` and ``demo``.

The names below load on first use: importing a policy core loads no server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import _speedups  # noqa: F401  (first: it decides where engine modules load from)
from _speedups._lazy import lazy_exports

if TYPE_CHECKING:
    from proxy.app import Drainer, QueueProxy
    from proxy.breaker import Breaker
    from proxy.config import Config, ConfigError, from_environ

_EXPORTS = {
    "Drainer": "proxy.app",
    "QueueProxy": "proxy.app",
    "Breaker": "proxy.breaker",
    "Config": "proxy.config",
    "ConfigError": "proxy.config",
    "from_environ": "proxy.config",
}
__all__ = ["Breaker", "Config", "ConfigError", "Drainer", "QueueProxy", "from_environ"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
