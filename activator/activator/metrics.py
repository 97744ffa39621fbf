"""The activator's Prometheus metrics: Knative's activator families, in the activator's registry.

From Knative's source (cmd/activator/main.go, pkg/activator/handler/{metrics,metric_handler,
concurrency_reporter,handler}.go, pkg/activator/metrics.go), as its OTel Prometheus exporter
names them (proxy.metrics says how):

- the otelhttp families around the request path (``http_server_*``: every request past the
  health and network probes; ``http_client_*``: each request sent to a pod), labelled as the
  queue-proxy's but with the revision's ``kn_service_name``, ``kn_configuration_name``,
  ``kn_revision_name`` and ``k8s_namespace_name`` instead of ``kn_route_tag`` (none for a
  request whose revision is unknown: Knative's context handler answers it before the labeler);
- ``kn_revision_request_concurrency`` (gauge, the four revision labels): the average concurrency
  of each 1 s report sent to the autoscaler;
- ``kn_revision_request_queued`` and ``kn_revision_request_active`` (gauges from up-down
  counters; ``k8s_namespace_name``, ``kn_revision_name``): requests waiting in the throttler and
  requests being proxied, read from each revision's throttler when scraped;
- ``kn_activator_stats_conn_reachable`` (gauge) and ``kn_activator_stats_conn_errors_total``
  (counter), ``peer="autoscaler"``: the stat websocket's state, from its first connection and
  its first loss on;
- ``target_info`` (``service_name="activator"``, the namespace, the pod) and ``process_*``.

Each family carries Knative's scope labels. Not here: Go's runtime families (``go_*``),
client_golang's ``promhttp_*``, and the Kubernetes client's (``kn_k8s_client_*`` and its
``http_client_request_duration_seconds`` series for API-server calls: no API server here).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from _speedups.accounting import HistogramGroup
from proxy.metrics import (
    ACTIVATOR_SCOPE,
    DURATION_BOUNDS,
    OTELHTTP_SCOPE,
    PROBE_PROXIED,
    SERIES_LIMIT,
    SERVED,
    SIZE_BOUNDS,
    Projection,
    client_labels,
    dataplane_version,
    request_families,
    scoped_labels,
    sdk_resource,
    server_labels,
    split_host_port,
    target_info,
)

__all__ = ["ActivatorMetrics", "activator_attributes", "activator_resource"]


def activator_resource(pod_name: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """knative.dev/pkg's ``resource.Default("activator")``: the SDK's attributes and
    ``activator_attributes``."""
    env = os.environ if environ is None else environ
    attrs = sdk_resource(env)
    attrs.update(activator_attributes(pod_name, env))
    return attrs


def activator_attributes(pod_name: str, env: Mapping[str, str]) -> dict[str, str]:
    """Knative's own attributes of the activator's resource (``SetupObservabilityOrDie(ctx,
    "activator", ...)``): its namespace (``SYSTEM_NAMESPACE``), version, name (``activator``;
    ``OTEL_SERVICE_NAME`` overrides it) and pod."""
    attrs = {
        "k8s.namespace.name": env.get("SYSTEM_NAMESPACE") or "knative-serving",
        "service.version": dataplane_version(),
        "service.name": env.get("OTEL_SERVICE_NAME") or "activator",
    }
    if pod_name:
        attrs["k8s.pod.name"] = pod_name
    return attrs


def _revision_labels(rev: Any) -> dict[str, str]:
    spec = rev.spec
    return {
        "k8s_namespace_name": rev.namespace,
        "kn_configuration_name": getattr(spec, "configuration", ""),
        "kn_revision_name": rev.name,
        "kn_service_name": getattr(spec, "service", ""),
    }


class ActivatorMetrics:
    """The activator's collector, registered in ``registry`` (a new one when None).

    The request handler calls ``series.observe(key, server_seconds, pod_seconds, request_bytes,
    response_bytes)`` with the key ``(method, status, Host, protocol code, revision or None, pod
    address or None, kind)`` (proxy.metrics' codes). ``revisions`` (set by the ``Activator``)
    gives the live revisions, whose throttlers the queued and active gauges read."""

    def __init__(self, registry: Any = None, *, resource: Mapping[str, str] | None = None,
                 limit: int = SERIES_LIMIT) -> None:
        self.series = HistogramGroup(
            (DURATION_BOUNDS, DURATION_BOUNDS, SIZE_BOUNDS, SIZE_BOUNDS), limit
        )
        self.resource = dict(resource) if resource is not None else None
        self.revisions: Callable[[], Iterable[Any]] | None = None
        # Requests go to pods over TLS on this port (system-internal TLS: Knative's
        # useSecurePort), not to the endpoint's: the client families say https and this port.
        self.pod_tls_port: int | None = None
        # (namespace, name) -> (service, configuration, the last report's concurrency)
        self.concurrency: dict[tuple[str, str], tuple[str, str, float]] = {}
        self.reachable: int | None = None  # the autoscaler websocket: none until it connects
        self.conn_errors: int | None = None  # connections lost: none until the first
        self._labels: dict[Any, Projection] = {}
        if registry is None:
            from prometheus_client.registry import CollectorRegistry

            registry = CollectorRegistry(auto_describe=False)
        self.registry = registry
        registry.register(self)

    # ------------------------------------------------------------------ recording

    def record_concurrency(self, reports: Iterable[Any],
                           revision_of: Callable[[str, str], Any]) -> None:
        """The 1 s report's averages (Knative's ``reportToMetricsBackend``): one gauge value per
        revision reported; a revision no longer known is skipped, as Knative skips one its
        lister cannot find."""
        for r in reports:
            rev = revision_of(r.namespace, r.name)
            if rev is None:
                continue
            labels = _revision_labels(rev)
            self.concurrency[(r.namespace, r.name)] = (
                labels["kn_service_name"], labels["kn_configuration_name"],
                float(r.average_concurrency))

    def on_autoscaler_connect(self) -> None:
        self.reachable = 1

    def on_autoscaler_disconnect(self) -> None:
        self.reachable = 0
        self.conn_errors = (self.conn_errors or 0) + 1

    # ------------------------------------------------------------------ scraping

    def labels_of(self, key: tuple) -> Projection:
        method, status, host, proto, rev, pod, kind = key
        extra = _revision_labels(rev) if rev is not None else {}
        server = client = None
        if kind < PROBE_PROXIED:
            server = scoped_labels({**server_labels(method, status, host, proto), **extra},
                                   OTELHTTP_SCOPE)
        if kind != SERVED and pod is not None:
            scheme = "http"
            if self.pod_tls_port is not None:
                host_ = split_host_port(pod)[0]
                pod = (f"[{host_}]" if ":" in host_ else host_) + f":{self.pod_tls_port}"
                scheme = "https"
            client = scoped_labels(
                {**client_labels(method, status, proto, pod, kind, scheme), **extra},
                OTELHTTP_SCOPE)
        return server, client, None

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import Metric

        fams = request_families(self.series, self.labels_of, self._labels)

        def gauge(name: str, doc: str, kind: str = "gauge") -> Any:
            fam = Metric(name, doc, kind)
            fams.append(fam)
            return fam

        if self.concurrency:
            g = gauge("kn_revision_request_concurrency",
                      "Concurrent requests that are routed to Activator")
            for (ns, name), (service, configuration, value) in sorted(self.concurrency.items()):
                g.add_sample(g.name, dict(scoped_labels({
                    "k8s_namespace_name": ns, "kn_configuration_name": configuration,
                    "kn_revision_name": name, "kn_service_name": service,
                }, ACTIVATOR_SCOPE)), value)
        revisions = sorted(self.revisions() if self.revisions is not None else (),
                           key=lambda r: (r.namespace, r.name))
        if revisions:
            queued = gauge("kn_revision_request_queued",
                           "Number of requests currently queued in the activator waiting for "
                           "capacity")
            active = gauge("kn_revision_request_active",
                           "Number of requests currently being proxied by the activator")
            for rev in revisions:
                labels = dict(scoped_labels({"k8s_namespace_name": rev.namespace,
                                       "kn_revision_name": rev.name}, ACTIVATOR_SCOPE))
                queued.add_sample(queued.name, labels, rev.throttler.waiting)
                active.add_sample(active.name, labels, rev.throttler.active)
        peer = dict(scoped_labels({"peer": "autoscaler"}, ACTIVATOR_SCOPE))
        if self.reachable is not None:
            g = gauge("kn_activator_stats_conn_reachable",
                      "Whether a peer is reachable from the activator (1 = reachable, "
                      "0 = not reachable)")
            g.add_sample(g.name, peer, self.reachable)
        if self.conn_errors is not None:
            # prometheus-client writes a counter family's name with "_total" appended.
            c = gauge("kn_activator_stats_conn_errors",
                      "Number of connection errors from the activator", "counter")
            c.add_sample("kn_activator_stats_conn_errors_total", peer, self.conn_errors)
        if self.resource is not None:
            fams.append(target_info(self.resource))
        yield from sorted(fams, key=lambda f: f.name)

    def describe(self) -> Iterator[Any]:
        return iter(())
