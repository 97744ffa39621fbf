"""Knative's Prometheus families, for the parity tests: names, types and label-name sets.

Tables of what Knative exposes, and helpers that scrape ours and compare, used by
tests/proxy/test_metrics_parity.py (the queue-proxy) and
tests/activator/activator/test_activator_metrics_parity.py (the activator). Sources:

- the queue-proxy: the scrape of Knative's own binary (knative/serving 98e5ef90,
  ``OBSERVABILITY_CONFIG={"requestMetrics":{"protocol":"prometheus"}}``, CONTAINER_CONCURRENCY=1,
  REVISION_TIMEOUT_SECONDS=1, SERVING_SERVICE set) after the kinds of requests the test sends:
  a GET whose Host has a port, a POST whose Host has none, a request with
  ``K-Network-Probe: queue`` (sent on to the app), one the timeout cut before the app answered,
  and a health check with the ``Knative-Activator-Probe`` User-Agent (the one label set we do
  not produce, ``QUEUE_PROXY_NOT_OURS``). Bucket bounds from the same scrape;
- the activator: Knative's source (cmd/activator/main.go: otelhttp's handler outside the
  context and metric-attribute handlers; its transport in pkg/activator/handler/handler.go;
  pkg/activator/handler/metrics.go, metric_handler.go, concurrency_reporter.go,
  pkg/activator/metrics.go; knative.dev/pkg observability/resource), named as the exporter
  names the queue-proxy's (dots to underscores, ``{...}`` units dropped, ``_total`` for
  counters; up-down counters are gauges).
"""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families
from support import request

SCOPE = ("otel_scope_name", "otel_scope_schema_url", "otel_scope_version")


def labels(*names: str) -> tuple[str, ...]:
    """A label-name set (sorted), the scope labels included."""
    return tuple(sorted((*names, *SCOPE)))


# otelhttp's metric attributes (go.opentelemetry.io/contrib/.../otelhttp 0.69.0, semconv 1.41).
HTTP = ("http_request_method", "network_protocol_name", "network_protocol_version",
        "server_address", "url_scheme")
STATUS = "http_response_status_code"
REVISION = ("k8s_namespace_name", "kn_configuration_name", "kn_revision_name", "kn_service_name")

DURATION_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
SIZE_BOUNDS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]

PROCESS = {  # client_golang's process collector (Go's default registry), no labels
    "process_cpu_seconds_total": ("counter", {()}),
    "process_max_fds": ("gauge", {()}),
    "process_network_receive_bytes_total": ("counter", {()}),
    "process_network_transmit_bytes_total": ("counter", {()}),
    "process_open_fds": ("gauge", {()}),
    "process_resident_memory_bytes": ("gauge", {()}),
    "process_start_time_seconds": ("gauge", {()}),
    "process_virtual_memory_bytes": ("gauge", {()}),
    "process_virtual_memory_max_bytes": ("gauge", {()}),
}

# Knative's queue-proxy, from its binary's scrape: family -> (type, label-name sets).
KNATIVE_QUEUE_PROXY: dict[str, tuple[str, set[tuple[str, ...]]]] = {
    **{name: ("histogram", {
        labels(*HTTP, STATUS, "kn_route_tag", "server_port"),  # Host: 127.0.0.1:port
        labels(*HTTP, STATUS, "kn_route_tag"),  # Host without a port (or :80)
        labels(*HTTP, STATUS, "server_port"),  # the drainer's health answer: no route tag
    }) for name in ("http_server_request_duration_seconds",
                    "http_server_request_body_size_bytes",
                    "http_server_response_body_size_bytes")},
    **{name: ("histogram", {
        labels(*HTTP, STATUS, "kn_route_tag", "server_port"),  # the app answered
        labels(*HTTP, STATUS, "server_port"),  # a probe sent on: the labeler is not there
        labels(*HTTP, "error_type", "kn_route_tag", "server_port"),  # no answer (timeout)
    }) for name in ("http_client_request_duration_seconds",
                    "http_client_request_body_size_bytes")},
    "kn_serving_invocation_duration_seconds": ("histogram", {labels(STATUS)}),
    "kn_serving_queue_depth": ("gauge", {labels()}),
    "target_info": ("gauge", {tuple(sorted((
        "container_name", "k8s_namespace_name", "k8s_pod_name", "kn_configuration_name",
        "kn_revision_name", "kn_service_name", "service_instance_id", "service_name",
        "service_version", "telemetry_sdk_language", "telemetry_sdk_name",
        "telemetry_sdk_version")))}),
    **PROCESS,
}
# Knative's, deliberately not ours: a Go runtime's and client_golang's handler's own.
QUEUE_PROXY_GO_ONLY = re.compile(r"go_.*|promhttp_metric_handler_.*")
# Knative's label sets we do not produce: health checks with the activator's or autoscaler's
# User-Agent are answered before our measuring (Knative's otelhttp filter only knows probes).
QUEUE_PROXY_NOT_OURS = {
    name: {labels(*HTTP, STATUS, "server_port")}
    for name in ("http_server_request_duration_seconds", "http_server_request_body_size_bytes",
                 "http_server_response_body_size_bytes")
}

