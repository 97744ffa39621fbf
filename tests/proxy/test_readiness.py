"""``proxy.readiness``: the readiness probe of the user container (SERVING_READINESS_PROBE).

Behaviour is knative/serving pkg/queue/readiness/probe.go and pkg/queue/health/probe.go:
``tcpSocket`` connects; ``httpGet`` sends ``GET path`` (query kept) with the configured headers,
``User-Agent: kube-probe//`` and no keep-alive, ready on 200 <= status < 400; ``exec`` and
(here) ``grpc`` are never ready. ``periodSeconds`` 0 is the aggressive mode: a try every 50 ms,
each bounded by 100 ms, for up to 10 s, until ``successThreshold`` consecutive passes. Concurrent
callers share the probe in flight; with several probes (multi-container) all must pass.

Most tests run the probe on a private event loop (``asyncio.run``) against tiny asyncio
servers; the last ones go through a real queue-proxy (``make_proxy``) and its health check.
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from typing import Any

import pytest
from support import free_port, request, send, wait_for

from proxy import readiness
from proxy.readiness import ProbeError, ReadinessProbe, decode_probes

HEALTH = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]


# ---------------------------------------------------------------------------- helpers


def run(coro: Any, timeout: float = 20.0) -> Any:
    """Runs ``coro`` on a fresh loop, bounded in time."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def closed_port() -> int:
    return free_port()


class HttpApp:
    """A one-request-per-connection HTTP server that records the raw request heads.

    ``statuses`` is the script of status codes to answer, in order (the last one repeats);
    ``hold`` makes it never answer (for timeouts) until ``release`` is set.
    """

    def __init__(self, statuses: list[int] | None = None, hold: bool = False,
                 strict_host: bool = False) -> None:
        self.statuses = list(statuses or [200])
        self.strict_host = strict_host  # 400 for more than one Host line, as Go's server does
        self.heads: list[bytes] = []
        self.hold = hold
        self.release: asyncio.Event | None = None
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.changed: asyncio.Event | None = None

    async def start(self, sock: socket.socket | None = None) -> HttpApp:
        self.release = asyncio.Event()
        self.changed = asyncio.Event()
        if sock is not None:
            self.server = await asyncio.start_server(self._conn, sock=sock)
        else:
            self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
            return
        self.heads.append(head)
        assert self.changed is not None and self.release is not None
        self.changed.set()
        if self.hold:
            await self.release.wait()
        i = len(self.heads) - 1
        status = self.statuses[min(i, len(self.statuses) - 1)]
        if self.strict_host and len(self.header_all("Host", i)) != 1:
            status = 400
        try:
            await send(w, status, b"ok")
        except ConnectionError:
            pass
        w.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.release is not None:
            self.release.set()

    def head_lines(self, i: int = 0) -> list[str]:
        return self.heads[i].decode("latin-1").split("\r\n")[:-2]

    def header_all(self, name: str, i: int = 0) -> list[str]:
        out = []
        for line in self.head_lines(i)[1:]:
            n, _, v = line.partition(":")
            if n.strip().lower() == name.lower():
                out.append(v.strip())
        return out


def tcp(port: int, **extra: Any) -> dict:
    return {"tcpSocket": {"port": port}, **extra}


def http_get(port: int, path: str = "/", headers: list | None = None, **extra: Any) -> dict:
    action: dict[str, Any] = {"port": port, "path": path}
    if headers is not None:
        action["httpHeaders"] = [{"name": n, "value": v} for n, v in headers]
    return {"httpGet": action, **extra}


STANDARD = {"periodSeconds": 1, "timeoutSeconds": 1}  # one try, not the aggressive mode


async def probe_once(*specs: dict, poll_timeout: float | None = None) -> bool:
    p = ReadinessProbe(list(specs))
    if poll_timeout is not None:
        for s in p.probes:
            s.poll_timeout = poll_timeout
    return await p.probe()


# ---------------------------------------------------------------------------- decoding


