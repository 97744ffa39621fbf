"""The queue-proxy's Prometheus families against Knative's, scraped from a real process.

``python -m proxy`` runs on 127.0.0.1 with free ports in front of the test app; requests of the
kinds that give each of Knative's label sets go through it; its ``/metrics`` is scraped and each
family's type, label-name sets and bucket bounds are compared with the table taken from
Knative's binary (tests/knative_metrics.py), exactly. Values are checked by
test_observability_e2e.py.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from knative_metrics import (
    KNATIVE_ACTIVATOR,
    KNATIVE_QUEUE_PROXY,
    QUEUE_PROXY_GO_ONLY,
    QUEUE_PROXY_NOT_OURS,
    compare,
    scrape,
)
from prometheus_client.parser import text_string_to_metric_families
from support import App, knative_env, request, start_queue_proxy, wait_for

PROMETHEUS = {"requestMetrics": {"protocol": "prometheus"}}


def test_tables_name_every_knative_family_once() -> None:
    """The tables hold Knative's names as its exporter writes them (a guard on the tables)."""
    for table in (KNATIVE_QUEUE_PROXY, KNATIVE_ACTIVATOR):
        for name, (kind, sets) in table.items():
            assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
            assert kind != "counter" or name.endswith("_total"), name
            assert sets and all(list(s) == sorted(s) for s in sets), name
    assert not any(QUEUE_PROXY_GO_ONLY.fullmatch(n) for n in KNATIVE_QUEUE_PROXY)


# ---------------------------------------------------------------------------- queue-proxy


@pytest.fixture
def queue_proxy(app: App) -> Iterator[dict[str, str]]:
    env = knative_env(
        app.port, cc=1, REVISION_TIMEOUT_SECONDS="1", SERVING_SERVICE="hello",
        OBSERVABILITY_CONFIG=json.dumps({"requestMetrics": {"protocol": "prometheus"}}),
        QUEUE_DRAIN_QUIET_PERIOD="0",
    )
    proc = start_queue_proxy(env)
    try:
        yield env
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_queue_proxy_families_and_labels_are_knatives(queue_proxy: dict[str, str]) -> None:
    port = int(queue_proxy["QUEUE_SERVING_PORT"])
    prom = int(queue_proxy["METRICS_PROMETHEUS_PORT"])
    host = [("Host", f"127.0.0.1:{port}")]
    assert request(port, "GET", "/echo", host).status == 200
    assert request(port, "POST", "/echo", [("Host", "example.com")], body=b"abc").status == 200
    assert request(port, "GET", "/echo", [*host, ("K-Network-Probe", "queue")]).status == 200
    r = request(port, "GET", "/sleep?ms=3000", host)  # the 1 s timeout cuts it
    assert (r.status, r.body) == (504, b"request timeout"), r
    wait_for(lambda: "http_client_request_duration_seconds" in scrape(prom), timeout=5)
    compare(scrape(prom), KNATIVE_QUEUE_PROXY, QUEUE_PROXY_GO_ONLY, QUEUE_PROXY_NOT_OURS)




# ---------------------------------------------------------------------------- label values


@pytest.mark.parametrize(("hostport", "want"), [
    ("example.com", ("example.com", -1)),
    ("example.com:8080", ("example.com", 8080)),
    ("example.com:", ("example.com", -1)),
    ("example.com:x", ("example.com", -1)),
    ("example.com:70000", ("example.com", -1)),
    ("[::1]", ("::1", -1)),
    ("[::1]:8080", ("::1", 8080)),
    ("[::1", ("", -1)),
    ("::1", ("", -1)),  # Go's net.SplitHostPort: too many colons
    ("", ("", -1)),
])
def test_split_host_port_is_otelhttps(hostport: str, want: tuple[str, int]) -> None:
    from proxy.metrics import split_host_port

    assert split_host_port(hostport) == want


def test_server_and_client_label_values_are_otelhttps() -> None:
    from proxy.metrics import FAILED, PROXIED, client_labels, method_label, server_labels

    assert [method_label(m) for m in (b"GET", b"get", b"PATCH", b"FOOBAR", b"")] == \
        ["GET", "GET", "PATCH", "_OTHER", "_OTHER"]
    plain = server_labels(b"GET", 200, b"example.com:80", 0)  # the scheme's port: no label
    assert "server_port" not in plain and plain["url_scheme"] == "http"
    assert server_labels(b"GET", 200, b"example.com:443", 0)["server_port"] == "443"
    tls = server_labels(b"GET", 200, b"example.com:443", 4)
    assert "server_port" not in tls and tls["url_scheme"] == "https"
    assert [server_labels(b"GET", 200, None, p)["network_protocol_version"]
            for p in (0, 1, 2, 6)] == ["1.1", "1.0", "2.0", "2.0"]
    assert server_labels(b"GET", 200, None, 0)["server_address"] == ""
    ok = client_labels(b"POST", 201, 0, "127.0.0.1:8080", PROXIED)
    assert (ok["server_address"], ok["server_port"], ok["http_response_status_code"]) == \
        ("127.0.0.1", "8080", "201")
    failed = client_labels(b"GET", 504, 0, "127.0.0.1:8080", FAILED)
    assert failed["error_type"] == "errors.errorString" and STATUS not in failed
    assert client_labels(b"GET", 502, 0, "127.0.0.1:80", FAILED) == {
        "error_type": "net.OpError", "http_request_method": "GET",
        "network_protocol_name": "http", "network_protocol_version": "1.1",
        "server_address": "127.0.0.1", "url_scheme": "http"}


