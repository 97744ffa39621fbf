"""The activator's tracing end to end: Knative's activator spans, exported over OTLP.

The activator runs in process (on the conftest's proxy loop) or as ``python -m activator serve``,
in front of a real queue-proxy process (the pod) and the test App; spans go to the OTLP
stand-in (``tests/otlp.py``) every 20 ms. What each row expects is read from Knative's source
(cmd/activator/main.go, pkg/activator/handler/handler.go and tracing_handler.go, otelhttp
0.69.0): its activator needs a Kubernetes API to start, so it was not run beside ours.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from otlp import (  # noqa: F401  (the fixtures otlp and otel_env)
    CLIENT,
    HTTP_SCOPE,
    INTERNAL,
    PARENT_ID,
    SERVER,
    TRACE_ID,
    OtlpHttp,
    otel_env_fixture,
    otlp_fixture,
    traceparent,
)
from support import ActivatorProcess, App, LoopThread, QueueProxyPod, request, wait_for

from activator.activator.tracing import tracing_for

NS, REV = "default", "hello-00001"
HOST = f"{REV}.{NS}.svc.cluster.local"
ACTIVATOR_SCOPE = "knative.dev/serving/pkg/activator"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def make_activator(proxy_loop: LoopThread, otlp: OtlpHttp, otel_env: None) -> Iterator[Any]:
    """``make_activator(rate, pods, **revision)``: an in-process activator tracing to ``otlp``,
    with the revision (service and configuration ``hello``) on those pods, healthy."""
    started: list[Any] = []

    def make(rate: float = 1.0, pods: tuple[str, ...] = (), max_waiting: int = 0,
             **revision: Any) -> Any:
        from activator.activator.app import Activator

        tracing = tracing_for({"tracing": {"protocol": "http/protobuf", "endpoint": otlp.url,
                                           "samplingRate": rate}}, os.environ, "activator-abc")

        async def build() -> Any:
            act = Activator(drain_timeout=0, tracing=tracing, max_waiting=max_waiting)
            await act.start("127.0.0.1", 0, None, None)
            act.set_revision(NS, REV, service="hello", configuration="hello", **revision)
            act.set_endpoints(NS, REV, ready=pods)
            return act

        act = proxy_loop.run(build())
        started.append(act)
        act.port = act.ports["main"]
        if pods:
            rev = proxy_loop.call(lambda: act.revision(NS, REV))
            wait_for(lambda: proxy_loop.call(lambda: len(rev.healthy) == len(pods)), timeout=10)
        return act

    yield make
    for act in started:
        proxy_loop.call(act.close)


def flush(proxy_loop: LoopThread, act: Any) -> None:
    """Everything ended so far is exported (the loop first finishes its callbacks)."""
    proxy_loop.call(lambda: None)
    assert act.tracing.force_flush(5.0)


def seen_traceparent(app: App, target: str) -> list[str]:
    found = [r for r in app.requests if r.target == target]
    assert len(found) == 1, f"{target}: {len(found)} requests at the app"
    assert len(found[0].header_all("traceparent")) == 1, found[0].headers
    return found[0].header("traceparent").split("-")  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- the spans


def test_spans_tree_attributes_and_the_pods_traceparent(make_activator: Any, pod: Any,
                                                        pod_app: App, otlp: OtlpHttp) -> None:
    act = make_activator(pods=(pod.address,))
    r = request(act.port, "GET", "/echo?tree=1", [
        ("Host", HOST), ("traceparent", traceparent()), ("tracestate", "vendor=1"),
        ("User-Agent", "curl/8"), ("X-Forwarded-For", "1.2.3.4")])
    assert r.status == 200, r
    otlp.wait(4)
    t = otlp.trace(TRACE_ID)
    assert set(t) == {"GET", "throttler_try", "activator_proxy", "GET /echo"}, t
    server, try_, proxy, client = t["GET"], t["throttler_try"], t["activator_proxy"], \
        t["GET /echo"]
    # Knative's tree: try and proxy are siblings under the server span (proxyCtx comes from the
    # request's context, not the try's); the client span is the proxy span's child.
    assert server["parent"] == PARENT_ID
    assert try_["parent"] == proxy["parent"] == server["span"]
    assert client["parent"] == proxy["span"]
    assert [server["kind"], try_["kind"], proxy["kind"], client["kind"]] == \
        [SERVER, INTERNAL, INTERNAL, CLIENT]
    assert server["scope"] == client["scope"] == HTTP_SCOPE
    assert server["scope_version"] == client["scope_version"] == "0.69.0"
    assert try_["scope"] == proxy["scope"] == ACTIVATOR_SCOPE and try_["scope_version"] == ""
    assert {s["tracestate"] for s in t.values()} == {"vendor=1"}
    assert not any(s["error"] for s in t.values())
    assert server["start"] <= try_["start"] <= try_["end"] <= proxy["start"] <= client["start"]
    assert client["end"] <= proxy["end"] <= server["end"]
    # The pod's queue-proxy (not tracing) passes the client span's context on to the app.
    assert seen_traceparent(pod_app, "/echo?tree=1") == ["00", TRACE_ID, client["span"], "01"]
    assert [q for q in pod_app.requests if q.target == "/echo?tree=1"][0].header(
        "tracestate") == "vendor=1"
    sa = server["attrs"]
    assert sa == {
        "server.address": HOST, "http.request.method": "GET", "url.scheme": "http",
        "network.peer.address": "127.0.0.1", "network.peer.port": sa["network.peer.port"],
        "user_agent.original": "curl/8", "client.address": "1.2.3.4", "url.path": "/echo",
        "network.protocol.version": "1.1",
        # Knative's tracing attribute handler: the labeler's revision attributes.
        "kn.service.name": "hello", "kn.configuration.name": "hello",
        "kn.revision.name": REV, "k8s.namespace.name": NS,
        "http.response.body.size": len(r.body), "http.response.status_code": 200,
    }
    assert client["attrs"] == {
        "http.request.method": "GET", "url.full": f"http://{pod.address}/echo?tree=1",
        "server.address": "127.0.0.1", "server.port": pod.port,
        "network.protocol.version": "1.1", "http.response.status_code": 200,
    }
    assert try_["attrs"] == proxy["attrs"] == {}
    res = otlp.resource
    assert res["service.name"] == "activator" and res["k8s.pod.name"] == "activator-abc"
    assert res["k8s.namespace.name"] == "knative-serving"
    assert "container.name" not in res


def test_a_held_request_s_try_span_covers_the_wait(make_activator: Any, pod: Any,
                                                  pod_app: App, otlp: OtlpHttp,
                                                  proxy_loop: LoopThread) -> None:
    act = make_activator()  # no pod yet: the request waits in the throttler
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(request, act.port, "POST", "/echo?held=1", [("Host", HOST)],
                           b"hello")
        wait_for(lambda: proxy_loop.call(lambda: act.revision_status(NS, REV)["waiting"]) == 1)
        opened = time.time_ns()  # the span clock: it waits on
        proxy_loop.call(lambda: act.set_endpoints(NS, REV, ready=[pod.address]))
        assert held.result(15).status == 200
    otlp.wait(4)
    server = otlp.named("POST")[0]
    t = otlp.trace(server["trace"])
    try_, proxy, client = t["throttler_try"], t["activator_proxy"], t["POST /echo"]
    assert server["parent"] == ""  # a new trace
    assert try_["start"] < opened < try_["end"] <= proxy["start"] <= client["start"]
    assert not try_["error"] and server["attrs"]["http.request.body.size"] == 5
    _, trace_id, parent_id, flags = seen_traceparent(pod_app, "/echo?held=1")
    assert (trace_id, parent_id, flags) == (server["trace"], client["span"], "01")


def test_queue_full_and_timeout_end_the_try_span_with_go_s_error(
        make_activator: Any, otlp: OtlpHttp, proxy_loop: LoopThread) -> None:
    act = make_activator(max_waiting=1, timeout_seconds=1)  # no pod: nothing gets a slot
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(request, act.port, "GET", "/", [("Host", HOST),
                                                            ("User-Agent", "timed-out")])
        wait_for(lambda: proxy_loop.call(lambda: act.revision_status(NS, REV)["waiting"]) == 1)
        full = request(act.port, "GET", "/", [("Host", HOST), ("User-Agent", "refused")])
        assert (full.status, full.body) == (503, b"pending request queue full\n")
        timed_out = first.result(15)
        assert (timed_out.status, timed_out.body) == (504, b"activator request timeout")
    otlp.wait(4)
    by_ua = {s["attrs"]["user_agent.original"]: s for s in otlp.named("GET")}
    for ua, status, message in (("refused", 503, "pending request queue full"),
                                ("timed-out", 504, "context canceled")):
        t = otlp.trace(by_ua[ua]["trace"])
        assert set(t) == {"GET", "throttler_try"}, t  # no slot: no proxy or client span
        assert t["GET"]["error"] and t["GET"]["attrs"]["http.response.status_code"] == status
        assert (t["throttler_try"]["error"], t["throttler_try"]["message"]) == (True, message)


def test_a_failing_revision_s_503_names_its_reason_on_the_try_span(
        make_activator: Any, otlp: OtlpHttp, proxy_loop: LoopThread) -> None:
    # Activator.fail_revision (ours: the local runtime's crash-looping pods): the 503's reason,
    # for a waiter answered by it and for a request refused at once.
    act = make_activator()
    reason = "revision hello-00001 is failing: app exited with code 3"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(request, act.port, "GET", "/", [("Host", HOST),
                                                           ("User-Agent", "held")])
        wait_for(lambda: proxy_loop.call(lambda: act.revision_status(NS, REV)["waiting"]) == 1)
        proxy_loop.call(lambda: act.fail_revision(NS, REV, reason))
        assert held.result(15).status == 503
    refused = request(act.port, "GET", "/", [("Host", HOST), ("User-Agent", "refused")])
    assert (refused.status, refused.body) == (503, reason.encode() + b"\n")
    otlp.wait(4)
    by_ua = {s["attrs"]["user_agent.original"]: s for s in otlp.named("GET")}
    for ua in ("held", "refused"):
        t = otlp.trace(by_ua[ua]["trace"])
        assert (t["throttler_try"]["error"], t["throttler_try"]["message"]) == (True, reason)


def test_probes_are_not_traced_and_an_unknown_revision_has_no_labels(
        make_activator: Any, otlp: OtlpHttp, proxy_loop: LoopThread) -> None:
    act = make_activator()
    for headers in ([("User-Agent", "kube-probe/1.30")], [("K-Kubelet-Probe", "1")],
                    [("K-Network-Probe", "activator")],
                    [("K-Network-Probe", "probe"), ("K-Network-Hash", "h")]):
        assert request(act.port, "GET", "/", [("Host", HOST), *headers]).status == 200
    assert request(act.port, "GET", "/", [("Host", HOST),
                                          ("K-Network-Probe", "queue")]).status == 400
    flush(proxy_loop, act)
    assert otlp.spans == []
    # Knative's context handler answers it inside otelhttp's handler, before the labeler.
    r = request(act.port, "GET", "/", [("Host", "nope.default.svc.cluster.local")])
    assert r.status == 404
    flush(proxy_loop, act)
    assert [s["name"] for s in otlp.spans] == ["GET"]
    attrs = otlp.spans[0]["attrs"]
    assert attrs["http.response.status_code"] == 404 and not otlp.spans[0]["error"]
    assert not any(k.startswith("kn.") for k in attrs)


def test_unsampled_requests_export_nothing_but_still_get_a_span_id(
        make_activator: Any, pod: Any, pod_app: App, otlp: OtlpHttp,
        proxy_loop: LoopThread) -> None:
    act = make_activator(rate=0.0, pods=(pod.address,))  # Knative's NeverSample
    assert request(act.port, "GET", "/echo?unsampled=1",
                   [("Host", HOST), ("traceparent", traceparent())]).status == 200
    _, trace_id, parent_id, flags = seen_traceparent(pod_app, "/echo?unsampled=1")
    assert (trace_id, flags) == (TRACE_ID, "00") and parent_id != PARENT_ID
    flush(proxy_loop, act)
    assert otlp.spans == []


# ---------------------------------------------------------------------------- as a process


def test_serve_traces_into_a_tracing_pod_and_flushes_on_drain(
        tmp_path: Path, otlp: OtlpHttp, otel_env: None, pod_app: App,
        monkeypatch: pytest.MonkeyPatch) -> None:
    obs = json.dumps({"tracing": {"protocol": "http/protobuf", "endpoint": otlp.url,
                                  "samplingRate": 1}})
    # The pod traces too, every 20 ms; the activator only when it drains (its batch delay is
    # longer than the test), from $OBSERVABILITY_CONFIG (the flag's default).
    traced_pod = QueueProxyPod(pod_app.port, 1, OBSERVABILITY_CONFIG=obs)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    monkeypatch.setenv("OBSERVABILITY_CONFIG", obs)
    monkeypatch.setenv("POD_NAME", "activator-xyz")
    proc = ActivatorProcess(tmp_path / "activator.log", "--drain-timeout", "0")
    try:
        proc.put_revision(REV, containerConcurrency=1)
        proc.put_endpoints(REV, ready=[traced_pod.address])
        wait_for(lambda: proc.status(REV)["healthyPods"] == [traced_pod.address], timeout=10)
        r = request(proc.port, "GET", "/echo?process=1",
                    [("Host", HOST), ("traceparent", traceparent())])
        assert r.status == 200, r
        otlp.wait(4)  # the pod's four
        assert not otlp.named("throttler_try")  # the activator's are batched still
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=20) == 0, proc.output()
    finally:
        proc.stop()
        traced_pod.stop()
    t = otlp.trace(TRACE_ID)
    assert {"throttler_try", "activator_proxy", "GET /echo", "kn.queueproxy.proxy",
            "kn.queueproxy.wait", "HTTP GET"} <= set(t), t
    a_server = [s for s in otlp.named("GET") if s["parent"] == PARENT_ID][0]
    q_server = [s for s in otlp.named("GET") if s["parent"] != PARENT_ID][0]
    # One trace through both: the queue-proxy's server span is the activator client's child.
    assert q_server["parent"] == t["GET /echo"]["span"]
    assert t["GET /echo"]["parent"] == t["activator_proxy"]["span"]
    assert t["throttler_try"]["parent"] == a_server["span"]
    _, trace_id, parent_id, _ = seen_traceparent(pod_app, "/echo?process=1")
    assert (trace_id, parent_id) == (TRACE_ID, t["HTTP GET"]["span"])


# ---------------------------------------------------------------------------- configuration


def test_tracing_off_imports_no_opentelemetry() -> None:
    code = (
        "import asyncio, os, sys\n"
        "from activator.activator.app import Activator, ActivatorHandler\n"
        "from activator.activator.tracing import tracing_for\n"
        "async def main():\n"
        "    tracing = tracing_for('{\"tracing\": {\"protocol\": \"none\"}}', os.environ, 'a')\n"
        "    act = Activator(tracing=tracing)\n"
        "    assert type(act.handler) is ActivatorHandler, act.handler\n"
        "    act.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("obs", "words"), [
    ('{"tracing": {"protocol": "zipkin"}}', "unsupported protocol 'zipkin'"),
    ("{not json", "invalid JSON"),
    ("[]", "must be a JSON object"),
])
def test_a_bad_config_is_refused(obs: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        tracing_for(obs, {}, "a")


def test_serve_with_a_bad_config_exits_1_as_knative() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "activator", "serve", "--observability-config",
         '{"tracing": {"protocol": "zipkin"}}'], capture_output=True, text=True, timeout=60,
        cwd=REPO)
    assert out.returncode == 1
    assert "unsupported protocol 'zipkin'" in out.stderr


def test_the_flag_defaults_to_observability_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from activator.__main__ import parse_args

    monkeypatch.setenv("OBSERVABILITY_CONFIG", '{"tracing": {}}')
    assert parse_args(["serve"]).observability_config == '{"tracing": {}}'
    assert tracing_for("", {}, "a") is None and tracing_for(None, {}, "a") is None
