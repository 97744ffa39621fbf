"""A framing fuzzer for the whole proxy: random client byte streams through a real queue-proxy
and a real activator (both parser backends) to the recording app.

A stream is a few requests: well-formed ones (every framing, extension methods, bodies that
hold a whole request), the smuggling shapes of ``framing_corpus``, and mutations of both (bytes
flipped, inserted or cut, chosen among the ones framing turns on), then a last request with
``Connection: close``; it goes out cut into random pieces. For every stream:

1. The app gets nothing the proxy did not frame as a request and answer to this client: the
   requests the app read whole, from this connection, are exactly the app's answers the client
   got, in the same order (if the client stopped waiting, those it got are the first of them).
2. Every answer is the client's own, for the request it answers: the id, the method and the
   body it sent.
3. A request inside a body, or behind anything the proxy refuses, never reaches the app.
4. A refusal of the proxy's own (400, 413, 431, 501, 505) ends the connection.

Every corpus case runs first, on each front and backend; then random streams for
``FUZZ_SECONDS`` (3 by default: CI) from ``FUZZ_SEED`` (fixed by default, so CI is repeatable).
Longer, with a fresh seed: ``FUZZ_SECONDS=600 FUZZ_SEED=$RANDOM python -m pytest
tests/proxy/test_fuzz_framing.py``. A failure names its seed and stream; each finding becomes a
case of ``framing_corpus``.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
import zlib
from dataclasses import dataclass, field

import pytest
from framing_corpus import CASES
from fronts import Front
from support import App, wait_for

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "3"))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", "14"))
REFUSALS = {400, 413, 414, 431, 501, 505}
SILENCE = 1.0  # s with no byte from the proxy before the client stops waiting
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "FOOBAR", "get", "M-SEARCH"]
# The bytes framing turns on: mutations pick among them.
ALPHABET = b" \t\r\n:;,\"\x00\x0b\x7f0123456789abcdefxABCDEF-+"
_ID = re.compile(r"id=(c\d+[xn]\d+)")
ISSUED: set[str] = set()  # every id of every stream so far


@dataclass
class Stream:
    conn: int
    route: bytes
    data: bytes = b""
    sent: dict[str, tuple[str, bytes] | None] = field(default_factory=dict)  # id: (method, body)
    never: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)  # every id of this stream
    mutated: bool = False
    parts: list[str] = field(default_factory=list)
    _n: int = 0

    def new_id(self, hidden: bool = False) -> str:
        self._n += 1
        i = f"c{self.conn}{'n' if hidden else 'x'}{self._n}"
        ISSUED.add(i)
        self.ids.add(i)
        if hidden:
            self.never.add(i)
        return i

    def head(self, method: str, i: str, lines: list[bytes]) -> bytes:
        return (f"{method} /echo?id={i} HTTP/1.1\r\nHost: fuzz.example\r\n".encode()
                + self.route + b"".join(line + b"\r\n" for line in lines) + b"\r\n")

    def inner(self) -> bytes:
        """A whole request that must never run."""
        return self.head("GET", self.new_id(hidden=True), [])


def well_formed(s: Stream, rng: random.Random) -> tuple[bytes, str]:
    i = s.new_id()
    method = rng.choice(METHODS)
    body = bytes(rng.choice(b"abcxyz0123\r\n ") for _ in range(rng.choice([0, 0, 1, 7, 300])))
    if rng.random() < 0.3:
        body += s.inner()
    lines = [b"X-Pad-%d: %s" % (k, b"v" * rng.randint(0, 40)) for k in range(rng.randint(0, 3))]
    framing = rng.choice(["length", "chunked"]) if body else rng.choice(["none", "length"])
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        payload, rest = b"", body
        while rest:
            n = rng.randint(1, len(rest))
            ext = rng.choice([b"", b"", b";a=b", b';q="x y"'])
            payload += b"%x%s\r\n%s\r\n" % (n, ext, rest[:n])
            rest = rest[n:]
        payload += b"0\r\n" + rng.choice([b"", b"X-Trailer: t\r\n"]) + b"\r\n"
    else:
        payload = b""
    s.sent[i] = (method, body)
    return s.head(method, i, lines) + payload, f"{framing} {method}"


def corpus_case(s: Stream, rng: random.Random) -> tuple[bytes, str]:
    name = rng.choice(sorted(CASES))
    return run_case(s, name), name


def run_case(s: Stream, name: str) -> bytes:
    i = s.new_id()
    s.sent[i] = None  # refused or not, its body is not checked

    def head(method: str, lines: list[bytes]) -> bytes:
        return s.head(method, i, lines)

    return CASES[name](head, s.inner())


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        k = rng.randrange(len(b) + 1)
        op = rng.randrange(4)
        if op == 0 and k < len(b):
            b[k] = rng.choice(ALPHABET)
        elif op == 1:
            b[k:k] = bytes([rng.choice(ALPHABET)])
        elif op == 2 and k < len(b):
            del b[k]
        else:  # a line again, or a line cut out
            lines = bytes(b).split(b"\r\n")
            j = rng.randrange(len(lines))
            if rng.random() < 0.5:
                lines.insert(j, lines[j])
            elif len(lines) > 1:
                del lines[j]
            b = bytearray(b"\r\n".join(lines))
    return bytes(b)


def build(conn: int, route: bytes, rng: random.Random, case: str | None = None) -> Stream:
    s = Stream(conn, route)
    units: list[bytes] = []
    if case is not None:
        units.append(run_case(s, case))
        s.parts.append(case)
    else:
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            unit, what = (well_formed if roll < 0.6 else corpus_case)(s, rng)
            if rng.random() < 0.3:
                unit = mutate(unit, rng)
                what += " (mutated)"
                s.mutated = True
            units.append(unit)
            s.parts.append(what)
    if s.mutated:
        # Mutated framing may make any later bytes a request the proxy rightly runs, and a
        # body it rightly reads differently: only invariants 1, 2 (ids) and 4 still hold.
        s.never.clear()
        s.sent = {i: None for i in s.sent}
    last = s.new_id()
    s.sent[last] = None if s.mutated else ("GET", b"")
    units.append(s.head("GET", last, [b"Connection: close"]))
    s.data = b"".join(units)
    return s


# ---------------------------------------------------------------------------- the client


class Reader:
    """Reads the proxy's responses strictly; a framing error is a finding."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.closed = False
        self.gave_up = False

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            self.gave_up = True
            return False
        except ConnectionResetError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        self.buf += data
        return True

    def _until(self, sep: bytes) -> bytes | None:
        while sep not in self.buf:
            if not self._fill():
                return None
        out, self.buf = self.buf.split(sep, 1)
        return out

    def _exact(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if not self._fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self) -> tuple[int, bytes] | None:
        while True:
            head = self._until(b"\r\n\r\n")
            if head is None:
                assert not self.buf or self.gave_up, f"bytes that are no response: {self.buf!r}"
                return None
            lines = head.split(b"\r\n")
            m = re.fullmatch(rb"HTTP/1\.[01] (\d{3}) .*", lines[0])
            assert m, f"bad status line: {lines[0]!r}"
            status = int(m.group(1))
            fields = {}
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                assert sep and name and name == name.strip(), f"bad header line: {line!r}"
                fields[name.lower()] = value.strip()
            if status == 101 and fields.get(b"upgrade", b"").lower() == b"h2c":
                # Switched to HTTP/2 (Go's h2c handler): what follows are frames, not
                # responses; the connection is HTTP/2's to its end.
                self.buf = b""
                while self._fill():
                    self.buf = b""
                return None
            if 100 <= status < 200:
                continue
            if b"transfer-encoding" in fields:
                assert fields[b"transfer-encoding"] == b"chunked", fields
                body = b""
                while True:
                    size_line = self._until(b"\r\n")
                    if size_line is None:
                        return None
                    size = int(size_line, 16)
                    if size == 0:
                        if self._until(b"\r\n") is None:
                            return None
                        break
                    chunk = self._exact(size + 2)
                    if chunk is None:
                        return None
                    body += chunk[:-2]
            elif b"content-length" not in fields and fields.get(b"connection") == b"close":
                # Go's server's own refusal of a head it cannot read: the body runs to the close
                while self._fill():
                    pass
                body, self.buf = self.buf, b""
            else:
                body = self._exact(int(fields.get(b"content-length", b"0"))) or b""
            return status, body


