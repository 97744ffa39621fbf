"""The HTTP/1.1 proxy engine shared by the queue-proxy and the activator.

It imports ``_speedups`` and nothing else of this project: no policy, no product. The names
below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from _speedups._lazy import lazy_exports

if TYPE_CHECKING:
    from proxy.engine.handler import Handler
    from proxy.engine.parsers import BACKENDS, ParseError, default_backend
    from proxy.engine.server import Exchange, Server, ServerProtocol
    from proxy.engine.upstream import UpstreamPool, UpstreamProtocol

_EXPORTS = {
    "BACKENDS": "proxy.engine.parsers",
    "ParseError": "proxy.engine.parsers",
    "default_backend": "proxy.engine.parsers",
    "Handler": "proxy.engine.handler",
    "Exchange": "proxy.engine.server",
    "Server": "proxy.engine.server",
    "ServerProtocol": "proxy.engine.server",
    "UpstreamPool": "proxy.engine.upstream",
    "UpstreamProtocol": "proxy.engine.upstream",
}
__all__ = [
    "BACKENDS",
    "Exchange",
    "Handler",
    "ParseError",
    "Server",
    "ServerProtocol",
    "UpstreamPool",
    "UpstreamProtocol",
    "default_backend",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
