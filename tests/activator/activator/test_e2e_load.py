"""The activator under load, end to end: the issue's done-when cases, kept as they were written.

Everything is real: ``python -m activator serve`` as a process driven only through its control
API, ``python -m proxy`` processes as the pods, the test's app (or the bundled sample app) behind
them, and asyncio clients with one connection per request, all on 127.0.0.1 and ephemeral ports.

1. 10 000 requests held for a revision at zero are all answered 200 once one pod appears, and
   the activator's RSS grows by less than 50 MiB while they wait.
2. 500 requests held at zero, then one pod with CC=1: all answered 200, never more than one at a
   time in the app.
3. A pod removed mid-traffic (endpoints changed, then its queue-proxy SIGTERMed and draining):
   every request sent is answered, and with 200.
4. Release latency: from the moment a pod's queue-proxy starts answering its probe with 200
   ``queue``, the first held request reaches the app within 25 ms (median of 20 tries).

Figures are printed (``pytest -s`` shows them) and repeated in the assertion messages.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from support import (
    PURE,
    REPO,
    ActivatorProcess,
    App,
    LoopThread,
    QueueProxyPod,
    Response,
    free_port,
    new_loop,
    request,
    rss_kib,
    send,
    wait_for,
)

NS = "default"
MIB = 1024

# --------------------------------------------------------------------------- processes


Pod = QueueProxyPod




@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    """Pods started by a test (append them); all killed and reaped at teardown."""
    started: list[Pod] = []
    yield started
    for p in started:
        p.stop()


@pytest.fixture
def activator_proc(tmp_path: Path) -> Iterator[Any]:
    """``activator_proc(*args)`` starts an activator process; killed and reaped at teardown."""
    started: list[ActivatorProcess] = []

    def start(*args: str) -> ActivatorProcess:
        a = ActivatorProcess(tmp_path / f"activator-{len(started)}.log", *args)
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()


@pytest.fixture
def own_app(app_loop: LoopThread) -> Iterator[Any]:
    """``own_app()`` starts another test App on the app loop; stopped at teardown."""
    started: list[App] = []

    def make() -> App:
        a = App()
        app_loop.run(a.start())
        started.append(a)
        return a

    yield make
    for a in started:
        app_loop.run(a.stop())


# --------------------------------------------------------------------------- asyncio client

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def raw_get(target: str, host: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def exchange(port: int, raw: bytes, connect: asyncio.Semaphore,
                   sent: list[int] | None = None) -> tuple[int, bytes]:
    """One request on its own connection -> (status, body); (0, reason) if it got no answer.

    ``connect`` paces connection attempts, so a burst does not overflow the listen backlog
    (the kernel then drops SYNs and the client waits a whole second to retry)."""
    try:
        async with connect:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        return 0, f"connect: {e!r}".encode()
    try:
        writer.write(raw)
        if sent is not None:
            sent[0] += 1
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        m = _LENGTH.search(head)
        body = await reader.readexactly(int(m.group(1))) if m else await reader.read()
        return status, body
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        return 0, f"no answer: {e!r}".encode()
    finally:
        writer.close()


def _ensure_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        try:  # only a privileged process may raise the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            return
        except (ValueError, OSError):
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need} file descriptors needed "
                        f"for the held requests, and it cannot be raised")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _counts(results: list[tuple[int, bytes]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for status, _ in results:
        out[status] = out.get(status, 0) + 1
    return out


def _first_failure(results: list[tuple[int, bytes]]) -> Any:
    return next(((s, b[:200]) for s, b in results if s != 200), None)


# --------------------------------------------------------------------------- 1. 10 000 at zero

HELD = 10_000


@pytest.mark.timeout(180)
def test_10000_held_at_zero_all_answered_and_rss_bounded(activator_proc: Any,
                                                         pods: list[Pod]) -> None:
    n = HELD
    # The test holds n client sockets, the activator n accepted ones (a child inherits the
    # raised soft limit), plus loops, pipes and listeners.
    _ensure_nofile(n + 1024)
    app_port = free_port()
    app_env = dict(os.environ, PORT=str(app_port))
    sample = subprocess.Popen([sys.executable, "-m", "proxy.sample_app"], env=app_env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _run_10000(n, app_port, activator_proc, pods)
    finally:
        sample.kill()
        sample.wait(10)


def _run_10000(n: int, app_port: int, activator_proc: Any, pods: list[Pod]) -> None:
    cc = 10
    act = activator_proc("--drain-timeout", "0")
    rss_cold = rss_kib(act.proc.pid)
    _warm_up(act)
    act.put_revision("held", containerConcurrency=cc)
    rss_before = rss_kib(act.proc.pid)
    raw = raw_get("/", f"held.{NS}.svc.cluster.local")
    loop = new_loop()
    figures: dict[str, Any] = {"n": n, "pure": PURE}

    async def run() -> list[tuple[int, bytes]]:
        connect = asyncio.Semaphore(256)
        sent = [0]
        t_send = time.monotonic()
        tasks = [asyncio.ensure_future(exchange(act.port, raw, connect, sent)) for _ in range(n)]
        await _wait_async(lambda: sent[0] == n or any(t.done() for t in tasks), 60)
        early = [t.result() for t in tasks if t.done()]
        assert not early, f"answered while no pod exists: {_counts(early)} {early[:3]}"
        waiting = await _wait_async_value(lambda: act.status("held")["waiting"] == n, 60)
        assert waiting
        figures["send_s"] = round(time.monotonic() - t_send, 2)
        figures["rss_waiting_kib"] = rss_kib(act.proc.pid)
        pod = Pod(app_port, cc=cc)
        pods.append(pod)
        t0 = time.monotonic()
        act.put_endpoints("held", ready=[pod.address])
        results = await asyncio.wait_for(asyncio.gather(*tasks), 120)
        figures["answer_all_s"] = round(time.monotonic() - t0, 2)
        return results

    try:
        results = loop.run_until_complete(run())
    finally:
        loop.close()
    growth = figures["rss_waiting_kib"] - rss_before
    figures["rss_before_mib"] = round(rss_before / MIB, 1)
    figures["rss_growth_from_cold_start_mib"] = round(
        (figures["rss_waiting_kib"] - rss_cold) / MIB, 2)
    figures["rss_growth_mib"] = round(growth / MIB, 2)
    figures["per_request_kib"] = round(growth / n, 2)
    print(f"\n10 000 held at zero: {figures}")
    counts = _counts(results)
    assert counts == {200: n}, f"{counts}, first failure {_first_failure(results)}; {figures}"
    assert all(body == b"Hello World!\n" for _, body in results), figures
    assert growth < 50 * MIB, f"RSS grew {growth / MIB:.1f} MiB while {n} waited; {figures}"


def _warm_up(act: ActivatorProcess) -> None:
    """One request through the path the 10 000 take (parsed, looked up, queued, then let go
    when its revision is removed), so that what is imported or built on first use is in the
    baseline and the growth measured is what waiting requests cost."""
    act.put_revision("warm-up")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(request, act.port, "GET", "/",
                           [("Host", f"warm-up.{NS}.svc.cluster.local")])
        wait_for(lambda: act.status("warm-up")["waiting"] == 1, timeout=10)
        assert act.control("DELETE", f"/revisions/{NS}/warm-up").status == 204
        assert held.result(timeout=10).status == 404


async def _wait_async(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


async def _wait_async_value(cond: Any, timeout: float) -> Any:
    """Like ``wait_for`` for a blocking ``cond`` (the control API), off the client's loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: wait_for(cond, timeout, 0.05))