def exchange(front: Front, s: Stream, rng: random.Random) -> tuple[list, Reader]:
    sock = socket.create_connection(("127.0.0.1", front.port), timeout=SILENCE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = Reader(sock)
    try:
        data = s.data
        try:
            while data:
                n = rng.choice([1, 2, 7, 64, 512, len(data)])
                sock.sendall(data[:n])
                data = data[n:]
        except OSError:
            pass  # the proxy refused and closed: what it answered is still to be read
        got: list = []
        while (r := reader.response()) is not None:
            got.append(r)
    finally:
        sock.close()
    return got, reader


def mine(s: Stream, target: str) -> bool:
    """Not a request of an earlier stream (one the proxy sent on late)."""
    m = _ID.search(target)
    if m is None or m.group(1) in s.ids:
        return True
    # An id no stream was given is one a mutation bent: this stream's if it was mutated. A
    # stream that was not has only the ids it was given, so such an id is a late request of an
    # earlier, mutated stream. Seen in 40 s runs (seed 14835, streams 1518, 5131, 5175, 8195,
    # 10320, 20706; before the end-of-pass writes too), each time the stream before's first
    # request: its head went on to the app at once, its chunked body then turned out malformed,
    # the client had its 400 and left, and the app parsed the head only after ``check`` had
    # seen it idle (``app.active`` counts the requests the app has begun, not those on their
    # way). A target of this stream's that the proxy garbled still fails check 1, by its
    # answer.
    return s.mutated


def check(front: Front, app: App, s: Stream, got: list, reader: Reader, start: int) -> None:
    wait_for(lambda: app.active == 0, timeout=10)
    seen = [r for r in app.requests[start:] if mine(s, r.target)]
    whole = [r for r in seen if r.complete]
    seen_ids = [m.group(1) for r in seen if (m := _ID.search(r.target))]
    # 3. nothing hidden ran
    assert not set(seen_ids) & s.never, f"a hidden request ran: {set(seen_ids) & s.never}"
    # 2. no request the client did not send (ids mangled by a mutation aside)
    for i in seen_ids:
        assert i in s.sent or s.mutated, f"the app got an id nobody sent: {i}"
    answers = []
    for k, (status, body) in enumerate(got):
        if status == 200 and body.startswith(b"{"):
            echo = json.loads(body)
            answers.append(echo)
        else:
            # 4. a refusal ends the connection
            if status in REFUSALS:
                assert k == len(got) - 1 and reader.closed, (status, body, got[k + 1:])
    # 1. the app's whole requests are the client's answers, in order (those to /echo: the
    # app answers a target a mutation bent with its own 404, which tells nothing)
    at_app = [(r.method, r.target) for r in whole if r.path == "/echo"]
    answered = [(a["method"], a["target"]) for a in answers]
    if reader.gave_up:
        assert at_app[:len(answered)] == answered, (at_app, answered)
    else:
        assert at_app == answered, (at_app, answered)
    # 2. each answer is for the request it answers: id, method, body
    for a in answers:
        m = _ID.search(a["target"])
        if m is None:  # an id a mutation bent
            assert s.mutated, a["target"]
            continue
        want = s.sent.get(m.group(1))
        if want is not None:
            assert (a["method"], a["body"].encode("latin-1")) == want, (a, want)


def run_stream(front: Front, app: App, s: Stream, rng: random.Random, label: str) -> None:
    if len(app.requests) > 2000:
        app.requests.clear()
    start = len(app.requests)
    got, reader = exchange(front, s, rng)
    try:
        check(front, app, s, got, reader, start)
    except AssertionError as exc:
        raise AssertionError(f"{label}: {exc}\nparts: {s.parts}\nstream: {s.data!r}\n"
                             f"answers: {got!r}") from None


@pytest.mark.timeout(120)
def test_the_corpus(front: Front, app: App) -> None:
    rng = random.Random(FUZZ_SEED)
    for k, name in enumerate(sorted(CASES)):
        s = build(k, front.raw_extra(), rng, case=name)
        run_stream(front, app, s, rng, f"case {name}")


@pytest.mark.timeout(FUZZ_SECONDS + 120)
def test_random_streams(front: Front, app: App, backend: str) -> None:
    seed = FUZZ_SEED * 1000 + zlib.crc32(f"{front.kind}/{backend}".encode()) % 1000
    rng = random.Random(seed)
    deadline = time.monotonic() + FUZZ_SECONDS
    n = 0
    while time.monotonic() < deadline:
        s = build(n, front.raw_extra(), rng)
        run_stream(front, app, s, rng, f"seed {seed}, stream {n}")
        n += 1
    assert n > 0
    print(f"{front.kind}/{backend}: {n} streams in {FUZZ_SECONDS:g} s, seed {seed}")


def test_the_checks_catch_a_smuggled_request(front: Front, app: App) -> None:
    """The checks can fail: a stream whose hidden request is sent as a request of its own."""
    rng = random.Random(1)
    s = build(9999, front.raw_extra(), rng, case="cl_inside_body")
    hidden = next(iter(s.never))
    # Cut the body's length to 0: the hidden request is now the proxy's to run, rightly.
    s.data = re.sub(rb"Content-Length: \d+", b"Content-Length: 0", s.data, count=1)
    with pytest.raises(AssertionError, match="a hidden request ran"):
        run_stream(front, app, s, rng, "self-check")
    assert any(hidden in r.target for r in app.requests)