STATUS = "http_response_status_code"


def test_keys_past_the_limit_go_to_the_overflow_series() -> None:
    from prometheus_client.exposition import generate_latest

    from proxy.metrics import RequestMetrics

    m = RequestMetrics(limit=3)
    for i in range(5):
        m.observe(b"GET", 200, 0.01, app_seconds=0.01, host=f"h{i}.example.com".encode())
    text = generate_latest(m.registry).decode()
    # two label sets of their own, then OpenTelemetry's overflow set (otel.metric.overflow)
    assert text.count('http_server_request_duration_seconds_count{') == 3
    assert ('http_server_request_duration_seconds_count{otel_metric_overflow="true",'
            'otel_scope_name="go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",'
            'otel_scope_schema_url="",otel_scope_version="0.69.0"} 3.0') in text


def test_queue_proxy_resource_is_knatives() -> None:
    from proxy.metrics import queue_proxy_resource

    r = queue_proxy_resource("ns", "", "conf", "rev-1", {"HOSTNAME": "pod-x"})
    assert (r["service.name"], r["k8s.pod.name"], r["service.instance.id"]) == \
        ("conf", "pod-x", "pod-x")
    assert "kn.service.name" not in r and r["kn.configuration.name"] == "conf"
    r = queue_proxy_resource("ns", "svc", "conf", "rev-1", {
        "POD_NAME": "p", "HOSTNAME": "h", "OTEL_SERVICE_NAME": "mine",
        "OTEL_RESOURCE_ATTRIBUTES": "team=a%20b,k8s.namespace.name=not-this"})
    assert (r["service.name"], r["k8s.pod.name"], r["team"]) == ("mine", "p", "a b")
    assert r["k8s.namespace.name"] == "ns"  # Knative's own attributes win over the env's


# ---------------------------------------------------------------------------- where it listens


def test_prometheus_address_follows_knatives_server() -> None:
    from proxy.config import ConfigError, from_environ

    obs = {"requestMetrics": {"protocol": "prometheus", "endpoint": "127.0.0.3:9095"}}
    env = knative_env(1, OBSERVABILITY_CONFIG=json.dumps(obs))
    del env["METRICS_PROMETHEUS_PORT"]
    cfg = from_environ(env)
    assert (cfg.prometheus_host, cfg.prometheus_port) == ("127.0.0.3", 9095)
    env.update(METRICS_PROMETHEUS_HOST="127.0.0.4", METRICS_PROMETHEUS_PORT="9096")
    cfg = from_environ(env)
    assert (cfg.prometheus_host, cfg.prometheus_port) == ("127.0.0.4", 9096)
    env["OBSERVABILITY_CONFIG"] = json.dumps({"requestMetrics": {
        "protocol": "prometheus", "endpoint": "no-port"}})
    with pytest.raises(ConfigError, match="metrics-endpoint"):
        from_environ(env)


def test_metrics_prometheus_host_is_honoured(app: App) -> None:
    env = knative_env(app.port, METRICS_PROMETHEUS_HOST="127.0.0.2",
                      OBSERVABILITY_CONFIG=json.dumps({"requestMetrics": {
                          "protocol": "prometheus"}}))
    proc = start_queue_proxy(env)
    try:
        port = int(env["METRICS_PROMETHEUS_PORT"])

        def answers(host: str) -> bool:
            try:
                socket.create_connection((host, port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for(lambda: answers("127.0.0.2"), timeout=10)
        assert not answers("127.0.0.1")
    finally:
        proc.kill()
        proc.communicate(timeout=10)


# ---------------------------------------------------------------------------- scheme, protocol


def _server_series(proxy: Any) -> list[dict[str, str]]:
    r = request(proxy.qp.ports["prometheus"], "GET", "/metrics")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    return [s.labels for s in fams["http_server_request_duration_seconds"].samples
            if s.name.endswith("_count")]


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
def test_tls_port_requests_are_https(make_proxy: Any, app: App, tmp_path: Path) -> None:
    from tlsutil import TLSClient, client_context, install, make_pair

    certs = tmp_path / "certs"
    certs.mkdir()
    install(certs, make_pair(certs, "a"))
    proxy = make_proxy(observability=PROMETHEUS, certs_dir=str(certs), serving_tls_port=0)
    c = TLSClient(proxy.qp.ports["tls"], client_context(alpn=["http/1.1"]))
    try:
        assert c.get("/echo")[0] == 200  # Host: example.com (the scheme's port: no label)
    finally:
        c.close()
    assert request(proxy.port, "GET", "/echo", [("Host", "example.com:443")]).status == 200
    got = sorted((s["url_scheme"], s.get("server_port", "")) for s in _server_series(proxy))
    assert got == [("http", "443"), ("https", "")]


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_http2_requests_are_version_2_0(make_proxy: Any, app: App) -> None:
    proxy = make_proxy(observability=PROMETHEUS)
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-o",
                        "/dev/null", f"http://127.0.0.1:{proxy.port}/echo"],
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: _server_series(proxy), timeout=5)
    assert [s["network_protocol_version"] for s in _server_series(proxy)] == ["2.0"]