# --------------------------------------------------------------------------- 2. CC=1


@pytest.mark.timeout(120)
def test_500_held_then_one_pod_with_cc1_one_at_a_time(activator_proc: Any, pods: list[Pod],
                                                      own_app: Any) -> None:
    n = 500
    _ensure_nofile(2 * n + 1024)
    app = own_app()
    act = activator_proc("--drain-timeout", "0")
    act.put_revision("single", containerConcurrency=1)
    raw = raw_get("/sleep?ms=2", f"single.{NS}.svc.cluster.local")
    in_flight: list[int] = []
    stop = threading.Event()

    def sample() -> None:  # what the activator says it lets run at once, while it drains
        while not stop.is_set():
            in_flight.append(act.status("single")["inFlight"])

    loop = new_loop()

    async def run() -> tuple[list[tuple[int, bytes]], float]:
        connect = asyncio.Semaphore(256)
        tasks = [asyncio.ensure_future(exchange(act.port, raw, connect)) for _ in range(n)]
        await _wait_async_value(lambda: act.status("single")["waiting"] == n, 30)
        assert not any(t.done() for t in tasks), "answered while no pod exists"
        pod = Pod(app.port, cc=1)
        pods.append(pod)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()
        act.put_endpoints("single", not_ready=[pod.address])
        try:
            results = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        finally:
            stop.set()
            sampler.join(5)
        return results, time.monotonic() - t0

    try:
        results, took = loop.run_until_complete(run())
    finally:
        loop.close()
    served = sum(1 for r in app.requests if r.path == "/sleep")
    figures = {"n": n, "answer_all_s": round(took, 2), "app_max_active": app.max_active,
               "app_requests": served, "activator_max_in_flight": max(in_flight, default=0),
               "samples": len(in_flight), "pure": PURE}
    print(f"\n500 held, one pod CC=1: {figures}")
    counts = _counts(results)
    assert counts == {200: n}, f"{counts}, first failure {_first_failure(results)}; {figures}"
    assert served == n, figures
    assert app.max_active == 1, figures
    assert max(in_flight, default=0) <= 1, figures


