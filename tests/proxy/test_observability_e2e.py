"""Observability end to end: the autoscaler stats port and the Prometheus port, over real sockets.

Stats (spec section 7, Knative pkg/queue/protobuf_stats_reporter.go): ``GET /metrics`` on the
stats port answers the protobuf ``Stat`` with ``Content-Type: application/protobuf`` whatever
the Accept header; every second the window is closed. Requests count from the moment they enter
the handler (queued ones and 503 queue-full rejections included); ``K-Proxy-Request: activator``
also counts in the proxied fields; health checks and ``K-Network-Probe: probe`` never count.

Prometheus (spec section 8, Knative pkg/queue/request_metric.go, routetag_handler.go and the
otelhttp server handler and transport): ``kn_serving_invocation_duration_seconds`` (time in the
user container: no queue wait, no 503 rejections, no probes), ``kn_serving_queue_depth``,
``http_server_request_duration_seconds`` (method, status, ``kn_route_tag``, protocol, scheme,
server address; no probes) and the other otelhttp families. Series are picked here by the
labels a test cares about; tests/proxy/test_metrics_parity.py compares whole label sets with
Knative's.

To make window arithmetic deterministic, some tests stop the queue-proxy's own reporter and
close windows themselves at chosen loop times (``proxy.call``). Every wait is bounded.
"""

from __future__ import annotations

import concurrent.futures
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from knative_proto import Stat
from prometheus_client.parser import text_string_to_metric_families
from support import Client, Gate, LoopThread, free_port, request, wait_for

KNATIVE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
HEALTH = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]
PROMETHEUS = {"requestMetrics": {"protocol": "prometheus"}}
INVOCATION = "kn_serving_invocation_duration_seconds"
HTTP_DURATION = "http_server_request_duration_seconds"
QUEUE_DEPTH = "kn_serving_queue_depth"


# ---------------------------------------------------------------------------- the Stat message


def get_stat(proxy: Any, headers: list | None = None) -> Any:
    r = request(proxy.qp.ports["metrics"], "GET", "/metrics", headers)
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/protobuf", r
    return Stat.FromString(r.body)


def set_fields(msg: Any) -> set[str]:
    return {f.name for f, _ in msg.ListFields()}


# ---------------------------------------------------------------------------- helpers


def raw_request(target: str, headers: list | None = None, method: str = "GET") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: example.com"]
    for n, v in headers or []:
        lines.append(f"{n}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def open_request(port: int, target: str, headers: list | None = None) -> Client:
    c = Client(port)
    c.send(raw_request(target, headers))
    return c



@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)


def in_flight(proxy: Any) -> int:
    return proxy.call(lambda: proxy.qp.handler.breaker.in_flight)


