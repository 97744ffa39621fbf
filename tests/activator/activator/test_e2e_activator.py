"""The activator end to end: real sockets on 127.0.0.1, real queue-proxy processes as the pods.

Each case checks the exact status and body Knative's activator gives (spec/activator.md sections
1-6; knative/serving cmd/activator and pkg/activator/handler). The activator runs in-process on
its own loop (``Activator`` and its Python API) or, for the last cases, as ``python -m activator
serve`` driven only through its control API. The pods are ``python -m proxy`` processes in front
of the test App; each is killed and reaped at teardown.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import signal
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import (
    ActivatorProcess,
    App,
    Client,
    LoopThread,
    QueueProxyPod,
    Response,
    free_port,
    request,
    send,
    wait_for,
)

from activator.activator.app import Activator

NS = "default"
REV = "hello-00001"
HOST = f"{REV}.{NS}.svc.cluster.local"


def not_found(name: str) -> bytes:
    return (f'Error getting active endpoint: revision.serving.knative.dev "{name}" not found\n'
            .encode())


# --------------------------------------------------------------------------- pods


Pod = QueueProxyPod  # the module's shared one: ``pod`` (and ``pod_app``), in conftest.py


@pytest.fixture
def make_pod() -> Iterator[Any]:
    """``make_pod(app_port, cc=0, **env)``: a pod of the test's own; killed at teardown."""
    started: list[Pod] = []

    def make(app_port: int, cc: int = 0, **env: Any) -> Pod:
        p = Pod(app_port, cc, **env)
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


# --------------------------------------------------------------------------- the activator


class RunningActivator:
    """An in-process ``Activator`` on its loop thread; its Python API called on that loop."""

    def __init__(self, loop: LoopThread, act: Activator) -> None:
        self.loop = loop
        self.act = act
        self.port = act.ports["main"]
        self.admin_port = act.ports["admin"]

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.loop.call(lambda: getattr(self.act, method)(*args, **kwargs))

    def set_revision(self, name: str = REV, **spec: Any) -> bool:
        return self.call("set_revision", NS, name, **spec)

    def set_endpoints(self, name: str = REV, ready: Sequence[str] = (),
                      not_ready: Sequence[str] = ()) -> None:
        self.call("set_endpoints", NS, name, ready=ready, not_ready=not_ready)

    def status(self, name: str = REV) -> dict[str, Any]:
        return self.call("revision_status", NS, name)

    def waiting(self, name: str, n: int) -> bool:
        return self.status(name)["waiting"] == n


@pytest.fixture(scope="module")
def act_loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def make_activator(act_loop: LoopThread) -> Iterator[Any]:
    """``make_activator(**Activator kwargs)`` on ephemeral ports; closed at teardown."""
    started: list[RunningActivator] = []

    def make(**kwargs: Any) -> RunningActivator:
        kwargs.setdefault("drain_timeout", 0)

        async def build() -> Activator:
            a = Activator(**kwargs)
            await a.start("127.0.0.1", 0, 0, 0)
            return a

        ra = RunningActivator(act_loop, act_loop.run(build()))
        started.append(ra)
        return ra

    yield make
    for ra in started:
        act_loop.call(ra.act.close)


