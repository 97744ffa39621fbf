"""1 GiB up and 1 GiB down through a real queue-proxy process: bodies stream, memory stays flat."""

from __future__ import annotations

import hashlib
import json

import pytest
from support import App, Client, LoopThread, knative_env, rss_kib, start_queue_proxy

GIB = 1 << 30
MIB = 1 << 20


@pytest.fixture(scope="module")
def upstream():
    lt = LoopThread(uv=False)
    app = App()
    lt.run(app.start())
    yield app
    lt.run(app.stop())
    lt.stop()


@pytest.fixture(scope="module")
def qp(upstream):
    env = knative_env(upstream.port, cc=10)
    proc = start_queue_proxy(env)
    proc.port = int(env["QUEUE_SERVING_PORT"])  # type: ignore[attr-defined]
    yield proc
    proc.kill()
    proc.wait(10)


@pytest.mark.timeout(240)
def test_1gib_upload_and_download_keep_rss_flat(upstream, qp):
    # Warm up: the first requests allocate the pool, parsers and buffers.
    with Client(qp.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
    before = rss_kib(qp.pid)
    peak = before

    block = bytes(range(256)) * 4096  # 1 MiB
    digest = hashlib.sha256()
    with Client(qp.port, timeout=60) as c:
        c.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % GIB)
        for i in range(GIB // MIB):
            c.send(block)
            digest.update(block)
            if i % 128 == 0:
                peak = max(peak, rss_kib(qp.pid))
        r = c.read_response()
    assert r.status == 200
    assert json.loads(r.body) == {"bytes": GIB, "sha256": digest.hexdigest()}

    with Client(qp.port, timeout=60) as c:
        c.send(b"GET /download?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % GIB)
        # Read the head, then the body in pieces, watching the proxy's memory as it flows.
        while b"\r\n\r\n" not in c.buf:
            assert c._fill()
        head, c.buf = c.buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Content-Length: %d" % GIB in head
        got = len(c.buf)
        c.buf = b""
        n = 0
        while got < GIB:
            data = c.sock.recv(4 * MIB)
            assert data, "connection closed mid-body"
            got += len(data)
            n += 1
            if n % 256 == 0:
                peak = max(peak, rss_kib(qp.pid))
        assert got == GIB
    peak = max(peak, rss_kib(qp.pid))
    growth_mib = (peak - before) / 1024
    print(f"rss growth {growth_mib:.1f} MiB")
    assert growth_mib < 32, f"RSS grew by {growth_mib:.1f} MiB (from {before} KiB)"
