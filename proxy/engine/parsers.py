"""HTTP/1.1 message parsers behind one small interface: httptools (fast) or h11 (pure Python).

Theory of operation: a parser is fed the bytes of one connection and calls its sink back with
message events. Both backends give the same events, so the engine above them does not know which
one runs:

requests (``RequestParser``, sink is the server protocol)
    ``on_head(method, target, version, headers)``: a whole request head; ``headers`` is the
    list of ``(name, value)`` byte pairs in wire order, names as sent.
    ``on_body(data)``: decoded body bytes (chunk framing removed).
    ``on_end(trailers)``: the message is complete; ``trailers`` is a list of pairs (maybe empty).
    ``on_upgrade(rest)``: after ``on_end`` of a request that asked to upgrade, the bytes that
    followed its head; the parser is finished and the connection becomes a tunnel.

responses (``ResponseParser``, sink is the upstream protocol)
    ``on_response_head(status, version, headers)`` (the reason phrase is not kept: Go's
    server, and so ours, writes its own), ``on_response_body(data)``,
    ``on_response_end(trailers)``, ``on_response_upgrade(rest)`` (after a 101).
    ``expect(method_is_head, upgrade)`` is called before each request is sent, so the parser
    knows that a response to HEAD has no body.
    ``on_response_plain(status, lines, has_date)``, if the sink has it, may stand for
    ``on_response_head`` when the head is plain (HTTP/1.1, a final status but 204 and 304, one
    Content-Length, no Transfer-Encoding or Upgrade, Connection at most ``keep-alive``):
    ``lines`` are the header lines to pass on, hop-by-hop ones already cut. Only the compiled
    httptools glue gives it.

A malformed message raises ``ParseError`` with the status to answer (400, 431, 502 ...).
httptools cannot skip the body of a response to HEAD, so for those the head is cut out of the
stream by hand and handed to a fresh parser alone.
"""

from __future__ import annotations

from typing import Any

try:  # PERF: httptools (llhttp) parses a head in about 2 µs against h11's 25 µs.
    import httptools  # noqa: F401

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_HTTPTOOLS = False

from _speedups.errors import ParseError

__all__ = [
    "MAX_REQUEST_HEAD",
    "MAX_RESPONSE_HEAD",
    "ParseError",
    "HAVE_HTTPTOOLS",
    "BACKENDS",
    "default_backend",
    "request_parser",
    "response_parser",
]

BACKENDS = ("httptools", "h11")

# Head size limits, Go's: its server reads request heads up to http.DefaultMaxHeaderBytes (1 MiB)
# plus the 4 KiB of slack it allows, then answers 431; its transport reads response heads up to
# 10 MiB (the default MaxResponseHeaderBytes). Apps with big cookies or tokens need them.
MAX_REQUEST_HEAD = (1 << 20) + 4096
MAX_RESPONSE_HEAD = 10 << 20


def default_backend() -> str:
    import os

    name = os.environ.get("DATAPLANE_PARSER", "")
    if name in BACKENDS:
        return name
    if os.environ.get("DATAPLANE_NO_EXTENSIONS") or not HAVE_HTTPTOOLS:
        return "h11"
    return "httptools"


def request_parser(backend: str, sink: Any, max_head: int) -> Any:
    if backend == "httptools":
        from _speedups.h1 import HttptoolsRequestParser

        return HttptoolsRequestParser(sink, max_head)
    from proxy.engine._h11 import H11RequestParser  # PERF: h11 is imported only when used

    return H11RequestParser(sink, max_head)


def response_parser(backend: str, sink: Any, max_head: int) -> Any:
    if backend == "httptools":
        from _speedups.h1 import HttptoolsResponseParser

        return HttptoolsResponseParser(sink, max_head)
    from proxy.engine._h11 import H11ResponseParser

    return H11ResponseParser(sink, max_head)


# The httptools glue lives in ``_speedups.h1`` (a compiled twin takes its callbacks in C), the
# h11 backend in ``proxy.engine._h11``.
