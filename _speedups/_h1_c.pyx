# cython: language_level=3, boundscheck=False, wraparound=False
"""httptools glue, compiled twin of ``_h1_py`` (same API and events).

PERF: httptools calls back into its protocol object for every URL piece, header, body piece and
message boundary; with the pure twin each is a Python function call (about 18 per proxied
request). Here they are methods of C extension types.

PERF: the common message is also read without httptools at all (``_fast_request`` /
``_fast_response``): a head that arrives whole, in the strict form every mainstream client and
server writes (known method, origin-form target, token names, ``name: value`` lines with no
control bytes, at most one plain Content-Length, no Transfer-Encoding, no Connection other than
keep-alive, no Upgrade), with a body of known length or none. Anything else, or anything in
doubt, goes to httptools untouched, so both paths give the same events for what the fast one
accepts (tests/speedups/test_h1_fast.py checks them against the pure twin). This took the
response parse from about 3.8 µs to about 1 µs.

PERF: a sink with ``on_response_plain(status, lines, has_date)`` (the engine's upstream
protocol) gets a plain response head in that form instead of ``on_response_head``: ``lines``
are its header lines as the proxy passes them on, hop-by-hop ones cut, each written
``name: value\r\n`` as ``build_head`` writes it. No header objects are made, and the engine
neither scans nor rebuilds the head: about 7 000 fewer instructions a proxied request.

PERF: a sink deriving from ``RequestSink`` / ``ResponseSink`` (``_h1_c.pxd``; the compiled
engine's protocols do, in their .pxd) has its event methods called in C; any other sink through
its bound methods, as Python calls. About 500 instructions a proxied request.
"""

import httptools

from _speedups.methods import PLACEHOLDER, extension_method

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy


