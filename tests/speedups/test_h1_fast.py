"""The compiled httptools glue reads plain messages itself (its fast path): it must give exactly
the events of the pure twin, which always runs httptools, for every input and every way the
input is split into reads."""

from __future__ import annotations

import random

import pytest

from _speedups import _h1_py
from _speedups.errors import ParseError
from proxy.engine.messages import HOP_BY_HOP

h1c = pytest.importorskip("_speedups._h1_c", reason="compiled speedups not built")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def _body(self, data: bytes) -> None:
        # How a body is cut into pieces depends on the reads; only the bytes matter.
        if self.events and self.events[-1][0] == "body":
            self.events[-1] = ("body", self.events[-1][1] + data)
        else:
            self.events.append(("body", data))

    def head_begin(self) -> None:
        pass

    def on_head(self, method, target, version, headers) -> None:
        self.events.append(("head", method, target, version, list(headers)))

    def on_body(self, data: bytes) -> None:
        self._body(data)

    def on_end(self, trailers) -> None:
        self.events.append(("end", list(trailers)))

    def on_upgrade(self, rest: bytes) -> None:
        self.events.append(("upgrade", rest))

    def on_response_head(self, status, version, headers) -> None:
        self.events.append(("head", status, version, list(headers)))

    def on_response_body(self, data: bytes) -> None:
        self._body(data)

    def on_response_end(self, trailers) -> None:
        self.events.append(("end", list(trailers)))

    def on_response_upgrade(self, rest: bytes) -> None:
        self.events.append(("upgrade", rest))


class PlainRecorder(Recorder):
    """A sink that also takes plain response heads, as the engine's upstream protocol does."""

    def on_response_plain(self, status, lines, has_date) -> None:
        self.events.append(("plain", status, lines, has_date))


def run(module, kind: str, pieces: list[bytes], head_request: bool = False,
        sink_type: type = Recorder) -> list[tuple]:
    sink = sink_type()
    if kind == "request":
        parser = module.HttptoolsRequestParser(sink, 64 * 1024)
    else:
        parser = module.HttptoolsResponseParser(sink, 64 * 1024)
        parser.expect(head_request, False)
    try:
        for piece in pieces:
            parser.feed(piece)
            if sink.events and sink.events[-1][0] == "upgrade":
                break
    except ParseError as exc:
        sink.events.append(("error", exc.status))
    return sink.events


def splits(data: bytes) -> list[list[bytes]]:
    out = [[data], [bytes([b]) for b in data]]
    for cut in range(1, len(data)):
        out.append([data[:cut], data[cut:]])
    return out


LLHTTP_METHODS = {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                  b"TRACE", b"CONNECT", b"PRI"}


def agree(kind: str, pieces: list[bytes], **kw) -> None:
    """Both twins give the same events, but for the one gap _speedups.methods documents: a
    request that follows another in the same read, after one llhttp read to its end, is
    llhttp's alone, so an extension method there (or the start of one) is refused by the pure
    twin, where the compiled one, whose fast path read the message before, takes it. Only
    that: the compiled twin then has a head with such a method, or nothing yet."""
    c, p = run(h1c, kind, pieces, **kw), run(_h1_py, kind, pieces, **kw)
    if c == p:
        return
    assert kind == "request" and p and p[-1] == ("error", 400), (pieces, c, p)
    common = p[:-1]
    assert c[:len(common)] == common and ("end", []) in common, (pieces, c, p)
    rest = c[len(common):]
    assert not rest or (rest[0][0] == "head" and rest[0][1] not in LLHTTP_METHODS), (
        pieces, c, p)


def check(kind: str, data: bytes, **kw) -> list[tuple]:
    whole = run(_h1_py, kind, [data], **kw)
    for pieces in splits(data):
        agree(kind, pieces, **kw)
    return whole


GET = b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
OK = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\n"
      b"Content-Length: 13\r\nConnection: keep-alive\r\n\r\nHello World!\n")

