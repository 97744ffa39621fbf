"""The HTTP/1.1 proxy engine shared by the queue-proxy and the activator."""

from __future__ import annotations

from proxy.engine.parsers import BACKENDS, ParseError, default_backend
from proxy.engine.server import Exchange, Server, ServerProtocol
from proxy.engine.upstream import UpstreamPool, UpstreamProtocol

__all__ = [
    "BACKENDS",
    "Exchange",
    "ParseError",
    "Server",
    "ServerProtocol",
    "UpstreamPool",
    "UpstreamProtocol",
    "default_backend",
]
