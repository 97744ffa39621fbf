"""httptools glue, pure-Python twin: parser callbacks turned into the engine's message events.

See ``proxy.engine.parsers`` for the events. ``_h1_c.pyx`` is the compiled twin (httptools then
calls C methods for every URL piece and header); callers import ``_speedups.h1``.
"""

from __future__ import annotations

from typing import Any

import httptools

from _speedups.errors import VERSIONS, ParseError, unwrap
from _speedups.methods import PLACEHOLDER, extension_method

__all__ = ["HttptoolsRequestParser", "HttptoolsResponseParser", "RequestSink", "ResponseSink"]


class RequestSink:
    """Base of the engine's request sink: the compiled twin calls a subclass's methods in C.
    Any object with these methods is a sink too (called as Python)."""

    __slots__ = ()

    def on_head(self, method: bytes, target: bytes, version: bytes, headers: list) -> None:
        raise NotImplementedError

    def on_body(self, data: bytes) -> None:
        raise NotImplementedError

    def on_end(self, trailers: list) -> None:
        raise NotImplementedError


class ResponseSink:
    """``RequestSink`` for the response parser."""

    __slots__ = ()

    def on_response_head(self, status: int, version: bytes, headers: list) -> None:
        raise NotImplementedError

    def on_response_plain(self, status: int, lines: bytes, has_date: bool) -> None:
        raise NotImplementedError

    def on_response_body(self, data: bytes) -> None:
        raise NotImplementedError

    def on_response_end(self, trailers: list) -> None:
        raise NotImplementedError


def _noop() -> None:
    pass



def _too_large(limit: int) -> str:
    """Go's transport's words for a response head over its limit (Knative's 502 body)."""
    return ("net/http: HTTP/1.x transport connection broken: net/http: server response "
            f"headers exceeded {limit} bytes; aborted")


class HttptoolsRequestParser:
    __slots__ = ("_sink", "_parser", "_headers", "_url", "_in_head", "_head_size", "_max_head",
                 "_head_begin", "_fresh", "_pending", "_method")

    def __init__(self, sink: Any, max_head: int) -> None:
        self._sink = sink
        self._head_begin = getattr(sink, "head_begin", _noop)
        self._max_head = max_head
        self._parser = httptools.HttpRequestParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._url = b""
        self._in_head = True
        self._head_size = 0
        self._fresh = True  # httptools holds no part of a message
        self._pending = b""  # the start of a request whose method is not all in
        self._method: bytes | None = None  # an extension method llhttp was given GET for

    # httptools callbacks (state is reset when a message completes)
    def on_message_begin(self) -> None:
        self._fresh = False
        self._head_begin()  # the header read timeout runs from a head's first byte

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        headers = self._headers
        self._headers = []  # what arrives now is trailers
        if self._head_size > self._max_head:  # maybe: the count includes body bytes
            size = len(self._url) + sum(len(n) + len(v) + 4 for n, v in headers)
            if size > self._max_head:
                raise ParseError("request header too large", 431)
        p = self._parser
        method = self._method
        if method is None:
            method = p.get_method()
        else:
            self._method = None
        self._sink.on_head(method, self._url, VERSIONS[p.get_http_version()], headers)

    def on_body(self, body: bytes) -> None:
        self._sink.on_body(body)

    def on_message_complete(self) -> None:
        trailers = self._headers
        self._headers = []
        self._url = b""
        self._in_head = True
        self._head_size = 0
        self._fresh = True
        self._sink.on_end(trailers)

    def feed(self, data: bytes) -> None:
        if self._fresh:
            if self._pending:
                data = self._pending + data
                self._pending = b""
            a, b = extension_method(data, self._max_head)
            if a < 0:
                self._pending = data
                self._head_begin()  # a head has begun: the header read timeout runs
                return
            if b:
                self._method = data[a:b]
                data = data[:a] + PLACEHOLDER + data[b:]
        if self._in_head:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0]
            self._sink.on_upgrade(data[offset:])
            return
        except httptools.HttpParserError as exc:
            raise unwrap(exc, "malformed request", 400) from None
        if self._in_head and self._head_size > self._max_head:
            raise ParseError("request header too large", 431)


class HttptoolsResponseParser:
    __slots__ = (
        "_sink",
        "_parser",
        "_headers",
        "_in_head",
        "_head_size",
        "_max_head",
        "_head_request",
        "_head_buf",
        "_expecting",
    )

    def __init__(self, sink: Any, max_head: int) -> None:
        self._sink = sink
        self._max_head = max_head
        self._expecting = False  # a request was sent and its final response is not all in
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = True
        self._head_size = 0
        self._head_request = False
        self._head_buf = b""

    def expect(self, method_is_head: bool, upgrade: bool) -> None:
        self._head_request = method_is_head
        self._head_buf = b""
        self._expecting = True

    def on_message_begin(self) -> None:
        if not self._expecting:
            # A byte past the end of the response to the request sent: an app that answers
            # twice. The connection must never carry another request (the caller retires it).
            raise ParseError("unsolicited response bytes", 502)

    # No on_status: Go's server writes its own reason phrase, and so do we.
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        headers = self._headers
        self._headers = []
        if self._head_size > self._max_head:  # maybe: the count includes body bytes
            if sum(len(n) + len(v) + 4 for n, v in headers) > self._max_head:
                raise ParseError(_too_large(self._max_head), 502)
        p = self._parser
        self._sink.on_response_head(p.get_status_code(), VERSIONS[p.get_http_version()], headers)

    def on_body(self, body: bytes) -> None:
        self._sink.on_response_body(body)

    def on_message_complete(self) -> None:
        trailers = self._headers
        self._headers = []
        self._in_head = True
        self._head_size = 0
        if self._parser.get_status_code() >= 200:
            self._expecting = False
        self._sink.on_response_end(trailers)

    def feed(self, data: bytes) -> None:
        if self._head_request:
            data = self._feed_head_response(data)
            if not data:
                return
        if self._in_head:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._sink.on_response_upgrade(data[exc.args[0] :])
            return
        except httptools.HttpParserError as exc:
            raise unwrap(exc, "malformed response", 502) from None
        if self._in_head and self._head_size > self._max_head:
            raise ParseError(_too_large(self._max_head), 502)

    def _feed_head_response(self, data: bytes) -> bytes:
        """Feeds the heads of a response to HEAD (1xx first, then the final one) one by one."""
        buf = self._head_buf + data
        while self._head_request:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._max_head:
                    raise ParseError(_too_large(self._max_head), 502)
                self._head_buf = buf
                return b""
            head, buf = buf[: end + 4], buf[end + 4 :]
            if head[9:10] == b"1":  # interim: no body, the usual parser copes
                try:
                    self._parser.feed_data(head)
                except httptools.HttpParserError as exc:
                    raise ParseError(str(exc) or "malformed response", 502) from None
                continue
            # The final head, parsed alone: llhttp would wait for a body that never comes.
            self._head_request = False
            collector = HeadCollector()
            parser = httptools.HttpResponseParser(collector)
            try:
                parser.feed_data(head)
            except httptools.HttpParserError as exc:
                raise ParseError(str(exc) or "malformed response", 502) from None
            if not collector.complete:
                raise ParseError("malformed response head", 502)
            self._sink.on_response_head(
                parser.get_status_code(), VERSIONS[parser.get_http_version()], collector.headers
            )
            self._expecting = False
            self._sink.on_response_end([])
        self._parser = httptools.HttpResponseParser(self)
        self._head_buf = b""
        return buf


class HeadCollector:
    """Collects one final response head to a HEAD request."""

    __slots__ = ("headers", "complete")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.complete = True