class Windows:
    """Takes the stats windows over from the queue-proxy's 1 s reporter."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy
        qp = proxy.qp

        def stop() -> None:
            if qp._reporter is not None:
                qp._reporter.cancel()

        proxy.call(stop)

    def close(self) -> tuple[Any, float]:
        """Closes the window now; returns (report, loop time)."""
        qp = self.proxy.qp
        return self.proxy.call(lambda: (qp.stats.report(qp.clock()), qp.clock()))

    def close_at(self, when: float) -> concurrent.futures.Future:
        """Closes the window at loop time ``when``; the future gets (report, loop time)."""
        qp = self.proxy.qp
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def fire() -> None:
            now = qp.clock()
            fut.set_result((qp.stats.report(now), now))

        self.proxy.call(lambda: qp.loop.call_at(when, fire))
        return fut

    def concurrency(self) -> int:
        qp = self.proxy.qp
        return self.proxy.call(lambda: qp.stats.concurrency)


# ---------------------------------------------------------------------------- stats port


@pytest.mark.parametrize("accept", [
    None, "text/plain", "application/protobuf", "*/*",
    "text/plain; version=0.0.4", "application/json",
])
def test_stats_port_answers_protobuf_for_any_accept(make_proxy: Any, app: Any,
                                                    accept: str | None) -> None:
    proxy = make_proxy(pod="hello-00001-deployment-abc")
    headers = [("Accept", accept)] if accept else None
    stat = get_stat(proxy, headers)
    assert stat.pod_name == "hello-00001-deployment-abc"
    # No traffic: nothing but the pod name and, once a window closed, the uptime.
    assert set_fields(stat) <= {"pod_name", "process_uptime"}
    assert stat.timestamp == 0


def test_stats_port_other_path_404(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy()
    r = request(proxy.qp.ports["metrics"], "GET", "/other")
    assert r.status == 404, r


def test_stats_before_first_report_is_pod_name_only(proxy_loop: LoopThread, app: Any) -> None:
    from proxy.app import QueueProxy
    from proxy.config import Config

    cfg = Config(bind_host="127.0.0.1", serving_port=0, admin_port=0, metrics_port=0,
                 prometheus_port=0, user_port=app.port, pod="first-pod")

    async def build() -> bytes:
        qp = QueueProxy(cfg)
        try:
            return qp.stat_bytes
        finally:
            qp.close()

    data = proxy_loop.run(build())
    stat = Stat.FromString(data)
    assert set_fields(stat) == {"pod_name"}
    assert stat.pod_name == "first-pod"


def test_stats_reporter_closes_windows_every_second(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(pod="p1")
    # The first report comes after ~1 s; the uptime then grows by ~1 s per report.
    first = wait_for(lambda: (s := get_stat(proxy)).process_uptime > 0 and s, timeout=5,
                     interval=0.02)
    assert 0.9 <= first.process_uptime < 3.0, first
    second = wait_for(
        lambda: (s := get_stat(proxy)).process_uptime > first.process_uptime and s,
        timeout=5, interval=0.02)
    assert second.process_uptime - first.process_uptime == pytest.approx(1.0, abs=0.2)


def test_two_500ms_requests_in_one_window_average_one(make_proxy: Any, app: Any,
                                                      pool: Any) -> None:
    """The issue's done-when: two requests of 500 ms in one 1 s window -> 1.0 (+-0.05)."""
    proxy = make_proxy()
    win = Windows(proxy)
    _, t_start = win.close()
    report_fut = win.close_at(t_start + 1.0)
    def timed() -> tuple[Any, float]:
        t0 = time.monotonic()
        r = request(proxy.port, "GET", "/sleep?ms=500")
        return r, time.monotonic() - t0

    futs = [pool.submit(timed) for _ in range(2)]
    took = []
    for f in futs:
        r, secs = f.result(timeout=10)
        assert r.status == 200, r
        took.append(secs)
    report, t_end = report_fut.result(timeout=10)
    window = t_end - t_start
    assert window == pytest.approx(1.0, abs=0.05)
    assert report.request_count == 2
    # 1.0 when each request spends exactly 500 ms in the proxy; on a loaded machine a request
    # spends longer (the app's sleep plus its own overhead), never longer than the client saw.
    assert report.average_concurrency == pytest.approx(1.0, abs=0.05) or (
        1.0 < report.average_concurrency <= sum(took) / window + 0.05
    ), (report, took)
    assert report.proxied_request_count == 0
    assert report.average_proxied_concurrency == 0


def test_stats_endpoint_eventually_shows_traffic(make_proxy: Any, app: Any, pool: Any) -> None:
    """Through the real 1 s reporter: every window is observed (deduplicated by uptime); the
    two 500 ms requests may be split over windows, but over all of them there are 2 arrivals
    and about 1 request-second of concurrency (each window lasts ~1 s)."""
    proxy = make_proxy(pod="traffic-pod")
    baseline = get_stat(proxy).process_uptime
    seen: dict[float, Any] = {}

    def poll() -> None:
        s = get_stat(proxy)
        if s.process_uptime > baseline:
            seen[s.process_uptime] = s

    futs = [pool.submit(request, proxy.port, "GET", "/sleep?ms=500") for _ in range(2)]
    wait_for(lambda: (poll(), all(f.done() for f in futs))[1], timeout=10, interval=0.02)
    for f in futs:
        assert f.result(timeout=10).status == 200
    # Keep polling until a window closed after both requests ended: the report current now
    # may predate their end, the next distinct one cannot.
    current = get_stat(proxy).process_uptime
    poll()
    wait_for(lambda: (poll(), any(u > current for u in seen))[1], timeout=5, interval=0.02)
    reports = [seen[u] for u in sorted(seen)]
    assert all(s.pod_name == "traffic-pod" for s in reports)
    assert sum(s.request_count for s in reports) == 2, reports
    assert any(s.average_concurrent_requests > 0 for s in reports), reports
    # Consecutive uptimes step by ~1 s: no window was missed.
    ups = sorted(seen)
    assert all(b - a < 1.5 for a, b in zip(ups, ups[1:], strict=False)), ups
    assert sum(s.average_concurrent_requests for s in reports) == pytest.approx(1.0, abs=0.1)