# --------------------------------------------------------------------------- 3. pod removed


@pytest.mark.timeout(120)
def test_pod_removed_mid_traffic_every_request_answered(activator_proc: Any, pods: list[Pod],
                                                       own_app: Any) -> None:
    cc, workers, total, removal_at = 10, 20, 1200, 300
    app_a, app_b = own_app(), own_app()
    # Pod A drains as Knative's do, with a quiet period (1 s here, Knative's 30 s): a request
    # the activator gave it just before the removal may still be on its way when SIGTERM comes
    # (with no quiet period at all, A closed that idle-looking connection under it: a 502 in
    # CI's loaded pure run).
    pod_a = Pod(app_a.port, cc=cc, QUEUE_DRAIN_QUIET_PERIOD="1")
    pod_b = Pod(app_b.port, cc=cc)
    pods += [pod_a, pod_b]
    act = activator_proc("--drain-timeout", "0")
    act.put_revision("two", containerConcurrency=cc)
    act.put_endpoints("two", ready=[pod_a.address, pod_b.address])
    wait_for(lambda: len(act.status("two")["healthyPods"]) == 2, timeout=10)
    raw = raw_get("/sleep?ms=20", f"two.{NS}.svc.cluster.local")
    sent = [0]
    results: list[tuple[int, bytes]] = []
    figures: dict[str, Any] = {"workers": workers, "total": total, "pure": PURE}

    def remove_a() -> None:
        # Requests are running on pod A (they must finish there) when it leaves the endpoints.
        wait_for(lambda: app_a.active > 0, timeout=5, interval=0.001)
        figures["running_on_a_at_removal"] = app_a.active
        figures["a_requests_before"] = len(app_a.requests)
        figures["b_requests_before"] = len(app_b.requests)
        act.put_endpoints("two", ready=[pod_b.address])
        pod_a.proc.send_signal(signal.SIGTERM)

    async def worker(connect: asyncio.Semaphore) -> None:
        while sent[0] < total:
            sent[0] += 1
            results.append(await exchange(act.port, raw, connect))

    async def run() -> None:
        connect = asyncio.Semaphore(workers)
        tasks = [asyncio.ensure_future(worker(connect)) for _ in range(workers)]
        await _wait_async(lambda: len(results) >= removal_at, 30)
        await asyncio.get_running_loop().run_in_executor(None, remove_a)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)

    loop = new_loop()
    t0 = time.monotonic()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    figures["took_s"] = round(time.monotonic() - t0, 2)
    figures["sent"], figures["answered"] = sent[0], len(results)
    figures["a_requests"], figures["b_requests"] = len(app_a.requests), len(app_b.requests)
    a_exit = pod_a.proc.wait(timeout=15)
    print(f"\npod removed mid-traffic: {figures}, statuses {_counts(results)}")
    assert sent[0] == len(results) == total, figures
    counts = _counts(results)
    assert counts == {200: total}, f"{counts}, first failure {_first_failure(results)}; {figures}"
    assert a_exit == 0, f"pod A's queue-proxy did not drain cleanly: exit {a_exit} {pod_a.tail!r}"
    assert figures["b_requests"] > figures["b_requests_before"], figures
    assert act.status("two")["healthyPods"] == [pod_b.address]


# --------------------------------------------------------------------------- 4. release latency

TRIES = 20
LATENCY_BUDGET = 0.025
PHASE_FIRST, PHASE_SPAN = 0.05, 0.35


