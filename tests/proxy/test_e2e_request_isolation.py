"""Nothing crosses between requests: the red-team cases of issue 14 over real sockets, through a
real queue-proxy and a real activator to a recording app, with both parser backends (and, in CI,
both builds).

Each attack has a test that reproduces it and a check that the good path still works. The
``front`` fixture runs every case against both: the activator holds one revision whose only pod
is the app itself (it answers the activator's readiness probe), so its own upstream pool is the
one under attack; requests name the revision with Knative-Serving-* headers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
from fronts import FRONTS, ROUTE, Front
from support import App, Client, request, wait_for

# Knative's texts, appended once the response has started.
TIMEOUT_TEXT = {"queue-proxy": b"request timeout", "activator": b"activator request timeout"}

# Routed for both fronts: were it ever taken for a request, it would reach the app.
SMUGGLED = (b"GET /smuggled HTTP/1.1\r\nHost: example.com\r\n"
            + "".join(f"{n}: {v}\r\n" for n, v in ROUTE).encode() + b"\r\n")


def paths(app: App) -> list[str]:
    return [r.path for r in app.requests]


# ---------------------------------------------------------------------------- stray responses


@pytest.mark.parametrize("delay_ms", [0, 1, 5, 30])
def test_a_stray_response_never_reaches_another_client(front: Front, app: App,
                                                       delay_ms: int) -> None:
    """The app answers, then writes a second response ``delay_ms`` later on the same
    connection. Whoever asks next gets their own answer: the connection that carried the
    stray bytes is never used again."""

    async def hook(req: Any, reader: Any, w: Any) -> Any:
        if req.path != "/twice":
            return None
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        if delay_ms:
            await w.drain()
            await asyncio.sleep(delay_ms / 1000)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY")
        await w.drain()
        return True  # keep the connection: the stray bytes sit on it

    app.hook = hook
    for _ in range(5):
        r = front.request("GET", "/twice")
        assert (r.status, r.body) == (200, b"first")
        for i in range(5):  # other clients, at once and a little later
            other = front.request("GET", f"/echo?n={i}")
            assert other.status == 200 and b"STRAY" not in other.body, other
            assert other.json()["target"] == f"/echo?n={i}"


def test_a_partial_stray_response_in_the_same_read_retires_the_connection(
        front: Front, app: App) -> None:
    async def hook(req: Any, reader: Any, w: Any) -> Any:
        if req.path != "/half-twice":
            return None
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nConte")
        await w.drain()
        return True

    app.hook = hook
    front.on_pool(lambda p: setattr(p, "settle", 0.0))  # reuse it, were it reusable
    before = app.connections
    assert front.request("GET", "/half-twice").body == b"first"
    r = front.request("GET", "/echo")
    assert r.status == 200 and r.json()["target"] == "/echo", r
    assert app.connections == before + 2  # the second request went on a new connection


def test_a_keep_alive_client_reuses_its_own_upstream_connection(front: Front, app: App) -> None:
    before = app.connections
    with Client(front.port) as c:
        for i in range(5):
            c.send(head(f"/echo?n={i}", front.extra))
            r = c.read_response()
            assert r.status == 200 and r.json()["target"] == f"/echo?n={i}"
    assert app.connections == before + 1


def test_another_client_reuses_a_connection_once_it_has_settled(front: Front, app: App) -> None:
    assert front.on_pool(lambda p: p.settle) == 1.0  # the default
    front.on_pool(lambda p: setattr(p, "settle", 0.05))
    before = app.connections
    assert front.request("GET", "/echo").status == 200
    assert front.request("GET", "/echo").status == 200  # at once: a connection of its own
    assert app.connections == before + 2
    for _ in range(4):
        wait_for(lambda: front.on_pool(lambda p: p._settled_count()) >= 1)
        assert front.request("GET", "/echo").status == 200
    assert app.connections == before + 2


def test_a_client_that_has_had_an_answer_shares_the_pool(front: Front, app: App) -> None:
    """HAProxy's http-reuse safe: only a client's first request keeps off the connections other
    clients used; later ones take any idle connection, so that a client that keeps its
    connection (an ingress, the activator, wrk) never makes the proxy dial per request."""
    before = app.connections
    with Client(front.port) as a:
        a.send(head("/close-after", front.extra))  # its own connection is gone after this
        assert a.read_response().status == 200
        wait_for(lambda: front.on_pool(lambda p: len(p.idle)) == 0)
        assert front.request("GET", "/echo?b=1").status == 200  # B: a connection of its own
        assert app.connections == before + 2
        a.send(head("/echo?a=2", front.extra))  # A again: B's, at once
        assert a.read_response().json()["target"] == "/echo?a=2"
    assert app.connections == before + 2


def test_a_client_shares_the_pool_even_when_its_connection_was_not_kept(front: Front,
                                                                        app: App) -> None:
    """A full pool closes the connection that carried a client's answer instead of keeping it;
    the client has had an answer all the same. Its next request takes an idle connection: it
    used to count as a first request again and dial, once per request (a pod behind the
    activator, with containerConcurrency idle connections owned by other clients, dialled for
    one request in six)."""
    front.on_pool(lambda p: setattr(p, "max_idle", 1))
    before = app.connections
    with Client(front.port) as a, Client(front.port) as b:
        a.send(head("/echo?a=1", front.extra))
        assert a.read_response().status == 200  # A's connection: the one kept
        wait_for(lambda: front.on_pool(lambda p: len(p.idle)) == 1)
        b.send(head("/echo?b=1", front.extra))  # B's first: a connection of its own, not kept
        assert b.read_response().status == 200
        assert app.connections == before + 2
        for i in range(2, 5):
            b.send(head(f"/echo?b={i}", front.extra))
            assert b.read_response().json()["target"] == f"/echo?b={i}"
    assert app.connections == before + 2


def test_a_stray_response_retires_even_a_settled_connection(front: Front, app: App) -> None:
    async def hook(req: Any, reader: Any, w: Any) -> Any:
        if req.path != "/twice":
            return None
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        await w.drain()
        await asyncio.sleep(0.02)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nSTRAY")
        await w.drain()
        return True

    app.hook = hook
    front.on_pool(lambda p: setattr(p, "settle", 0.0))
    assert front.request("GET", "/twice").body == b"first"
    wait_for(lambda: front.on_pool(lambda p: len(p.idle)) == 0)  # the stray retired it
    r = front.request("GET", "/echo")
    assert r.status == 200 and r.json()["target"] == "/echo", r


# ---------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("kind", FRONTS)
def test_a_body_cut_by_a_timeout_is_not_presented_as_complete(make_front: Any, app: App,
                                                              kind: str) -> None:
    """The app stalls mid-body until the revision timeout: the client gets what came, then
    Knative's text, and then no terminating chunk: the connection closes, so it knows."""
    front = make_front(kind, timeout=1)
    with Client(front.port) as c:
        c.send(head("/stream?n=5&ms=3000", front.extra))
        r = c.read_response(allow_cut=True)
    assert r.status == 200, r
    assert r.body == b"chunk0\n" + TIMEOUT_TEXT[kind], r.body
    assert r.cut, "the cut body ended like a complete one"


