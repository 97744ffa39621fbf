"""Knative's queue-proxy, as a small fast Python package.

``python -m proxy`` runs the sidecar from Knative's environment. To embed it::

    import asyncio
    from proxy import Config, QueueProxy

    async def main():
        qp = QueueProxy(Config(container_concurrency=10, serving_port=8012, user_port=8080))
        await qp.start()
        await qp.wait_stopped()
"""

from __future__ import annotations

import _speedups  # noqa: F401  (first: with extensions off, it makes engine imports take source)
from proxy.app import Drainer, QueueProxy
from proxy.breaker import Breaker
from proxy.config import Config, ConfigError, from_environ

__all__ = ["Breaker", "Config", "ConfigError", "Drainer", "QueueProxy", "from_environ"]
