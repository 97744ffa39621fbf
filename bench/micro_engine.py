"""The per-request Python cost of the queue-proxy or the activator, without sockets.

A real ``QueueProxy`` (engine, handler, breaker, stats, timeouts; metrics with ``--metrics``),
or with ``--activator`` a real ``Activator`` with one revision and one healthy pod (its
Prometheus metrics with ``--metrics``, as ``python -m activator serve`` runs), is driven by
fake transports: a wrk-like request is fed to a client connection, the upstream connection it
was given gets nginx's response, and the client's answer is checked. No syscalls and no event
loop polling run, so what is left is our code, the parsers and the allocator: the part of the
bench's CPU/request this project can change.

    python bench/micro_engine.py [--requests N] [--cc CC] [--metrics] [--activator] [--repeat R]
                                 [--batch B] [--clients C] [--trace RATE]

``--trace RATE``: tracing on (http/protobuf, that ``samplingRate``), its spans exported to
``bench/otlp_sink.py`` run as a child process (so that callgrind counts only the proxy's side),
and flushed before each run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8012\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 01:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
    b"Hello World!\n"
)


class FakeTransport:
    """Enough of an asyncio transport for the engine: writes are collected."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closing = False
        # PERF: builtins, so that the fake costs about what uvloop's C transport methods cost
        # to call (a Python method here was about 1 µs of each request).
        self.write = self.out.append
        self.is_closing = bool  # bool() is False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True
        self.is_closing = lambda: True

    def abort(self) -> None:
        self.close()


def observability(trace: float | None, sink_url: str) -> dict:
    if trace is None:
        return {}
    return {"tracing": {"protocol": "http/protobuf", "endpoint": sink_url, "samplingRate": trace}}


def start_sink():
    """The OTLP sink in a process of its own; returns (process, url)."""
    import subprocess

    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from otlp_sink import OtlpSink; "
            "s = OtlpSink().start(); print(s.url, flush=True); time.sleep(3600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(Path(__file__).resolve().parent)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def build(cc: int, metrics: bool, obs: dict | None = None):
    from proxy.app import QueueProxy
    from proxy.config import from_environ

    env = {
        "CONTAINER_CONCURRENCY": str(cc), "QUEUE_SERVING_PORT": "0",
        "QUEUE_SERVING_TLS_PORT": "0", "USER_PORT": "1",
        "REVISION_TIMEOUT_SECONDS": "300", "SERVING_NAMESPACE": "n", "SERVING_CONFIGURATION": "c",
        "SERVING_REVISION": "r", "SERVING_POD": "p", "SERVING_POD_IP": "127.0.0.1",
        "SERVING_LOGGING_CONFIG": "", "SERVING_LOGGING_LEVEL": "info",
    }
    obs = dict(obs or {})
    if metrics:
        obs["requestMetrics"] = {"protocol": "prometheus"}
    if obs:
        env["OBSERVABILITY_CONFIG"] = json.dumps(obs)
    return QueueProxy(from_environ(env))


async def build_activator(cc: int, metrics: bool = False, obs: dict | None = None):
    from activator.activator.app import Activator

    collector: object = None
    if metrics:  # Knative's activator families, as ``python -m activator serve`` has them
        from activator.activator.metrics import ActivatorMetrics

        collector = ActivatorMetrics()
    from activator.activator.tracing import tracing_for

    act = Activator(stat_sink=lambda reports: None, metrics=collector,
                    tracing=tracing_for(obs, os.environ, "bench-activator"))
    act.set_revision("bench", "bench-00001", container_concurrency=cc)
    rev = act.revisions()[0]
    rev.backends.healthy.add("127.0.0.1:1")
    rev._healthy_changed(["127.0.0.1:1"])
    return act, rev.pools["127.0.0.1:1"]


ACTIVATOR_REQUEST = REQUEST.replace(
    b"\r\n\r\n",
    b"\r\nKnative-Serving-Namespace: bench\r\nKnative-Serving-Revision: bench-00001\r\n\r\n",
)


async def _queued(qp, first, first_t, ups, uts, request, requests, clients) -> float:
    """More clients than upstream slots (wrk's 50 connections at CC=10): each pass answers the
    requests on the busy upstream connections, whose slots go to requests that waited, and
    every client that got its answer sends its next request, which waits in turn."""
    conns, cts = [first], [first_t]
    for _ in range(clients - 1):
        conn = qp.server.protocol()
        ct = FakeTransport()
        conn.connection_made(ct)
        conns.append(conn)
        cts.append(ct)
    for conn in conns:
        conn.shares = True  # as after a first answer: any idle upstream connection will do
    for conn in conns:
        conn.data_received(request)
    await asyncio.sleep(0)
    done = 0
    t0 = time.process_time()
    while done < requests:
        for up in ups:
            if up.ex is not None:
                up.data_received(RESPONSE)
        await asyncio.sleep(0)  # the heads of the requests that got the freed slots go out
        for t in uts:
            t.out.clear()
        for conn, t in zip(conns, cts, strict=True):
            if t.out:  # answered: its next request
                t.out.clear()
                done += 1
                conn.data_received(request)
    if qp.tracing is not None:
        qp.tracing.force_flush()
    spent = time.process_time() - t0
    qp.close()
    return spent / done * 1e6