REQUESTS = [
    GET,
    POST,
    GET + POST + GET,  # pipelined
    POST + b"GET",  # a partial head after a whole message
    b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost:h\r\nX-Empty:\r\nX-Tab:\tv\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a \r\n\r\n",  # trailing whitespace
    b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\nHost h\r\n\r\n",  # no colon
    b"GET / HTTP/1.1\r\nHo st: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\x01\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",  # bare CR
    b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"MKCOL /d HTTP/1.1\r\nHost: h\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET / http/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5x\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",  # a stray CRLF before a request
    b"GET / HTTP/1.1\r\nHost: h\xff\xfe\r\n\r\n",  # obs-text
]

RESPONSES = [
    OK,
    OK + OK,
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",  # no reason phrase
    b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\nX-A: b\r\n\r\nbad",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" + OK,
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nT: v\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\x01\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 099 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 600 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n folded\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nServer: x \r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
]


@pytest.mark.parametrize("data", REQUESTS)
def test_request_events_match_the_pure_twin(data: bytes) -> None:
    check("request", data)


@pytest.mark.parametrize("data", RESPONSES)
def test_response_events_match_the_pure_twin(data: bytes) -> None:
    check("response", data)


def test_response_to_head_is_not_read_by_the_fast_path() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n" + OK
    events = check("response", data, head_request=True)
    assert events[0] == ("head", 200, b"1.1", [(b"Content-Length", b"13")])
    assert events[1] == ("end", [])


def test_the_fast_path_reads_plain_messages() -> None:
    """The events above would match trivially if the fast path never ran: show that it does
    (httptools would call ``head_begin`` first)."""

    class Counting(Recorder):
        begun = 0

        def head_begin(self) -> None:
            self.begun += 1

    sink = Counting()
    parser = h1c.HttptoolsRequestParser(sink, 64 * 1024)
    parser.feed(GET + POST)
    assert sink.begun == 0 and [e[0] for e in sink.events] == ["head", "end", "head", "body",
                                                               "end"]
    parser.feed(b"MKCOL / HTTP/1.1\r\nHost: h\r\n\r\n")  # not plain: httptools reads it
    assert sink.begun == 1 and sink.events[-2][1] == b"MKCOL"


def test_a_large_head_is_refused_the_same_way() -> None:
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    assert run(h1c, "request", [big]) == run(_h1_py, "request", [big]) == [("error", 431)]
    resp = b"HTTP/1.1 200 OK\r\nX: " + b"a" * (70 * 1024) + b"\r\nContent-Length: 0\r\n\r\n"
    assert run(h1c, "response", [resp]) == run(_h1_py, "response", [resp]) == [("error", 502)]


@pytest.mark.parametrize("kind,seeds", [("request", REQUESTS), ("response", RESPONSES)])
def test_mutated_messages_match_the_pure_twin(kind: str, seeds: list[bytes]) -> None:
    """Random byte flips, insertions and deletions of the corpus: same events, same errors."""
    rng = random.Random(1234)
    alphabet = b" \t\r\n:/.0123456789aAzZ\x00\x7f\xff-"
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data) + 1)
            op = rng.randrange(3)
            if op == 0 and i < len(data):
                data[i] = rng.choice(alphabet)
            elif op == 1:
                data[i:i] = bytes([rng.choice(alphabet)])
            elif i < len(data):
                del data[i]
        msg = bytes(data)
        cut = rng.randrange(1, len(msg)) if len(msg) > 1 else 1
        for pieces in ([msg], [msg[:cut], msg[cut:]]):
            agree(kind, pieces)


