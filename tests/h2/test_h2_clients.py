"""curl and nghttp, over h2c, through the queue-proxy and the activator to an h2c app; h2c
upgrade as Go's h2c handler does it; HTTP/1.1 on the same port as before."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
from typing import Any

import pytest

from proxy.engine.h2 import PREFACE

pytestmark = pytest.mark.skipif(
    not shutil.which("curl") or not shutil.which("nghttp"),
    reason="needs curl and nghttp (apt-get install curl nghttp2-client; .ci/run does)",
)


def curl(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          input=stdin.decode() if stdin is not None else None, text=True,
                          timeout=20)


@pytest.fixture
def h2front(request: Any, h2app: Any, proxy_loop: Any, backend: str) -> Any:
    from h2_app import start_front

    f = start_front(request.param, proxy_loop, h2app.port, backend)
    yield f
    f.close()


both = pytest.mark.parametrize("h2front", ["queue-proxy", "activator"], indirect=True)


@both
def test_curl_prior_knowledge(h2front: Any, h2app: Any) -> None:
    r = curl("--http2-prior-knowledge", "-i", *h2front.curl_headers(),
             f"http://127.0.0.1:{h2front.port}/path?q=1")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n\n")
    assert head.startswith("HTTP/2 200")
    seen = json.loads(body)
    assert seen["method"] == "GET" and seen["path"] == "/path?q=1"
    assert seen["http2"] is True  # the next hop is h2c too


@both
def test_curl_upload_and_trailers(h2front: Any, h2app: Any) -> None:
    body = b"x" * 200_000
    r = curl("--http2-prior-knowledge", *h2front.curl_headers(), "--data-binary", "@-",
             f"http://127.0.0.1:{h2front.port}/trailers", stdin=body)
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["method"] == "POST" and seen["body_len"] == 200_000
    assert seen["sha256"] == hashlib.sha256(body).hexdigest()


@both
def test_curl_h2c_upgrade(h2front: Any) -> None:
    r = curl("--http2", "-i", *h2front.curl_headers(), f"http://127.0.0.1:{h2front.port}/up")
    assert r.returncode == 0, r.stderr
    assert "HTTP/1.1 101 Switching Protocols" in r.stdout
    assert "HTTP/2 200" in r.stdout
    seen = json.loads(r.stdout.rpartition("\n\n")[2])
    assert seen["path"] == "/up" and seen["http2"] is True


@both
def test_nghttp_many_streams(h2front: Any) -> None:
    headers = []
    for h in h2front.curl_headers()[1::2]:
        headers += ["-H", h]
    urls = [f"http://127.0.0.1:{h2front.port}/s{i}" for i in range(20)]
    r = subprocess.run(["nghttp", "-n", "-s", *headers, *urls], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    table = r.stdout.split("request path\n", 1)[1].splitlines()
    codes = sorted((row.split()[-1], row.split()[4]) for row in table if row.strip())
    assert codes == sorted((f"/s{i}", "200") for i in range(20))


@both
def test_http11_on_the_same_port(h2front: Any) -> None:
    r = curl("--http1.1", "-i", *h2front.curl_headers(), f"http://127.0.0.1:{h2front.port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 ")


def test_upgrade_with_a_bad_settings_header_gets_500(proxy: Any) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  b"Upgrade: h2c\r\nHTTP2-Settings: !!!\r\n\r\n")
        data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("cuts", [(3,), (5, 14), (13, 20)])
def test_preface_in_pieces_is_still_http2(proxy: Any, cuts: tuple[int, ...]) -> None:
    """However the preface is split across reads, the connection is HTTP/2: the server's
    SETTINGS frame (type 4 on stream 0) comes back."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = 0
        for cut in (*cuts, len(PREFACE)):
            s.sendall(PREFACE[start:cut])
            start = cut
        data = b""
        while len(data) < 9:
            chunk = s.recv(4096)
            assert chunk, "closed before any frame"
            data += chunk
    assert data[3] == 4 and data[5:9] == b"\0\0\0\0", data[:20]