def test_activator_requests_count_as_proxied(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy()
    win = Windows(proxy)
    win.close()
    # 50 ms each: long enough to show on the loop's clock (uvloop's has 1 ms resolution).
    r = request(proxy.port, "GET", "/sleep?ms=50", [("K-Proxy-Request", "activator")])
    assert r.status == 200, r
    r = request(proxy.port, "GET", "/sleep?ms=50")
    assert r.status == 200, r
    r = request(proxy.port, "GET", "/sleep?ms=50", [("K-Proxy-Request", "something-else")])
    assert r.status == 200, r
    report, _ = win.close()
    assert report.request_count == 3
    assert report.proxied_request_count == 1
    assert 0 < report.average_proxied_concurrency <= report.average_concurrency
    assert win.concurrency() == 0
    # The header is not stripped.
    seen = [q for q in app.requests if q.header("K-Proxy-Request") == "activator"]
    assert len(seen) == 1


def test_activator_request_in_protobuf_stat(make_proxy: Any, app: Any, pool: Any) -> None:
    proxy = make_proxy()
    win = Windows(proxy)
    _, t0 = win.close()
    done = win.close_at(t0 + 1.0)
    r = request(proxy.port, "GET", "/sleep?ms=200", [("K-Proxy-Request", "activator")])
    assert r.status == 200, r
    report, _ = done.result(timeout=5)
    from proxy.stats import encode_stat

    stat = Stat.FromString(encode_stat("p", report, 1.0))
    assert stat.request_count == 1
    assert stat.proxied_request_count == 1
    assert stat.average_proxied_concurrent_requests == pytest.approx(0.2, abs=0.05)
    assert stat.average_concurrent_requests == stat.average_proxied_concurrent_requests


def test_probes_do_not_count(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy()
    win = Windows(proxy)
    win.close()
    assert request(proxy.port, "GET", "/", HEALTH).status == 200
    assert request(proxy.port, "GET", "/healthz",
                   [("User-Agent", "Knative-Activator-Probe"),
                    ("K-Network-Probe", "queue")]).status == 200
    assert request(proxy.port, "GET", "/",
                   [("User-Agent", "Knative-Autoscaling-Probe"),
                    ("K-Network-Probe", "queue")]).status == 200
    assert request(proxy.port, "GET", "/", [("K-Kubelet-Probe", "1"),
                                            ("K-Network-Probe", "queue")]).status == 200
    r = request(proxy.port, "GET", "/", [("K-Network-Probe", "probe"),
                                         ("K-Network-Hash", "abc")])
    assert r.status == 200, r
    assert r.header("K-Network-Hash") == "abc"
    r = request(proxy.port, "GET", "/", [("K-Network-Probe", "probe")])
    assert r.status == 400, r
    # A health check with a bad probe header is still a probe.
    assert request(proxy.port, "GET", "/", [("User-Agent", "kube-probe/1.30")]).status == 400
    report, _ = win.close()
    assert (report.request_count, report.average_concurrency) == (0, 0), report
    # Only the K-Kubelet-Probe request reached the app (Knative's ProxyHandler sends it on,
    # past the stats).
    assert [r.header_all("K-Kubelet-Probe") for r in app.requests] == [["1"]]


def test_queue_full_rejections_count(make_proxy: Any, app: Any, gate: Gate,
                                     clients: list) -> None:
    proxy = make_proxy(container_concurrency=1)
    win = Windows(proxy)
    win.close()
    clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 1)
    for _ in range(10):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 11)
    # Queued requests count from the moment they enter the handler.
    assert win.concurrency() == 11
    r = request(proxy.port, "GET", "/gate")
    assert r.status == 503, r
    assert r.body == b"pending request queue full\n"
    assert win.concurrency() == 11
    report, _ = win.close()
    assert report.request_count == 12
    assert report.average_concurrency > 1
    gate.open()
    for c in clients:
        assert c.read_response().status == 200
    wait_for(lambda: win.concurrency() == 0)