def test_a_body_that_ends_in_time_is_complete(front: Front, app: App) -> None:
    with Client(front.port) as c:
        c.send(head("/stream?n=3&ms=10", front.extra))
        r = c.read_response(allow_cut=True)
        assert r.status == 200 and not r.cut
        assert r.body == b"chunk0\nchunk1\nchunk2\n"
        c.send(head("/echo", front.extra))  # and the connection goes on
        assert c.read_response().status == 200


# ---------------------------------------------------------------------------- upgrades


UPGRADE = [("Connection", "Upgrade"), ("Upgrade", "websocket")]


def head(target: str, headers: list[tuple[str, str]], method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: example.com"]
    lines += [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_bytes_after_a_refused_upgrade_never_reach_the_app(front: Front, app: App,
                                                           clients: list) -> None:
    c = Client(front.port)
    clients.append(c)
    c.send(head("/status?code=200", [*UPGRADE, *front.extra]) + SMUGGLED)
    r = c.read_response()
    assert r.status == 200, r
    assert c.closed_by_peer()  # what followed is nobody's request: the connection ends
    assert "/smuggled" not in paths(app)


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_an_upgrade_request_with_a_body_is_refused(front: Front, app: App,
                                                   clients: list, framing: str) -> None:
    # llhttp switches protocols right after the head and would take the body for tunnel
    # bytes; Go reads the body first. Refused, the same for both parsers: nothing reaches the
    # app, and the client is told.
    c = Client(front.port)
    clients.append(c)
    body = SMUGGLED
    hs = [*UPGRADE, *front.extra]
    if framing == "chunked":
        c.send(head("/echo", [*hs, ("Transfer-Encoding", "chunked")], method="POST")
               + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) + SMUGGLED)
    else:
        c.send(head("/echo", [*hs, ("Content-Length", str(len(body)))], method="POST")
               + body + SMUGGLED)
    r = c.read_response()
    assert r.status == 400 and b"upgrade request cannot have a body" in r.body, r
    assert c.closed_by_peer()
    assert paths(app) == []


def test_bytes_sent_with_an_accepted_upgrade_open_the_tunnel(front: Front, app: App,
                                                             clients: list) -> None:
    c = Client(front.port)
    clients.append(c)
    c.send(head("/ws", [*UPGRADE, *front.extra]) + b"ping")
    r = c.read_response(interim=True)
    assert r.status == 101, r
    got = c.buf  # what came with the 101
    c.sock.settimeout(5)
    while len(got) < 4:
        chunk = c.sock.recv(16)
        assert chunk, got
        got += chunk
    assert got == b"ping"


def test_upgrade_h2c_switches_to_http2_and_never_tunnels(front: Front, app: App,
                                                        clients: list) -> None:
    """Go's h2c handler: 101, then HTTP/2 served by the proxy itself (never a raw tunnel to the
    app). Bytes the client sent before the 101 are not the HTTP/2 preface: the connection
    fails (GOAWAY PROTOCOL_ERROR, then closed) and they never reach the app as a request."""
    c = Client(front.port)
    clients.append(c)
    c.send(head("/echo", [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                          ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"), *front.extra])
           + SMUGGLED)
    got = b""
    while True:
        chunk = c.sock.recv(65536)
        if not chunk:
            break
        got += chunk
    assert got.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), got[:80]
    frames = got.split(b"\r\n\r\n", 1)[1]
    kinds = []
    while len(frames) >= 9:
        size = int.from_bytes(frames[:3], "big")
        kinds.append((frames[3], frames[9:9 + size]))
        frames = frames[9 + size:]
    assert kinds[0][0] == 4  # the server's SETTINGS
    goaway = [payload for kind, payload in kinds if kind == 7]
    assert goaway and goaway[0][4:8] == b"\x00\x00\x00\x01"  # PROTOCOL_ERROR
    assert "/smuggled" not in paths(app)


# ---------------------------------------------------------------------------- hosts, targets


@pytest.mark.parametrize("bad", ["a/b", "a?b", "a b", "a\tb", "user@host", "a\\b"])
def test_an_invalid_k_original_host_is_not_forwarded(make_proxy: Any, app: App,
                                                     bad: str) -> None:
    # The queue-proxy's own rule (the activator sets K-Original-Host; it does not read it).
    # Knative's queue-proxy (Go's transport) sends an empty Host in its place: so do we.
    proxy = make_proxy()
    r = request(proxy.port, "GET", "/echo", [("Host", "example.com"), ("K-Original-Host", bad)])
    assert r.status == 200, r
    seen = app.requests[-1]
    assert seen.header_all("Host") == [""] and seen.header("K-Original-Host") is None


def test_a_valid_k_original_host_becomes_the_host(make_proxy: Any, app: App) -> None:
    proxy = make_proxy()
    r = request(proxy.port, "GET", "/echo", [("Host", "example.com"),
                                             ("K-Original-Host", "public.example.com:8080")])
    assert r.status == 200
    assert app.requests[-1].header("Host") == "public.example.com:8080"


@pytest.mark.parametrize("line", [
    b"GET * HTTP/1.1",
    b"POST * HTTP/1.1",
    b"GET example.com:80 HTTP/1.1",
    b"GET http://exa{mple.com/ HTTP/1.1",
    b'GET http://exa"mple.com/ HTTP/1.1',
    b"GET http:///path HTTP/1.1",
])
def test_bad_request_targets_get_400(front: Front, app: App, clients: list,
                                     line: bytes) -> None:
    n = len(app.requests)
    c = Client(front.port)
    clients.append(c)
    c.send(line + b"\r\nHost: example.com\r\n" + front.raw_extra() + b"\r\n")
    r = c.read_response()
    assert r.status == 400, r
    assert len(app.requests) == n


def test_options_asterisk_and_absolute_form_still_work(front: Front, app: App,
                                                       clients: list) -> None:
    c = Client(front.port)
    clients.append(c)
    c.send(b"GET http://user@url.example:81/echo?q=1 HTTP/1.1\r\nHost: header.example\r\n"
           + front.raw_extra() + b"\r\n")
    r = c.read_response()
    assert r.status == 200, r
    assert front.host_seen(app.requests[-1]) == "url.example:81"
    assert app.requests[-1].target == "/echo?q=1"
    n = len(app.requests)
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n" + front.raw_extra() + b"\r\n")
    r = c.read_response()
    # Go's server answers it itself, before any handler (checked against Knative's binary).
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"", "0"), r
    assert len(app.requests) == n
    c.send(head("/echo?after=1", front.extra))  # and the connection goes on
    assert c.read_response().json()["target"] == "/echo?after=1"


# ---------------------------------------------------------------------------- early answers


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_nothing_runs_after_an_answer_that_closes_before_the_body(
        make_front: Any, app: App, clients: list, framing: str) -> None:
    """Found by the framing fuzzer: the activator answers 404 (no such revision) with
    Connection: close as soon as it has the head; the body and a pipelined request that came
    in the same read were still parsed, and the request ran at the app while its client's
    connection closed under it: an accepted request, lost."""
    front = make_front("activator")
    c = Client(front.port)
    clients.append(c)
    lines = [("Knative-Serving-Namespace", "default"), ("Knative-Serving-Revision", "nope")]
    if framing == "chunked":
        first = head("/echo?a=1", [*lines, ("Transfer-Encoding", "chunked")], "PUT")
        first += b"1\r\nz\r\n0\r\n\r\n"
    else:
        first = head("/echo?a=1", [*lines, ("Content-Length", "1")], "PUT") + b"z"
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    data = first + head("/echo?b=1", [*front.extra, ("Content-Length", "0")])
    try:
        for k in range(len(data)):  # a byte at a time: the answer comes mid-body
            c.sock.sendall(data[k:k + 1])
    except OSError:
        pass  # closed by the proxy: the answer is still to be read
    r = c.read_response()
    assert r.status == 404 and r.header("Connection") == "close", r
    assert c.closed_by_peer()
    # A request sent after it, on a connection of its own, is the marker: once the app has it,
    # anything dispatched before would be there too.
    assert front.request("GET", "/echo?after=1").status == 200
    assert [r.target for r in app.requests if r.path == "/echo"] == ["/echo?after=1"]


# ---------------------------------------------------------------------------- methods


@pytest.mark.parametrize("method", ["FOOBAR", "get", "M-SEARCH", "PROPFIND", "X.Y_Z~1"])
def test_any_token_is_a_method(front: Front, app: App, clients: list, method: str) -> None:
    """Go takes any token as a method (RFC 9110); llhttp knows a list. Forwarded as sent,
    body and all, and the connection goes on."""
    c = Client(front.port)
    clients.append(c)
    c.send(head("/echo", [*front.extra, ("Content-Length", "5")], method=method) + b"hello")
    r = c.read_response()
    assert r.status == 200, r
    assert r.json()["method"] == method
    assert app.requests[-1].method == method and app.requests[-1].body == b"hello"
    c.send(head("/echo?next=1", front.extra))
    assert c.read_response().json()["target"] == "/echo?next=1"


@pytest.mark.parametrize("line", [b"FO(O /echo HTTP/1.1", b"F\x00O /echo HTTP/1.1",
                                  b"GET\t/echo HTTP/1.1"])
def test_a_method_that_is_no_token_gets_400(front: Front, app: App, clients: list,
                                            line: bytes) -> None:
    n = len(app.requests)
    c = Client(front.port)
    clients.append(c)
    c.send(line + b"\r\nHost: example.com\r\n" + front.raw_extra() + b"\r\n")
    assert c.read_response().status == 400
    assert len(app.requests) == n


def test_an_extension_method_after_a_message_read_by_llhttp_in_the_same_read(
        front: Front, app: App, clients: list, backend: str,
        request: pytest.FixtureRequest) -> None:
    if backend == "httptools":
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "KNOWN (_speedups.methods): llhttp gives no offset where a message it read ends, "
            "so a request after it in the same read is llhttp's alone (400)")))
    c = Client(front.port)
    clients.append(c)
    chunked = head("/echo?a=1", [*front.extra, ("Transfer-Encoding", "chunked")], "POST")
    c.send(chunked + b"5\r\nhello\r\n0\r\n\r\n" + head("/echo?b=1", front.extra, "FOOBAR"))
    assert c.read_response().status == 200
    r = c.read_response()
    assert r.status == 200 and r.json()["method"] == "FOOBAR", r