# Knative's activator, from its source: family -> (type, label-name sets).
KNATIVE_ACTIVATOR: dict[str, tuple[str, set[tuple[str, ...]]]] = {
    **{name: ("histogram", {
        labels(*HTTP, STATUS, *REVISION),  # Host: <revision>.<namespace>.svc.cluster.local
        labels(*HTTP, STATUS, *REVISION, "server_port"),  # a Host with a port
        labels(*HTTP, STATUS),  # an unknown revision: the context handler's 404
    }) for name in ("http_server_request_duration_seconds",
                    "http_server_request_body_size_bytes",
                    "http_server_response_body_size_bytes")},
    **{name: ("histogram", {
        labels(*HTTP, STATUS, *REVISION, "server_port"),  # the pod answered
        labels(*HTTP, "error_type", *REVISION, "server_port"),  # no answer (timeout)
    }) for name in ("http_client_request_duration_seconds",
                    "http_client_request_body_size_bytes")},
    "kn_revision_request_concurrency": ("gauge", {labels(*REVISION)}),
    "kn_revision_request_queued": ("gauge", {labels("k8s_namespace_name", "kn_revision_name")}),
    "kn_revision_request_active": ("gauge", {labels("k8s_namespace_name", "kn_revision_name")}),
    "kn_activator_stats_conn_reachable": ("gauge", {labels("peer")}),
    "kn_activator_stats_conn_errors_total": ("counter", {labels("peer")}),
    "target_info": ("gauge", {tuple(sorted((
        "k8s_namespace_name", "k8s_pod_name", "service_name", "service_version",
        "telemetry_sdk_language", "telemetry_sdk_name", "telemetry_sdk_version")))}),
    **PROCESS,
}
# Knative's activator also has (not here, deliberately): go_*, promhttp_*, and the Kubernetes
# client's kn_k8s_client_http_response_status_code_total plus its API-server series of
# http_client_request_duration_seconds ({http_request_method, server_address, server_port,
# url_scheme, url_template}, scope knative.dev/pkg/observability/metrics/k8s): no API server.

# Families and label sets of ours that Knative does not have: none.
OUR_EXTRAS: dict[str, tuple[str, set[tuple[str, ...]]]] = {}


# ---------------------------------------------------------------------------- scraping


def scrape(port: int) -> dict[str, tuple[str, set[tuple[str, ...]]]]:
    """{family: (type, {label-name set})} and every histogram's bucket bounds checked."""
    r = request(port, "GET", "/metrics")
    assert r.status == 200, r
    out: dict[str, tuple[str, set[tuple[str, ...]]]] = {}
    for fam in text_string_to_metric_families(r.body.decode()):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        sets = {tuple(sorted(k for k in s.labels if k != "le")) for s in fam.samples}
        out[name] = (fam.type, sets)
        if fam.type == "histogram":
            for labelled in sets:
                les = [float(s.labels["le"]) for s in fam.samples
                       if s.name.endswith("_bucket")
                       and tuple(sorted(k for k in s.labels if k != "le")) == labelled]
                want = SIZE_BOUNDS if name.endswith("_bytes") else DURATION_BOUNDS
                # Each series once (the first series' bounds, then the same again per series).
                assert les[:len(want) + 1] == [*want, float("inf")], (name, les)
    return out


def compare(ours: dict, knative: dict, go_only: re.Pattern[str] | None = None,
            not_ours: dict | None = None) -> None:
    not_ours = not_ours or {}
    want = {name: (kind, sets - not_ours.get(name, set()))
            for name, (kind, sets) in knative.items()}
    want.update(OUR_EXTRAS)
    assert sorted(ours) == sorted(want), (
        f"ours only: {sorted(set(ours) - set(want))}; "
        f"Knative's only: {sorted(set(want) - set(ours))}")
    for name, (kind, sets) in want.items():
        assert ours[name][0] == kind, (name, ours[name][0], kind)
        assert ours[name][1] == sets, (name, "ours only:", ours[name][1] - sets,
                                       "Knative's only:", sets - ours[name][1])