def test_from_config_empty_is_no_probe() -> None:
    assert ReadinessProbe.from_config("", multi=False) is None
    assert ReadinessProbe.from_config("", multi=True) is None


def test_decode_single_and_multi() -> None:
    one = json.dumps(tcp(8080))
    assert decode_probes(one, multi=False) == [tcp(8080)]
    many = json.dumps([tcp(8080), http_get(8081)])
    assert decode_probes(many, multi=True) == [tcp(8080), http_get(8081)]
    with pytest.raises(ProbeError):
        decode_probes("{not json", multi=False)
    with pytest.raises(ProbeError):
        decode_probes(many, multi=False)  # an array needs ENABLE_MULTI_CONTAINER_PROBES
    with pytest.raises(ProbeError):
        decode_probes(one, multi=True)  # multi expects an array


# ---------------------------------------------------------------------------- tcpSocket


def test_tcp_ready() -> None:
    async def main() -> bool:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return await probe_once(tcp(port, **STANDARD))
        finally:
            srv.close()

    assert run(main()) is True


def test_tcp_not_ready() -> None:
    t0 = time.monotonic()
    assert run(probe_once(tcp(closed_port(), **STANDARD))) is False
    assert time.monotonic() - t0 < 2.0


def test_tcp_ready_aggressive() -> None:
    async def main() -> bool:
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            return await probe_once(tcp(port, periodSeconds=0))
        finally:
            srv.close()

    assert run(main()) is True


# ---------------------------------------------------------------------------- httpGet


def test_http_request_shape() -> None:
    async def main() -> tuple[bool, HttpApp]:
        app = await HttpApp([200]).start()
        try:
            ok = await probe_once(http_get(app.port, "/healthz?verbose=1&x=y",
                                           [("X-Custom", "abc"), ("X-Other", "d e")],
                                           **STANDARD))
            return ok, app
        finally:
            await app.stop()

    ok, app = run(main())
    assert ok is True
    assert len(app.heads) == 1
    lines = app.head_lines()
    assert lines[0] == "GET /healthz?verbose=1&x=y HTTP/1.1"
    assert app.header_all("X-Custom") == ["abc"]
    assert app.header_all("X-Other") == ["d e"]
    assert app.header_all("User-Agent") == ["kube-probe//"]
    assert [v.lower() for v in app.header_all("Connection")] == ["close"]
    assert len(app.header_all("Host")) == 1


def test_http_path_without_leading_slash() -> None:
    async def main() -> HttpApp:
        app = await HttpApp([200]).start()
        try:
            assert await probe_once(http_get(app.port, "ready", **STANDARD)) is True
            assert await probe_once({"httpGet": {"port": app.port}, **STANDARD}) is True
            return app
        finally:
            await app.stop()

    app = run(main())
    assert app.head_lines(0)[0] == "GET /ready HTTP/1.1"
    assert app.head_lines(1)[0] == "GET / HTTP/1.1"


@pytest.mark.parametrize("status,ready", [
    (200, True), (204, True), (299, True), (301, True), (302, True), (399, True),
    (400, False), (404, False), (418, False), (499, False), (500, False), (503, False),
])
def test_http_status_decides(status: int, ready: bool) -> None:
    async def main() -> bool:
        app = await HttpApp([status]).start()
        try:
            return await probe_once(http_get(app.port, "/", **STANDARD))
        finally:
            await app.stop()

    assert run(main()) is ready


def test_http_connection_refused_not_ready() -> None:
    assert run(probe_once(http_get(closed_port(), "/", **STANDARD))) is False


def test_http_no_answer_times_out_not_ready() -> None:
    async def main() -> tuple[bool, float]:
        app = await HttpApp([200], hold=True).start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            ok = await probe_once(http_get(app.port, "/", periodSeconds=1, timeoutSeconds=1))
            return ok, loop.time() - t0
        finally:
            await app.stop()

    ok, elapsed = run(main())
    assert ok is False
    assert 0.8 <= elapsed < 3.0, elapsed


