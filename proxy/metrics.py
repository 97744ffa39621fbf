"""Knative's request metrics for Prometheus, cheap on the hot path.

Names, labels and buckets follow Knative's queue-proxy (pkg/queue/request_metric.go, the otelhttp
server handler and routetag_handler.go) as its Prometheus exporter shows them:

- ``kn_serving_invocation_duration_seconds`` (histogram, ``http_response_status_code``): time
  spent in the user container, after the breaker: queue wait and 503 rejections are not in it;
- ``kn_serving_queue_depth`` (gauge): requests in the breaker, queued ones included, as last
  seen when a request entered the app (only when containerConcurrency > 0);
- ``http_server_request_duration_seconds`` (histogram, ``http_request_method``,
  ``http_response_status_code``, ``kn_route_tag``): the whole request, outermost. (Knative's
  OTel exporter adds protocol, scheme and server attributes; we keep the three the spec names.)

Probes are never observed. Observations are plain integer additions into per-label-set bucket
arrays (one thread runs the loop, so no lock is needed); prometheus-client only sees them when it
is scraped, through a collector registered in the queue-proxy's own registry (never the global
one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from _speedups.accounting import Histogram

__all__ = ["RequestMetrics", "LATENCY_BOUNDS", "HTTP_DURATION_BOUNDS", "route_tag"]

LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# otelhttp's default boundaries for http.server.request.duration (seconds).
HTTP_DURATION_BOUNDS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
)

DEFAULT_TAG = "kn:default"
UNDEFINED_TAG = "kn:undefined"
DISABLED_TAG = "kn:disabled"


def route_tag(tag: bytes | None, default_route: bytes | None) -> str:
    """Knative's ``GetRouteTagNameFromRequest``."""
    if not tag:
        return DEFAULT_TAG if default_route else DISABLED_TAG
    if default_route == b"true":
        return UNDEFINED_TAG
    return tag.decode("latin-1")


def _family(hist: Histogram, name: str, doc: str, label_names: list[str],
            labels_of: Any) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=label_names)
    for key, s in hist.snapshot().items():
        buckets = []
        acc = 0
        for bound, c in zip(hist.bounds, s[:-2], strict=True):
            acc += c
            buckets.append((_fmt(bound), acc))
        acc += s[-2]
        buckets.append(("+Inf", acc))
        fam.add_metric(labels_of(key), buckets, s[-1])
    return fam


def _fmt(b: float) -> str:
    """Bucket bounds as Go writes them: ``1``, ``10``, ``0.005``."""
    return str(int(b)) if float(b).is_integer() else repr(float(b))


def _http_labels(key: tuple) -> list[str]:
    method, status, tag, default_route = key
    return [method.decode("latin-1"), str(status), route_tag(tag, default_route)]


class RequestMetrics(Collector):
    """The queue-proxy's request metrics; ``registry`` is where they are exposed."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 queue_depth_enabled: bool = False) -> None:
        self.invocation = Histogram(LATENCY_BOUNDS)
        self.http = Histogram(HTTP_DURATION_BOUNDS)
        self.queue_depth: int | None = 0 if queue_depth_enabled else None
        # Read when scraped, if set: where the handler keeps the depth it last saw (PERF: a C
        # field of the compiled handler, not an attribute set here per request).
        self.queue_depth_of: Callable[[], int] | None = None
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe_invocation(self, status: int, seconds: float) -> None:
        self.invocation.observe(status, seconds)

    def observe_http(self, method: bytes, status: int, tag: bytes | None,
                     default_route: bytes | None, seconds: float) -> None:
        """Raw header values go in; labels are made when scraped, not per request."""
        self.http.observe((method, status, tag, default_route), seconds)

    def collect(self) -> Iterator[Any]:
        yield _family(
            self.invocation,
            "kn_serving_invocation_duration_seconds",
            "The duration of task execution",
            ["http_response_status_code"],
            lambda status: [str(status)],
        )
        if self.queue_depth is not None:
            g = GaugeMetricFamily("kn_serving_queue_depth",
                                  "Number of current requests in the queue")
            g.add_metric([], self.queue_depth_of() if self.queue_depth_of is not None
                         else self.queue_depth)
            yield g
        yield _family(
            self.http,
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
            ["http_request_method", "http_response_status_code", "kn_route_tag"],
            _http_labels,
        )

    def describe(self) -> Iterator[Any]:
        return iter(())
