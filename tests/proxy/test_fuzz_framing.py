"""A framing fuzzer for the whole proxy: random client byte streams, pipelined on one connection,
through a real queue-proxy to a recording app.

Each stream is valid requests (GET, a Content-Length body, a chunked body, upgrade-looking
headers refused by the app) and, maybe, one request that must be refused. The invariants:

- the app receives exactly the valid requests before the refused one, in order, with their
  bodies: never a byte the proxy did not frame as a request it accepted;
- the client gets their answers in the same order, then the refusal (a 4xx/5xx), then the end.

Bounded by ``FUZZ_FRAMING_EXAMPLES`` (default 25 a backend).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import App, Client

EXAMPLES = int(os.environ.get("FUZZ_FRAMING_EXAMPLES", "25"))

REFUSED = [
    b"GET /bad HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    b"GET /bad HTTP/1.1\r\nHost: h\r\nHost: g\r\n\r\n",
    b"GET /bad HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"GET /bad HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
    b"GET /bad HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /bad HTTP/1.1\r\n\r\n",
    b"GET /bad HTTP/1.1\r\nHost: a/b\r\n\r\n",
    b"POST /bad HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"GET /bad HTTP/9.9\r\nHost: h\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
]


def valid(i: int, kind: int, body: bytes) -> tuple[bytes, str, bytes]:
    """(bytes on the wire, the target, the body the app must see)."""
    target = f"/echo?n={i}"
    if kind == 0:
        return f"GET {target} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), target, b""
    if kind == 1:
        return (f"POST {target} HTTP/1.1\r\nHost: h\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body, target, body)
    if kind == 2:
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[j:j + 3]), body[j:j + 3])
                          for j in range(0, len(body), 3))
        return (f"POST {target} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                .encode() + chunks + b"0\r\n\r\n", target, body)
    # Upgrade-looking, to a path the app answers without switching: an ordinary request that
    # ends the connection (nothing after it may be read).
    return (f"GET {target} HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            .encode(), target, b"")


REQUEST = st.tuples(st.integers(0, 3), st.binary(max_size=10).filter(lambda b: b"\r" not in b))


@pytest.mark.timeout(300)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(requests=st.lists(REQUEST, min_size=1, max_size=6),
       refused=st.one_of(st.none(), st.sampled_from(REFUSED)),
       cuts=st.lists(st.integers(1, 4096), max_size=3))
def test_the_app_sees_only_what_was_framed_and_answers_go_in_order(
        make_proxy: Any, app: App, requests: list[tuple[int, bytes]], refused: bytes | None,
        cuts: list[int]) -> None:
    proxy = make_proxy()
    wire = b""
    expected: list[tuple[str, bytes]] = []
    closes = False  # a request after which the connection ends
    for i, (kind, body) in enumerate(requests):
        data, target, seen = valid(i, kind, body)
        wire += data
        expected.append((target, seen))
        if kind == 3:
            closes = True
            break
    if closes:
        refused = None  # what follows a closing request is never read
    elif refused is not None:
        wire += refused + b"GET /echo?n=after HTTP/1.1\r\nHost: h\r\n\r\n"
    else:
        wire += b"GET /echo?n=last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        expected.append(("/echo?n=last", b""))
    before = len(app.requests)
    with Client(proxy.port) as c:
        marks = sorted({0, len(wire), *[m % (len(wire) + 1) for m in cuts]})
        for a, b in zip(marks, marks[1:], strict=False):
            c.send(wire[a:b])
        answers = []
        while True:
            try:
                answers.append(c.read_response())
            except (EOFError, ConnectionError):
                break
    got = [(r.target, r.body) for r in app.requests[before:]]
    assert got == expected, wire
    ok = [a for a in answers if a.status == 200]
    assert [json.loads(a.body)["target"] for a in ok] == [t for t, _ in expected], wire
    if refused is not None:
        assert len(answers) == len(expected) + 1 and answers[-1].status >= 400, answers
    else:
        assert len(answers) == len(expected), answers
