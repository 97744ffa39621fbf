"""h2 by ALPN on the queue-proxy's TLS port: an HTTP/2 request over TLS goes on to an h2c app,
as Knative's auto transport sends it (``tests/proxy/test_tls.py`` has the rest of TLS)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from tlsutil import TLSClient, client_context, install, make_ca_pair, make_pair

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


def h2_get(c: TLSClient, path: str, headers: list[tuple[bytes, bytes]] | None = None,
           ) -> tuple[int, bytes]:
    """One HTTP/2 GET on the TLS connection ``c`` (ALPN h2): (status, body)."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, ResponseReceived, StreamEnded

    h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    h2.initiate_connection()
    h2.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"),
                        (b":authority", b"example.com"), (b":path", path.encode()),
                        *(headers or [])], end_stream=True)
    c.sock.sendall(h2.data_to_send())
    status, body, ended = 0, b"", False
    deadline = time.monotonic() + 10
    while not ended:
        assert time.monotonic() < deadline, "no answer in time"
        for ev in h2.receive_data(c._recv()):
            if isinstance(ev, ResponseReceived):
                status = int(dict(ev.headers)[b":status"])
            elif isinstance(ev, DataReceived):
                body += ev.data
                h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                ended = True
        c.sock.sendall(h2.data_to_send())
    return status, body


def test_h2_by_alpn(make_proxy: Any, h2app: Any, tmp_path: Path) -> None:
    certs = tmp_path
    install(certs, make_pair(certs, "a"))
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0, user_port=h2app.port)
    c = TLSClient(proxy.qp.ports["tls"], client_context(alpn=["h2", "http/1.1"]))
    try:
        assert c.sock.selected_alpn_protocol() == "h2"
        status, body = h2_get(c, "/echo")
        assert status == 200, body
        assert h2app.requests and h2app.requests[-1]["path"] == "/echo"
    finally:
        c.close()


def test_h2_through_the_activator_over_tls_both_ways(make_proxy: Any, h2app: Any,
                                                     proxy_loop: Any, backend: str,
                                                     tmp_path: Path) -> None:
    """An HTTP/2 request over TLS to the activator goes to the pod's queue-proxy as h2 over TLS
    (ALPN), as Knative's activator with system-internal-tls, then as h2c to the app."""
    from activator.activator.app import Activator
    from activator.activator.tls import ActivatorTLS

    certs = tmp_path / "certs"
    certs.mkdir()
    for data, name in zip(make_ca_pair(tmp_path, "routing"), ("tls.crt", "tls.key", "ca.crt"),
                          strict=True):
        (certs / name).write_bytes(data)
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0, user_port=h2app.port)
    tls = ActivatorTLS(str(certs), pod_port=proxy.qp.ports["tls"], env={})

    async def build() -> Any:
        act = Activator(backend=backend, drain_timeout=0, tls=tls)
        await act.start("127.0.0.1", 0, None, None, tls_port=0)
        act.set_revision("default", "h2s-00001")
        act.set_endpoints("default", "h2s-00001", ready=[f"127.0.0.1:{proxy.port}"])
        return act

    act = proxy_loop.run(build())
    try:
        rev = proxy_loop.call(lambda: act.revision("default", "h2s-00001"))
        wait_for(lambda: proxy_loop.call(lambda: bool(rev.healthy)), timeout=10)
        c = TLSClient(act.ports["tls"], client_context(alpn=["h2"]))
        try:
            assert c.sock.selected_alpn_protocol() == "h2"
            status, body = h2_get(c, "/echo?tls2", [(b"knative-serving-namespace", b"default"),
                                                    (b"knative-serving-revision", b"h2s-00001")])
        finally:
            c.close()
        assert status == 200, body
        assert h2app.requests[-1]["path"] == "/echo?tls2"
        # the pod saw it on its TLS port, as HTTP/2
        assert proxy.call(lambda: sum(1 for h in proxy.qp.server.h2conns
                                      if h.conn.tls)) == 1
    finally:
        proxy_loop.call(act.close)
