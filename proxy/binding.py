"""Listening ports that cannot be bound, said in one line: which port, why, and the flag or
variable that moves it (``port 8080 is in use (another server is listening there); choose
another with --port``). The entry points (``python -m proxy``, ``python -m proxy.demo``,
``python -m activator serve`` and ``run``) print it and exit 2, instead of a traceback."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import Any

__all__ = ["BindError", "bind_problem", "listen", "port_in_use", "first_in_use"]


class BindError(OSError):
    """A listener that could not be bound: ``port``, ``setting`` (the flag or environment
    variable that chose it) and the ``OSError`` behind it (its ``errno`` is kept)."""

    def __init__(self, cause: OSError, port: int, setting: str) -> None:
        super().__init__(cause.errno, bind_problem(cause, port, setting))
        self.port = port
        self.setting = setting

    def __str__(self) -> str:
        return str(self.strerror)


def bind_problem(cause: OSError, port: int, setting: str) -> str:
    """The one line for a bind that failed with ``cause``."""
    if cause.errno == errno.EADDRINUSE:
        why = "is in use (another server is listening there)"
    elif cause.errno == errno.EACCES:
        why = "cannot be bound (permission denied: ports below 1024 need privileges)"
    elif cause.errno == errno.EADDRNOTAVAIL:
        return f"port {port}: the address to listen on is not one of this machine's"
    else:
        why = f"cannot be bound ({cause.strerror or cause})"
    return f"port {port} {why}; choose another with {setting}"


async def listen(server: Any, host: str, port: int, setting: str, **kwargs: Any) -> Any:
    """``server.listen(host, port, **kwargs)`` (a ``proxy.engine.Server``), a failure raised
    as a ``BindError`` naming ``setting``."""
    try:
        return await server.listen(host, port, **kwargs)
    except OSError as exc:
        raise BindError(exc, port, setting) from None


def port_in_use(host: str, port: int) -> OSError | None:
    """Why ``port`` cannot be listened on at ``host`` now, or None (tried as asyncio's
    servers bind: ``SO_REUSEADDR``, so a port in TIME_WAIT is free; 0 is always free, and
    a negative port is not bound at all)."""
    if port <= 0:
        return None
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(address)
            except OSError as exc:
                return exc
    return None


def first_in_use(host: str, ports: Iterable[tuple[int, str]]) -> str | None:
    """The problem line for the first ``(port, setting)`` that cannot be bound, or for two
    settings that name the same port; None when every one is free now."""
    named: dict[int, str] = {}
    for port, setting in ports:
        if port > 0 and port in named:
            return f"{named[port]} and {setting} both name port {port}; choose another for one"
        named[port] = setting
        problem = port_in_use(host, port)
        if problem is not None:
            return bind_problem(problem, port, setting)
    return None