def test_http_garbage_answer_not_ready() -> None:
    async def main() -> bool:
        async def conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"NOT HTTP AT ALL\r\n\r\n")
            await w.drain()
            w.close()

        srv = await asyncio.start_server(conn, "127.0.0.1", 0)
        try:
            return await probe_once(http_get(srv.sockets[0].getsockname()[1], "/", **STANDARD))
        finally:
            srv.close()

    assert run(main()) is False


def test_http_configured_host_header_sent_once() -> None:
    """Go's client writes the Host line from the URL and never a ``Host`` from ``Header``
    (``reqWriteExcludeHeader``), so Knative sends exactly one Host line; two Host lines make a
    request any HTTP/1.1 server must reject with 400 (RFC 9112 3.2), i.e. never ready."""

    async def main() -> tuple[bool, HttpApp]:
        app = await HttpApp([200], strict_host=True).start()
        try:
            ok = await probe_once(http_get(app.port, "/", [("Host", "example.com")], **STANDARD))
            return ok, app
        finally:
            await app.stop()

    ok, app = run(main())
    assert len(app.header_all("Host")) == 1, app.head_lines()
    assert ok is True


def test_http_configured_user_agent_does_not_replace_kube_probe() -> None:
    """Knative adds ``User-Agent: kube-probe//`` first, then the configured headers with
    ``Header.Add``; Go's ``Request.Write`` sends only ``Header.Get("User-Agent")``, the first."""

    async def main() -> HttpApp:
        app = await HttpApp([200]).start()
        try:
            assert await probe_once(http_get(app.port, "/", [("User-Agent", "custom/1")],
                                             **STANDARD)) is True
            return app
        finally:
            await app.stop()

    app = run(main())
    assert app.header_all("User-Agent") == ["kube-probe//"], app.head_lines()


# ---------------------------------------------------------------------------- exec, none
# (the gRPC probe: tests/h2/test_h2_readiness.py)


@pytest.mark.parametrize("spec", [
    {"exec": {"command": ["true"]}},
    {},
], ids=["exec", "no-handler"])
@pytest.mark.parametrize("period", [0, 1], ids=["aggressive", "standard"])
def test_unsupported_probes_not_ready_at_once(spec: dict, period: int) -> None:
    t0 = time.monotonic()
    assert run(probe_once({**spec, "periodSeconds": period})) is False
    # Not the 10 s aggressive budget: these can never pass.
    assert time.monotonic() - t0 < 2.0


# ---------------------------------------------------------------------------- aggressive mode


def _latency_once(kind: str, offset: float) -> tuple[bool, float, int]:
    """Starts an aggressive probe at a port that refuses, opens the port ``offset`` seconds
    after the probe's second failed try, and returns (result, seconds from the port opening to
    the probe's future resolving, failed tries)."""

    async def main() -> tuple[bool, float, int]:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = sock.getsockname()[1]
        spec = tcp(port, periodSeconds=0) if kind == "tcp" else http_get(port, "/",
                                                                            periodSeconds=0)
        probe = ReadinessProbe([spec])
        single = probe.probes[0]
        original = single.check
        failures = 0
        opened_at: list[float] = []
        app = HttpApp([200])
        tasks: list[asyncio.Task] = []

        def open_port() -> None:
            opened_at.append(loop.time())
            if kind == "tcp":
                sock.listen(16)
            else:
                tasks.append(loop.create_task(app.start(sock)))

        async def counting_check(timeout: float) -> None:
            nonlocal failures
            try:
                await original(timeout)
            except BaseException:
                failures += 1
                if failures == 2:
                    loop.call_later(offset, open_port)
                raise

        single.check = counting_check
        resolved: list[float] = []
        fut = probe.probe()
        fut.add_done_callback(lambda f: resolved.append(loop.time()))
        try:
            ok = await asyncio.wait_for(asyncio.shield(fut), 5)
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await app.stop()
            sock.close()
        return ok, resolved[0] - opened_at[0], failures

    return run(main())


