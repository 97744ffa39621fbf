"""Knative's answers beside ours, row by row: the requests whose status, headers or body differed
from Knative's queue-proxy (issue 16), each with the bytes Knative's own binary wrote.

Every row was sent, as is, to Knative's queue-proxy built from knative/serving 98e5ef90 and to
ours, side by side (the session's comparison script; not part of the suite). ``SAME`` rows give
the exact bytes Knative wrote (a ``Date`` line, where there is one, is left out of the
comparison): most are Go's server refusing a head it cannot read, which it answers with bytes of
its own (``net/http`` ``conn.serve``), not with ``http.Error``. ``KEPT`` rows are the
differences we keep on purpose, with Knative's status beside ours and the reason; the README's
"Differences from Knative" says the same.

Both fronts (Knative's activator runs the same Go server and ReverseProxy), both parsers.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

import pytest
from fronts import Front
from support import App

H = b"Host: example.com\r\n"
GO_HEADERS = b"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
BARE_400 = b"HTTP/1.1 400 Bad Request" + GO_HEADERS + b"400 Bad Request"


def named(status: bytes, text: bytes) -> bytes:
    """Go's statusError answer: the reason in the status line and the body."""
    return b"HTTP/1.1 " + status + b": " + text + GO_HEADERS + status + b": " + text


@dataclass(frozen=True)
class Same:
    request: bytes
    knative: bytes  # what Knative's binary wrote, Date line removed


@dataclass(frozen=True)
class Kept:
    request: bytes
    knative: int  # Knative's status
    ours: int
    why: str
    h11_as_knative: bool = False  # the pure build's parser (h11) accepts it, as Go does
    reaches_app: bool = False  # the head is good: the app has it before the body goes wrong


