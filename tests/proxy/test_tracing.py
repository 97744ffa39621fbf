"""Tracing end to end: Knative's spans, exported over OTLP to a collector stand-in.

Each row was first run against Knative's own queue-proxy binary (knative/serving 98e5ef90) with
the same stand-in (``tests/otlp.py``): span names, kinds, scopes, parent/child links, the app's
``traceparent``, which requests are filtered, what the samplers do.

The queue-proxy runs in a loop thread (``make_proxy``) or as a process (stdout, drain); the
batch processor exports every 20 ms (``OTEL_BSP_SCHEDULE_DELAY``) so waits are short, and a
"nothing was exported" check first flushes the provider.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from otlp import (  # noqa: F401  (the fixtures otlp and otel_env)
    CLIENT,
    HTTP_SCOPE,
    INTERNAL,
    OTEL_VARS,
    PARENT_ID,
    SERVER,
    TRACE_ID,
    OtlpGrpc,
    OtlpHttp,
    otel_env_fixture,
    otlp_fixture,
    traceparent,
)
from support import Client, Gate, knative_env, request, start_queue_proxy, wait_for

from proxy.config import ConfigError, from_environ
from proxy.tracing import TracingSettings, settings_from

HEALTH = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]
QUEUE_SCOPE = "knative.dev/serving/pkg/queue"


@pytest.fixture
def make_traced(otlp: OtlpHttp, otel_env: None, make_proxy: Any) -> Any:
    """``make_traced(rate, cc)``: a queue-proxy tracing to ``otlp`` over http/protobuf."""

    def make(rate: float = 1.0, cc: int = 1, protocol: str = "http/protobuf",
             endpoint: str | None = None, **overrides: Any) -> Any:
        tracing = {"protocol": protocol, "endpoint": otlp.url if endpoint is None else endpoint,
                   "samplingRate": rate}
        return make_proxy(container_concurrency=cc, observability={"tracing": tracing},
                          namespace="default", service="hello", configuration="hello",
                          revision="hello-00001", **overrides)

    return make


def seen_traceparent(app: Any) -> list[str]:
    """The app's last request's traceparent, split: version, trace id, parent id, flags."""
    value = app.requests[-1].header("traceparent")
    assert value is not None, app.requests[-1].headers
    assert len(app.requests[-1].header_all("traceparent")) == 1
    return value.split("-")


def flush(proxy: Any) -> None:
    """Everything ended so far is exported: the loop first finishes what it is doing (a client
    can read its answer before the callback that wrote it has ended the spans), then the
    provider exports from this thread (the loop keeps serving)."""
    proxy.call(lambda: None)
    assert proxy.qp.tracing.force_flush(5.0)


# ---------------------------------------------------------------------------- the spans


def test_spans_parent_child_and_the_apps_traceparent(make_traced: Any, app: Any,
                                                     otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=1.0, cc=1)
    r = request(proxy.port, "GET", "/echo?x=1", [
        ("traceparent", traceparent()), ("tracestate", "vendor=1"), ("baggage", "k=v"),
        ("User-Agent", "curl/8"), ("X-Forwarded-For", "1.2.3.4, 5.6.7.8"),
    ])
    assert r.status == 200, r
    spans = otlp.wait(4)
    assert len(spans) == 4, spans
    t = otlp.trace(TRACE_ID)
    server, proxy_span = t["GET"], t["kn.queueproxy.proxy"]
    wait, client = t["kn.queueproxy.wait"], t["HTTP GET"]
    # Knative's tree: server <- proxy <- wait <- client, the server under the caller's span.
    assert server["parent"] == PARENT_ID
    assert proxy_span["parent"] == server["span"]
    assert wait["parent"] == proxy_span["span"]
    assert client["parent"] == wait["span"]
    assert [server["kind"], proxy_span["kind"], wait["kind"], client["kind"]] == \
        [SERVER, INTERNAL, INTERNAL, CLIENT]
    assert server["scope"] == client["scope"] == HTTP_SCOPE
    assert proxy_span["scope"] == wait["scope"] == QUEUE_SCOPE
    assert {s["tracestate"] for s in spans} == {"vendor=1"}
    # The app sees the client span as its parent, the caller's tracestate, and the baggage.
    version, trace_id, parent_id, flags = seen_traceparent(app)
    assert (version, trace_id, parent_id, flags) == ("00", TRACE_ID, client["span"], "01")
    assert app.requests[-1].header("tracestate") == "vendor=1"
    assert app.requests[-1].header("baggage") == "k=v"
    # Nesting in time: the wait ends before the client span starts; all end by the server's.
    assert server["start"] <= proxy_span["start"] <= wait["start"] <= wait["end"]
    assert wait["end"] <= client["start"] <= client["end"] <= proxy_span["end"] <= server["end"]
    # otelhttp's attributes, as Knative's binary sends them.
    sa = server["attrs"]
    assert sa["http.request.method"] == "GET" and sa["url.scheme"] == "http"
    assert sa["server.address"] == "example.com" and "server.port" not in sa
    assert sa["network.peer.address"] == "127.0.0.1" and sa["network.peer.port"] > 0
    assert sa["user_agent.original"] == "curl/8"
    assert sa["client.address"] == "1.2.3.4"
    assert sa["url.path"] == "/echo" and sa["network.protocol.version"] == "1.1"
    assert sa["kn.route.tag"] == "kn:disabled"
    assert sa["http.response.status_code"] == 200 and sa["http.response.body.size"] == len(r.body)
    assert not server["error"]
    ca = client["attrs"]
    assert ca == {
        "http.request.method": "GET", "url.full": f"http://127.0.0.1:{app.port}/echo?x=1",
        "server.address": "127.0.0.1", "server.port": app.port,
        "network.protocol.version": "1.1", "http.response.status_code": 200,
    }
    assert proxy_span["attrs"] == wait["attrs"] == {}
    res = otlp.resource
    assert res["service.name"] == "hello" and res["container.name"] == "queue-proxy"
    assert res["k8s.namespace.name"] == "default" and res["kn.revision.name"] == "hello-00001"
    assert otlp.posts[0] == ("/v1/traces", "application/x-protobuf")


def test_a_new_trace_without_traceparent_and_no_wait_span_without_breaker(
        make_traced: Any, app: Any, otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=1.0, cc=0)
    r = request(proxy.port, "POST", "/echo", [("Host", "hello.default.example.com:8080")],
                body=b"hello")
    assert r.status == 200, r
    spans = otlp.wait(3)
    assert len(spans) == 3 and not otlp.named("kn.queueproxy.wait"), spans
    server = otlp.named("POST")[0]
    client = otlp.named("HTTP POST")[0]
    assert server["parent"] == ""  # a root
    assert client["parent"] == otlp.named("kn.queueproxy.proxy")[0]["span"]
    assert server["attrs"]["server.address"] == "hello.default.example.com"
    assert server["attrs"]["server.port"] == 8080
    assert server["attrs"]["http.request.body.size"] == 5
    _, trace_id, parent_id, flags = seen_traceparent(app)
    assert (trace_id, parent_id, flags) == (server["trace"], client["span"], "01")


def test_the_wait_span_covers_the_time_in_the_breakers_queue(make_traced: Any, app: Any,
                                                             gate: Gate, otlp: OtlpHttp,
                                                             clients: list) -> None:
    proxy = make_traced(rate=1.0, cc=1)
    first = Client(proxy.port)
    clients.append(first)
    first.send(b"GET /gate HTTP/1.1\r\nHost: a\r\nUser-Agent: first\r\n\r\n")
    wait_for(lambda: gate.held == 1)
    second = Client(proxy.port)
    clients.append(second)
    second.send(b"GET /echo HTTP/1.1\r\nHost: a\r\nUser-Agent: second\r\n\r\n")
    wait_for(lambda: proxy.call(lambda: proxy.qp.handler.breaker.in_flight) == 2)
    opened = time.time_ns()  # the span clock: the second request is queued, and waits on
    gate.open()
    assert first.read_response().status == 200
    assert second.read_response().status == 200
    otlp.wait(8)
    by_ua = {s["attrs"]["user_agent.original"]: s for s in otlp.named("GET")}
    t = otlp.trace(by_ua["second"]["trace"])
    wait, client = t["kn.queueproxy.wait"], t["HTTP GET"]
    # Queued until the first request's answer freed the slot; then the client span starts.
    assert wait["start"] < opened < wait["end"] <= client["start"]
    assert otlp.trace(by_ua["first"]["trace"])["kn.queueproxy.wait"]["end"] < opened


def test_queue_full_ends_the_wait_span_with_503_and_no_client_span(
        make_traced: Any, app: Any, gate: Gate, otlp: OtlpHttp, clients: list) -> None:
    proxy = make_traced(rate=1.0, cc=1)  # one slot, ten waiters
    for i in range(11):
        c = Client(proxy.port)
        clients.append(c)
        c.send(f"GET /gate HTTP/1.1\r\nHost: a\r\nUser-Agent: held-{i}\r\n\r\n".encode())
    wait_for(lambda: proxy.call(lambda: proxy.qp.handler.breaker.in_flight) == 11)
    r = request(proxy.port, "GET", "/echo", [("User-Agent", "rejected")])
    assert r.status == 503 and r.body == b"pending request queue full\n", r
    flush(proxy)
    server = [s for s in otlp.named("GET") if s["attrs"]["user_agent.original"] == "rejected"][0]
    t = otlp.trace(server["trace"])
    assert set(t) == {"GET", "kn.queueproxy.proxy", "kn.queueproxy.wait"}
    assert server["error"] and server["attrs"]["http.response.status_code"] == 503
    gate.open()
    for c in clients:
        assert c.read_response().status == 200


def test_errors_set_the_span_status_as_otelhttp(make_traced: Any, app: Any,
                                                otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=1.0, cc=0)
    assert request(proxy.port, "GET", "/status?code=500").status == 500
    assert request(proxy.port, "GET", "/status?code=404").status == 404
    otlp.wait(6)
    servers = {s["attrs"]["http.response.status_code"]: s for s in otlp.named("GET")}
    clients = {s["attrs"]["http.response.status_code"]: s for s in otlp.named("HTTP GET")}
    assert servers[500]["error"] and not servers[404]["error"]  # the server: 5xx only
    assert clients[500]["error"] and clients[404]["error"]  # the client: 4xx too
    assert clients[404]["attrs"]["error.type"] == "404"


def test_an_extension_method_is_http_and_other(make_traced: Any, app: Any,
                                               otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=1.0, cc=0)
    assert request(proxy.port, "FOOBAR", "/echo").status == 200
    otlp.wait(3)
    server, client = otlp.named("HTTP")[0], otlp.named("HTTP FOOBAR")[0]
    for span in (server, client):
        assert span["attrs"]["http.request.method"] == "_OTHER"
        assert span["attrs"]["http.request.method_original"] == "FOOBAR"


# ---------------------------------------------------------------------------- what is not traced


def test_probes_are_not_traced(make_traced: Any, app: Any, otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=1.0, cc=1)
    assert request(proxy.port, "GET", "/", HEALTH).status == 200
    r = request(proxy.port, "GET", "/", [("K-Network-Probe", "probe"), ("K-Network-Hash", "h")])
    assert r.status == 200
    # A K-Kubelet-Probe goes to the app, its traceparent as it came (Knative would replace it
    # with a root client span's: see proxy.queue_tracing).
    tp = traceparent(flags="01")
    assert request(proxy.port, "GET", "/echo", [("K-Kubelet-Probe", "1"),
                                                ("traceparent", tp)]).status == 200
    assert app.requests[-1].header("traceparent") == tp
    flush(proxy)
    assert otlp.spans == []
    # A health check's User-Agent without the probe header is answered 400, and traced
    # (Knative's filter is the probe header): a server span only, no route tag.
    r = request(proxy.port, "GET", "/", [("User-Agent", "Knative-Activator-Probe")])
    assert r.status == 400
    flush(proxy)
    assert [s["name"] for s in otlp.spans] == ["GET"]
    assert "kn.route.tag" not in otlp.spans[0]["attrs"]
    assert otlp.spans[0]["attrs"]["http.response.status_code"] == 400


def test_sampling_rate_zero_exports_nothing(make_traced: Any, app: Any,
                                            otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=0.0, cc=1)
    # Knative's NeverSample: not even a sampled parent's request is traced ...
    assert request(proxy.port, "GET", "/echo", [("traceparent", traceparent())]).status == 200
    _, trace_id, parent_id, flags = seen_traceparent(app)
    # ... but the app's traceparent is still rewritten: same trace, a new span id, unsampled.
    assert (trace_id, flags) == (TRACE_ID, "00") and parent_id != PARENT_ID
    assert request(proxy.port, "GET", "/echo").status == 200
    _, trace_id, _, flags = seen_traceparent(app)
    assert trace_id != TRACE_ID and flags == "00"
    flush(proxy)
    assert otlp.spans == []


def test_a_ratio_follows_a_sampled_or_unsampled_parent(make_traced: Any, app: Any,
                                                       otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=0.1, cc=1)  # ParentBased(TraceIDRatioBased(0.1))
    unsampled = "0" * 31 + "1"
    assert request(proxy.port, "GET", "/echo",
                   [("traceparent", traceparent(unsampled, flags="00"))]).status == 200
    assert seen_traceparent(app)[1:4:2] == [unsampled, "00"]
    assert request(proxy.port, "GET", "/echo", [("traceparent", traceparent())]).status == 200
    assert seen_traceparent(app)[3] == "01"
    otlp.wait(4)
    flush(proxy)
    assert {s["trace"] for s in otlp.spans} == {TRACE_ID} and len(otlp.spans) == 4


def test_rate_one_samples_even_under_an_unsampled_parent(make_traced: Any, app: Any,
                                                         otlp: OtlpHttp) -> None:
    proxy = make_traced(rate=1.0, cc=0)  # Knative's AlwaysSample: the parent is not asked
    assert request(proxy.port, "GET", "/echo",
                   [("traceparent", traceparent(flags="00"))]).status == 200
    assert seen_traceparent(app)[3] == "01"
    assert len(otlp.wait(3)) == 3


def test_tracing_off_passes_the_traceparent_through(make_proxy: Any, app: Any) -> None:
    from proxy.queue_proxy import QueueProxyHandler

    proxy = make_proxy(observability={"tracing": {"protocol": "none", "samplingRate": 1}})
    assert type(proxy.qp.handler) is QueueProxyHandler and proxy.qp.tracing is None
    tp = traceparent()
    assert request(proxy.port, "GET", "/echo", [("traceparent", tp),
                                                ("tracestate", "a=b")]).status == 200
    assert app.requests[-1].header("traceparent") == tp
    assert app.requests[-1].header("tracestate") == "a=b"


# ---------------------------------------------------------------------------- other transports


def test_grpc_protocol(otel_env: None, make_proxy: Any, app: Any) -> None:
    pytest.importorskip("grpc")
    collector = OtlpGrpc()
    try:
        proxy = make_proxy(container_concurrency=1, observability={"tracing": {
            "protocol": "grpc", "endpoint": collector.url, "samplingRate": 1}})
        assert request(proxy.port, "GET", "/echo").status == 200
        spans = collector.wait(4)
        assert {s["name"] for s in spans} == {"GET", "kn.queueproxy.proxy",
                                              "kn.queueproxy.wait", "HTTP GET"}
    finally:
        collector.close()


def test_http2_stream_is_traced(make_traced: Any, otlp: OtlpHttp, proxy_loop: Any,
                                app_loop: Any, backend: str) -> None:
    import shutil

    if not shutil.which("curl"):
        pytest.skip("needs curl")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "h2"))
    from h2_app import H2App, start_front

    h2app = H2App(app_loop)
    front = start_front("queue-proxy", proxy_loop, h2app.port, backend, observability={
        "tracing": {"protocol": "http/protobuf", "endpoint": otlp.url, "samplingRate": 1}})
    try:
        out = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-H",
             f"traceparent: {traceparent()}", f"http://127.0.0.1:{front.port}/h2path"],
            capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        seen = dict(json.loads(out.stdout)["headers"])
        otlp.wait(3)
        t = otlp.trace(TRACE_ID)
        assert t["GET"]["attrs"]["network.protocol.version"] == "2.0"
        assert seen["traceparent"] == f"00-{TRACE_ID}-{t['HTTP GET']['span']}-01"
    finally:
        front.close()
        h2app.stop()


def _process_env(**extra: Any) -> dict[str, str]:
    env = knative_env(0, cc=1, QUEUE_DRAIN_QUIET_PERIOD="0", **extra)
    for var in OTEL_VARS:
        if var not in extra:
            env.pop(var, None)
    return env


def test_stdout_protocol_prints_the_spans_flushed_on_drain(app: Any) -> None:
    # Knative's stdout exporter samples everything whatever the rate; the batch delay is
    # longer than the test: the spans come out when the drain flushes them.
    env = _process_env(OBSERVABILITY_CONFIG=json.dumps(
        {"tracing": {"protocol": "stdout", "samplingRate": 0}}), OTEL_BSP_SCHEDULE_DELAY="600000")
    env["USER_PORT"] = str(app.port)
    proc = start_queue_proxy(env)
    try:
        assert request(int(env["QUEUE_SERVING_PORT"]), "GET", "/echo").status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    text = out.decode()
    for name in ("GET", "kn.queueproxy.proxy", "kn.queueproxy.wait", "HTTP GET"):
        assert f'"name": "{name}"' in text, text


def test_process_flushes_over_otlp_on_drain(app: Any, otlp: OtlpHttp) -> None:
    env = _process_env(OBSERVABILITY_CONFIG=json.dumps({"tracing": {
        "protocol": "http/protobuf", "endpoint": otlp.url, "samplingRate": 1}}),
        OTEL_BSP_SCHEDULE_DELAY="600000", POD_NAME="hello-pod")
    env["USER_PORT"] = str(app.port)
    proc = start_queue_proxy(env)
    try:
        assert request(int(env["QUEUE_SERVING_PORT"]), "GET", "/echo").status == 200
        assert otlp.spans == []  # batched, not yet exported
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert len(otlp.spans) == 4
    assert otlp.resource["k8s.pod.name"] == otlp.resource["service.instance.id"] == "hello-pod"


def test_tracing_off_imports_no_opentelemetry(app: Any) -> None:
    code = (
        "import asyncio, sys\n"
        "from proxy.app import QueueProxy\n"
        "from proxy.config import Config\n"
        "async def main():\n"
        "    qp = QueueProxy(Config(bind_host='127.0.0.1', serving_port=0, admin_port=0,\n"
        "        metrics_port=0, prometheus_port=0, user_port=1, container_concurrency=1,\n"
        "        observability={'tracing': {'protocol': 'none'}}))\n"
        "    qp.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parent.parent.parent,
                         env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(("tracing", "env", "kind"), [
    ({"protocol": "stdout", "samplingRate": 0}, {}, "always_on"),
    ({"protocol": "grpc", "samplingRate": 1}, {}, "always_on"),
    ({"protocol": "grpc", "samplingRate": 1.5}, {}, "always_on"),
    ({"protocol": "grpc", "samplingRate": 0}, {}, "always_off"),
    ({"protocol": "grpc", "samplingRate": -1}, {}, "always_off"),
    ({"protocol": "grpc"}, {}, "always_off"),
    ({"protocol": "grpc", "samplingRate": 0.1}, {}, "parentbased_traceidratio"),
    # OTEL_TRACES_SAMPLER_ARG counts only for "1 or more" (Knative's sampleFor) ...
    ({"protocol": "grpc", "samplingRate": 0.1}, {"OTEL_TRACES_SAMPLER_ARG": "1"}, "always_on"),
    ({"protocol": "grpc", "samplingRate": 0}, {"OTEL_TRACES_SAMPLER_ARG": "0.5"}, "always_off"),
    ({"protocol": "grpc", "samplingRate": 0.1}, {"OTEL_TRACES_SAMPLER_ARG": "0.5"},
     "parentbased_traceidratio"),
    # ... and OTEL_TRACES_SAMPLER leaves the choice to the SDK.
    ({"protocol": "grpc", "samplingRate": 1}, {"OTEL_TRACES_SAMPLER": "always_off"}, "env"),
])
def test_sampler_as_knative_chooses_it(tracing: dict, env: dict, kind: str) -> None:
    assert settings_from(tracing, env).sampler_kind() == kind


@pytest.mark.parametrize(("endpoint", "env", "url"), [
    ("http://collector:4318/v1/traces", {}, "http://collector:4318/v1/traces"),
    ("collector.observability:4317", {}, "https://collector.observability:4317"),
    ("https://collector:4317", {}, "https://collector:4317"),
    ("http://ignored:4318", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"}, None),
    ("http://ignored:4318", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://env:4318/x"}, None),
    ("", {}, None),
])
def test_endpoint_as_knative_reads_it(endpoint: str, env: dict, url: str | None) -> None:
    settings = settings_from({"protocol": "http/protobuf", "endpoint": endpoint}, env)
    assert settings.endpoint_url() == url


def test_tracing_is_off_by_default() -> None:
    assert settings_from(None, {}) == TracingSettings()
    assert not settings_from({"endpoint": "http://x:1"}, {}).enabled  # no protocol: none


@pytest.mark.parametrize(("obs", "env", "words"), [
    ({"tracing": {"protocol": "zipkin"}}, {}, "unsupported protocol 'zipkin'"),
    ({"tracing": {"protocol": ""}}, {}, "unsupported protocol ''"),
    ({"tracing": {"protocol": "grpc", "samplingRate": "0.5"}}, {}, "samplingRate"),
    ({"tracing": {"protocol": "grpc", "endpoint": 4317}}, {}, "endpoint"),
    ({"tracing": {"protocol": "grpc", "endpoint": "127.0.0.1:4317"}}, {},
     "first path segment in URL cannot contain colon"),
    ({"tracing": {"protocol": "grpc", "endpoint": "http://c:4317"}},
     {"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"tracing": []}, {}, "tracing must be a JSON object"),
])
def test_config_errors_stop_the_process_as_knative(obs: dict, env: dict, words: str) -> None:
    full = knative_env(8080, OBSERVABILITY_CONFIG=json.dumps(obs), **env)
    for var in OTEL_VARS:
        if var not in env:
            full.pop(var, None)
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        from_environ(full)
