"""h2 by ALPN on the queue-proxy's TLS port: an HTTP/2 request over TLS goes on to an h2c app,
as Knative's auto transport sends it (``tests/proxy/test_tls.py`` has the rest of TLS)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from tlsutil import TLSClient, client_context, install, make_pair

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")


def test_h2_by_alpn(make_proxy: Any, h2app: Any, tmp_path: Path) -> None:
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import DataReceived, ResponseReceived, StreamEnded

    certs = tmp_path
    install(certs, make_pair(certs, "a"))
    proxy = make_proxy(certs_dir=str(certs), serving_tls_port=0, user_port=h2app.port)
    c = TLSClient(proxy.qp.ports["tls"], client_context(alpn=["h2", "http/1.1"]))
    try:
        assert c.sock.selected_alpn_protocol() == "h2"
        h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        h2.initiate_connection()
        h2.send_headers(1, [(b":method", b"GET"), (b":scheme", b"https"),
                            (b":authority", b"example.com"), (b":path", b"/echo")],
                        end_stream=True)
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
        assert status == 200, body
        assert h2app.requests and h2app.requests[-1]["path"] == "/echo"
    finally:
        c.close()