SAME = {
    "no Host": Same(b"GET / HTTP/1.1\r\n\r\n",
                    named(b"400 Bad Request", b"missing required Host header")),
    "two Hosts": Same(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", BARE_400),
    "malformed Host": Same(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
                           named(b"400 Bad Request", b"malformed Host header")),
    "HTTP/2.0 request line": Same(
        b"GET / HTTP/2.0\r\n" + H + b"\r\n",
        named(b"505 HTTP Version Not Supported", b"unsupported protocol version")),
    "no version (HTTP/0.9)": Same(b"GET /\r\n\r\n", BARE_400),
    "not a request line": Same(b"HELLO\r\n\r\n", BARE_400),
    "bad method token": Same(b"G(T / HTTP/1.1\r\n" + H + b"\r\n", BARE_400),
    "bad version": Same(b"GET / HTTX/1.1\r\n" + H + b"\r\n", BARE_400),
    "Transfer-Encoding gzip": Same(
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 501 Not Implemented" + GO_HEADERS + b"Unsupported transfer encoding"),
    "Transfer-Encoding chunked, chunked": Same(
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n",
        b"HTTP/1.1 501 Not Implemented" + GO_HEADERS + b"Unsupported transfer encoding"),
    "two Content-Lengths": Same(
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        BARE_400),
    "Content-Length not a number": Same(
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: x\r\n\r\n", BARE_400),
    "Content-Length negative": Same(
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", BARE_400),
    "space in a field name": Same(b"GET / HTTP/1.1\r\n" + H + b"Bad Name: x\r\n\r\n",
                                  named(b"400 Bad Request", b"invalid header name")),
    "space before the colon": Same(b"GET / HTTP/1.1\r\n" + H + b"X : a\r\n\r\n",
                                   named(b"400 Bad Request", b"invalid header name")),
    "control byte in a value": Same(b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n",
                                    BARE_400),
    "space in the target": Same(b"GET a b HTTP/1.1\r\n" + H + b"\r\n", BARE_400),
    "target without a slash": Same(b"GET foo HTTP/1.1\r\n" + H + b"\r\n", BARE_400),
    "NUL in the target": Same(b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", BARE_400),
    "absolute-form with a bad host": Same(b"GET http://a b/ HTTP/1.1\r\n" + H + b"\r\n",
                                          BARE_400),
    "request head of 2 MiB": Same(
        b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * (2 << 20) + b"\r\n\r\n",
        b"HTTP/1.1 431 Request Header Fields Too Large" + GO_HEADERS
        + b"431 Request Header Fields Too Large"),
    # Through the handler: Go's ReverseProxy refuses CONNECT, Knative's error handler answers.
    "CONNECT": Same(
        b"CONNECT example.com:443 HTTP/1.1\r\n" + H + b"\r\n",
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"X-Content-Type-Options: nosniff\r\nContent-Length: 40\r\nConnection: close\r\n\r\n"
        b"client sent unsupported CONNECT request\n"),
}

KEPT = {
    "HTTP/1.2": Kept(b"GET / HTTP/1.2\r\n" + H + b"\r\n", 200, 400,
                     "llhttp refuses minor versions other than 0 and 1; h11 is made to agree"),
    "Content-Length with Transfer-Encoding": Kept(
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"0\r\n\r\n", 200, 400, "a request smuggling shape (RFC 9112 6.3 allows refusing it)"),
    "a line without a colon": Kept(b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400, 400,
                                   "same status; httptools cannot tell it from a bad name, so "
                                   "the answer names an invalid header name"),
    "obsolete line folding": Kept(b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 200, 400,
                                  "RFC 9112 5.2 allows refusing it; llhttp does"),
    "GET *": Kept(b"GET * HTTP/1.1\r\n" + H + b"\r\n", 200, 400,
                  "asterisk-form is OPTIONS' only (RFC 9112 3.2.4); issue 14 chose to refuse"),
    "a bad chunk size": Kept(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                             b"zz\r\n", 502, 400, "the client's fault: 400 (Knative: the "
                             "transport's read error, 502)", reaches_app=True),
    "HTTP/1.0 with Transfer-Encoding": Kept(
        b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, 501,
        "RFC 9112 6.1: the framing of such a message is faulty (Go ignores the header)"),
    "an upgrade with a body": Kept(
        b"POST / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 3\r\n\r\nabc", 200, 400, "llhttp would take the body for tunnel bytes"),
    "LF without CR": Kept(b"GET / HTTP/1.1\n" + H.replace(b"\r\n", b"\n") + b"\n", 200, 400,
                          "llhttp is strict here (RFC 9112 2.2 allows either)",
                          h11_as_knative=True),
}

DATE = re.compile(rb"\r\nDate: [^\r]*")


def exchange(port: int, data: bytes) -> bytes:
    """Sends ``data``; everything the server wrote until it closed (or 5 s passed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
        except OSError:  # the server answered and closed before taking all of a big head
            pass
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return got


def routed(front: Front, request: bytes) -> bytes:
    """``request`` with the headers that name the activator's revision after its first line."""
    if not front.extra:
        return request
    line, eol, rest = request.partition(b"\n")
    return line + eol + front.raw_extra() + rest


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", SAME)
def test_answered_as_knative(front: Front, app: App, name: str) -> None:
    row = SAME[name]
    got = exchange(front.port, routed(front, row.request))
    assert DATE.sub(b"", got) == row.knative
    assert not app.requests, "a refused request reached the app"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", KEPT)
def test_kept_differences(front: Front, app: App, backend: str, name: str) -> None:
    row = KEPT[name]
    got = exchange(front.port, routed(front, row.request))
    status = int(got.split(b" ", 2)[1])
    if backend == "h11" and row.h11_as_knative:
        assert status == row.knative, (name, got[:200])
        return
    assert status == row.ours, (name, got[:200])
    if not row.reaches_app:
        assert not app.requests, "a refused request reached the app"


def test_the_tables_do_not_overlap() -> None:
    assert not set(SAME) & set(KEPT)
    assert all(k.why for k in KEPT.values())
