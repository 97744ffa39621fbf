# cython: language_level=3, boundscheck=False, wraparound=False
"""httptools glue, compiled twin of ``_h1_py`` (same API and events).

PERF: httptools calls back into its protocol object for every URL piece, header, body piece and
message boundary; with the pure twin each is a Python function call (about 18 per proxied
request). Here they are methods of C extension types.
"""

import httptools

from proxy.engine.errors import VERSIONS, ParseError, unwrap


def _noop():
    pass


cdef class HttptoolsRequestParser:
    cdef object _sink, _parser, _head_begin
    cdef object _on_head, _on_body, _on_end
    cdef list _headers
    cdef bytes _url
    cdef bint _in_head
    cdef Py_ssize_t _head_size, _max_head

    def __init__(self, sink, Py_ssize_t max_head):
        self._sink = sink
        self._head_begin = getattr(sink, "head_begin", _noop)
        self._on_head = sink.on_head
        self._on_body = sink.on_body
        self._on_end = sink.on_end
        self._max_head = max_head
        self._headers = []
        self._url = b""
        self._in_head = True
        self._head_size = 0
        self._parser = httptools.HttpRequestParser(self)

    def on_message_begin(self):
        self._head_begin()

    def on_url(self, bytes url):
        self._url += url

    def on_header(self, bytes name, bytes value):
        self._headers.append((name, value))

    def on_headers_complete(self):
        cdef list headers = self._headers
        cdef Py_ssize_t size
        self._in_head = False
        self._headers = []
        if self._head_size > self._max_head:
            size = len(self._url)
            for n, v in headers:
                size += len(n) + len(v) + 4
            if size > self._max_head:
                raise ParseError("request header too large", 431)
        p = self._parser
        self._on_head(p.get_method(), self._url, VERSIONS[p.get_http_version()], headers)

    def on_body(self, body):
        self._on_body(body)

    def on_message_complete(self):
        trailers = self._headers
        self._headers = []
        self._url = b""
        self._in_head = True
        self._head_size = 0
        self._on_end(trailers)

    def feed(self, bytes data):
        if self._in_head:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._sink.on_upgrade(data[exc.args[0]:])
            return
        except httptools.HttpParserError as exc:
            raise unwrap(exc, "malformed request", 400) from None
        if self._in_head and self._head_size > self._max_head:
            raise ParseError("request header too large", 431)


cdef class _HeadCollector:
    cdef public list headers
    cdef public bint complete

    def __init__(self):
        self.headers = []
        self.complete = False

    def on_header(self, bytes name, bytes value):
        self.headers.append((name, value))

    def on_headers_complete(self):
        self.complete = True


cdef class HttptoolsResponseParser:
    cdef object _sink, _parser
    cdef object _on_head, _on_body, _on_end
    cdef list _headers
    cdef bint _in_head, _head_request
    cdef Py_ssize_t _head_size, _max_head
    cdef bytes _head_buf

    def __init__(self, sink, Py_ssize_t max_head):
        self._sink = sink
        self._on_head = sink.on_response_head
        self._on_body = sink.on_response_body
        self._on_end = sink.on_response_end
        self._max_head = max_head
        self._headers = []
        self._in_head = True
        self._head_size = 0
        self._head_request = False
        self._head_buf = b""
        self._parser = httptools.HttpResponseParser(self)

    def expect(self, bint method_is_head, upgrade):
        self._head_request = method_is_head
        self._head_buf = b""

    def on_header(self, bytes name, bytes value):
        self._headers.append((name, value))

    def on_headers_complete(self):
        cdef list headers = self._headers
        cdef Py_ssize_t size = 0
        self._in_head = False
        self._headers = []
        if self._head_size > self._max_head:
            for n, v in headers:
                size += len(n) + len(v) + 4
            if size > self._max_head:
                raise ParseError("response header too large", 502)
        p = self._parser
        self._on_head(p.get_status_code(), VERSIONS[p.get_http_version()], headers)

    def on_body(self, body):
        self._on_body(body)

    def on_message_complete(self):
        trailers = self._headers
        self._headers = []
        self._in_head = True
        self._head_size = 0
        self._on_end(trailers)

    def feed(self, bytes data):
        if self._head_request:
            data = self._feed_head_response(data)
            if not data:
                return
        if self._in_head:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._sink.on_response_upgrade(data[exc.args[0]:])
            return
        except httptools.HttpParserError as exc:
            raise unwrap(exc, "malformed response", 502) from None
        if self._in_head and self._head_size > self._max_head:
            raise ParseError("response header too large", 502)

    cdef bytes _feed_head_response(self, bytes data):
        """The heads of a response to HEAD (1xx first, then the final one), one by one."""
        cdef bytes buf = self._head_buf + data
        cdef bytes head
        cdef Py_ssize_t end
        cdef _HeadCollector collector
        while self._head_request:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._max_head:
                    raise ParseError("response header too large", 502)
                self._head_buf = buf
                return b""
            head = buf[:end + 4]
            buf = buf[end + 4:]
            if head[9:10] == b"1":
                try:
                    self._parser.feed_data(head)
                except httptools.HttpParserError as exc:
                    raise ParseError(str(exc) or "malformed response", 502) from None
                continue
            # The final head, parsed alone: llhttp would wait for a body that never comes.
            self._head_request = False
            collector = _HeadCollector()
            parser = httptools.HttpResponseParser(collector)
            try:
                parser.feed_data(head)
            except httptools.HttpParserError as exc:
                raise ParseError(str(exc) or "malformed response", 502) from None
            if not collector.complete:
                raise ParseError("malformed response head", 502)
            self._on_head(parser.get_status_code(), VERSIONS[parser.get_http_version()],
                          collector.headers)
            self._on_end([])
        self._parser = httptools.HttpResponseParser(self)
        self._head_buf = b""
        return buf