def _open_tunnel(proxy: Any, clients: list, path: str = "/ws") -> Client:
    c = Client(proxy.port)
    clients.append(c)
    c.send(raw_request(path, [("Connection", "Upgrade"), ("Upgrade", "websocket")]))
    r = c.read_response(interim=True)
    assert r.status == 101, r
    c.send(b"ping")
    got = b""
    while len(got) < 4:
        chunk = c.sock.recv(16)
        assert chunk, got
        got += chunk
    assert got == b"ping"
    return c


def test_upgraded_connection_counts_while_open(make_proxy: Any, app: Any,
                                               clients: list) -> None:
    # Knative's ProxyHandler defers ReqOut until ServeHTTP returns, which for an upgrade is
    # when the copy in both directions ends.
    proxy = make_proxy()
    win = Windows(proxy)
    win.close()
    c = _open_tunnel(proxy, clients)
    assert win.concurrency() == 1
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # an abortive close (RST)
    wait_for(lambda: win.concurrency() == 0)
    report, _ = win.close()
    assert report.request_count == 1
    assert report.average_concurrency > 0


@pytest.mark.parametrize("first", ["client", "app"])
def test_gracefully_closed_tunnel_ends(make_proxy: Any, app: Any, clients: list,
                                       first: str) -> None:
    async def hook(req: Any, reader: Any, w: Any) -> Any:
        if req.path == "/ws-app-closes":
            w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\n\r\n")
            w.write(await reader.read(4))
            await w.drain()
            return False  # the app closes its side
        return None

    app.hook = hook
    proxy = make_proxy(container_concurrency=1)
    win = Windows(proxy)
    c = _open_tunnel(proxy, clients, "/ws" if first == "client" else "/ws-app-closes")
    if first == "client":
        assert win.concurrency() == 1  # (the app-closes tunnel may already be over)
        c.sock.shutdown(socket.SHUT_WR)  # FIN; the app answers its EOF by closing
    c.sock.settimeout(5)
    assert c.sock.recv(16) == b""  # the close came through to the client
    if first == "app":
        c.sock.shutdown(socket.SHUT_WR)
    wait_for(lambda: app.open_connections == 0)
    # Both directions are closed: the exchange is over.
    wait_for(lambda: win.concurrency() == 0, timeout=3)
    assert in_flight(proxy) == 0
    assert request(proxy.port, "GET", "/echo").status == 200


# ---------------------------------------------------------------------------- Prometheus


def scrape(proxy: Any) -> dict:
    r = request(proxy.qp.ports["prometheus"], "GET", "/metrics")
    assert r.status == 200, r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r
    return {f.name: f for f in text_string_to_metric_families(r.body.decode())}


def hist(families: dict, name: str) -> dict[tuple, dict]:
    """Histogram series by label set: {labels: {"buckets": {le: count}, "count", "sum"}}."""
    fam = families.get(name)
    out: dict[tuple, dict] = {}
    if fam is None:
        return out
    assert fam.type == "histogram", fam
    for s in fam.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = out.setdefault(labels, {"buckets": {}, "count": None, "sum": None})
        if s.name.endswith("_bucket"):
            entry["buckets"][float(s.labels["le"])] = s.value
        elif s.name.endswith("_count"):
            entry["count"] = s.value
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
    return out


def total_count(families: dict, name: str) -> float:
    return sum(e["count"] or 0 for e in hist(families, name).values())