# ---------------------------------------------------------------------------- chunk extensions


@pytest.mark.parametrize("ext", [b";a=b", b";name", b';q="x y"'])
def test_a_chunk_extension_is_read_and_dropped(front: Front, app: App, clients: list,
                                               ext: bytes) -> None:
    c = Client(front.port)
    clients.append(c)
    c.send(head("/echo", [*front.extra, ("Transfer-Encoding", "chunked")], "POST")
           + b"5" + ext + b"\r\nhello\r\n0\r\n\r\n")
    r = c.read_response()
    assert r.status == 200, r
    assert app.requests[-1].body == b"hello"


@pytest.mark.parametrize("ext", [b";a=b\rc", b";a\x00b", b";a=\x01", b";a=b\nc"])
def test_a_control_byte_in_a_chunk_extension_gets_400(front: Front, app: App, clients: list,
                                                      ext: bytes) -> None:
    """A bare CR, a NUL or another control byte in a chunk extension (h11 let them through
    to the app): refused, and nothing reaches the app."""
    n = len(app.requests)
    c = Client(front.port)
    clients.append(c)
    c.send(head("/echo", [*front.extra, ("Transfer-Encoding", "chunked")], "POST")
           + b"5" + ext + b"\r\nhello\r\n0\r\n\r\n")
    r = c.read_response()
    assert r.status == 400, r
    assert c.closed_by_peer()
    # The head may have gone out before the body was read: the app must not get the body.
    assert all(req.body != b"hello" for req in app.requests[n:])


# ---------------------------------------------------------------------------- pipelining


@pytest.mark.timeout(90)
def test_twenty_thousand_pipelined_requests_in_one_stream(front: Front, app: App) -> None:
    """The pure parser took each leftover request with a recursive call: about 20 000 of them
    in one stream raised RecursionError and wedged the connection. Every one is answered, in
    order, while the client writes faster than it reads."""
    n = 20_000
    one = b"GET /sleep?ms=0 HTTP/1.1\r\nHost: e\r\n" + front.raw_extra() + b"\r\n"
    s = socket.create_connection(("127.0.0.1", front.port))
    s.settimeout(30)
    writer = threading.Thread(target=s.sendall, args=(one * n,), daemon=True)
    writer.start()
    seen, tail = 0, b""
    try:
        while seen < n:
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {seen} of {n} answers"
            data = tail + chunk
            seen += data.count(b"HTTP/1.1 200 OK")
            tail = data[-16:]
            seen -= tail.count(b"HTTP/1.1 200 OK")  # counted again with the next chunk
    finally:
        writer.join(30)
        s.close()
    assert seen == n
