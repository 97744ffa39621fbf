"""Both parser backends (httptools and h11) fed exact bytes, with a recording sink.

Every case runs against both backends: the engine must not be able to tell them apart. Bodies
may arrive in different slices per backend, so body events are compared joined.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxy.engine.parsers import (
    BACKENDS,
    HAVE_HTTPTOOLS,
    ParseError,
    request_parser,
    response_parser,
)

MAX_HEAD = 64 * 1024

backends = pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "httptools",
            marks=pytest.mark.skipif(not HAVE_HTTPTOOLS, reason="httptools not installed"),
        ),
        "h11",
    ],
)


def only(backend: str, reason: str) -> list[Any]:
    """Parametrization where the named backend is an expected (strict) failure."""
    out = []
    for b in ("httptools", "h11"):
        marks = []
        if b == "httptools" and not HAVE_HTTPTOOLS:
            marks.append(pytest.mark.skip(reason="httptools not installed"))
        if b == backend:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        out.append(pytest.param(b, marks=marks))
    return out


class Sink:
    """Records every callback as a tuple; body chunks are merged for comparison."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    # requests
    def on_head(self, method: bytes, target: bytes, version: bytes, headers: list) -> None:
        self.events.append(("head", method, target, version, list(headers)))

    def on_body(self, data: bytes) -> None:
        self._body("body", data)

    def on_end(self, trailers: list) -> None:
        self.events.append(("end", list(trailers)))

    def on_upgrade(self, rest: bytes) -> None:
        self.events.append(("upgrade", bytes(rest)))

    # responses
    def on_response_head(self, status: int, version: bytes, headers: list) -> None:
        self.events.append(("rhead", status, version, list(headers)))

    def on_response_body(self, data: bytes) -> None:
        self._body("rbody", data)

    def on_response_end(self, trailers: list) -> None:
        self.events.append(("rend", list(trailers)))

    def on_response_upgrade(self, rest: bytes) -> None:
        self.events.append(("rupgrade", bytes(rest)))

    def _body(self, kind: str, data: bytes) -> None:
        assert isinstance(data, bytes)
        if self.events and self.events[-1][0] == kind:
            self.events[-1] = (kind, self.events[-1][1] + data)
        else:
            self.events.append((kind, data))


def feed_requests(backend: str, *chunks: bytes, max_head: int = MAX_HEAD) -> list[tuple]:
    sink = Sink()
    parser = request_parser(backend, sink, max_head)
    for chunk in chunks:
        parser.feed(chunk)
    return sink.events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def request_error(backend: str, *chunks: bytes, max_head: int = MAX_HEAD) -> ParseError:
    with pytest.raises(ParseError) as info:
        feed_requests(backend, *chunks, max_head=max_head)
    return info.value


GET = (False, False)
HEAD = (True, False)
UPGRADE = (False, True)


def feed_responses(backend: str, *steps: Any, max_head: int = MAX_HEAD) -> list[tuple]:
    """``steps``: ``(method_is_head, upgrade)`` tuples call ``expect``; bytes are fed."""
    sink = Sink()
    parser = response_parser(backend, sink, max_head)
    for step in steps:
        if isinstance(step, tuple):
            parser.expect(*step)
        else:
            parser.feed(step)
    return sink.events


# --------------------------------------------------------------------------- requests


def test_both_backends_listed() -> None:
    assert set(BACKENDS) == {"httptools", "h11"}


@backends
def test_simple_get(backend: str) -> None:
    events = feed_requests(backend, b"GET /a?b=c HTTP/1.1\r\nHost: x\r\nX-Case: V\r\n\r\n")
    assert events == [
        ("head", b"GET", b"/a?b=c", b"1.1", [(b"Host", b"x"), (b"X-Case", b"V")]),
        ("end", []),
    ]