def test_common_names_are_the_shared_objects_and_scan_like_the_pure_twin() -> None:
    """The glue hands out fields.COMMON_NAMES objects for common names (their case kept),
    new objects for the rest; the compiled scanner maps both as the pure one does."""
    from _speedups import _head_c, _head_py, fields

    data = (b"GET /x HTTP/1.1\r\nHost: a\r\nuser-agent: wrk\r\nX-Custom: 1\r\n"
            b"CONTENT-LENGTH: 0\r\n\r\n")
    (_, _, _, _, headers), *_ = run(h1c, "request", [data])
    names = [n for n, _ in headers]
    assert names == [b"Host", b"user-agent", b"X-Custom", b"CONTENT-LENGTH"]
    shared = {id(n) for n in fields.COMMON_NAMES}
    assert [id(n) in shared for n in names] == [True, True, False, False]
    assert _head_c.scan_headers(headers) == _head_py.scan_headers(headers)


def as_forwarded(events: list[tuple]) -> list[tuple]:
    """Response heads as the engine passes them on (build_head's lines: hop-by-hop headers
    cut, ``name: value``), whether they came whole or in the fast path's plain form."""
    out = []
    for e in events:
        if e[0] == "head":
            _, status, version, headers = e
            lines = b"".join(n + b": " + v + b"\r\n" for n, v in headers
                             if n.lower() not in HOP_BY_HOP)
            e = ("fwd", status, version, lines, any(n.lower() == b"date" for n, _ in headers))
        elif e[0] == "plain":
            e = ("fwd", e[1], b"1.1", e[2], e[3])
        out.append(e)
    return out


@pytest.mark.parametrize("data", RESPONSES)
def test_plain_heads_forward_like_whole_ones(data: bytes) -> None:
    for pieces in splits(data):
        plain = run(h1c, "response", pieces, sink_type=PlainRecorder)
        assert as_forwarded(plain) == as_forwarded(run(_h1_py, "response", pieces)), pieces


def test_mutated_plain_heads_forward_like_whole_ones() -> None:
    rng = random.Random(4321)
    alphabet = b" \t\r\n:/.0123456789aAzZ\x00\x7f\xff-"
    for _ in range(3000):
        data = bytearray(rng.choice(RESPONSES))
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(data) + 1)
            if i < len(data) and rng.randrange(2):
                data[i] = rng.choice(alphabet)
            else:
                data[i:i] = bytes([rng.choice(alphabet)])
        msg = bytes(data)
        assert as_forwarded(run(h1c, "response", [msg], sink_type=PlainRecorder)) == \
            as_forwarded(run(_h1_py, "response", [msg])), msg


def test_the_plain_form_cuts_hop_by_hop_lines_and_spells_lines_like_build_head() -> None:
    data = (b"HTTP/1.1 201 Created\r\nServer:nginx\r\nKeep-Alive: timeout=5\r\n"
            b"Date: Sun, 22 Nov 2026 10:00:00 GMT\r\nX-Tab:\tv\r\nTE: trailers\r\n"
            b"Proxy-Authenticate: Basic\r\nTrailer: X\r\nSet-Cookie: a=1\r\n"
            b"Set-Cookie: b=2\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
            b"Proxy-Connection: x\r\nProxy-Authorization: y\r\n\r\nok")
    assert run(h1c, "response", [data], sink_type=PlainRecorder) == [
        ("plain", 201, b"Server: nginx\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\n"
                       b"X-Tab: v\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"
                       b"Content-Length: 2\r\n", True),
        ("body", b"ok"),
        ("end", []),
    ]
    no_date = run(h1c, "response", [OK], sink_type=PlainRecorder)
    assert no_date[0] == ("plain", 200, b"Server: nginx\r\nContent-Type: text/plain\r\n"
                                        b"Content-Length: 13\r\n", False)


def test_a_head_of_many_lines_takes_the_whole_form() -> None:
    many = b"".join(b"X-%d: v\r\n" % i for i in range(70))
    data = b"HTTP/1.1 200 OK\r\n" + many + b"Content-Length: 2\r\n\r\nok"
    events = run(h1c, "response", [data], sink_type=PlainRecorder)
    assert events[0][0] == "head" and len(events[0][3]) == 71
    assert as_forwarded(events) == as_forwarded(run(_h1_py, "response", [data]))


