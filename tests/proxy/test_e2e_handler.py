"""End-to-end tests of the queue-proxy's main handler, over real sockets.

Each test runs the queue-proxy in front of the scriptable ``support.App`` (fixtures in
``tests/conftest.py``, parametrized over both parser backends). Every wait is bounded and waits
on a condition (``support.wait_for``), never on a fixed sleep; requests that must be held in the
app are held on a gate (``/gate``) that the test opens.

Behaviour is Knative's (knative/serving pkg/queue, knative.dev/pkg/network/handlers/drain.go),
which overrides the spec where they differ. A request with a non-empty ``K-Kubelet-Probe`` header
and no kube-probe User-Agent is not a health check (the Drainer's ``network.IsKubeletProbe``
reads the User-Agent only): ProxyHandler sends it straight to the app (its ``IsKubeletProbe``,
from the networking package, includes the header), past stats, breaker and host rewrite. Checked
against Knative's binary: the app answers at once while the only slot is busy.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
from support import Client, Response, request, wait_for

TIMEOUT_BODY = b"request timeout"
GO_ERROR_CT = "text/plain; charset=utf-8"


# ---------------------------------------------------------------------------- helpers


def raw_request(target: str, headers: list | None = None, method: str = "GET",
                host: str | None = "example.com", version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for n, v in headers or []:
        lines.append(f"{n}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def open_request(port: int, target: str, headers: list | None = None) -> Client:
    """Sends one request on a fresh connection and returns the client, to be read later."""
    c = Client(port)
    c.send(raw_request(target, headers))
    return c


def echo(port: int, headers: list | None = None, target: str = "/echo",
         host: str | None = None) -> dict:
    """GET through the proxy; returns what the app saw (``request`` adds Host: example.com
    unless ``host`` is given)."""
    hs = list(headers or [])
    if host is not None:
        hs.insert(0, ("Host", host))
    r = request(port, "GET", target, hs)
    assert r.status == 200, r
    return r.json()


def seen_all(seen: dict, name: str) -> list[str]:
    """All values of header ``name`` as the app received it."""
    return [v for n, v in seen["headers"] if n.lower() == name.lower()]


def seen_names(seen: dict) -> set[str]:
    return {n.lower() for n, _ in seen["headers"]}


def assert_go_error(r: Response, status: int, body: bytes) -> None:
    """What Go's ``http.Error`` writes."""
    assert r.status == status, r
    assert r.body == body, r
    assert r.header("Content-Type") == GO_ERROR_CT, r
    assert r.header("X-Content-Type-Options") == "nosniff", r


def in_flight(proxy: Any) -> int:
    return proxy.call(lambda: proxy.qp.handler.breaker.in_flight)


def draining(proxy: Any) -> bool:
    return proxy.call(lambda: proxy.qp.drainer.draining)