@pytest.mark.parametrize("kind", ["tcp", "http"])
def test_aggressive_ready_within_60ms_of_port_opening(kind: str) -> None:
    # The port opens at five phases of the 50 ms retry cycle; the median must be under 60 ms
    # (the bound; the machine is noisy, so one slow run is tolerated).
    results = [_latency_once(kind, offset) for offset in (0.0, 0.01, 0.02, 0.03, 0.04)]
    assert all(ok for ok, _, _ in results), results
    latencies = sorted(lat for _, lat, _ in results)
    assert all(f >= 2 for _, _, f in results), results
    median = statistics.median(latencies)
    assert median < 0.06, (
        f"aggressive {kind} probe became ready {median * 1000:.1f} ms (median) after the port "
        f"opened; want < 60 ms. All runs (ms): {[round(x * 1000, 1) for x in latencies]}"
    )


def test_aggressive_success_threshold_needs_consecutive_passes() -> None:
    async def main() -> tuple[bool, int]:
        # pass, fail, pass, pass, fail, pass, pass, pass -> ready on the 8th request.
        app = await HttpApp([200, 500, 200, 200, 500, 200, 200, 200, 200, 200]).start()
        try:
            ok = await probe_once(http_get(app.port, "/", periodSeconds=0, successThreshold=3))
            return ok, len(app.heads)
        finally:
            await app.stop()

    ok, tries = run(main())
    assert ok is True
    assert tries == 8


def test_aggressive_success_threshold_three_takes_three_tries() -> None:
    async def main() -> tuple[bool, int, float]:
        app = await HttpApp([200]).start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            ok = await probe_once(http_get(app.port, "/", periodSeconds=0, successThreshold=3))
            return ok, len(app.heads), loop.time() - t0
        finally:
            await app.stop()

    ok, tries, elapsed = run(main())
    assert ok is True
    assert tries == 3
    # Two 50 ms retry intervals between the three tries.
    assert 0.08 <= elapsed < 1.0, elapsed


def test_aggressive_gives_up_after_the_budget_instance() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ok = await probe_once(tcp(closed_port(), periodSeconds=0), poll_timeout=0.3)
        return ok, loop.time() - t0

    ok, elapsed = run(main())
    assert ok is False
    assert 0.28 <= elapsed < 1.5, elapsed


