"""``python -m activator status``: the runtime's state, as a table or JSON, read from a running
``python -m activator run`` (real processes: the runtime, its pods, the status command)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import REPO, request, wait_for

from activator.runtime.status import render

DOMAIN = "default.example.com"


class Runtime:
    def __init__(self, *files: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "activator", "run", *files, "--port", "0"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.port = wait_for(self._port, timeout=30, interval=0.02)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def _port(self) -> int | None:
        for line in self.lines:
            if "front door on http://" in line:
                return int(line.rsplit(":", 1)[1].strip("/ "))
        assert self.proc.poll() is None, "\n".join(self.lines)
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # Ctrl-C: the runtime stops its pods
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(5)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime("examples/hello.yaml", "examples/slow.yaml")
    yield rt
    rt.close()


def status(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "activator", "status", "--port", str(port),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=30)


def status_json(port: int) -> dict[str, Any]:
    out = status(port, "-o", "json")
    assert out.returncode == 0, out
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def service(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (svc,) = [s for s in doc["services"] if s["name"] == name]
    return svc


@pytest.mark.timeout(120)
def test_status_while_the_slow_example_scales(runtime: Runtime) -> None:
    doc = status_json(runtime.port)
    assert doc["frontDoor"] == f"http://127.0.0.1:{runtime.port}"
    hello, slow = service(doc, "hello"), service(doc, "slow")
    assert hello["url"] == f"http://hello.{DOMAIN}" and slow["url"] == f"http://slow.{DOMAIN}"
    assert hello["traffic"] == [{"revision": "hello-00001", "percent": 100, "tag": None,
                                 "latestRevision": True, "url": None}]
    assert [r["name"] for r in slow["revisions"]] == ["slow-00001"]
    assert slow["latestRevision"] == "slow-00001"

    # Load on slow (CC 1, 300 ms a request) from 6 clients: it scales up, and status shows it.
    stop = time.monotonic() + 40
    scaled = threading.Event()
    statuses: list[int] = []

    def client() -> None:
        while time.monotonic() < stop and not scaled.is_set():
            r = request(runtime.port, "GET", "/?sleep=300", headers=[("Host", f"slow.{DOMAIN}")])
            statuses.append(r.status)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(6)]
    for t in threads:
        t.start()
    seen: list[dict[str, Any]] = []

    def scaling() -> bool:
        rev = service(status_json(runtime.port), "slow")["revisions"][0]
        seen.append(rev)
        return rev["desiredPods"] >= 2 and rev["readyPods"] >= 1 and rev["stableValue"] > 0

    try:
        wait_for(scaling, timeout=40, interval=0.2)
        table = status(runtime.port)
        assert table.returncode == 0, table
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["SERVICE", "URL", "REVISION", "TRAFFIC", "TAGS", "READY",
                                    "DESIRED", "CONCURRENCY", "MODE"]
        row = next(line for line in lines if "slow-00001" in line)
        assert f"http://slow.{DOMAIN}" in row and "100%" in row, table.stdout
        watch = status(runtime.port, "--watch", "--count", "2", "--interval", "0.1")
        assert watch.returncode == 0 and watch.stdout.count("SERVICE") == 2, watch
    finally:
        scaled.set()
        for t in threads:
            t.join(10)
    assert statuses and set(statuses) == {200}, statuses
    print(f"\n[status] slow while scaling: {seen[-1]}")


def test_status_without_a_runtime_says_how_to_start_one() -> None:
    from support import free_port

    out = status(free_port())
    assert out.returncode == 1
    assert "no runtime answers on 127.0.0.1:" in out.stderr
    assert "python -m activator run SERVICE.yaml" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_table_shows_splits_tags_and_modes() -> None:
    def rev(name: str, **kw: Any) -> dict[str, Any]:
        return {"name": name, "readyPods": 1, "pods": 2, "desiredPods": 2, "metric": "concurrency",
                "stableValue": 1.5, "panicValue": 3.0, "mode": "stable",
                "activatorInPath": False, "failure": None, **kw}

    doc = {"frontDoor": "http://127.0.0.1:8080", "services": [{
        "namespace": "default", "name": "web", "url": "http://web.default.example.com",
        "latestRevision": "web-00002",
        "traffic": [{"revision": "web-00001", "percent": 80, "tag": "stable"},
                    {"revision": "web-00002", "percent": 20, "tag": None},
                    {"revision": "web-00002", "percent": 0, "tag": "next"}],
        "revisions": [rev("web-00001"), rev("web-00002", mode="panic", activatorInPath=True),
                      rev("web-00003", failure="app exited with code 3", metric="rps")]}]}
    lines = render(doc).splitlines()
    assert lines[1].split() == ["default/web", "http://web.default.example.com", "web-00001",
                                "80%", "stable", "1/2", "2", "1.5", "stable"]
    assert lines[2].split() == ["web-00002", "*", "20%", "next", "1/2", "2", "3", "(panic)",
                                "panic,", "activator"]
    assert lines[3].split() == ["web-00003", "-", "-", "1/2", "2", "1.5", "rps", "failing"]
    assert lines[-1].startswith("front door http://127.0.0.1:8080")
    assert os.linesep not in lines[-1]
