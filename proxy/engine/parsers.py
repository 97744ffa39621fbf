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
    "refusal",
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


# --------------------------------------------------------------------- answers to bad heads

# Go's server (net/http's conn.serve) answers a request head it cannot read with bytes it writes
# itself, not with http.Error: no Date, no Content-Length, the connection closed after. Four
# shapes: 431, 501 for a transfer coding it does not know, "400 Bad Request: <why>" for the few
# errors it names (its statusError), and a bare "400 Bad Request" for every other. Knative's
# queue-proxy and activator answer so; checked byte for byte against Knative's binary.
_GO_HEADERS = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
_GO_431 = b"431 Request Header Fields Too Large"
_GO_501 = b"HTTP/1.1 501 Not Implemented" + _GO_HEADERS + b"Unsupported transfer encoding"
_GO_400 = b"HTTP/1.1 400 Bad Request" + _GO_HEADERS + b"400 Bad Request"
_GO_STATUS_TEXT = {400: "Bad Request", 505: "HTTP Version Not Supported"}
# The reasons Go's server names in its answer (the rest get the bare 400), and, in the same
# shape, ours for what we refuse and Go takes (README, "Differences from Knative").
_GO_NAMED = frozenset({
    "missing required Host header", "malformed Host header", "invalid header name",
    "unsupported protocol version",
    "an upgrade request cannot have a body", "asterisk-form is only for OPTIONS",
    "Content-Length with Transfer-Encoding", "obsolete line folding in header",
})
# Transfer codings either parser refuses: Go's unsupportedTEError (501).
_UNSUPPORTED_TE = frozenset({
    "unsupported transfer encoding",  # ours: not chunked (server.py)
    "Invalid `Transfer-Encoding` header value",  # httptools: "chunked, chunked", ...
    "Request has invalid `Transfer-Encoding`",  # httptools: chunked not last
    "Only Transfer-Encoding: chunked is supported",  # h11
})


def _go_reason(reason: str) -> str:
    """Our parsers' reason in Go's words, where Go has words for it."""
    if reason == "Invalid header token":
        # httptools says so for a bad field name and for a line with no colon; Go names only
        # the former. Taken as the former (the usual one: "X : a", "Bad Name: a").
        return "invalid header name"
    if reason == "Content-Length can't be present with Transfer-Encoding":  # httptools
        return "Content-Length with Transfer-Encoding"
    if reason.startswith("Unexpected whitespace after header value"):  # httptools: obs-fold
        return "obsolete line folding in header"
    if reason == "Missing mandatory Host: header":  # h11
        return "missing required Host header"
    if reason.startswith("illegal header line: "):  # h11, with the line
        return "invalid header name" if ":" in reason[len("illegal header line: "):] else ""
    return reason


def refusal(exc: ParseError) -> bytes:
    """The bytes Go's server writes for a request head it refuses (the connection then closes).

    ``exc.reason`` stays ours, for the log: the answer carries only what Go's would."""
    status = exc.status
    if status == 431:
        return b"HTTP/1.1 " + _GO_431 + _GO_HEADERS + _GO_431
    if status == 501 or exc.reason in _UNSUPPORTED_TE:
        return _GO_501
    reason = _go_reason(exc.reason)
    if reason in _GO_NAMED:
        text = f"{status} {_GO_STATUS_TEXT.get(status, 'Bad Request')}: {reason}".encode()
        return b"HTTP/1.1 " + text + _GO_HEADERS + text
    return _GO_400