cdef inline bytes _sub(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    return PyBytes_FromStringAndSize(<const char*>p + a, b - a)


cdef inline Py_ssize_t _find(const unsigned char* p, Py_ssize_t a, Py_ssize_t b,
                             const char* needle, Py_ssize_t n):
    """The offset of ``needle`` (1 to 4 bytes) in p[a:b], or -1.

    PERF: memchr for its first byte, then a compare; glibc's memmem sets up a two-way search
    on each call, about 280 instructions for a 4-byte needle (5 calls per proxied request)."""
    cdef const unsigned char* hit
    cdef unsigned char first = <unsigned char>needle[0]
    while b - a >= n:
        hit = <const unsigned char*>memchr(p + a, first, b - a - n + 1)
        if hit == NULL:
            return -1
        a = hit - p
        if n == 1 or memcmp(p + a + 1, needle + 1, n - 1) == 0:
            return a
        a += 1
    return -1

from _speedups.fields import COMMON_NAMES
from _speedups.errors import VERSIONS, ParseError, unwrap


def _noop():
    pass


# Bytes allowed in a header name (RFC 9110 tchar) and in a value or reason phrase (VCHAR, SP,
# HTAB, obs-text).
cdef unsigned char _TCHAR[256]
cdef unsigned char _VCHAR[256]
cdef int _i
for _i in range(256):
    _TCHAR[_i] = (
        (48 <= _i <= 57) or (65 <= _i <= 90) or (97 <= _i <= 122)
        or chr(_i) in "!#$%&'*+-.^_`|~"
    )
    _VCHAR[_i] = (0x20 <= _i <= 0x7E) or _i >= 0x80 or _i == 9

cdef tuple _FAST_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")

# fields.COMMON_NAMES by length: a header name read off the wire that is one of them is handed
# out as that shared object (its hash already computed), not as a new bytes object.
cdef list _NAMES_BY_LEN = [[] for _i in range(33)]
cdef bytes _cn
for _cn in COMMON_NAMES:
    if len(_cn) <= 32:
        hash(_cn)
        _NAMES_BY_LEN[len(_cn)].append(_cn)
_NAMES_BY_LEN = [tuple(group) for group in _NAMES_BY_LEN]


cdef inline bytes _name(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    cdef Py_ssize_t n = b - a
    cdef bytes m
    cdef const unsigned char* q
    if n <= 32:
        for m in <tuple>_NAMES_BY_LEN[n]:
            q = <const unsigned char*><const char*>m
            # PERF: the first byte tells most candidates apart without a call
            if q[0] == p[a] and memcmp(p + a, q, n) == 0:
                return m
    return PyBytes_FromStringAndSize(<const char*>p + a, n)


cdef inline object _known_method(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    """The shared bytes object of a method in ``_FAST_METHODS``, or None.

    PERF: one object per method, not a new one per request: its hash is computed once (the
    metrics key on it) and comparisons with it start with an identity check."""
    cdef bytes m
    for m in _FAST_METHODS:
        if len(m) == b - a and memcmp(p + a, <const char*>m, b - a) == 0:
            return m
    return None
cdef Py_ssize_t NOT_FAST = -2
cdef Py_ssize_t NO_LENGTH = -1


cdef inline bint _is(const unsigned char* p, Py_ssize_t n, const char* usual, const char* lower):
    """_ieq, trying first the spelling nearly everyone sends (one memcmp, not a loop)."""
    return memcmp(p, usual, n) == 0 or _ieq(p, n, lower)


cdef inline bint _plain_value(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    """p[a:b] is all _VCHAR (no control byte but HTAB, no DEL).

    PERF: eight bytes at a time. A word with no byte below 0x20 and none equal to 0x7F (the
    usual word: the tests are exact, with no false negatives) needs no byte-by-byte look; any
    other word is looked at byte by byte (it may hold an allowed HTAB)."""
    cdef uint64_t w, x
    cdef Py_ssize_t i
    while b - a >= 8:
        memcpy(&w, p + a, 8)
        x = w ^ 0x7F7F7F7F7F7F7F7FULL
        if (((w - 0x2020202020202020ULL) & ~w)
                | ((x - 0x0101010101010101ULL) & ~x)) & 0x8080808080808080ULL:
            for i in range(a, a + 8):
                if not _VCHAR[p[i]]:
                    return False
        a += 8
    for i in range(a, b):
        if not _VCHAR[p[i]]:
            return False
    return True


cdef inline bint _ieq(const unsigned char* p, Py_ssize_t n, const char* lower):
    """p[:n] equals the lower-case ASCII ``lower`` (of length n), ignoring case."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if 65 <= c <= 90:
            c += 32
        if c != <unsigned char>lower[i]:
            return False
    return True


# The kept lines of a plain response head (see _fields): at most this many, or the head takes
# the general path.
cdef enum:
    MAX_KEPT = 64


cdef struct Kept:
    # Filled by _fields when it is given no list: the lines a proxy passes on, as the offsets
    # of their names and values.
    Py_ssize_t names[MAX_KEPT]
    Py_ssize_t colons[MAX_KEPT]
    Py_ssize_t values[MAX_KEPT]
    Py_ssize_t value_ends[MAX_KEPT]
    int n
    Py_ssize_t size
    bint has_date


cdef inline bint _hop_by_hop(const unsigned char* p, Py_ssize_t n):
    """A hop-by-hop name (messages.HOP_BY_HOP) that a plain head may carry: the others
    (Connection, Transfer-Encoding, Upgrade) are decided by _fields itself."""
    if n == 2:
        return _ieq(p, 2, b"te")
    if n == 7:
        return _ieq(p, 7, b"trailer")
    if n == 10:
        return _ieq(p, 10, b"keep-alive")
    if n == 16:
        return _ieq(p, 16, b"proxy-connection")
    if n == 18:
        return _ieq(p, 18, b"proxy-authenticate")
    if n == 19:
        return _ieq(p, 19, b"proxy-authorization")
    return False


cdef Py_ssize_t _fields(bytes data, Py_ssize_t pos, Py_ssize_t stop, list headers,
                        Kept* kept=NULL):
    """Reads the header lines in data[pos:stop] (each CRLF-ended) into ``headers``, or, when
    ``headers`` is None, the spans of those a proxy passes on (hop-by-hop ones cut) into
    ``kept``.

    Returns the Content-Length (>= 0), NO_LENGTH, or NOT_FAST for anything the fast path leaves
    to httptools (or, for ``kept``, more than MAX_KEPT lines)."""
    cdef const unsigned char* p = data
    cdef Py_ssize_t length = NO_LENGTH, line_end, colon, vs, ve, i, n
    cdef const unsigned char* hit
    cdef bint cut
    while pos < stop:
        hit = <const unsigned char*>memchr(p + pos, 13, stop - pos)
        if hit == NULL:
            return NOT_FAST
        line_end = hit - p
        if p[line_end + 1] != 10:
            return NOT_FAST
        colon = pos
        while colon < line_end and _TCHAR[p[colon]]:
            colon += 1
        if colon == pos or colon == line_end or p[colon] != 58:  # ':'
            return NOT_FAST
        vs = colon + 1
        while vs < line_end and (p[vs] == 32 or p[vs] == 9):
            vs += 1
        ve = line_end
        if ve > vs and (p[ve - 1] == 32 or p[ve - 1] == 9):
            return NOT_FAST  # trailing whitespace: llhttp's business
        if not _plain_value(p, vs, ve):
            return NOT_FAST
        n = colon - pos
        cut = False
        if n == 14 and _is(p + pos, 14, b"Content-Length", b"content-length"):
            if length != NO_LENGTH or ve == vs or ve - vs > 15:
                return NOT_FAST
            length = 0
            for i in range(vs, ve):
                if not 48 <= p[i] <= 57:
                    return NOT_FAST
                length = length * 10 + (p[i] - 48)
        elif n == 17 and _ieq(p + pos, 17, b"transfer-encoding"):
            return NOT_FAST
        elif n == 10 and _is(p + pos, 10, b"Connection", b"connection"):
            if not (ve - vs == 10 and _is(p + vs, 10, b"keep-alive", b"keep-alive")):
                return NOT_FAST
            cut = True
        elif n == 7 and _ieq(p + pos, 7, b"upgrade"):
            return NOT_FAST
        if headers is not None:
            headers.append((_name(p, pos, colon), _sub(p, vs, ve)))
        elif cut or _hop_by_hop(p + pos, n):
            pass
        else:
            if n == 4 and _is(p + pos, 4, b"Date", b"date"):
                kept.has_date = True
            if kept.n == MAX_KEPT:
                return NOT_FAST
            kept.names[kept.n] = pos
            kept.colons[kept.n] = colon
            kept.values[kept.n] = vs
            kept.value_ends[kept.n] = ve
            kept.size += n + ve - vs + 4
            kept.n += 1
        pos = line_end + 2
    return length


cdef bytes _copy_kept(const unsigned char* p, Kept* kept):
    """The kept lines as ``name: value\\r\\n`` each (the form build_head writes), in one bytes
    object."""
    cdef bytes out = PyBytes_FromStringAndSize(NULL, kept.size)
    cdef char* buf = PyBytes_AS_STRING(out)
    cdef Py_ssize_t pos = 0, k
    cdef int i
    for i in range(kept.n):
        k = kept.colons[i] - kept.names[i]
        memcpy(buf + pos, p + kept.names[i], k)
        pos += k
        buf[pos] = 58  # ':'
        buf[pos + 1] = 32
        pos += 2
        k = kept.value_ends[i] - kept.values[i]
        memcpy(buf + pos, p + kept.values[i], k)
        pos += k
        buf[pos] = 13
        buf[pos + 1] = 10
        pos += 2
    return out


def _too_large(limit):
    """Go's transport's words for a response head over its limit (Knative's 502 body)."""
    return ("net/http: HTTP/1.x transport connection broken: net/http: server response "
            f"headers exceeded {limit} bytes; aborted")


cdef class RequestSink:
    """A request parser's sink that the compiled parser calls in C (the engine's
    ``ServerProtocol`` derives from it). PERF: about 200 instructions a call less than a bound
    method's Python call; other sinks (any object with these methods) are called as Python."""

    cpdef on_head(self, bytes method, bytes target, bytes version, list headers):
        raise NotImplementedError

    cpdef on_body(self, bytes data):
        raise NotImplementedError

    cpdef on_end(self, list trailers):
        raise NotImplementedError


cdef class ResponseSink:
    """``RequestSink`` for the response parser (the engine's ``UpstreamProtocol``)."""

    cpdef on_response_head(self, int status, bytes version, list headers):
        raise NotImplementedError

    cpdef on_response_plain(self, int status, bytes lines, bint has_date):
        raise NotImplementedError

    cpdef on_response_body(self, bytes data):
        raise NotImplementedError

    cpdef on_response_end(self, list trailers):
        raise NotImplementedError


cdef class HttptoolsRequestParser:
    cdef object _sink, _parser, _head_begin
    cdef object _on_head, _on_body, _on_end
    cdef RequestSink _csink
    cdef list _headers
    cdef bytes _url, _pending
    cdef object _method
    cdef bint _in_head, _fresh
    cdef Py_ssize_t _head_size, _max_head, _body_left

    def __init__(self, sink, Py_ssize_t max_head):
        self._sink = sink
        self._head_begin = getattr(sink, "head_begin", _noop)
        self._csink = sink if isinstance(sink, RequestSink) else None
        self._on_head = sink.on_head
        self._on_body = sink.on_body
        self._on_end = sink.on_end
        self._max_head = max_head
        self._headers = []
        self._url = b""
        self._in_head = True
        self._head_size = 0
        self._fresh = True  # httptools holds no partial message
        self._body_left = 0  # body bytes still due to a message read by the fast path
        self._pending = b""  # the start of a request whose method is not all in
        self._method = None  # an extension method llhttp was given GET for (_speedups.methods)
        self._parser = httptools.HttpRequestParser(self)

    cdef inline _head(self, method, bytes target, bytes version, list headers):
        if self._csink is not None:
            self._csink.on_head(method, target, version, headers)
        else:
            self._on_head(method, target, version, headers)

    cdef inline _body(self, bytes data):
        if self._csink is not None:
            self._csink.on_body(data)
        else:
            self._on_body(data)

    cdef inline _end(self, list trailers):
        if self._csink is not None:
            self._csink.on_end(trailers)
        else:
            self._on_end(trailers)

    def on_message_begin(self):
        # A message that follows one llhttp completed in the same read: llhttp now holds part
        # of it, so what comes next is llhttp's, never the fast path's.
        self._fresh = False
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
        method = self._method
        if method is None:
            method = p.get_method()
        else:
            self._method = None
        self._head(method, self._url, VERSIONS[p.get_http_version()], headers)

    def on_body(self, body):
        self._body(body)

    def on_message_complete(self):
        trailers = self._headers
        self._headers = []
        self._url = b""
        self._in_head = True
        self._head_size = 0
        self._fresh = True
        self._end(trailers)

    def feed(self, bytes data):
        cdef Py_ssize_t off = 0, n = len(data), took
        while off < n:
            if self._body_left:
                took = min(self._body_left, n - off)
                self._body_left -= took
                self._body(data if took == n else data[off:off + took])
                off += took
                if not self._body_left:
                    self._fresh = True
                    self._end([])
                continue
            if not self._fresh or self._pending:
                break
            took = self._fast_request(data, off)
            if took < 0:
                break
            off = took
        else:
            return
        if off:
            data = data[off:]
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
        self._fresh = False
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

    cdef Py_ssize_t _fast_request(self, bytes data, Py_ssize_t off):
        """Reads one whole plain request head at data[off:]; returns the offset after it and
        the body bytes that came with it, or -1 to leave data[off:] to httptools."""
        cdef const unsigned char* p = data
        cdef Py_ssize_t size = len(data)
        cdef Py_ssize_t end = _find(p, off, size, b"\r\n\r\n", 4), sp1, sp2, line_end, length, n
        cdef list headers
        cdef bytes method
        if end < 0 or end + 4 - off > self._max_head:
            return -1
        line_end = _find(p, off, end + 2, b"\r\n", 2)
        sp1 = _find(p, off, line_end, b" ", 1)
        if sp1 <= off:
            return -1
        method = _known_method(p, off, sp1)
        if method is None:
            return -1
        sp2 = sp1 + 1
        if sp2 >= line_end or p[sp2] != 47:  # origin-form only: "/..."
            return -1
        while sp2 < line_end and 0x21 <= p[sp2] <= 0x7E:
            sp2 += 1
        # " HTTP/1.1" and the line's end: HTTP/1.0 (keep-alive rules) goes to httptools.
        if line_end - sp2 != 9 or memcmp(p + sp2, b" HTTP/1.1", 9) != 0:
            return -1
        headers = []
        length = _fields(data, line_end + 2, end + 2, headers)
        if length == NOT_FAST:
            return -1
        self._head(method, _sub(p, sp1 + 1, sp2), b"1.1", headers)
        off = end + 4
        if length <= 0:
            self._end([])
            return off
        n = min(length, size - off)
        self._body_left = length - n
        if n:
            self._body(_sub(p, off, off + n))
        if not self._body_left:
            self._end([])
        return off + n


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
    cdef object _on_head, _on_body, _on_end, _on_plain
    cdef ResponseSink _csink
    cdef list _headers
    cdef bint _in_head, _head_request, _fresh, _expecting
    cdef Py_ssize_t _head_size, _max_head, _body_left
    cdef bytes _head_buf

    def __init__(self, sink, Py_ssize_t max_head):
        self._sink = sink
        self._csink = sink if isinstance(sink, ResponseSink) else None
        self._on_head = sink.on_response_head
        self._on_body = sink.on_response_body
        self._on_end = sink.on_response_end
        self._on_plain = getattr(sink, "on_response_plain", None)
        self._max_head = max_head
        self._headers = []
        self._in_head = True
        self._head_size = 0
        self._head_request = False
        self._head_buf = b""
        self._fresh = True
        self._body_left = 0
        self._expecting = False  # a request was sent and its final response is not all in
        self._parser = httptools.HttpResponseParser(self)

    cdef inline _head(self, int status, bytes version, list headers):
        if self._csink is not None:
            self._csink.on_response_head(status, version, headers)
        else:
            self._on_head(status, version, headers)

    cdef inline _plain(self, int status, bytes lines, bint has_date):
        if self._csink is not None:
            self._csink.on_response_plain(status, lines, has_date)
        else:
            self._on_plain(status, lines, has_date)

    cdef inline _body(self, bytes data):
        if self._csink is not None:
            self._csink.on_response_body(data)
        else:
            self._on_body(data)

    cdef inline _end(self, list trailers):
        if self._csink is not None:
            self._csink.on_response_end(trailers)
        else:
            self._on_end(trailers)

    def expect(self, bint method_is_head, upgrade):
        self._head_request = method_is_head
        self._head_buf = b""
        self._expecting = True

    def on_message_begin(self):
        if not self._expecting:
            # A byte past the end of the response to the request sent: an app that answers
            # twice. The connection must never carry another request (the caller retires it).
            raise ParseError("unsolicited response bytes", 502)

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
                raise ParseError(_too_large(self._max_head), 502)
        p = self._parser
        self._head(p.get_status_code(), VERSIONS[p.get_http_version()], headers)

    def on_body(self, body):
        self._body(body)

    def on_message_complete(self):
        trailers = self._headers
        self._headers = []
        self._in_head = True
        self._head_size = 0
        self._fresh = True
        if self._parser.get_status_code() >= 200:
            self._expecting = False
        self._end(trailers)

    def feed(self, bytes data):
        cdef Py_ssize_t off = 0, n = len(data), took
        while off < n:
            if self._body_left:
                took = min(self._body_left, n - off)
                self._body_left -= took
                self._body(data if took == n else data[off:off + took])
                off += took
                if not self._body_left:
                    self._expecting = False
                    self._end([])
                continue
            if not self._expecting:
                # As llhttp: empty lines between messages are skipped; anything else is the
                # start of a response nobody asked for.
                while off < n and (data[off] == 13 or data[off] == 10):
                    off += 1
                if off < n:
                    raise ParseError("unsolicited response bytes", 502)
                return
            if not self._fresh or self._head_request:
                break
            took = self._fast_response(data, off)
            if took < 0:
                break
            off = took
        else:
            return
        if off:
            data = data[off:]
        self._fresh = False
        self._feed(data)

    cdef Py_ssize_t _fast_response(self, bytes data, Py_ssize_t off):
        """Reads one whole plain response head at data[off:] (HTTP/1.1, status 200-599 but
        204 and 304, a Content-Length); returns the offset after it and the body bytes that
        came with it, or -1 to leave data[off:] to httptools."""
        cdef const unsigned char* p = data
        cdef Py_ssize_t size = len(data)
        cdef Py_ssize_t end = _find(p, off, size, b"\r\n\r\n", 4), line_end, length, n, i
        cdef int status
        cdef list headers
        cdef Kept kept
        if end < 0 or end + 4 - off > self._max_head or end - off < 12:
            return -1
        if memcmp(p + off, b"HTTP/1.1 ", 9) != 0:
            return -1
        line_end = _find(p, off, end + 2, b"\r\n", 2)
        if not (50 <= p[off + 9] <= 53 and 48 <= p[off + 10] <= 57 and 48 <= p[off + 11] <= 57):
            return -1
        status = (p[off + 9] - 48) * 100 + (p[off + 10] - 48) * 10 + (p[off + 11] - 48)
        if status == 204 or status == 304:
            return -1
        if line_end > off + 12:
            if p[off + 12] != 32:
                return -1
            for i in range(off + 13, line_end):
                if not _VCHAR[p[i]]:
                    return -1
        length = NOT_FAST
        if self._on_plain is not None:
            kept.n = 0
            kept.size = 0
            kept.has_date = False
            length = _fields(data, line_end + 2, end + 2, None, &kept)
        if length >= 0:
            # PERF: the hop-by-hop lines cut here, in one pass over the bytes: no header
            # objects, no scan and no rebuild in the engine.
            self._plain(status, _copy_kept(p, &kept), kept.has_date)
        else:
            headers = []
            length = _fields(data, line_end + 2, end + 2, headers)
            if length < 0:
                return -1  # no length (close-delimited) or not plain: httptools
            self._head(status, b"1.1", headers)
        off = end + 4
        n = min(length, size - off)
        self._body_left = length - n
        if n:
            self._body(_sub(p, off, off + n))
        if not self._body_left:
            self._expecting = False
            self._end([])
        return off + n

    cdef _feed(self, bytes data):
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
            raise ParseError(_too_large(self._max_head), 502)

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
                    raise ParseError(_too_large(self._max_head), 502)
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
            self._head(parser.get_status_code(), VERSIONS[parser.get_http_version()],
                          collector.headers)
            self._expecting = False
            self._end([])
        self._parser = httptools.HttpResponseParser(self)
        self._head_buf = b""
        return buf