def series(families: dict, name: str, **labels: str) -> dict:
    """The one series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    h = hist(families, name)
    found = [v for k, v in h.items() if want <= set(k)]
    assert len(found) == 1, (labels, list(h))
    return found[0]


def http_labels(method: str = "GET", status: str = "200", tag: str = "kn:disabled") -> dict:
    return {"http_request_method": method, "http_response_status_code": status,
            "kn_route_tag": tag}


def test_prometheus_off_by_default(make_proxy: Any, app: Any) -> None:
    port = free_port()
    proxy = make_proxy(prometheus_port=port)
    assert "prometheus" not in proxy.qp.ports
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert proxy.qp.metrics is None


@pytest.mark.parametrize("observability", [
    {"requestMetrics": {"protocol": "none"}}, {"requestMetrics": {}}, {},
    {"enableRequestLog": False},
])
def test_prometheus_off_unless_protocol_prometheus(make_proxy: Any, app: Any,
                                                   observability: dict) -> None:
    proxy = make_proxy(observability=observability)
    assert "prometheus" not in proxy.qp.ports


def test_prometheus_exposition_buckets_and_labels(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability=PROMETHEUS, container_concurrency=2)
    fams = scrape(proxy)
    assert QUEUE_DEPTH in fams
    assert fams[QUEUE_DEPTH].type == "gauge"
    assert [s.value for s in fams[QUEUE_DEPTH].samples] == [0]
    assert total_count(fams, INVOCATION) == 0
    assert total_count(fams, HTTP_DURATION) == 0

    for _ in range(3):
        assert request(proxy.port, "GET", "/echo").status == 200
    assert request(proxy.port, "GET", "/status?code=404").status == 404
    posted = request(proxy.port, "POST", "/echo", body=b"x")
    assert posted.status == 200

    fams = scrape(proxy)
    inv200 = series(fams, INVOCATION, http_response_status_code="200")
    inv404 = series(fams, INVOCATION, http_response_status_code="404")
    assert inv200["count"] == 4
    assert inv404["count"] == 1
    assert sorted(inv200["buckets"]) == KNATIVE_BUCKETS + [math.inf]
    assert inv200["buckets"][math.inf] == 4
    # Fast local requests land in the smallest buckets; buckets are cumulative.
    assert inv200["buckets"][0.1] == 4
    values = [inv200["buckets"][b] for b in sorted(inv200["buckets"])]
    assert values == sorted(values)
    assert 0 <= inv200["sum"] < 0.4

    get200 = series(fams, HTTP_DURATION, **http_labels())
    assert get200["count"] == 3
    assert sorted(get200["buckets"]) == KNATIVE_BUCKETS + [math.inf]
    assert series(fams, HTTP_DURATION, **http_labels(status="404"))["count"] == 1
    assert series(fams, HTTP_DURATION, **http_labels(method="POST"))["count"] == 1
    assert total_count(fams, HTTP_DURATION) == 5
    # Knative's invocation histogram is labelled by status code only (and its scope).
    for labels in hist(fams, INVOCATION):
        assert [k for k, _ in labels] == ["http_response_status_code", "otel_scope_name",
                                          "otel_scope_schema_url", "otel_scope_version"]

    text = request(proxy.qp.ports["prometheus"], "GET", "/metrics").body.decode()
    assert (f'{INVOCATION}_bucket{{http_response_status_code="200",le="0.005",'
            'otel_scope_name="knative.dev/serving/pkg/queue",otel_scope_schema_url="",'
            'otel_scope_version=""}') in text
    # The body sizes: the POST's one byte in, its answer's bytes out.
    post = series(fams, "http_server_request_body_size_bytes", http_request_method="POST")
    assert post["count"] == 1 and post["sum"] == 1 and post["buckets"][5] == 1
    out = series(fams, "http_server_response_body_size_bytes", **http_labels(method="POST"))
    assert out["count"] == 1 and out["sum"] == len(posted.body) > 0


@pytest.mark.parametrize("headers,tag", [
    ([], "kn:disabled"),
    ([("Knative-Serving-Tag", "blue")], "blue"),
    ([("Knative-Serving-Default-Route", "true")], "kn:default"),
    ([("Knative-Serving-Default-Route", "false")], "kn:default"),
    ([("Knative-Serving-Tag", "blue"), ("Knative-Serving-Default-Route", "true")],
     "kn:undefined"),
    ([("Knative-Serving-Tag", "blue"), ("Knative-Serving-Default-Route", "false")], "blue"),
    ([("Knative-Serving-Tag", ""), ("Knative-Serving-Default-Route", "true")], "kn:default"),
])
def test_prometheus_route_tag(make_proxy: Any, app: Any, headers: list, tag: str) -> None:
    proxy = make_proxy(observability=PROMETHEUS, container_concurrency=2)
    assert request(proxy.port, "GET", "/echo", headers).status == 200
    fams = scrape(proxy)
    h = hist(fams, HTTP_DURATION)
    assert [dict(k)["kn_route_tag"] for k in h] == [tag], list(h)


def test_route_tag_function() -> None:
    from proxy.metrics import route_tag

    assert route_tag(None, None) == "kn:disabled"
    assert route_tag(b"", b"") == "kn:disabled"
    assert route_tag(None, b"true") == "kn:default"
    assert route_tag(None, b"anything") == "kn:default"
    assert route_tag(b"green", b"true") == "kn:undefined"
    assert route_tag(b"green", None) == "green"
    assert route_tag(b"green", b"TRUE") == "green"  # Go compares with == "true"


def test_prometheus_probes_excluded(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability=PROMETHEUS, container_concurrency=2)
    assert request(proxy.port, "GET", "/", HEALTH).status == 200
    assert request(proxy.port, "GET", "/", [("User-Agent", "Knative-Activator-Probe"),
                                            ("K-Network-Probe", "queue")]).status == 200
    assert request(proxy.port, "GET", "/", [("K-Kubelet-Probe", "1"),
                                            ("K-Network-Probe", "queue")]).status == 200
    assert request(proxy.port, "GET", "/", [("K-Network-Probe", "probe"),
                                            ("K-Network-Hash", "h")]).status == 200
    assert request(proxy.port, "GET", "/", [("User-Agent", "kube-probe/1.30")]).status == 400
    fams = scrape(proxy)
    assert total_count(fams, INVOCATION) == 0
    assert total_count(fams, HTTP_DURATION) == 0
    # A normal request afterwards is observed.
    assert request(proxy.port, "GET", "/echo").status == 200
    fams = scrape(proxy)
    assert total_count(fams, INVOCATION) == 1
    assert total_count(fams, HTTP_DURATION) == 1


def test_prometheus_any_k_network_probe_value_excluded(make_proxy: Any, app: Any) -> None:
    # Knative: not a health check (no probe UA) and not "probe", so it is proxied to the app,
    # but netheader.IsProbe (non-empty K-Network-Probe) keeps it out of both histograms
    # (appRequestMetricsHandler's defer and otelhttp.WithFilter).
    proxy = make_proxy(observability=PROMETHEUS, container_concurrency=2)
    r = request(proxy.port, "GET", "/echo", [("K-Network-Probe", "activator")])
    assert r.status == 200, r
    assert len(app.requests) == 1
    fams = scrape(proxy)
    assert total_count(fams, INVOCATION) == 0
    assert total_count(fams, HTTP_DURATION) == 0
    # Its trip to the app is the transport's (otelhttp's client metrics), with no route tag:
    # the server handler that carries the labeler skipped it.
    client = hist(fams, "http_client_request_duration_seconds")
    assert [e["count"] for e in client.values()] == [1], client
    assert "kn_route_tag" not in dict(next(iter(client)))


def test_prometheus_queue_full_rejections(make_proxy: Any, app: Any, gate: Gate,
                                          clients: list) -> None:
    proxy = make_proxy(observability=PROMETHEUS, container_concurrency=2)
    for _ in range(2):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: gate.held == 2)
    for _ in range(20):
        clients.append(open_request(proxy.port, "/gate"))
    wait_for(lambda: in_flight(proxy) == 22)
    r = request(proxy.port, "GET", "/gate")
    assert r.status == 503, r
    assert r.body == b"pending request queue full\n"
    fams = scrape(proxy)
    assert total_count(fams, INVOCATION) == 0
    assert series(fams, HTTP_DURATION, **http_labels(status="503"))["count"] == 1
    # The second request into the app saw two in the breaker.
    assert [s.value for s in fams[QUEUE_DEPTH].samples] == [2]
    gate.open()
    for c in clients:
        assert c.read_response().status == 200
    wait_for(lambda: in_flight(proxy) == 0)
    fams = scrape(proxy)
    assert series(fams, INVOCATION, http_response_status_code="200")["count"] == 22
    assert "503" not in {dict(k)["http_response_status_code"] for k in hist(fams, INVOCATION)}
    assert series(fams, HTTP_DURATION, **http_labels(status="200"))["count"] == 22
    assert series(fams, HTTP_DURATION, **http_labels(status="503"))["count"] == 1


def test_prometheus_invocation_excludes_queue_wait(make_proxy: Any, app: Any,
                                                   clients: list) -> None:
    proxy = make_proxy(observability=PROMETHEUS, container_concurrency=1)
    slow = open_request(proxy.port, "/sleep?ms=500")
    clients.append(slow)
    wait_for(lambda: app.active == 1)
    fast = open_request(proxy.port, "/echo")
    clients.append(fast)
    assert slow.read_response().status == 200
    assert fast.read_response().status == 200
    wait_for(lambda: total_count(scrape(proxy), HTTP_DURATION) == 2)
    fams = scrape(proxy)
    inv = series(fams, INVOCATION, http_response_status_code="200")
    assert inv["count"] == 2
    # The /echo was served in ~0 ms after ~500 ms in the queue: a small invocation bucket.
    assert inv["buckets"][0.1] == 1, inv
    assert inv["buckets"][0.25] == 1, inv
    # The whole request (http.server.request.duration) includes the wait: both >= ~0.5 s.
    http = series(fams, HTTP_DURATION, **http_labels())
    assert http["count"] == 2
    assert http["buckets"][0.25] == 0, http


def test_prometheus_queue_depth_without_breaker_absent(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability=PROMETHEUS)  # CC 0: no breaker, no queue depth
    assert request(proxy.port, "GET", "/echo").status == 200
    fams = scrape(proxy)
    assert QUEUE_DEPTH not in fams
    assert total_count(fams, INVOCATION) == 1


def test_prometheus_port_other_path_404(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability=PROMETHEUS)
    r = request(proxy.qp.ports["prometheus"], "GET", "/other")
    assert r.status == 404, r


def test_prometheus_upstream_failure_observed_as_502(make_proxy: Any, app: Any) -> None:
    proxy = make_proxy(observability=PROMETHEUS, user_port=free_port())
    r = request(proxy.port, "GET", "/echo")
    assert r.status == 502, r
    fams = scrape(proxy)
    assert series(fams, HTTP_DURATION, **http_labels(status="502"))["count"] == 1
    assert series(fams, INVOCATION, http_response_status_code="502")["count"] == 1
    # The transport got no response: an error type instead of a status code.
    client = hist(fams, "http_client_request_duration_seconds")
    assert [dict(k).get("error_type") for k in client] == ["net.OpError"], client
    assert "http_response_status_code" not in dict(next(iter(client)))


# ---------------------------------------------------------------------------- a real process


@pytest.fixture
def spawn() -> Iterator[Any]:
    """``spawn(env)`` starts ``python -m proxy``; every process is killed at teardown."""
    import subprocess

    from support import start_queue_proxy

    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> subprocess.Popen:
        proc = start_queue_proxy(env)
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def _answers(port: int) -> bool:
    try:
        return request(port, "GET", "/metrics").status == 200
    except OSError:
        return False


def test_process_stats_and_prometheus_ports_from_environment(spawn: Any, app: Any) -> None:
    import json

    from support import knative_env

    env = knative_env(app.port, cc=2, OBSERVABILITY_CONFIG=json.dumps(PROMETHEUS))
    spawn(env)
    stats_port = int(env["QUEUE_METRICS_PORT"])
    prom_port = int(env["METRICS_PROMETHEUS_PORT"])
    wait_for(lambda: _answers(stats_port) and _answers(prom_port), timeout=10)
    r = request(stats_port, "GET", "/metrics", [("Accept", "text/plain")])
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/protobuf"
    assert Stat.FromString(r.body).pod_name == env["SERVING_POD"]
    assert request(int(env["QUEUE_SERVING_PORT"]), "GET", "/echo",
                   [("Knative-Serving-Tag", "canary")]).status == 200
    r = request(prom_port, "GET", "/metrics")
    fams = {f.name: f for f in text_string_to_metric_families(r.body.decode())}
    assert series(fams, HTTP_DURATION, **http_labels(tag="canary"))["count"] == 1
    assert series(fams, INVOCATION, http_response_status_code="200")["count"] == 1
    assert QUEUE_DEPTH in fams


def test_process_prometheus_port_closed_without_request_metrics(spawn: Any, app: Any) -> None:
    from support import knative_env

    env = knative_env(app.port)
    spawn(env)
    stats_port = int(env["QUEUE_METRICS_PORT"])
    wait_for(lambda: _answers(stats_port), timeout=10)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(env["METRICS_PROMETHEUS_PORT"])),
                                 timeout=2).close()
