"""A differential fuzzer for the compiled parser glue and head scanner: for any bytes, cut into
reads anywhere, the compiled twin gives exactly the events (or the error) of the pure twin, which
runs llhttp itself for every message.

Hypothesis searches byte streams built from HTTP fragments and raw bytes. Bounded by
``FUZZ_EXAMPLES`` (default 300 a test, a few seconds; ``bench/fuzz.sh`` runs far more). Inputs it
once found wrong are pinned with ``@example`` so they stay regression tests.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _speedups import _h1_py, _head_py

h1c = pytest.importorskip("_speedups._h1_c", reason="compiled speedups not built")
headc = pytest.importorskip("_speedups._head_c", reason="compiled speedups not built")

from test_h1_fast import PlainRecorder, Recorder, run  # noqa: E402

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

REQUEST_FRAGMENTS = [
    b"GET ", b"POST ", b"HEAD ", b"OPTIONS ", b"PUT ", b"get ", b"FOOBAR ", b"/", b"/a?b=c",
    b"*", b"http://h/x", b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", b" HTTP/2.0\r\n", b"Host: h\r\n",
    b"host:h\r\n", b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Content-Length: -1\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n", b"Connection: close\r\n",
    b"Connection: keep-alive, Upgrade\r\n", b"Upgrade: websocket\r\n",
    b"Expect: 100-continue\r\n",
    b"X-Forwarded-For: 1.2.3.4\r\n", b"K-Original-Host: a/b\r\n", b"\r\n", b"abc", b"3\r\nabc\r\n",
    b"3;ext=1\r\nabc\r\n", b"0\r\n\r\n", b"0\r\nT: v\r\n\r\n", b"X: \x01\r\n", b"\n", b"\r",
    b"\x00",
    b":", b" ", b"\t", b"\x7f", b"\xff",
]
RESPONSE_FRAGMENTS = [
    b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 204 No Content\r\n", b"HTTP/1.1 304 X\r\n",
    b"HTTP/1.1 100 Continue\r\n", b"HTTP/1.1 101 Switching\r\n", b"HTTP/1.0 200 OK\r\n",
    b"HTTP/1.1 999 Odd\r\n", b"HTTP/1.1 20", b"Content-Length: 3\r\n", b"Content-Length: 0\r\n",
    b"Content-Length: 3\r\nContent-Length: 4\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Connection: close\r\n", b"Connection: keep-alive\r\n", b"Date: x\r\n", b"Server: s\r\n",
    b"Upgrade: websocket\r\n", b"Keep-Alive: timeout=5\r\n", b"\r\n", b"abc", b"3\r\nabc\r\n",
    b"0\r\n\r\n", b"X: \x01\r\n", b"\n", b"\r", b"\x00", b":", b" ", b"\xff",
]


def streams(fragments: list[bytes]) -> st.SearchStrategy[bytes]:
    piece = st.one_of(st.sampled_from(fragments), st.binary(min_size=1, max_size=3))
    return st.lists(piece, max_size=24).map(b"".join)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(marks, marks[1:], strict=False) if b > a] or [b""]


@FUZZ
@given(data=streams(REQUEST_FRAGMENTS), points=st.lists(st.integers(0, 512), max_size=4))
@example(data=b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
         points=[27])
def test_request_glue_matches_the_pure_twin(data: bytes, points: list[int]) -> None:
    pieces = cut(data, points)
    assert run(h1c, "request", pieces) == run(_h1_py, "request", pieces), pieces


@FUZZ
@given(data=streams(RESPONSE_FRAGMENTS), points=st.lists(st.integers(0, 512), max_size=4),
       head_request=st.booleans(), plain=st.booleans())
@example(data=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nCon",
         points=[], head_request=False, plain=True)
def test_response_glue_matches_the_pure_twin(data: bytes, points: list[int],
                                             head_request: bool, plain: bool) -> None:
    pieces = cut(data, points)
    # The pure twin never gives the plain-head event: compare with the whole-head sink.
    sink = PlainRecorder if plain else Recorder
    got = run(h1c, "response", pieces, head_request=head_request, sink_type=sink)
    want = run(_h1_py, "response", pieces, head_request=head_request)
    if plain:
        got = _unplain(got)
        want = _unplain(want)
    assert got == want, pieces


def _unplain(events: list[tuple]) -> list[tuple]:
    """Heads as (kind, status) only: a plain head carries its lines as bytes, a whole head as
    tuples, and the equality of the two forms is test_h1_fast's business."""
    return [("head", e[1]) if e[0] in ("head", "plain") else e for e in events]


NAME = st.sampled_from([b"Host", b"host", b"HOST", b"Content-Length", b"content-length",
                        b"Transfer-Encoding", b"Connection", b"Upgrade", b"X-Forwarded-For",
                        b"K-Original-Host", b"X", b"x-a"]) | st.binary(min_size=1, max_size=8)
VALUE = st.sampled_from([b"", b"0", b"5", b"05", b"5, 5", b"chunked", b"close",
                         b"keep-alive, Upgrade", b"a.example:80", b"a/b", b"\x01"]) | \
    st.binary(max_size=12)


@FUZZ
@given(headers=st.lists(st.tuples(NAME, VALUE), max_size=12))
def test_head_scanner_matches_the_pure_twin(headers: list[tuple[bytes, bytes]]) -> None:
    assert headc.scan_headers(headers) == _head_py.scan_headers(headers)


@FUZZ
@given(value=VALUE)
def test_host_and_token_checks_match_the_pure_twin(value: bytes) -> None:
    assert headc.valid_host(value) == _head_py.valid_host(value)
    assert headc.connection_tokens(value) == _head_py.connection_tokens(value)