@pytest.fixture
def activator(make_activator: Any) -> RunningActivator:
    return make_activator()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for requests the activator holds; joined at teardown (each request is bounded
    by its client's socket timeout)."""
    with ThreadPoolExecutor(8) as ex:
        yield ex


def hold(pool: ThreadPoolExecutor, port: int, target: str = "/echo",
         headers: list | None = None, method: str = "GET", body: bytes = b"") -> Future[Response]:
    """A request sent from a pool thread; its response arrives when the activator lets it go."""
    hs = headers if headers is not None else [("Host", HOST)]
    return pool.submit(request, port, method, target, hs, body)


def app_request(app: App, target: str) -> Any:
    found = [r for r in app.requests if r.target == target]
    assert len(found) == 1, f"{target}: {len(found)} requests at the app"
    return found[0]


# --------------------------------------------------------------------------- 1. probes


def test_network_probe_activator_answers_its_name(activator: RunningActivator) -> None:
    r = request(activator.port, headers=[("Host", "anything"), ("K-Network-Probe", "activator")])
    assert (r.status, r.body) == (200, b"activator")


def test_network_probe_other_value_is_400(activator: RunningActivator) -> None:
    r = request(activator.port, headers=[("Host", HOST), ("K-Network-Probe", "queue")])
    assert (r.status, r.body) == (400, b'unexpected probe header value: "queue"\n')
    assert r.header("Content-Type") == "text/plain; charset=utf-8"


def test_network_probe_with_hash_echoes_it(activator: RunningActivator) -> None:
    r = request(activator.port, headers=[("Host", HOST), ("K-Network-Probe", "probe"),
                                         ("K-Network-Hash", "abc123")])
    assert (r.status, r.body, r.header("K-Network-Hash")) == (200, b"", "abc123")


def test_network_probe_without_hash_is_400(activator: RunningActivator) -> None:
    r = request(activator.port, headers=[("Host", HOST), ("K-Network-Probe", "probe")])
    assert (r.status, r.body) == (
        400, b'a probe request must contain a non-empty "K-Network-Hash" header\n')


KUBELET = [
    [("User-Agent", "kube-probe/1.30")],
    [("K-Kubelet-Probe", "queue")],
]


@pytest.mark.parametrize("probe", KUBELET, ids=["user-agent", "k-kubelet-probe"])
def test_kubelet_probe_200_then_500_once_draining(act_loop: LoopThread,
                                                  activator: RunningActivator,
                                                  probe: list) -> None:
    # Not for a revision: the health handler answers before the revision is looked up.
    headers = [("Host", "unknown.example.com"), *probe]
    r = request(activator.port, headers=headers)
    assert (r.status, r.body) == (200, b"")
    drain = asyncio.run_coroutine_threadsafe(activator.act.drain(timeout=30), act_loop.loop)
    try:
        wait_for(lambda: activator.act.draining)
        r = request(activator.port, headers=headers)
        assert (r.status, r.body) == (500, b"received SIGTERM from kubelet\n")
    finally:
        drain.cancel()


# --------------------------------------------------------------------------- 1. the revision


@pytest.mark.parametrize("headers", [
    [("Host", "nope.default.svc.cluster.local")],
    [("Host", "nope.default.svc.cluster.local:8080")],
    [("Host", "example.com"), ("Knative-Serving-Revision", "nope"),
     ("Knative-Serving-Namespace", NS)],
], ids=["host", "host-port", "headers"])
def test_unknown_revision_is_404(activator: RunningActivator, headers: list) -> None:
    activator.set_revision()  # another revision exists
    r = request(activator.port, headers=headers)
    assert (r.status, r.body) == (404, not_found("nope"))


def test_host_without_the_cluster_domain_is_not_a_revision(
        activator: RunningActivator) -> None:
    activator.set_revision()
    r = request(activator.port, headers=[("Host", f"{REV}.{NS}.svc.example.org")])
    assert (r.status, r.body) == (404, not_found(""))


@pytest.mark.parametrize("headers", [
    [("Host", HOST)],
    [("Host", HOST + ":80")],
    [("Host", "hello.example.com"), ("Knative-Serving-Revision", REV),
     ("Knative-Serving-Namespace", NS)],
], ids=["host", "host-port", "headers"])
def test_revision_found_by_host_or_headers(activator: RunningActivator, pod: Pod,
                                           pod_app: App, headers: list) -> None:
    activator.set_revision()
    activator.set_endpoints(ready=[pod.address])
    target = f"/echo?case=found-{len(headers)}-{headers[0][1].rsplit(':', 1)[-1]}"
    r = request(activator.port, target=target, headers=headers)
    assert r.status == 200, r
    seen = app_request(pod_app, target)
    assert seen.header("Host") == headers[0][1]


# --------------------------------------------------------------------------- 2-4. held, released


@pytest.mark.parametrize("listed", ["not_ready", "ready"])
def test_held_request_released_when_a_pod_is_added(activator: RunningActivator, pod: Pod,
                                                   pod_app: App, pool: ThreadPoolExecutor,
                                                   listed: str) -> None:
    activator.set_revision()
    target = f"/echo?case=held-{listed}"
    held = hold(pool, activator.port, target, [
        ("Host", "hello.example.com"),
        ("Knative-Serving-Revision", REV),
        ("Knative-Serving-Namespace", NS),
        ("X-Forwarded-For", "10.1.2.3"),
    ])
    wait_for(lambda: activator.waiting(REV, 1))
    assert not held.done()
    activator.set_endpoints(**{listed: [pod.address]})
    r = held.result(timeout=10)
    assert r.status == 200, r
    seen = app_request(pod_app, target)
    assert seen.header("K-Proxy-Request") == "activator"
    # The activator moved Host into K-Original-Host; the queue-proxy put it back.
    assert seen.header("Host") == "hello.example.com"
    assert seen.header("K-Original-Host") is None
    assert seen.header("Knative-Serving-Revision") is None
    assert seen.header("Knative-Serving-Namespace") is None
    # Both hops append the peer, as Go's ReverseProxy does in Knative's activator and
    # queue-proxy.
    assert seen.header_all("X-Forwarded-For") == ["10.1.2.3, 127.0.0.1, 127.0.0.1"]
    assert activator.status()["waiting"] == 0


def test_app_sees_host_and_client_address(activator: RunningActivator, pod: Pod,
                                          pod_app: App) -> None:
    activator.set_revision()
    activator.set_endpoints(ready=[pod.address])
    wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    r = request(activator.port, target="/echo?case=plain", headers=[("Host", HOST)])
    assert r.status == 200, r
    seen = app_request(pod_app, "/echo?case=plain")
    assert seen.header("Host") == HOST
    assert seen.header("X-Forwarded-For") == "127.0.0.1, 127.0.0.1"
    assert seen.header("K-Proxy-Request") == "activator"


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_request_body_while_held_then_streamed(activator: RunningActivator, pod: Pod,
                                               pool: ThreadPoolExecutor, framing: str) -> None:
    activator.set_revision()
    payload = bytes(range(256)) * 1024  # 256 KiB: more than the socket buffers hold at once
    if framing == "length":
        headers = [("Host", HOST), ("Content-Length", str(len(payload)))]
        body = payload
    else:
        headers = [("Host", HOST), ("Transfer-Encoding", "chunked")]
        body = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 10000]), payload[i:i + 10000])
                        for i in range(0, len(payload), 10000)) + b"0\r\n\r\n"
    held = hold(pool, activator.port, "/upload", headers, "POST", body)
    wait_for(lambda: activator.waiting(REV, 1))
    activator.set_endpoints(not_ready=[pod.address])
    r = held.result(timeout=15)
    assert r.status == 200, r
    assert r.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_request_body_streams_to_the_app_before_it_ends(activator: RunningActivator,
                                                        make_pod: Any, app: App) -> None:
    """The first chunk reaches the app while the client still holds the rest back."""
    first = asyncio.Event()

    async def hook(req: Any, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
        if req.path != "/half":
            return None
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        got = await reader.readexactly(size + 2)
        req.body = got[:-2]
        first.set()
        rest = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            rest += (await reader.readexactly(size + 2))[:-2]
        await send(w, 200, req.body + b"|" + rest)
        return True

    app.hook = hook
    p = make_pod(app.port)
    activator.set_revision()
    activator.set_endpoints(ready=[p.address])
    wait_for(lambda: activator.status()["healthyPods"] == [p.address])
    with Client(activator.port) as c:
        c.send(f"POST /half HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nfirst\r\n".encode())
        wait_for(first.is_set)
        c.send(b"4\r\nrest\r\n0\r\n\r\n")
        r = c.read_response()
    assert (r.status, r.body) == (200, b"first|rest")


def test_response_streams_back_before_it_ends(activator: RunningActivator, make_pod: Any,
                                              app: App, app_loop: LoopThread) -> None:
    """The first chunk of the response reaches the client while the app holds the rest."""
    go_on = asyncio.Event()

    async def hook(req: Any, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
        if req.path != "/two-parts":
            return None
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\npart1\n\r\n")
        await w.drain()
        await go_on.wait()
        w.write(b"6\r\npart2\n\r\n0\r\n\r\n")
        await w.drain()
        return True

    app.hook = hook
    p = make_pod(app.port)
    activator.set_revision()
    activator.set_endpoints(not_ready=[p.address])
    with Client(activator.port) as c:
        c.send(f"GET /two-parts HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        wait_for(lambda: c._fill() and b"part1\n" in c.buf, timeout=10)
        assert b"part2" not in c.buf
        app_loop.loop.call_soon_threadsafe(go_on.set)
        r = c.read_response()
    assert (r.status, r.body) == (200, b"part1\npart2\n")


@pytest.mark.parametrize("held", [False, True], ids=["pod-ready", "held-at-zero"])
def test_websocket_upgrade_through_activator_and_queue_proxy(activator: RunningActivator,
                                                             pod: Pod, held: bool) -> None:
    activator.set_revision()
    if not held:
        activator.set_endpoints(ready=[pod.address])
        wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    with Client(activator.port) as c:
        c.send(f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
        if held:
            wait_for(lambda: activator.waiting(REV, 1))
            activator.set_endpoints(not_ready=[pod.address])
        r = c.read_response()
        assert r.status == 101, r
        assert (r.header("Upgrade") or "").lower() == "websocket"
        for message in (b"\x81\x05hello", b"x" * 100_000):
            c.send(message)
            while len(c.buf) < len(message):
                assert c._fill(), "tunnel closed"
            echoed, c.buf = c.buf[:len(message)], c.buf[len(message):]
            assert echoed == message


# --------------------------------------------------------------------------- 2. limits


def test_revision_timeout_while_waiting_is_504(activator: RunningActivator) -> None:
    activator.set_revision(timeout_seconds=1)
    started = time.monotonic()
    r = request(activator.port, headers=[("Host", HOST)])
    took = time.monotonic() - started
    assert (r.status, r.body) == (504, b"activator request timeout")
    assert 0.9 <= took < 5, took
    assert activator.status()["waiting"] == 0


def test_queue_full_is_503_and_the_waiters_still_run(make_activator: Any, pod: Pod,
                                                     pool: ThreadPoolExecutor) -> None:
    act = make_activator(max_waiting=2)
    act.set_revision()
    held = [hold(pool, act.port, f"/echo?case=full-{i}") for i in range(2)]
    wait_for(lambda: act.waiting(REV, 2))
    r = request(act.port, headers=[("Host", HOST)])
    assert (r.status, r.body) == (503, b"pending request queue full\n")
    act.set_endpoints(not_ready=[pod.address])
    assert [f.result(timeout=10).status for f in held] == [200, 200]


def test_remove_revision_while_requests_wait_is_404(activator: RunningActivator,
                                                    pool: ThreadPoolExecutor) -> None:
    activator.set_revision()
    held = [hold(pool, activator.port, f"/echo?case=removed-{i}") for i in range(3)]
    wait_for(lambda: activator.waiting(REV, 3))
    activator.call("remove_revision", NS, REV)
    for f in held:
        r = f.result(timeout=10)
        assert (r.status, r.body) == (404, not_found(REV))
    r = request(activator.port, headers=[("Host", HOST)])
    assert (r.status, r.body) == (404, not_found(REV))


def test_requests_follow_a_revision_recreated_under_its_name(activator: RunningActivator,
                                                             make_pod: Any, app: App) -> None:
    """The handler remembers the revision the last request named: a removed revision is not
    served from that memory, and one created in its place takes the next request."""
    p = make_pod(app.port)
    for cc in (0, 3):
        activator.set_revision(container_concurrency=cc)
        activator.set_endpoints(ready=[p.address])
        wait_for(lambda: activator.status()["healthyPods"] == [p.address])
        for _ in range(2):
            assert request(activator.port, "GET", "/echo", headers=[("Host", HOST)]).status == 200
        activator.call("remove_revision", NS, REV)
        r = request(activator.port, headers=[("Host", HOST)])
        assert (r.status, r.body) == (404, not_found(REV))


def test_requests_for_two_revisions_alternate(activator: RunningActivator, make_pod: Any,
                                              app: App) -> None:
    p = make_pod(app.port)
    for name in (REV, "other-00001"):
        activator.set_revision(name)
        activator.set_endpoints(name, ready=[p.address])
        wait_for(lambda name=name: activator.status(name)["healthyPods"] == [p.address])
    for name in (REV, "other-00001", "other-00001", REV, "missing-00001"):
        r = request(activator.port, "GET", "/echo", headers=[("Knative-Serving-Namespace", NS),
                                                       ("Knative-Serving-Revision", name)])
        assert r.status == (404 if name == "missing-00001" else 200), (name, r.body)


def test_cc1_one_at_a_time_in_arrival_order(activator: RunningActivator, make_pod: Any,
                                            app: App, pool: ThreadPoolExecutor) -> None:
    activator.set_revision(container_concurrency=1)
    held = []
    for i in range(5):  # one by one, so the arrival order is known
        held.append(hold(pool, activator.port, f"/sleep?ms=20&i={i}"))
        wait_for(lambda i=i: activator.waiting(REV, i + 1))
    p = make_pod(app.port, cc=1)
    activator.set_endpoints(not_ready=[p.address])
    assert [f.result(timeout=10).status for f in held] == [200] * 5
    assert app.max_active == 1
    assert [r.query["i"] for r in app.requests] == ["0", "1", "2", "3", "4"]


# --------------------------------------------------------------------------- 4. errors


def test_pod_that_refuses_after_probe_is_502(activator: RunningActivator, make_pod: Any,
                                             app: App) -> None:
    p = make_pod(app.port)
    activator.set_revision()
    activator.set_endpoints(ready=[p.address])
    wait_for(lambda: activator.status()["healthyPods"] == [p.address])
    p.stop()  # healthy pods are not probed again: the next request finds it gone
    r = request(activator.port, headers=[("Host", HOST)])
    # Go's ReverseProxy error text, as Knative's activator writes it with http.Error.
    assert (r.status, r.body) == (
        502, f"dial tcp {p.address}: connect: connection refused\n".encode())


# --------------------------------------------------------------------------- control API


def control(port: int, method: str, path: str, body: bytes | None = None) -> Response:
    headers = [("Content-Type", "application/json")] if body else []
    return request(port, method, path, headers=headers, body=body or b"")


def test_control_api_over_http(activator: RunningActivator, pod: Pod) -> None:
    admin = activator.admin_port
    path = f"/revisions/{NS}/{REV}"
    r = control(admin, "PUT", path, b'{"containerConcurrency": 1, "timeoutSeconds": 30}')
    assert r.status == 201, r
    assert r.header("Content-Type") == "application/json"
    doc = r.json()
    assert (doc["namespace"], doc["name"], doc["containerConcurrency"], doc["timeoutSeconds"],
            doc["capacity"], doc["waiting"], doc["inFlight"]) == (NS, REV, 1, 30, 0, 0, 0)
    r = control(admin, "PUT", path, b'{"containerConcurrency": 1, "timeoutSeconds": 60}')
    assert (r.status, r.json()["timeoutSeconds"]) == (200, 60)

    r = control(admin, "PUT", path + "/endpoints",
                json.dumps({"ready": [pod.address]}).encode())
    assert r.status == 200, r
    assert r.json()["notReadyPods"] == []

    def healthy() -> Any:
        doc = control(admin, "GET", path).json()
        return doc if doc["healthyPods"] == [pod.address] else None

    doc = wait_for(healthy)
    assert (doc["capacity"], doc["probing"]) == (1, [])
    r = request(activator.port, target="/echo?case=control", headers=[("Host", HOST)])
    assert r.status == 200, r
    listed = control(admin, "GET", "/revisions").json()["revisions"]
    assert [(d["namespace"], d["name"]) for d in listed] == [(NS, REV)]

    r = control(admin, "PUT", path, b'{"containerConcurrency": 2}')
    assert r.status == 409, r
    assert "containerConcurrency" in r.json()["error"]

    r = control(admin, "DELETE", path)
    assert (r.status, r.body) == (204, b"")
    r = control(admin, "GET", path)
    assert (r.status, r.body) == (404, not_found(REV))
    r = request(activator.port, headers=[("Host", HOST)])
    assert (r.status, r.body) == (404, not_found(REV))


@pytest.mark.parametrize("path, body, reason", [
    (f"/revisions/{NS}/{REV}", b"{not json", "invalid JSON: "),
    (f"/revisions/{NS}/{REV}", b"[]", "expected a JSON object, got an array"),
    (f"/revisions/{NS}/{REV}", b'{"containerConcurrency": "1"}',
     'containerConcurrency: expected an integer, got "1"'),
    (f"/revisions/{NS}/{REV}", b'{"timeoutSeconds": 0}',
     "expected 1 <= 0 <= 3600: timeoutSeconds"),
    (f"/revisions/{NS}/{REV}/endpoints", b'{"ready": ["nohost"]}',
     'ready[0]: invalid address "nohost": missing port'),
])
def test_control_api_bad_body_is_400_with_the_reason(activator: RunningActivator, path: str,
                                                     body: bytes, reason: str) -> None:
    if path.endswith("/endpoints"):
        activator.set_revision()
    r = control(activator.admin_port, "PUT", path, body)
    assert r.status == 400, r
    assert r.header("Content-Type") == "application/json"
    assert r.json()["error"].startswith(reason), r.json()


@pytest.mark.parametrize("method, path, allow", [
    ("POST", f"/revisions/{NS}/{REV}", "GET, PUT, DELETE"),
    ("GET", f"/revisions/{NS}/{REV}/endpoints", "PUT"),
    ("DELETE", "/revisions", "GET"),
])
def test_control_api_wrong_method_is_405_with_allow(activator: RunningActivator, method: str,
                                                    path: str, allow: str) -> None:
    r = control(activator.admin_port, method, path)
    assert r.status == 405, r
    assert r.header("Allow") == allow
    assert "not allowed" in r.json()["error"]


def test_control_api_unknown_revision_and_path(activator: RunningActivator) -> None:
    r = control(activator.admin_port, "GET", f"/revisions/{NS}/nope")
    assert (r.status, r.body) == (404, not_found("nope"))
    r = control(activator.admin_port, "PUT", f"/revisions/{NS}/nope/endpoints", b"{}")
    assert (r.status, r.body) == (404, not_found("nope"))
    r = control(activator.admin_port, "GET", "/nothing")
    assert r.status == 404, r


# --------------------------------------------------------------------------- the process




def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def activator_proc(tmp_path: Path) -> Iterator[Any]:
    started: list[ActivatorProcess] = []

    def start(*args: str) -> ActivatorProcess:
        a = ActivatorProcess(tmp_path / f"activator-{len(started)}.log", *args)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


def test_process_releases_held_request_when_endpoints_are_put(
        activator_proc: Any, pod: Pod, pool: ThreadPoolExecutor) -> None:
    act = activator_proc("--drain-timeout", "0.2")
    path = f"/revisions/{NS}/{REV}"
    assert act.control("PUT", path, {"containerConcurrency": 0}).status == 201
    held = hold(pool, act.port, "/echo?case=process")
    wait_for(lambda: act.control("GET", path).json()["waiting"] == 1)
    r = act.control("PUT", path + "/endpoints", {"notReady": [pod.address]})
    assert r.status == 200, r
    r = held.result(timeout=10)
    assert r.status == 200, r
    assert r.json()["target"] == "/echo?case=process"
    r = request(act.port, headers=[("Host", "x"), ("K-Network-Probe", "activator")])
    assert (r.status, r.body) == (200, b"activator")


def test_process_sigterm_finishes_held_request_and_exits_0(
        activator_proc: Any, pod: Pod, pool: ThreadPoolExecutor) -> None:
    act = activator_proc("--drain-timeout", "0.2")
    path = f"/revisions/{NS}/{REV}"
    assert act.control("PUT", path, {}).status == 201
    held = hold(pool, act.port, "/echo?case=sigterm")
    wait_for(lambda: act.control("GET", path).json()["waiting"] == 1)
    act.proc.send_signal(signal.SIGTERM)
    # After the drain period the request port stops accepting; the held request is still
    # there, and the control API still answers while the activator finishes it.
    wait_for(lambda: not accepts(act.port), timeout=10)
    assert not held.done()
    r = act.control("PUT", path + "/endpoints", {"notReady": [pod.address]})
    assert r.status == 200, r
    r = held.result(timeout=10)
    assert r.status == 200, r
    assert r.json()["target"] == "/echo?case=sigterm"
    assert act.proc.wait(timeout=10) == 0, act.output()


# --------------------------------------------------------------------------- more edges


def test_client_gone_while_held_leaves_the_queue(activator: RunningActivator, pod: Pod,
                                                 pod_app: App) -> None:
    activator.set_revision()
    c = Client(activator.port)
    c.send(f"GET /echo?case=gone HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    wait_for(lambda: activator.waiting(REV, 1))
    c.close()
    wait_for(lambda: activator.waiting(REV, 0))
    activator.set_endpoints(ready=[pod.address])
    wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    r = request(activator.port, target="/echo?case=after-gone", headers=[("Host", HOST)])
    assert r.status == 200, r
    assert not [q for q in pod_app.requests if q.target == "/echo?case=gone"]


def test_client_gone_while_running_frees_the_slot(activator: RunningActivator, make_pod: Any,
                                                  app: App, gate: Any) -> None:
    """CC=1: a request abandoned while the app holds it gives its slot back, and the app's
    connection is closed through both hops."""
    p = make_pod(app.port, cc=1)
    activator.set_revision(container_concurrency=1)
    activator.set_endpoints(ready=[p.address])
    wait_for(lambda: activator.status()["healthyPods"] == [p.address])
    c = Client(activator.port)
    c.send(f"GET /hold HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    wait_for(lambda: app.active == 1)
    assert activator.status()["inFlight"] == 1
    c.close()
    wait_for(lambda: gate.dropped == 1)
    wait_for(lambda: activator.status()["inFlight"] == 0)
    r = request(activator.port, target="/echo?case=next", headers=[("Host", HOST)])
    assert r.status == 200, r


def test_timeout_counts_the_wait_then_frees_the_slot(activator: RunningActivator,
                                                     make_pod: Any, app: App,
                                                     pool: ThreadPoolExecutor) -> None:
    """timeoutSeconds=1: 0.6 s waiting plus 0.8 s in the app is over it (504), though neither
    alone is; the slot (CC=1) is free again afterwards."""
    activator.set_revision(container_concurrency=1, timeout_seconds=1)
    held = hold(pool, activator.port, "/sleep?ms=800")
    wait_for(lambda: activator.waiting(REV, 1))
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since > 0.6, timeout=2)  # the wait under test
    p = make_pod(app.port, cc=1)
    activator.set_endpoints(ready=[p.address])
    r = held.result(timeout=10)
    assert (r.status, r.body) == (504, b"activator request timeout")
    wait_for(lambda: activator.status()["inFlight"] == 0)
    r = request(activator.port, target="/echo?case=after-timeout", headers=[("Host", HOST)])
    assert r.status == 200, r


def test_k_original_host_from_the_client_is_kept(activator: RunningActivator, pod: Pod,
                                                 pod_app: App) -> None:
    activator.set_revision()
    activator.set_endpoints(ready=[pod.address])
    wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    r = request(activator.port, target="/echo?case=original", headers=[
        ("Host", HOST), ("K-Original-Host", "public.example.com")])
    assert r.status == 200, r
    assert app_request(pod_app, "/echo?case=original").header("Host") == "public.example.com"


def test_keep_alive_requests_held_then_answered_in_order(activator: RunningActivator,
                                                         pod: Pod) -> None:
    activator.set_revision()
    with Client(activator.port) as c:
        c.send(f"GET /echo?case=ka-1 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        wait_for(lambda: activator.waiting(REV, 1))
        activator.set_endpoints(not_ready=[pod.address])
        r1 = c.read_response()
        c.send(f"GET /echo?case=ka-2 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        r2 = c.read_response()
    assert (r1.status, r1.json()["target"]) == (200, "/echo?case=ka-1")
    assert (r2.status, r2.json()["target"]) == (200, "/echo?case=ka-2")


def test_http10_request_held_then_answered(activator: RunningActivator, pod: Pod,
                                           pool: ThreadPoolExecutor) -> None:
    activator.set_revision()
    held = pool.submit(request, activator.port, "GET", "/echo?case=http10",
                       [("Host", HOST)], b"", "1.0")
    wait_for(lambda: activator.waiting(REV, 1))
    activator.set_endpoints(not_ready=[pod.address])
    r = held.result(timeout=10)
    assert (r.status, r.version, r.json()["target"]) == (200, "HTTP/1.0", "/echo?case=http10")


def test_expect_continue_while_held(activator: RunningActivator, pod: Pod) -> None:
    """A client that waits for 100 Continue before its body gets it once the request runs."""
    activator.set_revision()
    with Client(activator.port) as c:
        c.send(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n"
               "Expect: 100-continue\r\n\r\n".encode())
        wait_for(lambda: activator.waiting(REV, 1))
        activator.set_endpoints(not_ready=[pod.address])
        interim = c.read_response(interim=True)
        assert interim.status == 100, interim
        c.send(b"hello")
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"bytes": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}


def test_pod_removed_then_added_back(activator: RunningActivator, pod: Pod,
                                     pool: ThreadPoolExecutor) -> None:
    activator.set_revision()
    activator.set_endpoints(ready=[pod.address])
    wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    activator.set_endpoints()
    assert activator.status()["capacity"] == 0
    held = hold(pool, activator.port, "/echo?case=back")
    wait_for(lambda: activator.waiting(REV, 1))
    activator.set_endpoints(ready=[pod.address])
    assert held.result(timeout=10).status == 200


def test_draining_pod_is_not_used(activator: RunningActivator, make_pod: Any, app: App,
                                  pool: ThreadPoolExecutor) -> None:
    """A pod whose queue-proxy fails its probe (503: it is draining) never gets the request;
    a second, healthy pod does."""
    a = make_pod(app.port, QUEUE_DRAIN_QUIET_PERIOD="30")
    a.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: request(a.port, headers=[("K-Network-Probe", "queue"),
                                              ("User-Agent", "Knative-Activator-Probe")]
                             ).status == 503)
    activator.set_revision()
    activator.set_endpoints(not_ready=[a.address])
    held = hold(pool, activator.port, "/echo?case=draining")
    wait_for(lambda: activator.waiting(REV, 1) and activator.status()["probing"] == [a.address])
    assert not held.done()
    b = make_pod(app.port)
    activator.set_endpoints(not_ready=[a.address, b.address])
    r = held.result(timeout=10)
    assert r.status == 200, r
    assert activator.status()["healthyPods"] == [b.address]


def test_first_request_pokes_the_autoscaler_at_once(make_activator: Any,
                                                    pool: ThreadPoolExecutor) -> None:
    reports: list[Any] = []
    act = make_activator(stat_sink=reports.append)
    act.set_revision()
    held = hold(pool, act.port, "/echo?case=poke")
    wait_for(lambda: reports)
    first = reports[0]
    assert [(s.namespace, s.name, s.average_concurrency, s.request_count) for s in first] == [
        (NS, REV, 1.0, 1.0)]
    act.call("remove_revision", NS, REV)
    assert held.result(timeout=10).status == 404


def test_two_revisions_are_independent(activator: RunningActivator, pod: Pod,
                                       pool: ThreadPoolExecutor) -> None:
    activator.set_revision()
    activator.set_revision("other-00001")
    other = [("Host", f"other-00001.{NS}.svc.cluster.local")]
    held_other = hold(pool, activator.port, "/echo?case=other", other)
    held = hold(pool, activator.port, "/echo?case=mine")
    wait_for(lambda: activator.waiting(REV, 1) and activator.waiting("other-00001", 1))
    activator.set_endpoints(not_ready=[pod.address])
    assert held.result(timeout=10).status == 200
    assert not held_other.done()
    activator.set_endpoints("other-00001", ready=[pod.address])
    assert held_other.result(timeout=10).status == 200


# --------------------------------------------------------------------------- stats, health


class FakeAutoscaler:
    """A websocket server standing in for Knative's autoscaler: completes the handshake and
    keeps the binary frames the activator sends (its WireStatMessages)."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self) -> None:
        self.connected = 0
        self.frames: list[bytes] = []
        self.port = 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)\r\nsec-websocket-key:[ \t]*(\S+)", head)
            assert m is not None, head
            accept = base64.b64encode(hashlib.sha1(m.group(1) + self.GUID).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                         b"\r\n\r\n")
            self.connected += 1
            while True:
                b0, b1 = await reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await reader.readexactly(8))[0]
                mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
                data = await reader.readexactly(n)
                data = bytes(x ^ mask[i % 4] for i, x in enumerate(data))
                if b0 & 0x0F == 2:
                    self.frames.append(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def autoscaler(app_loop: LoopThread) -> Iterator[FakeAutoscaler]:
    a = FakeAutoscaler()
    app_loop.run(a.start())
    yield a
    app_loop.run(a.stop())


KUBE_PROBE = [("Host", "activator"), ("User-Agent", "kube-probe/1.30")]


def test_process_ready_once_the_stat_sink_connects_and_sends_stats(
        activator_proc: Any, autoscaler: FakeAutoscaler, pod: Pod) -> None:
    act = activator_proc("--autoscaler-url", f"ws://127.0.0.1:{autoscaler.port}",
                         "--pod-name", "activator-e2e")
    wait_for(lambda: autoscaler.connected == 1)
    wait_for(lambda: request(act.port, headers=KUBE_PROBE).status == 200)
    path = f"/revisions/{NS}/{REV}"
    assert act.control("PUT", path, {}).status == 201
    assert act.control("PUT", path + "/endpoints", {"ready": [pod.address]}).status == 200
    r = request(act.port, target="/echo?case=stats", headers=[("Host", HOST)])
    assert r.status == 200, r
    # WireStatMessages: the revision's key and the activator's pod name are in the protobuf.
    wait_for(lambda: any(REV.encode() in f and b"activator-e2e" in f
                         for f in autoscaler.frames))


def test_process_not_ready_while_the_stat_sink_is_down(activator_proc: Any) -> None:
    act = activator_proc("--autoscaler-url", f"ws://127.0.0.1:{free_port()}")
    r = request(act.port, headers=KUBE_PROBE)
    assert r.status == 500, r


def test_process_not_ready_body_is_knatives(activator_proc: Any) -> None:
    act = activator_proc("--autoscaler-url", f"ws://127.0.0.1:{free_port()}")
    r = request(act.port, headers=KUBE_PROBE)
    assert (r.status, r.body) == (500, b"connection has not yet been established\n")


# --------------------------------------------------------------------------- pods and bytes


def test_cc1_two_pods_first_in_sorted_order(activator: RunningActivator, make_pod: Any,
                                            app: App, app_loop: LoopThread) -> None:
    """CC=1 ("first available"): one request at a time always goes to the first pod in sorted
    address order; capacity is one per pod."""
    other = App()
    app_loop.run(other.start())
    try:
        by_address = {make_pod(a.port, cc=1).address: a for a in (app, other)}
        first = by_address[min(by_address)]
        second = by_address[max(by_address)]
        activator.set_revision(container_concurrency=1)
        activator.set_endpoints(ready=list(by_address))
        wait_for(lambda: len(activator.status()["healthyPods"]) == 2)
        assert activator.status()["capacity"] == 2
        for i in range(3):
            r = request(activator.port, target=f"/echo?case=first-{i}", headers=[("Host", HOST)])
            assert r.status == 200, r
        assert [q.query["case"] for q in first.requests] == ["first-0", "first-1", "first-2"]
        assert second.requests == []
    finally:
        app_loop.run(other.stop())


def test_cc4_round_robin_over_two_pods(activator: RunningActivator, make_pod: Any, app: App,
                                       app_loop: LoopThread) -> None:
    other = App()
    app_loop.run(other.start())
    try:
        a, b = make_pod(app.port, cc=4), make_pod(other.port, cc=4)
        activator.set_revision(container_concurrency=4)
        activator.set_endpoints(ready=[a.address, b.address])
        wait_for(lambda: len(activator.status()["healthyPods"]) == 2)
        assert activator.status()["capacity"] == 8
        for i in range(6):
            r = request(activator.port, target=f"/echo?case=rr-{i}", headers=[("Host", HOST)])
            assert r.status == 200, r
        assert (len(app.requests), len(other.requests)) == (3, 3)
    finally:
        app_loop.run(other.stop())


def test_idle_connections_to_a_pod_are_at_most_its_cc(activator: RunningActivator,
                                                     make_pod: Any, app: App) -> None:
    """At most CC requests run on a pod from this activator at once, so it keeps at most CC
    idle connections to it: six keep-alive clients, CC=2, reuse two or so, not one each (which
    spread the requests over six sockets, each colder, at a cost to the pod and to us)."""
    p = make_pod(app.port, cc=2)
    activator.set_revision(container_concurrency=2)
    activator.set_endpoints(ready=[p.address])
    wait_for(lambda: activator.status()["healthyPods"] == [p.address])
    rev = activator.call("revision", NS, REV)
    clients = [Client(activator.port) for _ in range(6)]
    try:
        for round_ in range(3):
            for i, c in enumerate(clients):
                c.send(f"GET /echo?c={i}&r={round_} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            for c in clients:
                assert c.read_response().status == 200
        idle = activator.loop.call(lambda: len(rev.pool(p.address).idle))
        assert 1 <= idle <= 2
    finally:
        for c in clients:
            c.close()


def test_big_bodies_both_ways(activator: RunningActivator, pod: Pod) -> None:
    activator.set_revision()
    activator.set_endpoints(ready=[pod.address])
    wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    size = 8 * 1024 * 1024
    r = request(activator.port, target=f"/download?size={size}", headers=[("Host", HOST)])
    assert (r.status, len(r.body)) == (200, size)
    assert r.body == b"x" * size
    payload = bytes(range(256)) * (size // 256)
    r = request(activator.port, "POST", "/upload", headers=[("Host", HOST)], body=payload)
    assert r.status == 200, r
    assert r.json() == {"bytes": size, "sha256": hashlib.sha256(payload).hexdigest()}


def test_head_request_held_then_answered(activator: RunningActivator, pod: Pod,
                                        pool: ThreadPoolExecutor) -> None:
    activator.set_revision()
    held = hold(pool, activator.port, "/echo?case=head", method="HEAD")
    wait_for(lambda: activator.waiting(REV, 1))
    activator.set_endpoints(not_ready=[pod.address])
    r = held.result(timeout=10)
    assert (r.status, r.body) == (200, b"")
    assert int(r.header("Content-Length") or 0) > 0


def test_running_request_finishes_after_its_revision_is_removed(
        activator: RunningActivator, make_pod: Any, app: App, gate: Any,
        pool: ThreadPoolExecutor) -> None:
    p = make_pod(app.port)
    activator.set_revision()
    activator.set_endpoints(ready=[p.address])
    wait_for(lambda: activator.status()["healthyPods"] == [p.address])
    running = hold(pool, activator.port, "/gate")
    wait_for(lambda: gate.held == 1)
    activator.call("remove_revision", NS, REV)
    gate.open()
    r = running.result(timeout=10)
    assert (r.status, r.body) == (200, b"gated")


def test_pipelined_requests_held_then_answered_in_order(activator: RunningActivator,
                                                        pod: Pod) -> None:
    activator.set_revision()
    with Client(activator.port) as c:
        c.send(b"".join(f"GET /echo?case=pipe-{i} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
                        for i in range(3)))
        wait_for(lambda: activator.waiting(REV, 1))
        activator.set_endpoints(not_ready=[pod.address])
        got = [c.read_response() for _ in range(3)]
    assert [(r.status, r.json()["target"]) for r in got] == [
        (200, f"/echo?case=pipe-{i}") for i in range(3)]


def test_websocket_holds_its_slot_until_it_closes(activator: RunningActivator, make_pod: Any,
                                                  app: App, pool: ThreadPoolExecutor) -> None:
    """CC=1: an open upgraded connection is a request in flight (Knative's throttler slot is
    held for the whole proxied exchange); the next request runs once it closes."""
    p = make_pod(app.port, cc=1)
    activator.set_revision(container_concurrency=1)
    activator.set_endpoints(ready=[p.address])
    wait_for(lambda: activator.status()["healthyPods"] == [p.address])
    ws = Client(activator.port)
    try:
        ws.send(f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n\r\n".encode())
        assert ws.read_response().status == 101
        assert activator.status()["inFlight"] == 1
        nxt = hold(pool, activator.port, "/echo?case=after-ws")
        wait_for(lambda: activator.waiting(REV, 1))
        assert not nxt.done()
    finally:
        ws.close()
    assert nxt.result(timeout=10).status == 200


def test_process_second_sigterm_exits_1_at_once(activator_proc: Any,
                                                pool: ThreadPoolExecutor) -> None:
    act = activator_proc("--drain-timeout", "30")
    path = f"/revisions/{NS}/{REV}"
    assert act.control("PUT", path, {}).status == 201
    held = hold(pool, act.port, "/echo?case=twice")
    wait_for(lambda: act.control("GET", path).json()["waiting"] == 1)
    act.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: request(act.port, headers=KUBE_PROBE).status == 500)
    act.proc.send_signal(signal.SIGTERM)
    assert act.proc.wait(timeout=5) == 1, act.output()
    with pytest.raises((OSError, EOFError)):
        held.result(timeout=5)  # cut: a second SIGTERM stops at once


def test_process_sigterm_idle_exits_0_after_the_drain_period(activator_proc: Any) -> None:
    act = activator_proc("--drain-timeout", "0.3")
    started = time.monotonic()
    act.proc.send_signal(signal.SIGTERM)
    assert act.proc.wait(timeout=10) == 0, act.output()
    assert time.monotonic() - started >= 0.3


def test_response_start_timeout_counts_the_wait(activator: RunningActivator, pod: Pod,
                                                pool: ThreadPoolExecutor) -> None:
    """responseStartTimeoutSeconds=1: 0.6 s waiting plus 0.8 s before the app's first byte is
    over it: 504 with the activator's timeout body (Knative's timeout handler wraps the
    throttler, so its timers run from the request's arrival)."""
    activator.set_revision(timeout_seconds=10, response_start_timeout_seconds=1)
    held = hold(pool, activator.port, "/sleep?ms=800&case=start")
    wait_for(lambda: activator.waiting(REV, 1))
    since = time.monotonic()
    wait_for(lambda: time.monotonic() - since > 0.6, timeout=2)  # the wait under test
    activator.set_endpoints(ready=[pod.address])
    r = held.result(timeout=10)
    assert (r.status, r.body) == (504, b"activator request timeout")


def test_an_absolute_form_targets_authority_becomes_the_original_host(
        activator: RunningActivator, pod: Pod, pod_app: App) -> None:
    # Go makes the URL's host the request's Host; the activator moves it to K-Original-Host,
    # and the queue-proxy puts it back as the Host the app sees.
    activator.set_revision()
    activator.set_endpoints(ready=[pod.address])
    wait_for(lambda: activator.status()["healthyPods"] == [pod.address])
    with Client(activator.port) as c:
        c.send(b"GET http://url.example:81/echo?case=absolute HTTP/1.1\r\n"
               b"Host: header.example\r\nKnative-Serving-Namespace: " + NS.encode() +
               b"\r\nKnative-Serving-Revision: " + REV.encode() + b"\r\n\r\n")
        r = c.read_response()
    assert r.status == 200, r
    assert app_request(pod_app, "/echo?case=absolute").header("Host") == "url.example:81"


# --------------------------------------------------------------------------- subsetting


@pytest.mark.timeout(60)
def test_activators_in_the_path_share_the_pods(make_activator: Any, make_pod: Any,
                                               pod_app: App) -> None:
    # Knative's subsetting: this activator (POD_IP 10.0.0.2) learns from the revision's public
    # endpoints which activators are in its path, and takes its slice of the CC=1 pods.
    act = make_activator(pod_ip="10.0.0.2")
    act.set_revision(container_concurrency=1)
    pods = [make_pod(pod_app.port, cc=1) for _ in range(2)]
    act.set_endpoints(ready=[p.address for p in pods])
    wait_for(lambda: len(act.status()["healthyPods"]) == 2, timeout=20)
    assert act.status()["capacity"] == 2

    def put(ips: list[str]) -> Any:
        body = json.dumps({"activators": ips}).encode()
        r = request(act.admin_port, "PUT", f"/revisions/{NS}/{REV}/activators", body=body)
        assert r.status == 200, r
        return json.loads(r.body)

    assert put(["10.0.0.2", "10.0.0.1"]) == {"index": 1, "count": 2}
    assert act.status()["capacity"] == 1  # one pod of the two is this activator's
    assert request(act.port, headers=[("Host", HOST)]).status == 200
    # Not (yet) in the path: nothing changes (Knative's handlePubEpsUpdate).
    assert put(["10.0.0.1", "10.0.0.3"]) == {"index": -1, "count": 2}
    assert act.status()["capacity"] == 1
    assert put(["10.0.0.2"]) == {"index": 0, "count": 1}
    assert act.status()["capacity"] == 2
    r = request(act.admin_port, "PUT", f"/revisions/{NS}/{REV}/activators",
                body=b'{"activators": ["10.0.0.2:8012"]}')
    assert r.status == 400 and b"is not an IP address" in r.body, r


@pytest.mark.timeout(60)
def test_mesh_mode_routes_through_the_cluster_address(make_activator: Any, make_pod: Any,
                                                      pod_app: App,
                                                      pool: ThreadPoolExecutor) -> None:
    # mesh-compatibility-mode "enabled": pods are not addressed one by one; requests go to the
    # revision's private service (a queue-proxy stands in for its cluster address here), with
    # CC x ready pods at once.
    act = make_activator(mesh_mode="enabled")
    act.set_revision(container_concurrency=1)
    service = make_pod(pod_app.port, cc=0)
    pods = ["10.255.0.1:8012", "10.255.0.2:8012"]  # never dialled: not probed in mesh mode
    act.call("set_endpoints", NS, REV, ready=pods, cluster_ip=service.address)
    wait_for(lambda: act.status()["capacity"] == 2, timeout=20)
    assert act.call("revision", NS, REV).healthy == [service.address]
    assert act.status()["healthyPods"] == []
    r = request(act.port, "GET", "/echo?case=mesh", headers=[("Host", HOST)])
    assert r.status == 200, r
    assert any(q.target == "/echo?case=mesh" for q in pod_app.requests)
    # One ready pod: capacity 1.
    act.call("set_endpoints", NS, REV, ready=pods[:1], cluster_ip=service.address)
    assert act.status()["capacity"] == 1
    # Scaled to zero: the cluster address is dropped, requests wait.
    act.call("set_endpoints", NS, REV, ready=[], cluster_ip=service.address)
    wait_for(lambda: act.status()["capacity"] in (0, None) and not act.call(
        "revision", NS, REV).healthy)
    held = hold(pool, act.port, "/echo?case=mesh-held")
    wait_for(lambda: act.waiting(REV, 1))
    act.call("set_endpoints", NS, REV, ready=pods, cluster_ip=service.address)
    assert held.result(timeout=20).status == 200


@pytest.mark.timeout(60)
def test_mesh_auto_falls_back_to_the_cluster_address(make_activator: Any, make_pod: Any,
                                                     pod_app: App) -> None:
    # mesh-compatibility-mode "auto" (the default): the pods are probed one by one; when none
    # answers and every failure could be a mesh's (no answer at all here: closed ports), the
    # cluster address is probed, and once it answers requests go through it for good.
    act = make_activator()
    act.set_revision(container_concurrency=1)
    service = make_pod(pod_app.port, cc=0)
    pods = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]  # nobody listens
    act.call("set_endpoints", NS, REV, ready=pods, cluster_ip=service.address)
    wait_for(lambda: act.status()["clusterIP"] == service.address, timeout=20)
    assert act.status()["capacity"] == 2
    assert act.call("revision", NS, REV).healthy == [service.address]
    r = request(act.port, "GET", "/echo?case=auto", headers=[("Host", HOST)])
    assert r.status == 200, r
    assert any(q.target == "/echo?case=auto" for q in pod_app.requests)
    # For good: a new pod list is not probed one by one again (Knative's podsAddressable).
    probes = act.call("revision", NS, REV).backends.probes
    act.call("set_endpoints", NS, REV, ready=pods[:1], cluster_ip=service.address)
    assert (act.status()["capacity"], act.status()["clusterIP"]) == (1, service.address)
    assert act.call("revision", NS, REV).backends.probes == probes


@pytest.mark.timeout(60)
def test_mesh_auto_stays_with_pods_when_an_answer_rules_a_mesh_out(
        make_activator: Any, make_pod: Any, pod_app: App, pool: ThreadPoolExecutor) -> None:
    # A pod that answers its probe with something other than 502/503 (here the app itself, not
    # a queue-proxy: 200 without "queue") is not behind a mesh: no fallback, as Knative's
    # notMesh; the request waits for a pod, and runs on one once it answers.
    act = make_activator()
    act.set_revision(container_concurrency=1)
    service = make_pod(pod_app.port, cc=0)
    act.call("set_endpoints", NS, REV, ready=[f"127.0.0.1:{pod_app.port}"],
             cluster_ip=service.address)
    rev = act.call("revision", NS, REV)
    held = hold(pool, act.port, "/echo?case=not-mesh")
    wait_for(lambda: act.loop.call(lambda: rev.backends.probes) >= 20, timeout=20)
    assert act.loop.call(lambda: rev.cluster_backends.probes) == 0
    assert act.status()["clusterIP"] is None and act.waiting(REV, 1)
    pod = make_pod(pod_app.port, cc=1)
    act.call("set_endpoints", NS, REV, ready=[pod.address], cluster_ip=service.address)
    assert held.result(timeout=20).status == 200
    assert act.status()["healthyPods"] == [pod.address]


def test_mesh_mode_is_checked(make_activator: Any) -> None:
    with pytest.raises(ValueError, match="mesh mode"):
        make_activator(mesh_mode="sometimes")


# --------------------------------------------------------------------------- request log


@pytest.mark.timeout(60)
def test_the_request_log_is_knatives_template(make_activator: Any, pod: Pod,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    template = ('{{if eq .Response.Code 200}}ok{{else}}no{{end}} {{.Request.Method}} '
                '{{.Request.URL.Path}} {{printf "%q" .Revision.Name}} {{.Revision.Namespace}} '
                '{{.Revision.Service}}|{{.Revision.PodName}}\n')
    act = make_activator(request_log_template=template)
    act.call("set_revision", NS, REV, service="hello")
    act.set_endpoints(ready=[pod.address])
    wait_for(lambda: act.status()["healthyPods"] == [pod.address])
    assert request(act.port, "GET", "/echo?case=log", [("Host", HOST)]).status == 200
    out: list[str] = []

    def logged() -> bool:
        out.append(capsys.readouterr().out)
        return f'ok GET /echo "{REV}" {NS} hello|\n' in "".join(out)

    wait_for(logged)


def test_a_bad_request_log_template_leaves_the_log_off(make_activator: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    act = make_activator(request_log_template="{{.Nope")
    assert act.act.request_log is None
    assert "request logs will be unavailable" in caplog.text
