"""Locust users for the local runtime (``python -m activator run``): GET through its front door.

    locust -f bench/locustfile.py --headless -u 20 -r 20 -t 20s --host http://127.0.0.1:8080

``SERVICE_HOST`` is the Host header (default ``hello.default.example.com``) and ``SERVICE_PATH``
the path (default ``/``; ``/?sleep=200`` with examples/slow.yaml). ``bench/runtime_load.py`` runs
the whole thing: runtime, cold start, locust, progress, table, plot.

With ``RUNTIME_LOAD_REPORT=1`` (what ``runtime_load.py`` sets), every second's requests are
printed on stdout as one line, ``runtime-load {json}``: the wall-clock span of the window
(``from``, ``to``), each request's latency in ms (``ms``) and the errors by kind (``errors``);
the last window, cut short when the test stops, has ``"final": true``. Raw latencies rather
than percentiles, so that the reader can take percentiles over any span exactly.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task

HOST_HEADER = os.environ.get("SERVICE_HOST", "hello.default.example.com")
PATH = os.environ.get("SERVICE_PATH", "/")
REPORT = os.environ.get("RUNTIME_LOAD_REPORT") == "1"
PREFIX = "runtime-load "


class ServiceUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        with self.client.get(PATH, headers={"Host": HOST_HEADER}, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")


class _Window:
    """The requests of the current second (gevent runs one greenlet at a time: no lock)."""

    def __init__(self) -> None:
        self.start = time.time()
        self.ms: list[float] = []
        self.errors: Counter[str] = Counter()

    def flush(self, final: bool = False) -> None:
        now = time.time()
        line = {"from": round(self.start, 3), "to": round(now, 3),
                "ms": [round(m, 1) for m in self.ms], "errors": dict(self.errors)}
        if final:
            line["final"] = True
        print(PREFIX + json.dumps(line, separators=(",", ":")), flush=True)
        self.start, self.ms, self.errors = now, [], Counter()


_window = _Window()
_reporter: Any = None


def _report_every_second() -> None:
    next_at = time.monotonic() + 1.0
    while True:
        gevent.sleep(max(0.0, next_at - time.monotonic()))
        next_at += 1.0
        _window.flush()


@events.request.add_listener
def _on_request(response_time: float, exception: BaseException | None = None,
                **_: Any) -> None:
    if REPORT:
        _window.ms.append(response_time)
        if exception is not None:
            _window.errors[str(exception)[:80]] += 1


@events.test_start.add_listener
def _on_test_start(**_: Any) -> None:
    global _reporter
    if REPORT:
        _window.start, _window.ms, _window.errors = time.time(), [], Counter()
        _reporter = gevent.spawn(_report_every_second)


@events.test_stop.add_listener
def _on_test_stop(**_: Any) -> None:
    if REPORT and _reporter is not None:
        _reporter.kill()
        _window.flush(final=True)