class ReadinessApp:
    """The test App with a readiness path the test flips, and arrival times of held requests.

    ``/ready``: 200 when ready, else 503 (the queue-proxy's httpGet readiness probe asks it).
    ``/echo?try=N``: the arrival time of try N is recorded, then the App's /echo answers.
    """

    def __init__(self, app: App, app_loop: LoopThread) -> None:
        self.app = app
        self.app_loop = app_loop
        self.ready = False
        self.ready_at = 0.0
        self.arrived: dict[str, float] = {}

        async def hook(req: Any, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
            if req.path == "/ready":
                await send(w, 200 if self.ready else 503)
                return False  # the probe closes its connection
            if req.path == "/echo" and "try" in req.query:
                self.arrived.setdefault(req.query["try"], time.monotonic())
            return None

        app.hook = hook

    def set_ready(self, ready: bool) -> float:
        """Flips readiness on the app's loop; returns when it flipped (T0)."""

        def flip() -> float:
            self.ready = ready
            self.ready_at = time.monotonic()
            return self.ready_at

        return self.app_loop.call(flip)


def probe_queue(port: int, timeout: float) -> bool:
    """The activator's probe of a pod, sent by the test: True on 200 ``queue``."""
    try:
        r = request(port, "GET", "/healthz", headers=[
            ("Host", f"127.0.0.1:{port}"), ("K-Network-Probe", "queue"),
            ("User-Agent", "Knative-Activator-Probe")])
    except (OSError, EOFError):
        return False
    return r.status == 200 and r.body == b"queue"


class QueuePoller:
    """Probes a queue-proxy in a loop, as the activator does, and records when it first says
    200 ``queue`` (T_queue)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.ready_at = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = threading.Event()
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.sent += 1
            if probe_queue(self.port, 15):
                self.ready_at = time.monotonic()
                return
            time.sleep(0.0005)  # polling interval, not a correctness wait

    def close(self) -> None:
        self.stop.set()
        self.thread.join(15)


# Kubernetes probe JSON as Knative's queue-proxy gets it in SERVING_READINESS_PROBE. Without
# periodSeconds it is Knative's default "aggressive" mode: the queue-proxy holds a probe and
# retries the app every 50 ms; with periodSeconds each probe of the queue-proxy tries once.
PROBE_MODES = {
    "aggressive": {},
    "periodic": {"periodSeconds": 1, "timeoutSeconds": 1},
}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", list(PROBE_MODES))
def test_release_latency_from_queue_ready_to_app(activator_proc: Any, pods: list[Pod],
                                                 own_app: Any, app_loop: LoopThread,
                                                 mode: str) -> None:
    app = own_app()
    readiness = ReadinessApp(app, app_loop)
    probe = {"httpGet": {"path": "/ready", "port": app.port, "host": "127.0.0.1"},
             "successThreshold": 1, **PROBE_MODES[mode]}
    pod = Pod(app.port, cc=0, SERVING_READINESS_PROBE=json.dumps(probe))
    pods.append(pod)
    act = activator_proc("--drain-timeout", "0")
    from_queue: list[float] = []
    from_app: list[float] = []
    queue_after_app: list[float] = []
    with ThreadPoolExecutor(2) as pool:
        for i in range(TRIES):
            t_queue, t0, t1 = _one_release(act, pod, readiness, pool, i)
            from_queue.append(t1 - t_queue)
            from_app.append(t1 - t0)
            queue_after_app.append(t_queue - t0)
    ms = [round(x * 1000, 1) for x in from_queue]
    figures = {
        "mode": mode, "tries": TRIES, "pure": PURE,
        "median_T1_minus_Tqueue_ms": round(statistics.median(from_queue) * 1000, 2),
        "max_T1_minus_Tqueue_ms": round(max(from_queue) * 1000, 2),
        "median_T1_minus_T0_ms": round(statistics.median(from_app) * 1000, 2),
        "median_Tqueue_minus_T0_ms": round(
            statistics.median(queue_after_app) * 1000, 2),
    }
    print(f"\nrelease latency ({mode} readiness probe): {figures}\n  T1-Tqueue ms: {ms}")
    assert statistics.median(from_queue) < LATENCY_BUDGET, figures


def _one_release(act: ActivatorProcess, pod: Pod, readiness: ReadinessApp,
                 pool: ThreadPoolExecutor, i: int) -> tuple[float, float, float]:
    """One try: a held request, the pod not ready and probed; the app becomes ready at T0, the
    pod's queue-proxy answers 200 queue at T_queue, the request reaches the app at T1."""
    name = f"latency-{i}"
    act.put_revision(name)
    act.put_endpoints(name, not_ready=[pod.address])
    held: Future[Response] = pool.submit(
        request, act.port, "GET", f"/echo?try={i}",
        [("Host", f"{name}.{NS}.svc.cluster.local")])
    try:

        def holding() -> bool:
            s = act.status(name)
            return s["waiting"] == 1 and s["probing"] == [pod.address] and not s["healthyPods"]

        wait_for(holding, timeout=5)
        poller = QueuePoller(pod.port)
        try:
            wait_for(lambda: poller.sent > 0, timeout=5)
            # Not a correctness wait: it sets when T0 falls against the activator's probe
            # schedule (its interval grows from 2 to 20 ms, each probe has a 300 ms timeout),
            # from 50 to 400 ms after the pod was listed, so the tries sample every phase.
            time.sleep(PHASE_FIRST + PHASE_SPAN * i / TRIES)
            t0 = readiness.set_ready(True)
            r = held.result(timeout=10)
            assert r.status == 200, r
            wait_for(lambda: poller.ready_at, timeout=10)
        finally:
            poller.close()
        t1 = readiness.arrived[str(i)]
        return poller.ready_at, t0, t1
    finally:
        readiness.set_ready(False)
        act.control("DELETE", f"/revisions/{NS}/{name}")
        held.result(timeout=15)  # answered either way before the next try