async def run(requests: int, cc: int, metrics: bool, activator: bool = False,
              batch: int = 1, obs: dict | None = None, clients: int = 0) -> float:
    from proxy.engine import UpstreamProtocol

    request = REQUEST
    if activator:
        qp, pool = await build_activator(cc, metrics, obs)
        request = ACTIVATOR_REQUEST
    else:
        qp = build(cc, metrics, obs)
        pool = qp.pool
    # ``batch`` client connections and as many upstream ones: a loop pass under load reads
    # several requests and several responses, then writes the responses out together.
    conns, cts, ups, uts = [], [], [], []
    for _ in range(batch):
        conn = qp.server.protocol()
        ct = FakeTransport()
        conn.connection_made(ct)
        conns.append(conn)
        cts.append(ct)
        up = UpstreamProtocol(pool)
        ut = FakeTransport()
        up.connection_made(ut)
        pool.release(up, None)
        ups.append(up)
        uts.append(ut)
    feeds_client = [c.data_received for c in conns]
    # one checked round trip first
    feeds_client[0](request)
    await asyncio.sleep(0)  # the head goes out at the end of the pass (UpstreamPool.uncork)
    busy = [u for u in ups if u.ex is not None]
    assert len(busy) == 1, busy
    out = uts[ups.index(busy[0])].out
    assert out and out[-1].startswith(b"GET / HTTP/1.1\r\n"), out
    busy[0].data_received(RESPONSE)
    await asyncio.sleep(0)
    answer = b"".join(cts[0].out)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"Hello World!\n"), answer
    if clients > batch:
        return await _queued(qp, conns[0], cts[0], ups, uts, request, requests, clients)
    requests -= requests % batch
    # The steady state of a loaded loop: each pass reads the answers to the heads the last
    # pass wrote and as many new requests, and ends writing the answers and the new heads
    # (an answer cannot come before the pass that writes its request has ended).
    for feed in feeds_client:
        feed(request)
    await asyncio.sleep(0)
    t0 = time.process_time()
    for _ in range(requests // batch):
        for up in ups:
            up.data_received(RESPONSE)  # every upstream connection carries one of them
        for feed in feeds_client:
            feed(request)
        await asyncio.sleep(0)  # a pass of the loop, its cost shared by the batch
        for t in cts:
            t.out.clear()
        for t in uts:
            t.out.clear()
    if qp.tracing is not None:
        qp.tracing.force_flush()  # every span exported (callgrind's count includes them)
    spent = time.process_time() - t0
    qp.close()
    return spent / requests * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--cc", type=int, default=10)
    p.add_argument("--metrics", action="store_true")
    p.add_argument("--activator", action="store_true", help="the activator, not the queue-proxy")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch", type=int, default=1,
                   help="requests a loop pass (connections; at most CC when CC > 0)")
    p.add_argument("--clients", type=int, default=0,
                   help="client connections, more than --batch (= CC, the upstream "
                        "connections): the rest wait for a slot, as wrk's 50 at CC=10")
    p.add_argument("--trace", type=float, default=None, metavar="RATE",
                   help="tracing on, at this samplingRate, to an OTLP sink process")
    a = p.parse_args()
    sink = None
    obs: dict = {}
    if a.trace is not None:
        sink, url = start_sink()
        obs = observability(a.trace, url)
    import _speedups

    try:  # the loop the servers run on: its time() is C, as in production
        import uvloop

        new_loop = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - depends on the machine
        new_loop = asyncio.new_event_loop
    runs = []
    for _ in range(a.repeat):
        loop = new_loop()
        try:
            runs.append(loop.run_until_complete(
                run(a.requests, a.cc, a.metrics, a.activator, a.batch, obs, a.clients)))
        finally:
            loop.close()
    if sink is not None:
        sink.kill()
    runs.sort()
    mode = "compiled" if _speedups.USING_EXTENSIONS else "pure"
    if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        mode = "pure"
    what = "activator" if a.activator else "queue-proxy"
    traced = "" if a.trace is None else f" trace={a.trace:g}"
    print(f"{what} {mode} cc={a.cc} metrics={a.metrics}{traced}: {runs[0]:.2f} µs/request "
          f"(min of {a.repeat}; median {runs[len(runs) // 2]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