@pytest.mark.parametrize("kind", ["request", "response"])
def test_every_byte_of_a_long_value_is_checked(kind: str) -> None:
    """The compiled glue checks header values eight bytes at a time: a control byte or DEL at
    any place in a long value is found as the pure twin finds it; HTAB and obs-text pass."""
    head = (b"GET / HTTP/1.1\r\nHost: h\r\n" if kind == "request"
            else b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n")
    for byte in [*range(32), 127, 128, 255]:
        for pos in range(21):
            value = bytearray(b"abcdefghijklmnopqrstu")
            value[pos] = byte
            msg = head + b"X-Long: " + bytes(value) + b"\r\n\r\n"
            assert run(h1c, kind, [msg]) == run(_h1_py, kind, [msg]), (byte, pos)


# --------------------------------------------------------------------------- sinks called in C


def _sink_classes(twin):
    """A request and a response sink deriving from the twin's RequestSink / ResponseSink (the
    compiled parser calls such sinks' methods in C, Python overrides included)."""

    class Req(twin.RequestSink):
        def __init__(self) -> None:
            self.rec = Recorder()

        def on_head(self, method, target, version, headers):
            self.rec.on_head(method, target, version, headers)

        def on_body(self, data):
            self.rec.on_body(data)

        def on_end(self, trailers):
            self.rec.on_end(trailers)

    class Resp(twin.ResponseSink):
        def __init__(self) -> None:
            self.rec = PlainRecorder()

        def on_response_head(self, status, version, headers):
            self.rec.on_response_head(status, version, headers)

        def on_response_plain(self, status, lines, has_date):
            self.rec.on_response_plain(status, lines, has_date)

        def on_response_body(self, data):
            self.rec.on_response_body(data)

        def on_response_end(self, trailers):
            self.rec.on_response_end(trailers)

    return Req, Resp


@pytest.mark.parametrize("twin", [_h1_py, h1c], ids=["py", "c"])
def test_sinks_deriving_from_the_bases_get_the_events_plain_sinks_get(twin) -> None:
    Req, Resp = _sink_classes(twin)
    requests = (b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nxy\r\n0\r\nT: 1\r\n\r\n")
    derived, plain = Req(), Recorder()
    for sink in (derived, plain):
        p = twin.HttptoolsRequestParser(sink, 1 << 16)
        p.feed(requests[:40])
        p.feed(requests[40:])
    assert derived.rec.events == plain.events
    assert [e[0] for e in plain.events] == ["head", "end", "head", "body", "end", "head", "body",
                                           "end"]
    response = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
    derived_r, plain_r = Resp(), PlainRecorder()
    for sink in (derived_r, plain_r):
        p = twin.HttptoolsResponseParser(sink, 1 << 16)
        p.expect(False, False)
        p.feed(response)
    assert derived_r.rec.events == plain_r.events and plain_r.events[-1] == ("end", [])


@pytest.mark.parametrize("twin", [_h1_py, h1c], ids=["py", "c"])
def test_the_sink_bases_leave_every_event_to_a_subclass(twin) -> None:
    req, resp = twin.RequestSink(), twin.ResponseSink()
    for call in (lambda: req.on_head(b"GET", b"/", b"1.1", []), lambda: req.on_body(b"x"),
                 lambda: req.on_end([]), lambda: resp.on_response_head(200, b"1.1", []),
                 lambda: resp.on_response_plain(200, b"", False),
                 lambda: resp.on_response_body(b"x"), lambda: resp.on_response_end([])):
        with pytest.raises(NotImplementedError):
            call()


def test_the_compiled_engine_protocols_are_sinks_called_in_c() -> None:
    from proxy.engine import server, upstream

    if not server.__file__.endswith(".so"):
        pytest.skip("the engine runs as Python here")
    assert issubclass(server.ServerProtocol, h1c.RequestSink)
    assert issubclass(upstream.UpstreamProtocol, h1c.ResponseSink)