@backends
def test_simple_get_bytewise(backend: str) -> None:
    events = feed_requests(backend, *bytewise(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert events == [("head", b"GET", b"/a", b"1.1", [(b"Host", b"x")]), ("end", [])]


@backends
def test_pipelined_requests_in_one_feed(backend: str) -> None:
    data = (
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /3 HTTP/1.1\r\nHost: y\r\n\r\n"
    )
    assert feed_requests(backend, data) == [
        ("head", b"GET", b"/1", b"1.1", [(b"Host", b"x")]),
        ("end", []),
        ("head", b"POST", b"/2", b"1.1", [(b"Host", b"x"), (b"Content-Length", b"3")]),
        ("body", b"abc"),
        ("end", []),
        ("head", b"GET", b"/3", b"1.1", [(b"Host", b"y")]),
        ("end", []),
    ]


@backends
def test_many_pipelined_small_requests_are_not_a_large_head(backend: str) -> None:
    one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    events = feed_requests(backend, one * 200, max_head=1024)
    assert [e[0] for e in events] == ["head", "end"] * 200


@backends
def test_content_length_body_split_byte_by_byte(backend: str) -> None:
    data = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
    assert feed_requests(backend, *bytewise(data)) == [
        ("head", b"POST", b"/a", b"1.1", [(b"Host", b"x"), (b"Content-Length", b"11")]),
        ("body", b"hello world"),
        ("end", []),
    ]


@backends
def test_body_chunks_delivered_as_they_arrive(backend: str) -> None:
    sink = Sink()
    parser = request_parser(backend, sink, MAX_HEAD)
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
    assert sink.events[-1] == ("body", b"abc")
    parser.feed(b"def")
    assert sink.events[-2:] == [("body", b"abcdef"), ("end", [])]


@backends
def test_chunked_body_with_trailers(backend: str) -> None:
    data = (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n"
    )
    expected = [
        ("head", b"POST", b"/a", b"1.1", [(b"Host", b"x"), (b"Transfer-Encoding", b"chunked")]),
        ("body", b"hello world"),
        ("end", [(b"X-Checksum", b"1"), (b"X-Other", b"2")]),
    ]
    assert feed_requests(backend, data) == expected
    assert feed_requests(backend, *bytewise(data)) == expected


@backends
def test_chunked_body_without_trailers(backend: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    events = feed_requests(backend, data)
    assert events[1:] == [("body", b"abc"), ("end", [])]


@backends
def test_upgrade_request_hands_over_trailing_bytes(backend: str) -> None:
    data = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x05hello-raw"
    )
    assert feed_requests(backend, data) == [
        (
            "head",
            b"GET",
            b"/ws",
            b"1.1",
            [(b"Host", b"x"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")],
        ),
        ("end", []),
        ("upgrade", b"\x81\x05hello-raw"),
    ]


@backends
def test_upgrade_request_split_across_feeds(backend: str) -> None:
    data = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nRAW"
    events = feed_requests(backend, data[:20], data[20:50], data[50:])
    assert [e[0] for e in events] == ["head", "end", "upgrade"]
    assert events[-1] == ("upgrade", b"RAW")


@backends
def test_upgrade_request_without_trailing_bytes(backend: str) -> None:
    data = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert feed_requests(backend, data)[-1] == ("upgrade", b"")


@backends
def test_connection_upgrade_without_upgrade_header_is_a_plain_request(backend: str) -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\r\n"
    assert [e[0] for e in feed_requests(backend, data)] == ["head", "end"]


@backends
def test_http10_request(backend: str) -> None:
    assert feed_requests(backend, b"GET /old HTTP/1.0\r\n\r\n") == [
        ("head", b"GET", b"/old", b"1.0", []),
        ("end", []),
    ]


@backends
def test_http10_keep_alive_requests_in_sequence(backend: str) -> None:
    data = b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n"
    events = feed_requests(backend, data)
    assert [(e[0], e[2]) for e in events if e[0] == "head"] == [("head", b"/1"), ("head", b"/2")]
    assert events[-1] == ("end", [])


@backends
def test_identical_duplicate_content_length_parses_or_400(backend: str) -> None:
    """Either outcome is acceptable here; the Go-compatible one is asserted separately."""
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"
    try:
        events = feed_requests(backend, data)
    except ParseError as exc:
        assert exc.status == 400
    else:
        assert events[-2:] == [("body", b"ab"), ("end", [])]


@pytest.mark.parametrize(
    "backend",
    only(
        "httptools",
        "KNOWN: identical duplicate Content-Length headers are refused with 400 by the httptools "
        "backend (llhttp); Go (and the h11 backend) accept and compact them",
    ),
)
def test_identical_duplicate_content_length_accepted_like_go(backend: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"
    assert feed_requests(backend, data)[-2:] == [("body", b"ab"), ("end", [])]


# --------------------------------------------------------------------------- request errors


@backends
@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET\r\nHost: x\r\n\r\n",
        b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_malformed_request_line_is_400(backend: str, data: bytes) -> None:
    assert request_error(backend, data).status == 400


@backends
def test_obs_fold_header_is_400(backend: str) -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n"
    assert request_error(backend, data).status == 400


@backends
def test_obs_fold_with_tab_is_400(backend: str) -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n"
    assert request_error(backend, data).status == 400


@backends
def test_obs_fold_split_across_feeds_is_400(backend: str) -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n"
    assert request_error(backend, *bytewise(data)).status == 400


@backends
@pytest.mark.parametrize("size_line", [b"zz\r\n", b"-1\r\n", b"5 5\r\n"])
def test_invalid_chunk_size_is_400(backend: str, size_line: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line
    assert request_error(backend, data).status == 400


@backends
def test_invalid_content_length_is_400(backend: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    assert request_error(backend, data).status == 400


@backends
def test_differing_duplicate_content_length_is_400(backend: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    assert request_error(backend, data).status == 400


def test_content_length_with_transfer_encoding_refused_by_httptools() -> None:
    """h11 accepts this pair at parser level; ServerProtocol.on_head refuses it for both."""
    if not HAVE_HTTPTOOLS:
        pytest.skip("httptools not installed")
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert request_error("httptools", data).status == 400


def _big_head(value_size: int) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * value_size + b"\r\n\r\n"


@backends
def test_header_block_over_max_head_arriving_in_pieces_is_431(backend: str) -> None:
    data = _big_head(2000)
    assert request_error(backend, data[:1500], data[1500:], max_head=1024).status == 431


@backends
def test_header_block_over_max_head_bytewise_is_431(backend: str) -> None:
    assert request_error(backend, *bytewise(_big_head(2000)), max_head=1024).status == 431


@backends
def test_incomplete_header_block_over_max_head_is_431(backend: str) -> None:
    data = _big_head(4000)[:3000]  # no end of head in sight
    assert request_error(backend, data, max_head=1024).status == 431


@backends
def test_header_block_over_max_head_in_one_feed_is_431(backend: str) -> None:
    assert request_error(backend, _big_head(2000), max_head=1024).status == 431


@backends
def test_header_block_under_max_head_is_accepted(backend: str) -> None:
    events = feed_requests(backend, _big_head(500), max_head=1024)
    assert [e[0] for e in events] == ["head", "end"]


@backends
def test_large_body_does_not_count_as_head(backend: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"z" * 5000
    events = feed_requests(backend, data, max_head=1024)
    assert events[1:] == [("body", b"z" * 5000), ("end", [])]


class _RefusingSink(Sink):
    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def on_head(self, method: bytes, target: bytes, version: bytes, headers: list) -> None:
        raise ParseError("refused by the server", self.status)


@backends
@pytest.mark.parametrize("status", [501, 505])
def test_parse_error_raised_by_sink_keeps_its_status(backend: str, status: int) -> None:
    parser = request_parser(backend, _RefusingSink(status), MAX_HEAD)
    with pytest.raises(ParseError) as info:
        parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert info.value.status == status


def test_parse_error_defaults_to_400() -> None:
    exc = ParseError("bad")
    assert exc.status == 400
    assert exc.reason == "bad"
    assert str(exc) == "bad"


# --------------------------------------------------------------------------- responses


@backends
def test_response_200_with_length(backend: str) -> None:
    events = feed_responses(backend, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert events == [
        ("rhead", 200, b"1.1", [(b"Content-Length", b"5")]),
        ("rbody", b"hello"),
        ("rend", []),
    ]


@backends
def test_response_200_bytewise(backend: str) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
    events = feed_responses(backend, GET, *bytewise(data))
    assert events == [
        ("rhead", 200, b"1.1", [(b"Content-Length", b"5"), (b"X-A", b"b")]),
        ("rbody", b"hello"),
        ("rend", []),
    ]


@backends
def test_response_reason_phrase_not_reported(backend: str) -> None:
    events = feed_responses(
        backend, GET, b"HTTP/1.1 404 Whatever You Like\r\nContent-Length: 0\r\n\r\n"
    )
    assert events == [("rhead", 404, b"1.1", [(b"Content-Length", b"0")]), ("rend", [])]


@backends
def test_response_chunked_with_trailers(backend: str) -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n"
        b"5\r\nhello\r\n1\r\n!\r\n0\r\nX-T: done\r\n\r\n"
    )
    expected = [
        ("rhead", 200, b"1.1", [(b"Transfer-Encoding", b"chunked"), (b"Trailer", b"X-T")]),
        ("rbody", b"hello!"),
        ("rend", [(b"X-T", b"done")]),
    ]
    assert feed_responses(backend, GET, data) == expected
    assert feed_responses(backend, GET, *bytewise(data)) == expected


@backends
def test_response_100_continue_then_200(backend: str) -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    expected = [
        ("rhead", 100, b"1.1", []),
        ("rend", []),
        ("rhead", 200, b"1.1", [(b"Content-Length", b"2")]),
        ("rbody", b"hi"),
        ("rend", []),
    ]
    assert feed_responses(backend, GET, data) == expected
    assert feed_responses(backend, GET, data[:25], data[25:]) == expected


@backends
def test_response_204(backend: str) -> None:
    events = feed_responses(backend, GET, b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
    assert events == [("rhead", 204, b"1.1", [(b"X-A", b"1")]), ("rend", [])]


@backends
def test_response_204_then_next_response(backend: str) -> None:
    events = feed_responses(
        backend,
        GET,
        b"HTTP/1.1 204 No Content\r\n\r\n",
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    assert events == [
        ("rhead", 204, b"1.1", []),
        ("rend", []),
        ("rhead", 200, b"1.1", [(b"Content-Length", b"2")]),
        ("rbody", b"ok"),
        ("rend", []),
    ]


@backends
def test_response_304_with_length_has_no_body(backend: str) -> None:
    events = feed_responses(
        backend, GET, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
    )
    assert events == [("rhead", 304, b"1.1", [(b"Content-Length", b"10")]), ("rend", [])]


@backends
def test_response_to_head_ends_at_once_and_parser_continues(backend: str) -> None:
    events = feed_responses(
        backend,
        HEAD,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    )
    assert events == [
        ("rhead", 200, b"1.1", [(b"Content-Length", b"10")]),
        ("rend", []),
        ("rhead", 200, b"1.1", [(b"Content-Length", b"2")]),
        ("rbody", b"hi"),
        ("rend", []),
    ]


@backends
def test_response_to_head_split_across_feeds(backend: str) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: 1\r\n\r\n"
    events = feed_responses(backend, HEAD, *bytewise(head))
    assert events == [
        ("rhead", 200, b"1.1", [(b"Content-Length", b"10"), (b"X-A", b"1")]),
        ("rend", []),
    ]


@backends
def test_response_to_head_chunked_has_no_body(backend: str) -> None:
    events = feed_responses(
        backend,
        HEAD,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    )
    assert [e[0] for e in events] == ["rhead", "rend", "rhead", "rbody", "rend"]
    assert events[3] == ("rbody", b"x")


@backends
def test_response_to_head_after_100_continue(backend: str) -> None:
    events = feed_responses(
        backend,
        HEAD,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    )
    assert [(e[0], e[1]) for e in events if e[0] == "rhead"] == [
        ("rhead", 100),
        ("rhead", 200),
        ("rhead", 200),
    ]
    assert events[-2:] == [("rbody", b"hi"), ("rend", [])]


@backends
def test_two_keep_alive_responses(backend: str) -> None:
    events = feed_responses(
        backend,
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        GET,
        b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nbye",
    )
    assert events == [
        ("rhead", 200, b"1.1", [(b"Content-Length", b"2")]),
        ("rbody", b"hi"),
        ("rend", []),
        ("rhead", 201, b"1.1", [(b"Content-Length", b"3")]),
        ("rbody", b"bye"),
        ("rend", []),
    ]


@backends
def test_http10_response(backend: str) -> None:
    events = feed_responses(backend, GET, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert events == [
        ("rhead", 200, b"1.0", [(b"Content-Length", b"2")]),
        ("rbody", b"hi"),
        ("rend", []),
    ]


@backends
def test_response_without_length_streams_body(backend: str) -> None:
    events = feed_responses(backend, GET, b"HTTP/1.1 200 OK\r\n\r\nevent: 1\n\n", b"event: 2\n\n")
    assert events == [("rhead", 200, b"1.1", []), ("rbody", b"event: 1\n\nevent: 2\n\n")]


@backends
def test_response_101_upgrade_with_trailing_bytes(backend: str) -> None:
    data = (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x02hi"
    )
    events = feed_responses(backend, UPGRADE, data)
    assert events == [
        ("rhead", 101, b"1.1", [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]),
        ("rend", []),
        ("rupgrade", b"\x81\x02hi"),
    ]


@backends
def test_response_101_upgrade_without_trailing_bytes(backend: str) -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    events = feed_responses(backend, UPGRADE, data)
    assert events[-1] == ("rupgrade", b"")
    assert [e[0] for e in events] == ["rhead", "rend", "rupgrade"]


@backends
def test_response_refused_upgrade_is_a_normal_response(backend: str) -> None:
    events = feed_responses(
        backend, UPGRADE, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno\n"
    )
    assert events == [
        ("rhead", 400, b"1.1", [(b"Content-Length", b"3")]),
        ("rbody", b"no\n"),
        ("rend", []),
    ]


# --------------------------------------------------------------------------- response errors


@backends
@pytest.mark.parametrize(
    "data",
    [
        b"garbage garbage\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.0\r\n\r\n",
    ],
)
def test_response_garbage_is_502(backend: str, data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        feed_responses(backend, GET, data)
    assert info.value.status == 502


@backends
def test_response_invalid_chunk_is_502(backend: str) -> None:
    with pytest.raises(ParseError) as info:
        feed_responses(backend, GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert info.value.status == 502


@backends
def test_response_differing_content_length_is_502(backend: str) -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    with pytest.raises(ParseError) as info:
        feed_responses(backend, GET, data)
    assert info.value.status == 502


@backends
def test_response_head_over_max_head_in_pieces_is_502(backend: str) -> None:
    with pytest.raises(ParseError) as info:
        feed_responses(
            backend,
            GET,
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 1500,
            b"a" * 500 + b"\r\n\r\n",
            max_head=1024,
        )
    assert info.value.status == 502
    assert str(info.value) == GO_HEAD_TOO_LARGE  # h11: its buffer overflows first


@backends
def test_response_head_over_max_head_in_one_feed_is_502(backend: str) -> None:
    with pytest.raises(ParseError) as info:
        feed_responses(
            backend,
            GET,
            b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n",
            max_head=1024,
        )
    assert info.value.status == 502
    assert str(info.value) == GO_HEAD_TOO_LARGE


# Go's transport's words (Knative's 502 body), whichever way the reads split the head
GO_HEAD_TOO_LARGE = ("net/http: HTTP/1.x transport connection broken: net/http: server "
                     "response headers exceeded 1024 bytes; aborted")