def test_aggressive_gives_up_after_the_budget_module_constant(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.setattr(readiness, "AGGRESSIVE_POLL_TIMEOUT", 0.3)

    async def main() -> tuple[bool, float, int]:
        loop = asyncio.get_running_loop()
        app = await HttpApp([500]).start()
        t0 = loop.time()
        try:
            ok = await probe_once(http_get(app.port, "/", periodSeconds=0))
            return ok, loop.time() - t0, len(app.heads)
        finally:
            await app.stop()

    ok, elapsed, tries = run(main())
    assert ok is False
    assert 0.28 <= elapsed < 1.5, elapsed
    # Every 50 ms for 0.3 s: about 7 tries (at least 4 on a slow machine).
    assert 4 <= tries <= 8, tries


def test_aggressive_each_try_bounded_by_100ms() -> None:
    async def main() -> tuple[bool, int, float]:
        app = await HttpApp([200], hold=True).start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            ok = await probe_once(http_get(app.port, "/", periodSeconds=0), poll_timeout=0.5)
            return ok, len(app.heads), loop.time() - t0
        finally:
            await app.stop()

    ok, tries, elapsed = run(main())
    assert ok is False
    # Each held try is cut after 100 ms, so several tries fit in the 0.5 s budget.
    assert tries >= 3, tries
    assert elapsed < 1.5, elapsed


def test_standard_mode_single_try() -> None:
    async def main() -> tuple[bool, int]:
        app = await HttpApp([500, 200]).start()
        try:
            ok = await probe_once(http_get(app.port, "/", **STANDARD))
            return ok, len(app.heads)
        finally:
            await app.stop()

    ok, tries = run(main())
    assert ok is False
    assert tries == 1


# ---------------------------------------------------------------------------- sharing


def test_concurrent_probe_calls_share_one_future() -> None:
    async def main() -> None:
        app = await HttpApp([200], hold=True).start()
        try:
            p = ReadinessProbe([http_get(app.port, "/", **STANDARD)])
            f1 = p.probe()
            f2 = p.probe()
            f3 = p.probe()
            assert f1 is f2 is f3
            assert app.changed is not None and app.release is not None
            await asyncio.wait_for(app.changed.wait(), 5)
            app.release.set()
            assert await asyncio.gather(f1, f2, f3) == [True, True, True]
            assert len(app.heads) == 1
            # Once done, the next call probes afresh.
            f4 = p.probe()
            assert f4 is not f1
            assert await f4 is True
            assert len(app.heads) == 2
        finally:
            await app.stop()

    run(main())


def test_each_probe_call_probes_afresh() -> None:
    async def main() -> list[bool]:
        app = await HttpApp([500, 200, 503]).start()
        try:
            p = ReadinessProbe([http_get(app.port, "/", **STANDARD)])
            return [await p.probe(), await p.probe(), await p.probe()]
        finally:
            await app.stop()

    assert run(main()) == [False, True, False]


# ---------------------------------------------------------------------------- multi-container


def test_multi_container_all_must_pass() -> None:
    async def main() -> tuple[bool, bool, bool]:
        a = await HttpApp([200]).start()
        b = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        bport = b.sockets[0].getsockname()[1]
        try:
            raw_ok = json.dumps([http_get(a.port, "/", **STANDARD), tcp(bport, **STANDARD)])
            raw_bad = json.dumps([http_get(a.port, "/", **STANDARD),
                                  tcp(closed_port(), **STANDARD)])
            raw_bad2 = json.dumps([tcp(closed_port(), **STANDARD),
                                   http_get(a.port, "/", **STANDARD)])
            ok = await ReadinessProbe.from_config(raw_ok, multi=True).probe()  # type: ignore
            bad = await ReadinessProbe.from_config(raw_bad, multi=True).probe()  # type: ignore
            bad2 = await ReadinessProbe.from_config(raw_bad2, multi=True).probe()  # type: ignore
            return ok, bad, bad2
        finally:
            await a.stop()
            b.close()

    assert run(main()) == (True, False, False)


def test_multi_container_probes_run_together() -> None:
    # Both probes wait on the same held app; run one after the other they would take 2 s.
    async def main() -> tuple[bool, float]:
        app = await HttpApp([200], hold=True).start()
        loop = asyncio.get_running_loop()
        try:
            p = ReadinessProbe([http_get(app.port, "/a", periodSeconds=1, timeoutSeconds=2),
                                http_get(app.port, "/b", periodSeconds=1, timeoutSeconds=2)])
            fut = p.probe()
            t0 = loop.time()
            assert app.changed is not None and app.release is not None
            while len(app.heads) < 2:
                app.changed.clear()
                await asyncio.wait_for(app.changed.wait(), 5)
            app.release.set()
            ok = await fut
            return ok, loop.time() - t0
        finally:
            await app.stop()

    ok, elapsed = run(main())
    assert ok is True
    assert elapsed < 1.5


# ---------------------------------------------------------------------------- through the proxy


def health(port: int) -> Any:
    return request(port, "GET", "/", HEALTH)


def test_e2e_no_probe_configured_is_ready(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy()
    r = health(proxy.port)
    assert r.status == 200, r
    assert r.body == b"queue"
    assert app.requests == []


def test_e2e_tcp_probe_ready(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(readiness_probe=json.dumps(tcp(app.port, periodSeconds=0)))
    r = health(proxy.port)
    assert r.status == 200, r
    assert r.body == b"queue"
    assert app.requests == []  # a TCP probe sends no request


def test_e2e_tcp_probe_not_ready(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(readiness_probe=json.dumps(tcp(closed_port(), **STANDARD)))
    r = health(proxy.port)
    assert r.status == 503, r
    assert r.body == b""
    assert r.header("Content-Length") == "0"


def test_e2e_aggressive_not_ready_after_budget(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(readiness_probe=json.dumps(tcp(closed_port(), periodSeconds=0)))

    def shorten() -> None:
        for s in proxy.qp.prober.probes:
            s.poll_timeout = 0.3

    proxy.call(shorten)
    t0 = time.monotonic()
    r = health(proxy.port)
    assert r.status == 503, r
    assert r.body == b""
    assert time.monotonic() - t0 < 3.0


def test_e2e_http_probe_follows_the_app(make_proxy: Any, app: Any, app_loop: Any) -> None:
    state = {"ready": False}

    async def hook(req: Any, reader: Any, w: Any) -> Any:
        if req.path == "/ready":
            await send(w, 200 if state["ready"] else 503, b"r")
            return True
        return None

    app.hook = hook
    proxy = make_proxy(readiness_probe=json.dumps(
        http_get(app.port, "/ready?from=queue", [("X-Probe", "1")], **STANDARD)))
    r = health(proxy.port)
    assert r.status == 503, r
    assert r.body == b""
    state["ready"] = True
    r = health(proxy.port)  # each health check probes afresh
    assert r.status == 200, r
    assert r.body == b"queue"
    probes = [q for q in app.requests if q.path == "/ready"]
    assert len(probes) == 2
    q = probes[-1]
    assert q.target == "/ready?from=queue"
    assert q.header("User-Agent") == "kube-probe//"
    assert q.header("X-Probe") == "1"
    assert (q.header("Connection") or "").lower() == "close"
    # The health checks themselves were answered by the queue-proxy, never proxied.
    assert all(x.path == "/ready" for x in app.requests)


def test_e2e_multi_container(make_proxy: Any, app: Any) -> None:
    ok = json.dumps([tcp(app.port, **STANDARD), http_get(app.port, "/status?code=200",
                                                         **STANDARD)])
    proxy = make_proxy(readiness_probe=ok, enable_multi_container_probes=True)
    r = health(proxy.port)
    assert r.status == 200, r
    assert r.body == b"queue"

    bad = json.dumps([tcp(app.port, **STANDARD), http_get(app.port, "/status?code=500",
                                                          **STANDARD)])
    proxy2 = make_proxy(readiness_probe=bad, enable_multi_container_probes=True)
    r = health(proxy2.port)
    assert r.status == 503, r
    assert r.body == b""


def test_e2e_health_check_becomes_ready_when_app_port_opens(make_proxy: Any, app: Any,
                                                           app_loop: Any) -> None:
    """Kubelet's first check arrives before the app listens: the aggressive probe holds the
    health check and answers 200 once the port opens."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        proxy = make_proxy(readiness_probe=json.dumps(tcp(port, periodSeconds=0)))
        from support import Client

        with Client(proxy.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.30\r\n"
                   b"K-Network-Probe: queue\r\n\r\n")
            # The probe is in flight (not answered yet) ...
            wait_for(lambda: proxy.call(
                lambda: proxy.qp.prober._inflight is not None
                and not proxy.qp.prober._inflight.done()))
            sock.listen(16)
            r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"queue"
    finally:
        sock.close()


def test_e2e_ready_answer_content_type(make_proxy: Any, app: Any) -> None:
    # Knative's ProbeHandler does io.WriteString(w, "queue") without a Content-Type; Go's
    # ResponseWriter then sniffs one: text/plain; charset=utf-8.
    proxy = make_proxy()
    r = health(proxy.port)
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/plain; charset=utf-8", r


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("raw", ["{not json", '[{"tcpSocket": {"port": 8080}}]'])
def test_process_bad_probe_is_one_clear_line(raw: str) -> None:
    import subprocess
    import sys

    from support import REPO, knative_env

    env = knative_env(free_port(), SERVING_READINESS_PROBE=raw)
    proc = subprocess.Popen([sys.executable, "-m", "proxy"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = err.decode()
    assert proc.returncode == 1, text
    assert "SERVING_READINESS_PROBE" in text or "readiness probe" in text, text
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) == 1, text
