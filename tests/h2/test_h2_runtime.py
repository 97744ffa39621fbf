"""The local runtime over HTTP/2: its front door takes h2c; a Service whose port is named h2c is
served over h2c end to end (examples/grpc.yaml, a gRPC app probed with the gRPC health check,
from zero); an HTTP/1.1 Service gets HTTP/2 requests over HTTP/1.1, as Knative's ingress does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from support import REPO, wait_for


class Runtime:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "activator", "run", *args, "--port", "0"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []
        os.set_blocking(self.proc.stdout.fileno(), False)  # type: ignore[union-attr]

    def _read(self) -> None:
        chunk = self.proc.stdout.read()  # type: ignore[union-attr]
        if chunk:
            self.lines += chunk.decode(errors="replace").splitlines()

    def port(self) -> int:
        def find() -> int | None:
            self._read()
            for line in self.lines:
                if "activator: front door on http://" in line:
                    return int(line.rsplit(":", 1)[1].strip("/"))
            assert self.proc.poll() is None, "\n".join(self.lines)
            return None

        return wait_for(find, timeout=30, interval=0.02)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def runtime() -> Iterator[Any]:
    made: list[Runtime] = []

    def make(*args: str) -> Runtime:
        r = Runtime(*args)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.mark.timeout(90)
def test_grpc_service_from_zero(runtime: Any) -> None:
    rt = runtime("examples/grpc.yaml", "--allow-zero-initial-scale")
    port = rt.port()
    authority = "grpc-echo.default.example.com"
    with grpc.insecure_channel(f"127.0.0.1:{port}",
                               options=[("grpc.default_authority", authority)]) as ch:
        t0 = time.monotonic()
        # Held while the first pod starts and passes the gRPC readiness probe, then answered.
        answer = ch.unary_unary("/echo.Echo/Unary")(b"from zero", timeout=60)
        took = time.monotonic() - t0
        assert answer == b"from zero"
        stream = ch.unary_stream("/echo.Echo/ServerStream")(b"3:n", timeout=30)
        assert list(stream) == [b"n-0", b"n-1", b"n-2"]
    print(f"\n[grpc from zero] first call answered in {took:.2f} s")


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_http2_client_to_an_http11_service(runtime: Any) -> None:
    rt = runtime("examples/hello.yaml")
    port = rt.port()
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "--http2-prior-knowledge", "-i",
                        "-H", "Host: hello.default.example.com", f"http://127.0.0.1:{port}/"],
                       capture_output=True, text=True, timeout=40)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/2 200"), r.stdout
    assert r.stdout.endswith("Hello World!\n"), r.stdout
