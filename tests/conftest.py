"""Fixtures: an upstream app and queue-proxies in loop threads, over real sockets."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fronts import FRONTS, NS, REV, ROUTE, Front  # noqa: E402
from support import App, Gate, LoopThread, wait_for  # noqa: E402

from proxy.config import Config  # noqa: E402
from proxy.engine.parsers import HAVE_HTTPTOOLS  # noqa: E402

BACKENDS = ["httptools", "h11"] if HAVE_HTTPTOOLS else ["h11"]
if os.environ.get("DATAPLANE_EXPECT_EXTENSIONS") and not os.environ.get("DATAPLANE_ALL_BACKENDS"):
    # CI's compiled run takes the httptools backend only: the h11 backend runs the same engine
    # source in the pure run (both backends there), and running it twice cost CI a minute.
    # DATAPLANE_ALL_BACKENDS=1 brings the h11 rows back here.
    BACKENDS = [b for b in BACKENDS if b == "httptools"] or BACKENDS


@pytest.fixture(scope="session")
def app_loop() -> Iterator[LoopThread]:
    lt = LoopThread(uv=False)
    yield lt
    lt.stop()


@pytest.fixture(scope="session")
def proxy_loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def app(app_loop: LoopThread) -> Iterator[App]:
    a = App()
    app_loop.run(a.start())
    yield a
    app_loop.run(a.stop())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


class RunningProxy:
    def __init__(self, loop: LoopThread, qp: Any) -> None:
        self.loop = loop
        self.qp = qp
        self.port = qp.ports["main"]
        self.admin_port = qp.ports["admin"]

    def call(self, fn: Any) -> Any:
        return self.loop.call(fn)


@pytest.fixture
def make_proxy(proxy_loop: LoopThread, app: App, backend: str) -> Iterator[Any]:
    """``make_proxy(**config_fields)`` starts a QueueProxy in front of ``app``."""
    started: list[Any] = []

    def make(**overrides: Any) -> RunningProxy:
        from proxy.app import QueueProxy

        fields = dict(
            bind_host="127.0.0.1",
            serving_port=0,
            admin_port=0,
            metrics_port=0,
            prometheus_port=0,
            user_port=app.port,
            revision_timeout=30.0,
            drain_quiet_period=0.5,
            pod="test-pod",
        )
        fields.update(overrides)
        cfg = Config(**fields)

        async def build() -> Any:
            qp = QueueProxy(cfg, backend=backend)
            await qp.start()
            return qp

        qp = proxy_loop.run(build())
        started.append(qp)
        return RunningProxy(proxy_loop, qp)

    yield make
    for qp in started:
        proxy_loop.call(qp.close)


@pytest.fixture
def proxy(make_proxy: Any) -> RunningProxy:
    return make_proxy()


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """Clients opened by a test; all closed at teardown."""
    opened: list[Any] = []
    yield opened
    for c in opened:
        c.close()


@pytest.fixture
def gate(app: App, app_loop: LoopThread) -> Iterator[Gate]:
    """``/gate`` held until ``gate.open()``; ``/hold`` never answered (see ``support.Gate``)."""
    g = Gate(app, app_loop)
    yield g
    g.open()


@pytest.fixture
def make_front(make_proxy: Any, proxy_loop: LoopThread, app: App,
               backend: str) -> Iterator[Any]:
    """``make_front(kind, timeout=300)``: a queue-proxy or an activator in front of ``app``."""
    activators: list[Any] = []

    def make(kind: str, timeout: int = 300) -> Front:
        if kind == "queue-proxy":
            proxy = make_proxy(revision_timeout=float(timeout))
            return Front(kind, proxy_loop, proxy.port, lambda: proxy.qp.pool, [])
        from activator.activator.app import Activator

        async def build() -> Any:
            act = Activator(backend=backend, drain_timeout=0)
            activators.append(act)
            await act.start("127.0.0.1", 0, None, None)
            act.set_revision(NS, REV, timeout_seconds=timeout)
            act.set_endpoints(NS, REV, ready=[f"127.0.0.1:{app.port}"])
            return act

        async def probe_answer(req: Any, reader: Any, w: Any) -> Any:
            if req.header("K-Network-Probe") == "queue":
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nqueue")
                await w.drain()
                return True
            return None

        app.probe_hook = probe_answer
        act = proxy_loop.run(build())
        address = f"127.0.0.1:{app.port}"
        rev = proxy_loop.call(lambda: act.revision(NS, REV))
        wait_for(lambda: proxy_loop.call(lambda: rev.pool(address)) is not None)
        app.requests.clear()  # the probes
        return Front(kind, proxy_loop, act.ports["main"], lambda: rev.pool(address), ROUTE)

    yield make
    for act in activators:
        proxy_loop.call(act.close)


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest, make_front: Any) -> Front:
    return make_front(request.param)
