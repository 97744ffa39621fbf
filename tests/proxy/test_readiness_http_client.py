"""The httpGet probe as Go's ``http.Client`` runs it in Knative's ``HTTPProbe``: redirects
followed (up to 10), a configured ``Host`` never written, HTTPS verified against the system's
roots (``SSL_CERT_FILE`` honoured, as Go honours it)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from pathlib import Path
from typing import Any

import pytest

from proxy.readiness import ReadinessProbe

STANDARD = {"periodSeconds": 1, "timeoutSeconds": 2}


class Redirector:
    """An app whose routes answer with a status and maybe a Location: ``routes[path] =
    (status, location)``; it records each request's head."""

    def __init__(self, routes: dict[str, tuple[int, str]]) -> None:
        self.routes = routes
        self.heads: list[str] = []
        self.port = 0
        self.server: Any = None

    async def start(self, ctx: ssl.SSLContext | None = None) -> Redirector:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0, ssl=ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = (await r.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()
            return
        self.heads.append(head)
        path = head.split(" ", 2)[1]
        status, location = self.routes.get(path, (404, ""))
        loc = f"Location: {location.format(port=self.port)}\r\n" if location else ""
        w.write(f"HTTP/1.1 {status} X\r\n{loc}Content-Length: 0\r\nConnection: close\r\n\r\n"
                .encode())
        await w.drain()
        w.close()

    def hosts(self) -> list[str]:
        return [line[6:] for h in self.heads for line in h.split("\r\n")
                if line.lower().startswith("host: ")]


async def probe(port: int, path: str, scheme: str = "HTTP",
                headers: list[tuple[str, str]] | None = None) -> bool:
    action: dict[str, Any] = {"port": port, "path": path, "scheme": scheme}
    if headers:
        action["httpHeaders"] = [{"name": n, "value": v} for n, v in headers]
    return await ReadinessProbe([{"httpGet": action, **STANDARD}]).probe()


def run(routes: dict[str, tuple[int, str]], path: str, **kw: Any) -> tuple[bool, Redirector]:
    async def main() -> tuple[bool, Redirector]:
        app = await Redirector(routes).start()
        try:
            return await asyncio.wait_for(probe(app.port, path, **kw), 10), app
        finally:
            app.server.close()

    return asyncio.run(main())


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_followed_to_its_answer(code: int) -> None:
    ok, app = run({"/a": (code, "/b"), "/b": (500, "")}, "/a")
    assert ok is False  # the final 500 decides (without following, the 3xx was "ready")
    assert [h.split(" ")[1] for h in app.heads] == ["/a", "/b"]
    ok, _ = run({"/a": (code, "http://127.0.0.1:{port}/b"), "/b": (200, "")}, "/a")
    assert ok is True


def test_a_3xx_without_location_is_the_answer() -> None:
    assert run({"/a": (302, "")}, "/a")[0] is True  # Go returns it as is: 200-399 is ready


def test_ten_redirects_are_followed_an_eleventh_fails() -> None:
    chain = {f"/{i}": (302, f"/{i + 1}") for i in range(10)}
    ok, app = run({**chain, "/10": (200, "")}, "/0")
    assert ok is True and len(app.heads) == 11
    ok, app = run({**chain, "/10": (302, "/11"), "/11": (200, "")}, "/0")
    assert ok is False and len(app.heads) == 11  # Go: "stopped after 10 redirects"


def test_a_configured_host_is_not_sent() -> None:
    ok, app = run({"/": (200, "")}, "/", headers=[("Host", "example.com"), ("X-A", "1")])
    assert ok is True
    assert app.hosts() == [f"127.0.0.1:{app.port}"]
    assert "X-A: 1" in app.heads[0]


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
def test_https_is_verified_against_the_system_roots(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tlsutil import install, make_pair

    install(tmp_path, make_pair(tmp_path, "app"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    async def main() -> tuple[bool, bool, bool]:
        app = await Redirector({"/": (200, "")}).start(ctx)
        try:
            plain = await probe(app.port, "/", "HTTP")  # TLS port, cleartext: no
            untrusted = await probe(app.port, "/", "HTTPS")  # self-signed: refused, as Go
            monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "tls.crt"))
            trusted = await probe(app.port, "/", "HTTPS")
            return plain, untrusted, trusted
        finally:
            app.server.close()

    assert asyncio.run(main()) == (False, False, True)