def refused(port: int) -> bool:
    """True if nothing accepts connections on ``port`` any more. A connect that races with
    the listener's close is reset instead of refused: that is the same answer."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    return False



# ---------------------------------------------------------------------------- 1. header rules


def test_revision_headers_removed_host_kept(proxy, app):
    seen = echo(proxy.port, [
        ("Knative-Serving-Revision", "hello-00001"),
        ("Knative-Serving-Namespace", "default"),
        ("X-Keep", "yes"),
    ], host="my.host.example")
    names = seen_names(seen)
    assert "knative-serving-revision" not in names
    assert "knative-serving-namespace" not in names
    assert seen_all(seen, "Host") == ["my.host.example"]
    assert seen_all(seen, "X-Keep") == ["yes"]
    assert seen["method"] == "GET"
    assert seen["version"] == "HTTP/1.1"


def test_xff_added_when_absent(proxy, app):
    seen = echo(proxy.port)
    assert seen_all(seen, "X-Forwarded-For") == ["127.0.0.1"]


def test_xff_appended(proxy, app):
    seen = echo(proxy.port, [("X-Forwarded-For", "10.0.0.1")])
    assert seen_all(seen, "X-Forwarded-For") == ["10.0.0.1, 127.0.0.1"]


def test_xff_two_lines_joined(proxy, app):
    seen = echo(proxy.port, [("X-Forwarded-For", "10.0.0.1"),
                             ("X-Forwarded-For", "10.0.0.2, 10.0.0.3")])
    assert seen_all(seen, "X-Forwarded-For") == ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]


def test_hop_by_hop_removed(proxy, app):
    seen = echo(proxy.port, [
        ("Connection", "X-Named-One, x-named-two"),
        ("X-Named-One", "1"),
        ("X-Named-Two", "2"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
        ("TE", "gzip"),
        ("X-End-To-End", "kept"),
    ])
    names = seen_names(seen)
    for gone in ("connection", "x-named-one", "x-named-two", "keep-alive", "proxy-connection",
                 "proxy-authorization", "te"):
        assert gone not in names, (gone, seen["headers"])
    assert seen_all(seen, "X-End-To-End") == ["kept"]


def test_proxy_authenticate_and_stray_upgrade_removed(proxy, app):
    # Upgrade without "Connection: upgrade" is not an upgrade: the header is hop-by-hop.
    seen = echo(proxy.port, [("Proxy-Authenticate", "Basic"), ("Upgrade", "foo/1")])
    names = seen_names(seen)
    assert "proxy-authenticate" not in names
    assert "upgrade" not in names


def test_trailer_header_removed(proxy, app):
    seen = echo(proxy.port, [("Trailer", "X-Checksum")])
    assert "trailer" not in seen_names(seen), seen["headers"]


def test_te_trailers_kept(proxy, app):
    seen = echo(proxy.port, [("TE", "trailers")])
    assert [v.lower() for v in seen_all(seen, "TE")] == ["trailers"]


def test_te_trailers_among_others_becomes_trailers(proxy, app):
    # Go: Te is hop-by-hop, but when it contains the token "trailers" it is set to "trailers".
    seen = echo(proxy.port, [("TE", "gzip, trailers")])
    assert [v.lower() for v in seen_all(seen, "TE")] == ["trailers"]


def test_no_user_agent_added(proxy, app):
    seen = echo(proxy.port)
    assert "user-agent" not in seen_names(seen)


def test_user_agent_kept(proxy, app):
    seen = echo(proxy.port, [("User-Agent", "curl/8.0")])
    assert seen_all(seen, "User-Agent") == ["curl/8.0"]


def test_k_original_host_becomes_host(proxy, app):
    seen = echo(proxy.port, [("K-Original-Host", "original.example.com")],
                host="internal.svc")
    assert seen_all(seen, "Host") == ["original.example.com"]
    assert "k-original-host" not in seen_names(seen)


def test_empty_k_original_host_ignored(proxy, app):
    seen = echo(proxy.port, [("K-Original-Host", "")], host="internal.svc")
    assert seen_all(seen, "Host") == ["internal.svc"]


def test_k_proxy_request_not_stripped(proxy, app):
    seen = echo(proxy.port, [("K-Proxy-Request", "activator")])
    assert seen_all(seen, "K-Proxy-Request") == ["activator"]


def test_forwarded_shim(proxy, app):
    seen = echo(proxy.port, [
        ("X-Forwarded-For", "127.0.0.1, ::1"),
        ("X-Forwarded-Host", "h"),
        ("X-Forwarded-Proto", "p"),
    ])
    assert seen_all(seen, "Forwarded") == ['for=127.0.0.1;host=h;proto=p, for="[::1]"']
    assert seen_all(seen, "X-Forwarded-For") == ["127.0.0.1, ::1, 127.0.0.1"]
    assert seen_all(seen, "X-Forwarded-Host") == ["h"]
    assert seen_all(seen, "X-Forwarded-Proto") == ["p"]


@pytest.mark.parametrize(
    "headers, expected",
    [
        ([("X-Forwarded-Host", "h")], "host=h"),
        ([("X-Forwarded-Proto", "https")], "proto=https"),
        ([("X-Forwarded-Host", "h"), ("X-Forwarded-Proto", "https")], "host=h;proto=https"),
        ([("X-Forwarded-For", "1.2.3.4")], "for=1.2.3.4"),
        ([("X-Forwarded-For", "2001:db8::1, 1.2.3.4"), ("X-Forwarded-Proto", "http")],
         'for="[2001:db8::1]";proto=http, for=1.2.3.4'),
    ],
)
def test_forwarded_shim_variants(proxy, app, headers, expected):
    seen = echo(proxy.port, headers)
    assert seen_all(seen, "Forwarded") == [expected]


def test_forwarded_shim_follows_each_request(proxy, app):
    # The handler keeps the last line it built: a request that differs in any one of the
    # three headers gets its own.
    steps = [
        ([("X-Forwarded-For", "1.2.3.4")], ["for=1.2.3.4"]),
        ([("X-Forwarded-For", "1.2.3.4")], ["for=1.2.3.4"]),
        ([("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https")],
         ["for=1.2.3.4;proto=https"]),
        ([("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Host", "h"),
          ("X-Forwarded-Proto", "https")], ["for=1.2.3.4;host=h;proto=https"]),
        ([("X-Forwarded-For", "5.6.7.8"), ("X-Forwarded-Host", "h"),
          ("X-Forwarded-Proto", "https")], ["for=5.6.7.8;host=h;proto=https"]),
        ([], []),
        ([("X-Forwarded-For", "5.6.7.8"), ("Forwarded", "for=x")], ["for=x"]),
        ([("X-Forwarded-For", "5.6.7.8")], ["for=5.6.7.8"]),
    ]
    for headers, expected in steps:
        assert seen_all(echo(proxy.port, headers), "Forwarded") == expected, headers


def test_no_forwarded_without_x_forwarded(proxy, app):
    seen = echo(proxy.port)
    assert "forwarded" not in seen_names(seen)


def test_existing_forwarded_left_alone(proxy, app):
    seen = echo(proxy.port, [
        ("Forwarded", "for=192.0.2.60;proto=http"),
        ("X-Forwarded-For", "10.1.1.1"),
        ("X-Forwarded-Proto", "https"),
    ])
    assert seen_all(seen, "Forwarded") == ["for=192.0.2.60;proto=http"]
    assert seen_all(seen, "X-Forwarded-For") == ["10.1.1.1, 127.0.0.1"]


def test_forwarded_shim_uses_first_xff_line_only(proxy, app):
    # Knative's shim reads r.Header.Get("X-Forwarded-For"): the first line only; the
    # X-Forwarded-For sent on joins every line.
    seen = echo(proxy.port, [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2")])
    assert seen_all(seen, "Forwarded") == ["for=1.1.1.1"]
    assert seen_all(seen, "X-Forwarded-For") == ["1.1.1.1, 2.2.2.2, 127.0.0.1"]


def test_empty_forwarded_does_not_suppress_shim(proxy, app):
    seen = echo(proxy.port, [("Forwarded", ""), ("X-Forwarded-Proto", "https")])
    assert seen_all(seen, "Forwarded") == ["proto=https"]


@pytest.mark.parametrize("target", [
    "/echo?a=1&b=2",
    "/echo?q=a%20b&empty=&flag",
    "/echo?x=%2F..%2F&y=%E2%9C%93&z=a+b",
    "/echo/deeper/../path?z=1",
    "/echo//double?",
])
def test_target_passed_untouched(proxy, app, target):
    r = request(proxy.port, "GET", target)
    assert r.status in (200, 404), r  # only /echo itself is a route of the app
    assert [q.target for q in app.requests] == [target]


def test_absolute_form_target(proxy, app):
    with Client(proxy.port) as c:
        c.send(b"GET http://abs.example.com/echo?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    seen = r.json()
    assert seen["target"] == "/echo?x=1"
    assert seen_all(seen, "Host") == ["abs.example.com"]


def test_duplicate_host_rejected(proxy, app, backend, request):
    with Client(proxy.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n")
        r = c.read_response()
    assert r.status == 400, r
    assert app.requests == []


def test_http10_without_host_gets_upstream_host(proxy, app):
    r = request(proxy.port, "GET", "/echo", version="1.0")
    assert r.status == 200, r
    seen = r.json()
    assert seen_all(seen, "Host") == [f"127.0.0.1:{app.port}"]


def test_k_network_probe_queue_without_health_ua_is_proxied(proxy, app):
    # Only a health check (or "probe") is answered; "queue" on its own goes to the app.
    seen = echo(proxy.port, [("K-Network-Probe", "queue")])
    assert seen_all(seen, "K-Network-Probe") == ["queue"]


# ---------------------------------------------------------------------------- 2. probes


def test_network_probe_with_hash(proxy, app):
    r = request(proxy.port, "GET", "/anything", [("K-Network-Probe", "probe"),
                                                 ("K-Network-Hash", "abc")])
    assert r.status == 200, r
    assert r.body == b""
    assert r.header("K-Network-Hash") == "abc"
    assert app.requests == []


def test_network_probe_without_hash(proxy, app):
    r = request(proxy.port, "GET", "/", [("K-Network-Probe", "probe")])
    assert_go_error(r, 400, b'a probe request must contain a non-empty "K-Network-Hash" header\n')
    r = request(proxy.port, "GET", "/", [("K-Network-Probe", "probe"), ("K-Network-Hash", "")])
    assert_go_error(r, 400, b'a probe request must contain a non-empty "K-Network-Hash" header\n')
    assert app.requests == []


HEALTH_UAS = ["kube-probe/1.30", "Knative-Activator-Probe", "Knative-Autoscaling-Probe"]


@pytest.mark.parametrize("ua", HEALTH_UAS)
@pytest.mark.parametrize("path", ["/", "/healthz", "/echo?x=1"])
def test_health_check_ok(proxy, app, ua, path):
    r = request(proxy.port, "GET", path, [("User-Agent", ua), ("K-Network-Probe", "queue")])
    assert r.status == 200, r
    assert r.body == b"queue"
    assert app.requests == []


@pytest.mark.parametrize("ua", HEALTH_UAS)
def test_health_check_ok_sets_no_probe_header(proxy, app, ua):
    # Older Knative set `K-Network-Probe: queue` on the answer; today's health.ProbeHandler
    # (pkg/queue/health/handler.go) writes only the body, and the source wins.
    r = request(proxy.port, "GET", "/", [("User-Agent", ua), ("K-Network-Probe", "queue")])
    assert r.status == 200, r
    assert r.header("K-Network-Probe") is None


@pytest.mark.parametrize("ua", HEALTH_UAS)
def test_health_check_bad_probe_value(proxy, app, ua):
    r = request(proxy.port, "GET", "/", [("User-Agent", ua), ("K-Network-Probe", "activator")])
    assert_go_error(r, 400, b"unexpected probe header value: activator\n")
    # A health UA wins over "K-Network-Probe: probe".
    r = request(proxy.port, "GET", "/", [("User-Agent", ua), ("K-Network-Probe", "probe"),
                                         ("K-Network-Hash", "abc")])
    assert_go_error(r, 400, b"unexpected probe header value: probe\n")
    r = request(proxy.port, "GET", "/x", [("User-Agent", ua)])
    assert_go_error(r, 400, b"unexpected probe header value: \n")
    assert app.requests == []


def test_health_ua_prefix_only(proxy, app):
    # "kube-probe/" is a prefix match; a UA merely containing it is an ordinary request.
    seen = echo(proxy.port, [("User-Agent", "not-kube-probe/1.0")])
    assert seen_all(seen, "User-Agent") == ["not-kube-probe/1.0"]


def test_k_kubelet_probe_goes_to_the_app_as_it_came(proxy, app):
    seen = echo(proxy.port, [("K-Kubelet-Probe", "1"), ("K-Original-Host", "other.example"),
                             ("K-Network-Probe", "queue")])
    assert seen["target"] == "/echo"
    assert seen_all(seen, "Host") == ["example.com"]  # no host rewrite
    assert seen_all(seen, "K-Original-Host") == ["other.example"]
    assert seen_all(seen, "K-Kubelet-Probe") == ["1"]


def test_k_kubelet_probe_with_a_kube_probe_user_agent_is_a_health_check(proxy, app):
    r = request(proxy.port, "GET", "/echo", [("K-Kubelet-Probe", "1"),
                                             ("User-Agent", "kube-probe/1.30"),
                                             ("K-Network-Probe", "queue")])
    assert r.status == 200, r
    assert r.body == b"queue"
    assert app.requests == []


def test_k_kubelet_probe_passes_a_full_breaker(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=1)
    for _ in range(11):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 11 and gate.held == 1)
    seen = echo(proxy.port, [("K-Kubelet-Probe", "1")])  # not queued behind the ten
    assert seen["target"] == "/echo"
    assert gate.held == 1 and in_flight(proxy) == 11  # neither counted nor queued


def test_empty_k_kubelet_probe_is_ordinary(proxy, app):
    seen = echo(proxy.port, [("K-Kubelet-Probe", "")])
    assert seen["target"] == "/echo"


# ---------------------------------------------------------------------------- 3. breaker


def test_breaker_queue_full(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=1)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    for _ in range(10):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 11)

    t0 = time.monotonic()
    r = request(proxy.port, "GET", "/gate")
    elapsed = time.monotonic() - t0
    assert_go_error(r, 503, b"pending request queue full\n")
    assert elapsed < 1.0
    assert gate.held == 1  # the rejected one never reached the app
    assert in_flight(proxy) == 11

    gate.open()
    for c in clients:
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"gated"
    assert app.max_active == 1
    assert gate.held == 11
    wait_for(lambda: in_flight(proxy) == 0)


def test_breaker_cc1_serializes_sleeps(make_proxy, app, clients):
    proxy = make_proxy(container_concurrency=1)
    for _ in range(5):
        clients.append(open_request(proxy.port, "/sleep?ms=50"))
    for c in clients:
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"slept"
    assert app.max_active == 1
    assert len(app.requests) == 5


def test_breaker_cc2_limits_concurrency(make_proxy, app, clients):
    proxy = make_proxy(container_concurrency=2)
    for _ in range(20):
        clients.append(open_request(proxy.port, "/sleep?ms=50"))
    for c in clients:
        r = c.read_response()
        assert r.status == 200, r
    assert app.max_active == 2
    assert len(app.requests) == 20


def test_breaker_disconnected_waiter_frees_place(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=1)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    for _ in range(10):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 11)

    leaver = clients.pop(5)
    leaver.close()
    wait_for(lambda: in_flight(proxy) == 10)

    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 11)  # queued, not rejected
    gate.open()
    for c in clients:
        r = c.read_response()
        assert r.status == 200, r
    assert gate.held == 11  # the one that left never reached the app
    assert app.max_active == 1


def test_breaker_disconnected_runner_hands_slot_on(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=1)
    runner = open_request(proxy.port, "/hold")
    wait_for(lambda: len(app.requests) == 1)
    clients.append(open_request(proxy.port, "/echo"))
    wait_for(lambda: in_flight(proxy) == 2)
    runner.close()
    wait_for(lambda: gate.dropped == 1)  # the app's connection was dropped
    r = clients[0].read_response()
    assert r.status == 200, r
    assert r.json()["target"] == "/echo"


def test_no_breaker_when_cc0(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=0)
    assert proxy.qp.handler.breaker is None
    for _ in range(30):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: app.active == 30)
    gate.open()
    for c in clients:
        assert c.read_response().status == 200
    assert app.max_active == 30


# ---------------------------------------------------------------------------- 4. timeouts


def test_total_timeout_before_response(make_proxy, app):
    proxy = make_proxy(revision_timeout=0.5)
    with Client(proxy.port) as c:
        t0 = time.monotonic()
        c.send(raw_request("/sleep?ms=2000"))
        r = c.read_response()
        elapsed = time.monotonic() - t0
        assert r.status == 504, r
        assert r.body == TIMEOUT_BODY
        assert 0.4 < elapsed < 1.5
        # Like Go's server, the client connection stays usable.
        c.send(raw_request("/echo"))
        r = c.read_response()
        assert r.status == 200, r


def test_total_timeout_drops_app_connection(make_proxy, app, gate):
    proxy = make_proxy(revision_timeout=0.3)
    r = request(proxy.port, "GET", "/hold")
    assert r.status == 504, r
    assert r.body == TIMEOUT_BODY
    wait_for(lambda: gate.dropped == 1, timeout=3)


def test_total_timeout_while_streaming(make_proxy, app):
    proxy = make_proxy(revision_timeout=0.5)
    with Client(proxy.port) as c:
        c.send(raw_request("/stream?n=20&ms=100"))
        r = c.read_response(allow_cut=True)
        assert r.status == 200, r
        assert (r.header("Transfer-Encoding") or "").lower() == "chunked"
        assert r.body.startswith(b"chunk0\n")
        assert r.body.endswith(TIMEOUT_BODY)  # Knative's text, as its own chunk
        assert b"chunk19" not in r.body
        lines = r.body[: -len(TIMEOUT_BODY)].split(b"\n")
        assert lines[-1] == b""
        assert all(line == b"chunk%d" % i for i, line in enumerate(lines[:-1]))
        # Cut, and the client can tell: no terminating chunk, then the connection closes.
        assert r.cut and c.buf == b""
    # The app's connection is dropped (the stream stops being written).
    wait_for(lambda: app.open_connections == 0, timeout=3)


def test_total_timeout_while_queued(make_proxy, app):
    proxy = make_proxy(container_concurrency=1, revision_timeout=0.5)
    token = object()
    # Hold the only slot with a token that has no deadline of its own.
    assert proxy.call(lambda: proxy.qp.handler.breaker.acquire(token)) == 0
    try:
        t0 = time.monotonic()
        r = request(proxy.port, "GET", "/echo")
        elapsed = time.monotonic() - t0
        assert r.status == 504, r
        assert r.body == TIMEOUT_BODY
        assert 0.4 < elapsed < 1.5
        assert app.requests == []
        wait_for(lambda: in_flight(proxy) == 1)  # only the token is left
    finally:
        proxy.call(lambda: proxy.qp.handler.breaker.release())


def test_total_timeout_queued_behind_slow_request(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=1, revision_timeout=0.5)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 2)
    for c in clients:
        r = c.read_response()
        assert r.status == 504, r
        assert r.body == TIMEOUT_BODY
    wait_for(lambda: in_flight(proxy) == 0)


def test_response_start_timeout(make_proxy, app):
    proxy = make_proxy(response_start_timeout=0.3)
    t0 = time.monotonic()
    r = request(proxy.port, "GET", "/sleep?ms=1500")
    elapsed = time.monotonic() - t0
    assert r.status == 504, r
    assert r.body == TIMEOUT_BODY
    assert elapsed < 1.2


def test_response_start_timeout_not_after_first_byte(make_proxy, app):
    proxy = make_proxy(response_start_timeout=0.3)
    r = request(proxy.port, "GET", "/stream?n=5&ms=100")
    assert r.status == 200, r
    assert r.body == b"".join(b"chunk%d\n" % i for i in range(5))


def test_idle_timeout_not_hit(make_proxy, app):
    proxy = make_proxy(idle_timeout=0.3)
    r = request(proxy.port, "GET", "/stream?n=5&ms=100")
    assert r.status == 200, r
    assert r.body == b"".join(b"chunk%d\n" % i for i in range(5))


def test_idle_timeout_mid_stream(make_proxy, app):
    proxy = make_proxy(idle_timeout=0.3)
    with Client(proxy.port) as c:
        c.send(raw_request("/stream?n=3&ms=600"))
        r = c.read_response(allow_cut=True)
        assert r.status == 200, r
        assert r.body == b"chunk0\n" + TIMEOUT_BODY
        assert r.cut and c.buf == b""  # no terminating chunk: the client knows it was cut
    wait_for(lambda: app.open_connections == 0, timeout=3)


def test_idle_timeout_before_response(make_proxy, app, gate):
    proxy = make_proxy(idle_timeout=0.3)
    t0 = time.monotonic()
    r = request(proxy.port, "GET", "/hold")
    assert r.status == 504, r
    assert r.body == TIMEOUT_BODY
    assert time.monotonic() - t0 < 1.2
    wait_for(lambda: gate.dropped == 1, timeout=3)


# ---------------------------------------------------------------------------- 5. drain


def start_drain(proxy: Any) -> Any:
    fut = asyncio.run_coroutine_threadsafe(proxy.qp.drain(), proxy.loop.loop)
    wait_for(lambda: draining(proxy))
    return fut


def test_drain_answers_probes_with_503(make_proxy, app):
    proxy = make_proxy(drain_quiet_period=0.5)
    fut = start_drain(proxy)
    for ua in HEALTH_UAS:
        r = request(proxy.port, "GET", "/", [("User-Agent", ua), ("K-Network-Probe", "queue")])
        assert_go_error(r, 503, b"shutting down\n")
    r = request(proxy.port, "GET", "/", [("K-Network-Probe", "probe"),
                                         ("K-Network-Hash", "abc")])
    assert_go_error(r, 503, b"shutting down\n")
    assert app.requests == []
    wait_for(fut.done, timeout=5)
    fut.result()
    assert refused(proxy.port)


def test_drain_requests_proxied_and_restart_quiet_period(make_proxy, app):
    quiet = 0.5
    proxy = make_proxy(drain_quiet_period=quiet)
    fut = start_drain(proxy)
    t0 = time.monotonic()
    n = 0
    with Client(proxy.port) as c:
        # Back-to-back requests for twice the quiet period: each restarts it.
        while time.monotonic() - t0 < 2 * quiet:
            c.send(raw_request("/echo"))
            r = c.read_response()
            assert r.status == 200, r
            n += 1
            assert not fut.done()
        last = time.monotonic()
    assert len(app.requests) == n
    wait_for(fut.done, timeout=5)
    assert time.monotonic() - last >= quiet * 0.8
    assert refused(proxy.port)


def test_drain_lets_in_flight_finish(make_proxy, app, gate, clients):
    proxy = make_proxy(drain_quiet_period=0.3)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    idle = Client(proxy.port)  # an idle keep-alive connection
    clients.append(idle)
    idle.send(raw_request("/echo"))
    assert idle.read_response().status == 200

    fut = start_drain(proxy)
    wait_for(lambda: refused(proxy.port))  # the quiet period ended: no more accepting
    assert idle.closed_by_peer(timeout=3)  # idle connections are closed
    assert not fut.done()  # waits for the in-flight request
    gate.open()
    r = clients[0].read_response()
    assert r.status == 200, r
    assert r.body == b"gated"
    wait_for(fut.done, timeout=5)
    fut.result()


def test_wait_for_drain_without_sigterm(make_proxy, app):
    # A quiet period longer than a second, so that only the 1 s reset can end the wait.
    proxy = make_proxy(drain_quiet_period=5.0)
    results: dict[str, Any] = {}
    waiters = {m: Client(proxy.admin_port) for m in ("GET", "POST")}
    try:
        t0 = time.monotonic()
        for m, c in waiters.items():
            c.send(raw_request("/wait-for-drain", method=m,
                               headers=[("Content-Length", "0")] if m == "POST" else None))
        wait_for(lambda: draining(proxy))
        # While the admin drain runs, health checks fail like Knative's (Drain() was called).
        r = request(proxy.port, "GET", "/", [("User-Agent", "kube-probe/1.30"),
                                             ("K-Network-Probe", "queue")])
        assert_go_error(r, 503, b"shutting down\n")
        for m, c in waiters.items():
            results[m] = (c.read_response(), time.monotonic() - t0)
    finally:
        for c in waiters.values():
            c.close()
    for m, (r, elapsed) in results.items():
        assert r.status == 200, (m, r)
        assert 0.8 < elapsed < 2.5, (m, elapsed)
    assert not draining(proxy)
    r = request(proxy.port, "GET", "/", [("User-Agent", "kube-probe/1.30"),
                                         ("K-Network-Probe", "queue")])
    assert r.status == 200, r
    assert r.body == b"queue"
    # And the proxy still serves.
    assert echo(proxy.port)["target"] == "/echo"


def test_admin_unknown_path_404(proxy, app):
    r = request(proxy.admin_port, "GET", "/nope")
    assert_go_error(r, 404, b"404 page not found\n")


def test_wait_for_drain_during_sigterm_drain_waits_for_quiet_period(make_proxy, app):
    # With the queue-proxy terminating, the 1 s reset must not cut the wait short.
    quiet = 1.6
    proxy = make_proxy(drain_quiet_period=quiet)
    t0 = time.monotonic()
    fut = start_drain(proxy)
    with Client(proxy.admin_port) as c:
        c.send(raw_request("/wait-for-drain"))
        r = c.read_response()
    elapsed = time.monotonic() - t0
    assert r.status == 200, r
    assert elapsed > quiet - 0.2
    wait_for(fut.done, timeout=5)


def test_health_check_not_ready(make_proxy, app):
    from support import free_port

    # A readiness probe (not the aggressive kind) at a port nobody listens on.
    probe = json.dumps({"tcpSocket": {"port": free_port()}, "periodSeconds": 1,
                        "timeoutSeconds": 1})
    proxy = make_proxy(readiness_probe=probe)
    r = request(proxy.port, "GET", "/", [("User-Agent", "kube-probe/1.30"),
                                         ("K-Network-Probe", "queue")])
    assert r.status == 503, r
    assert r.body == b""
    # The probe header is checked first.
    r = request(proxy.port, "GET", "/", [("User-Agent", "kube-probe/1.30")])
    assert_go_error(r, 400, b"unexpected probe header value: \n")
    assert app.requests == []


def test_breaker_queued_upload_body_kept(make_proxy, app, gate, clients):
    import hashlib

    proxy = make_proxy(container_concurrency=1)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    body = bytes(range(256)) * 4096  # 1 MiB, more than the proxy buffers while queued
    up = Client(proxy.port)
    clients.append(up)
    up.send(raw_request("/upload", [("Content-Length", str(len(body)))], method="POST"))
    sender = __import__("threading").Thread(target=up.sock.sendall, args=(body,), daemon=True)
    sender.start()
    wait_for(lambda: in_flight(proxy) == 2)
    gate.open()
    assert clients[0].read_response().status == 200
    r = up.read_response()
    sender.join(5)
    assert r.status == 200, r
    assert r.json() == {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_timeout_504_head(make_proxy, app):
    proxy = make_proxy(revision_timeout=0.3)
    r = request(proxy.port, "GET", "/sleep?ms=1500")
    assert r.status == 504, r
    assert r.header("Content-Type") == GO_ERROR_CT
    assert r.header("Content-Length") == str(len(TIMEOUT_BODY))


def test_response_start_timeout_while_queued(make_proxy, app):
    proxy = make_proxy(container_concurrency=1, response_start_timeout=0.3)
    token = object()
    assert proxy.call(lambda: proxy.qp.handler.breaker.acquire(token)) == 0
    try:
        r = request(proxy.port, "GET", "/echo")
        assert r.status == 504, r
        assert r.body == TIMEOUT_BODY
        assert app.requests == []
        wait_for(lambda: in_flight(proxy) == 1)
    finally:
        proxy.call(lambda: proxy.qp.handler.breaker.release())


def test_total_timeout_while_streaming_http10(make_proxy, app):
    proxy = make_proxy(revision_timeout=0.5)
    with Client(proxy.port) as c:
        c.send(raw_request("/stream?n=20&ms=100", version="1.0", host=None))
        r = c.read_response()  # no length, no chunking: the body ends when the proxy closes
        assert r.status == 200, r
        assert r.version == "HTTP/1.0"
        assert r.body.startswith(b"chunk0\n")
        assert r.body.endswith(TIMEOUT_BODY)
        assert b"chunk19" not in r.body


def test_timeout_then_pipelined_request_answered(make_proxy, app):
    proxy = make_proxy(revision_timeout=0.4)
    with Client(proxy.port) as c:
        c.send(raw_request("/sleep?ms=1500") + raw_request("/echo?second=1"))
        r1 = c.read_response()
        assert r1.status == 504, r1
        r2 = c.read_response()
        assert r2.status == 200, r2
        assert r2.json()["target"] == "/echo?second=1"


def test_breaker_rejects_then_pipelined_request_queued(make_proxy, app, gate, clients):
    proxy = make_proxy(container_concurrency=1)
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    for _ in range(10):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 11)
    with Client(proxy.port) as c:
        c.send(raw_request("/echo?a=1") + raw_request("/echo?b=2"))
        assert_go_error(c.read_response(), 503, b"pending request queue full\n")
        assert_go_error(c.read_response(), 503, b"pending request queue full\n")
    gate.open()
    for cl in clients:
        assert cl.read_response().status == 200


def test_health_check_head_method(proxy, app):
    r = request(proxy.port, "HEAD", "/", [("User-Agent", "kube-probe/1.30"),
                                          ("K-Network-Probe", "queue")])
    assert r.status == 200, r
    assert r.header("Content-Length") == "5"
    assert app.requests == []


def test_connection_close_request_not_forwarded_as_is(proxy, app):
    with Client(proxy.port) as c:
        c.send(raw_request("/echo", [("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200, r
        assert "connection" not in seen_names(r.json())
        assert (r.header("Connection") or "").lower() == "close"
        assert c.closed_by_peer(timeout=3)
