"""The activator's Prometheus families against Knative's, scraped from a real process.

``python -m activator serve`` (its pod a ``python -m proxy`` process in front of the test app, its
autoscaler a websocket that closes after each handshake) gets requests of the kinds that give
each of Knative's label sets; its metrics port is scraped and each family's type, label-name
sets and bucket bounds are compared with the table taken from Knative's source
(tests/knative_metrics.py), exactly.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from knative_metrics import KNATIVE_ACTIVATOR, compare, scrape
from support import ActivatorProcess, App, LoopThread, QueueProxyPod, request, wait_for

# ---------------------------------------------------------------------------- activator


class ClosingAutoscaler:
    """Knative's autoscaler websocket, but every connection closes right after its handshake:
    the activator's stat sink connects (reachable) and loses it (an error), over and over."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        data = conn.recv(4096)
                        if not data:
                            break
                        head += data
                    m = re.search(rb"(?i)\r\nsec-websocket-key:[ \t]*(\S+)", head)
                    if m is None:
                        continue
                    accept = base64.b64encode(hashlib.sha1(m.group(1) + self.GUID).digest())
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept
                                 + b"\r\n\r\n")
                    self.accepted += 1
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopped = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def activator_setup(app_loop: LoopThread, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    app = App()
    app_loop.run(app.start())
    pod = QueueProxyPod(app.port)
    autoscaler = ClosingAutoscaler()
    act = None
    try:
        act = ActivatorProcess(tmp_path / "activator.log",
                               "--autoscaler-url", f"ws://127.0.0.1:{autoscaler.port}",
                               "--pod-name", "activator-parity")
        yield act, pod
    finally:
        if act is not None:
            act.stop()
        autoscaler.stop()
        pod.stop()
        app_loop.run(app.stop())


def test_activator_families_and_labels_are_knatives(activator_setup: tuple[Any, Any]) -> None:
    act, pod = activator_setup
    labels_ = {"serving.knative.dev/service": "hello",
               "serving.knative.dev/configuration": "hello"}
    act.put_revision("hello-00001", containerConcurrency=1, timeoutSeconds=1, labels=labels_)
    act.put_endpoints("hello-00001", ready=[pod.address])
    wait_for(lambda: act.status("hello-00001")["healthyPods"], timeout=10)
    svc = [("Host", "hello-00001.default.svc.cluster.local")]
    assert request(act.port, "GET", "/echo", svc).status == 200
    by_header = [("Host", "example.com:8080"), ("Knative-Serving-Namespace", "default"),
                 ("Knative-Serving-Revision", "hello-00001")]
    assert request(act.port, "POST", "/echo", by_header, body=b"abc").status == 200
    r = request(act.port, "GET", "/echo", [("Host", "nope.default.svc.cluster.local")])
    assert r.status == 404, r
    r = request(act.port, "GET", "/sleep?ms=3000", svc)  # the revision's 1 s timeout cuts it
    assert r.status == 504, r

    def complete() -> bool:
        names = scrape(act.metrics_port)
        return all(n in names for n in ("kn_revision_request_concurrency",
                                        "kn_activator_stats_conn_errors_total",
                                        "http_client_request_duration_seconds"))

    wait_for(complete, timeout=10)  # the 1 s report, the websocket's first loss
    compare(scrape(act.metrics_port), KNATIVE_ACTIVATOR)


def test_activator_metrics_port_off_and_taken(tmp_path: Path) -> None:
    """``--metrics-port -1``: no metrics port; a taken one: logged, the activator serves on
    (Knative's metrics server only prints its error)."""
    off = ActivatorProcess(tmp_path / "off.log", "--metrics-port", "-1")
    try:
        assert request(off.port, "GET", "/", [("User-Agent", "kube-probe/1")]).status == 200
    finally:
        off.stop()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        act = ActivatorProcess(tmp_path / "taken.log", "--metrics-port", str(port))
        try:
            assert request(act.port, "GET", "/", [("User-Agent", "kube-probe/1")]).status == 200
            wait_for(lambda: "metrics server error" in act.output(), timeout=5)
        finally:
            act.stop()


def test_client_labels_name_the_pods_tls_port_when_requests_go_over_tls() -> None:
    """System-internal TLS: Knative's activator sends to each pod's 8112 over https
    (useSecurePort), whatever port the endpoint names; its transport's labels say so."""
    from types import SimpleNamespace

    from activator.activator.metrics import ActivatorMetrics
    from proxy.metrics import PROXIED

    rev = SimpleNamespace(namespace="default", name="hello-00001",
                          spec=SimpleNamespace(service="hello", configuration="hello"))
    m = ActivatorMetrics()
    key = (b"GET", 200, b"hello-00001.default.svc.cluster.local", 0, rev, "[fd00::5]:8012",
           PROXIED)
    assert dict(m.labels_of(key)[1])["url_scheme"] == "http"
    m.pod_tls_port = 8112
    client = dict(m.labels_of(key)[1])
    assert (client["url_scheme"], client["server_address"], client["server_port"]) == \
        ("https", "fd00::5", "8112")
    assert client["kn_revision_name"] == "hello-00001" and client["kn_service_name"] == "hello"
