"""Knative's Prometheus metrics, for the queue-proxy and the activator, cheap on the hot path.

What Knative exposes is what its OpenTelemetry instruments become through the OTel Prometheus
exporter (otel/exporters/prometheus 0.66, ``UnderscoreEscapingWithSuffixes``): dots become
underscores, the unit adds ``_seconds`` or ``_bytes``, a counter ``_total``; every series of an
instrument carries its scope (``otel_scope_name``, ``otel_scope_schema_url``,
``otel_scope_version``); the resource is ``target_info``. Checked against the output of Knative's
queue-proxy binary (knative/serving 98e5ef90), request by request; the activator's from its
source (tests/proxy/test_metrics_parity.py holds the table). The request families:

- ``http_server_request_duration_seconds``, ``http_server_request_body_size_bytes``,
  ``http_server_response_body_size_bytes`` (otelhttp's server handler, outermost: probes are
  not measured): ``http_request_method`` (Go's nine, upper-cased, else ``_OTHER``),
  ``http_response_status_code``, ``network_protocol_name`` (``http``),
  ``network_protocol_version`` (``1.0``, ``1.1``, ``2.0``), ``server_address`` and
  ``server_port`` (from the request's Host; no port label when it has none, or the scheme's
  default), ``url_scheme`` (``http``, ``https`` on the TLS port); the queue-proxy adds
  ``kn_route_tag``, the activator the revision's ``kn_service_name``,
  ``kn_configuration_name``, ``kn_revision_name`` and ``k8s_namespace_name``;
- ``http_client_request_duration_seconds``, ``http_client_request_body_size_bytes`` (otelhttp's
  transport, for requests sent on to the app or the pod): the method and protocol labels,
  ``server_address``/``server_port`` of the upstream, ``url_scheme``, and
  ``http_response_status_code``, or ``error_type`` when no response came back; the same
  ``kn_route_tag`` or revision labels (none for a probe the queue-proxy forwards);
- the queue-proxy's ``kn_serving_invocation_duration_seconds`` (``http_response_status_code``:
  time in the user container, after the breaker) and ``kn_serving_queue_depth`` (the breaker's
  in-flight count as a request entered the app; only with containerConcurrency > 0).

Theory of operation. A request makes one observation, ``HistogramGroup.observe`` (a C call in
the compiled build): the raw values it was read with as the key (method bytes, status, Host
bytes, a protocol code, what became of it) and four numbers (the whole request's seconds, the
app's seconds, request body bytes, response body bytes; -1 where none). Labels are made when
scraped, once per key (cached), and each family sums the keys that share its labels. So the hot
path makes no strings, and a label constant per listener (the scheme, the upstream's address)
costs nothing per request. Keys are capped as OpenTelemetry caps attribute sets (2000; then the
``otel_metric_overflow="true"`` series), since Host values come from clients.

Deliberate differences (the durations' meaning): the client duration ends with the response,
as the invocation duration does (Knative's transport stops at the response head), and request
body bytes are those read while the request was served (Knative's transport counts what it had
read when the response head came). prometheus-client is imported only when scraped or
registered, never at import time, and only the registry given (never the global one) is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from _speedups.accounting import HistogramGroup

__all__ = [
    "RequestMetrics",
    "PrometheusHandler",
    "ProcessExtras",
    "DURATION_BOUNDS",
    "SIZE_BOUNDS",
    "LATENCY_BOUNDS",
    "HTTP_DURATION_BOUNDS",
    "SERIES_LIMIT",
    "OTELHTTP_SCOPE",
    "QUEUE_SCOPE",
    "ACTIVATOR_SCOPE",
    "SERVED",
    "PROXIED",
    "FAILED",
    "PROBE_PROXIED",
    "PROBE_FAILED",
    "route_tag",
    "scoped_labels",
    "server_labels",
    "client_labels",
    "sdk_resource",
    "dataplane_version",
    "Projection",
    "method_label",
    "split_host_port",
    "queue_proxy_resource",
    "request_families",
    "target_info",
    "prometheus_address",
    "register_process_collectors",
]

# otelhttp's boundaries for both request durations, and Knative's for the invocation (seconds).
DURATION_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
LATENCY_BOUNDS = DURATION_BOUNDS
HTTP_DURATION_BOUNDS = DURATION_BOUNDS
# The OTel SDK's default explicit buckets, which the body-size histograms use (bytes).
SIZE_BOUNDS = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)
SERIES_LIMIT = 2000  # the OTel Go SDK's default cardinality limit

# The instrumentation scopes, as the exporter writes them on every series of theirs.
OTELHTTP_SCOPE = ("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.69.0")
QUEUE_SCOPE = ("knative.dev/serving/pkg/queue", "")
ACTIVATOR_SCOPE = ("knative.dev/serving/pkg/activator", "")

# What became of a request (the key's last item): which families its observation feeds.
SERVED = 0  # answered without reaching the app (refused, timed out waiting): server families
PROXIED = 1  # sent on and answered by the upstream: server, client (status), invocation
FAILED = 2  # sent on, no answer from the upstream (error, timeout): client reports error_type
PROBE_PROXIED = 3  # a probe sent on (not measured by the server handler): client only
PROBE_FAILED = 4

DEFAULT_TAG = "kn:default"
UNDEFINED_TAG = "kn:undefined"
DISABLED_TAG = "kn:disabled"

_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)


def route_tag(tag: bytes | None, default_route: bytes | None) -> str:
    """Knative's ``GetRouteTagNameFromRequest``."""
    if not tag:
        return DEFAULT_TAG if default_route else DISABLED_TAG
    if default_route == b"true":
        return UNDEFINED_TAG
    return tag.decode("latin-1")


def method_label(method: bytes) -> str:
    """otelhttp's ``standardizeHTTPMethod``: upper-cased, one of Go's nine, else ``_OTHER``."""
    m = method.decode("latin-1").upper()
    return m if m in _METHODS else "_OTHER"


def split_host_port(hostport: str) -> tuple[str, int]:
    """otelhttp's ``SplitHostPort``: (host, port), the port -1 when absent or unparsable."""
    if hostport.startswith("["):
        end = hostport.rfind("]")
        if end < 0:
            return "", -1
        if ":" not in hostport[end:]:
            return hostport[1:end], -1
        host, rest = hostport[1:end], hostport[end + 1:]
        if not rest.startswith(":"):
            return "", -1  # Go's net.SplitHostPort: junk after the bracket
        port_s = rest[1:]
    else:
        i = hostport.rfind(":")
        if i < 0:
            return hostport, -1
        host, port_s = hostport[:i], hostport[i + 1:]
        if ":" in host:
            return "", -1  # an IPv6 address without brackets: "too many colons"
    if not port_s.isdigit() or int(port_s) > 65535:
        return host, -1
    return host, int(port_s)


def _required_port(tls: bool, port: int) -> int:
    """otelhttp's ``requiredHTTPPort``: no port label for the scheme's default."""
    return port if port > 0 and port != (443 if tls else 80) else -1


def _error_type(status: int) -> str:
    """The Go error type otelhttp's transport would name (from what we answered instead): a
    refused or broken connection (our 502) is a ``net.OpError``; a cancelled request (a timeout,
    the client gone) ``errors.errorString``, as Knative's binary reports them."""
    return "net.OpError" if status == 502 else "errors.errorString"


def scoped_labels(labels: dict[str, str], scope: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    labels["otel_scope_name"] = scope[0]
    labels["otel_scope_schema_url"] = ""
    labels["otel_scope_version"] = scope[1]
    return tuple(sorted(labels.items()))  # Go's exposition sorts label names


def _version(proto: int) -> str:
    return "2.0" if proto & 2 else "1.0" if proto & 1 else "1.1"


def proto_code(http10: bool, h2: bool, tls: bool) -> int:
    """The key's protocol item: 1 HTTP/1.0, 2 HTTP/2, 4 TLS (the handlers compute it inline)."""
    return (1 if http10 else 0) | (2 if h2 else 0) | (4 if tls else 0)


def server_labels(method: bytes, status: int, host: bytes | None, proto: int) -> dict[str, str]:
    """otelhttp's server metric attributes (``MetricAttributes``) for one request."""
    tls = bool(proto & 4)
    address, port = split_host_port((host or b"").decode("latin-1"))
    labels = {
        "http_request_method": method_label(method),
        "http_response_status_code": str(status),
        "network_protocol_name": "http",
        "network_protocol_version": _version(proto),
        "server_address": address,
        "url_scheme": "https" if tls else "http",
    }
    port = _required_port(tls, port)
    if port > 0:
        labels["server_port"] = str(port)
    return labels


def client_labels(method: bytes, status: int, proto: int, upstream: str, kind: int,
                  scheme: str = "http") -> dict[str, str]:
    """otelhttp's transport metric attributes: ``upstream`` is the URL's ``host:port``."""
    address, port = split_host_port(upstream)
    labels = {
        "http_request_method": method_label(method),
        "network_protocol_name": "http",
        "network_protocol_version": _version(proto),
        "server_address": address,
        "url_scheme": scheme,
    }
    port = _required_port(scheme == "https", port)
    if port > 0:
        labels["server_port"] = str(port)
    if kind == PROXIED or kind == PROBE_PROXIED:
        labels["http_response_status_code"] = str(status)
    else:
        labels["error_type"] = _error_type(status)
    return labels


# --------------------------------------------------------------------------- families

# A key's labels: (server labels or None, client labels or None, invocation status or None).
Projection = tuple[Any, Any, Any]

_SERVER = (
    ("http_server_request_duration_seconds", "Duration of HTTP server requests.", 0),
    ("http_server_request_body_size_bytes", "Size of HTTP server request bodies.", 2),
    ("http_server_response_body_size_bytes", "Size of HTTP server response bodies.", 3),
)
_CLIENT = (
    ("http_client_request_duration_seconds", "Duration of HTTP client requests.", 1),
    ("http_client_request_body_size_bytes", "Size of HTTP client request bodies.", 2),
)
_INVOCATION = ("kn_serving_invocation_duration_seconds", "The duration of task execution")


def _overflow(scope: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return scoped_labels({"otel_metric_overflow": "true"}, scope)


def _add(acc: dict[Any, list[list[Any]]], labels: Any, hists: list[list[Any]],
         which: tuple[int, ...]) -> None:
    have = acc.get(labels)
    if have is None:
        acc[labels] = [list(hists[i]) for i in which]
        return
    for mine, i in zip(have, which, strict=True):
        for j, v in enumerate(hists[i]):
            mine[j] += v


def _histogram(name: str, doc: str, bounds: tuple[float, ...],
               series: Mapping[Any, list[Any]]) -> Any:
    from prometheus_client.metrics_core import Metric

    fam = Metric(name, doc, "histogram")
    for labels, counts in sorted(series.items()):
        base = dict(labels)
        acc = 0
        for bound, c in zip(bounds, counts, strict=False):
            acc += c
            fam.add_sample(name + "_bucket", {**base, "le": _fmt(bound)}, acc)
        acc += counts[len(bounds)]
        fam.add_sample(name + "_bucket", {**base, "le": "+Inf"}, acc)
        fam.add_sample(name + "_sum", base, counts[-1])
        fam.add_sample(name + "_count", base, acc)
    return fam


def _fmt(b: float) -> str:
    """Bucket bounds as Go writes them: ``1``, ``10``, ``0.005``."""
    return str(int(b)) if float(b).is_integer() else repr(float(b))


def request_families(group: HistogramGroup, labels_of: Callable[[Any], Projection],
                     cache: dict[Any, Projection], invocation: bool = False) -> list[Any]:
    """The request families of one ``HistogramGroup`` (see the module docstring), in name order.

    ``labels_of(key)`` projects a key (never the overflow key, None) onto the server family's
    labels, the client family's and the invocation's status (each None where the key's requests
    do not belong); ``cache`` keeps the projections between scrapes."""
    server: dict[Any, list[list[Any]]] = {}
    client: dict[Any, list[list[Any]]] = {}
    inv: dict[Any, list[list[Any]]] = {}
    for key, hists in group.snapshot().items():
        if key is None:
            if sum(hists[0][:-1]):
                _add(server, _overflow(OTELHTTP_SCOPE), hists, (0, 2, 3))
            if sum(hists[1][:-1]):
                _add(client, _overflow(OTELHTTP_SCOPE), hists, (1, 2))
                if invocation:
                    _add(inv, _overflow(QUEUE_SCOPE), hists, (1,))
            continue
        proj = cache.get(key)
        if proj is None:
            proj = cache[key] = labels_of(key)
        s, c, status = proj
        if s is not None:
            _add(server, s, hists, (0, 2, 3))
        if c is not None:
            _add(client, c, hists, (1, 2))
        if invocation and status is not None:
            _add(inv, status, hists, (1,))
    fams = []
    for families, acc in ((_CLIENT, client), (_SERVER, server)):
        for j, (name, doc, i) in enumerate(families):
            bounds = DURATION_BOUNDS if i < 2 else SIZE_BOUNDS
            fams.append(_histogram(name, doc, bounds, {k: v[j] for k, v in acc.items()}))
    if invocation:
        fams.append(_histogram(*_INVOCATION, DURATION_BOUNDS, {k: v[0] for k, v in inv.items()}))
    # Knative's exporter shows an instrument only once it has a data point.
    return [f for f in fams if f.samples]


def target_info(resource: Mapping[str, str]) -> Any:
    """The resource, as the exporter writes it: one ``target_info`` gauge of value 1."""
    from prometheus_client.metrics_core import Metric

    fam = Metric("target_info", "Target metadata", "gauge")
    fam.add_sample("target_info", {label_name(k): v for k, v in sorted(resource.items())}, 1)
    return fam


def label_name(key: str) -> str:
    """An attribute key as a Prometheus label name (``k8s.pod.name`` -> ``k8s_pod_name``)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return "key_" + name if name[:1].isdigit() else name


def dataplane_version() -> str:
    try:
        from importlib.metadata import version

        return version("kn-dataplane")
    except Exception:  # not installed (run from a checkout)
        return "devel"


def sdk_resource(environ: Mapping[str, str]) -> dict[str, str]:
    """OTel's ``resource.Default()``: the SDK's attributes and ``OTEL_RESOURCE_ATTRIBUTES``
    (``key=value,...``, percent-decoded). The SDK is ours: language ``python``."""
    from urllib.parse import unquote

    attrs: dict[str, str] = {}
    for item in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attrs[key.strip()] = unquote(value.strip())
    attrs.update({
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "kn-dataplane",
        "telemetry.sdk.version": dataplane_version(),
    })
    return attrs


def pod_name(environ: Mapping[str, str]) -> str:
    """knative.dev/pkg's ``system.PodName``: ``POD_NAME``, else ``HOSTNAME``."""
    return environ.get("POD_NAME") or environ.get("HOSTNAME") or ""


def queue_proxy_resource(namespace: str, service: str, configuration: str, revision: str,
                         environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The queue-proxy's resource (Knative's pkg/queue/sharedmain/otel.go ``res``)."""
    env = os.environ if environ is None else environ
    pod = pod_name(env)
    attrs = sdk_resource(env)
    attrs.update({
        "container.name": "queue-proxy",  # semconv's ContainerName: "container_name"
        "k8s.namespace.name": namespace,
        "k8s.pod.name": pod,
        "service.version": dataplane_version(),
        "service.name": (env.get("OTEL_SERVICE_NAME") or service or configuration or revision
                         or pod),
        "service.instance.id": pod,
    })
    if service:
        attrs["kn.service.name"] = service
    if configuration:
        attrs["kn.configuration.name"] = configuration
    if revision:
        attrs["kn.revision.name"] = revision
    return attrs


def prometheus_address(default_port: int, endpoint: str = "",
                       environ: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Where Knative's Prometheus server listens (knative.dev/pkg metrics/prometheus): the
    default port, or the metrics config's ``endpoint`` (``host:port``), then
    ``METRICS_PROMETHEUS_HOST`` and ``METRICS_PROMETHEUS_PORT`` when set. The host "" means
    every address (Go's ``:port``). ValueError for a value Knative would refuse (we also take
    port 0: any free port, for tests)."""
    env = os.environ if environ is None else environ
    host, port = "", str(default_port)
    if endpoint:
        h, p = split_host_port(endpoint)
        if p < 0 or ":" not in endpoint:
            raise ValueError(f'metrics-endpoint "{endpoint}" for prometheus exporter should '
                             'be "host:port"')
        host, port = h, str(p)
    host = env.get("METRICS_PROMETHEUS_HOST") or host
    port = env.get("METRICS_PROMETHEUS_PORT") or port
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"prometheus port {port!r} could not be parsed as a port number")
    return host, int(port)


# --------------------------------------------------------------------------- the queue-proxy


class RequestMetrics:
    """The queue-proxy's request metrics, a prometheus-client collector in ``registry``.

    The handler calls ``series.observe(key, server_seconds, app_seconds, request_bytes,
    response_bytes)`` with the key ``(method, status, Knative-Serving-Tag,
    Knative-Serving-Default-Route, Host, protocol code, kind)`` (raw header values, None when
    absent). ``user_host``/``user_port`` name the app (the client families' server labels);
    ``resource`` is ``target_info``'s (none: no ``target_info``)."""

    def __init__(self, registry: Any = None, queue_depth_enabled: bool = False, *,
                 user_host: str = "127.0.0.1", user_port: int = 8080,
                 resource: Mapping[str, str] | None = None,
                 limit: int = SERIES_LIMIT) -> None:
        self.series = HistogramGroup(
            (DURATION_BOUNDS, DURATION_BOUNDS, SIZE_BOUNDS, SIZE_BOUNDS), limit
        )
        self.upstream = f"{user_host}:{user_port}"
        self.resource = dict(resource) if resource is not None else None
        self.queue_depth: int | None = 0 if queue_depth_enabled else None
        # Read when scraped, if set: where the handler keeps the depth it last saw (PERF: a C
        # field of the compiled handler, not an attribute set here per request).
        self.queue_depth_of: Callable[[], int] | None = None
        self._labels: dict[Any, Projection] = {}
        if registry is None:
            from prometheus_client.registry import CollectorRegistry

            registry = CollectorRegistry(auto_describe=False)
        self.registry = registry
        registry.register(self)

    def observe(self, method: bytes, status: int, seconds: float, *, app_seconds: float = -1.0,
                tag: bytes | None = None, default_route: bytes | None = None,
                host: bytes | None = None, proto: int = 0, kind: int = PROXIED,
                request_bytes: int = 0, response_bytes: int = 0) -> None:
        """One request, for embedders and tests (the handler calls ``series.observe``)."""
        self.series.observe((method, status, tag, default_route, host, proto, kind),
                            seconds if kind < PROBE_PROXIED else -1.0, app_seconds,
                            request_bytes, response_bytes if kind < PROBE_PROXIED else -1.0)

    def labels_of(self, key: tuple) -> Projection:
        method, status, tag, default_route, host, proto, kind = key
        server = client = None
        if kind < PROBE_PROXIED:
            s = server_labels(method, status, host, proto)
            s["kn_route_tag"] = route_tag(tag, default_route)
            server = scoped_labels(s, OTELHTTP_SCOPE)
        if kind != SERVED:
            c = client_labels(method, status, proto, self.upstream, kind)
            if kind < PROBE_PROXIED:
                c["kn_route_tag"] = route_tag(tag, default_route)
            client = scoped_labels(c, OTELHTTP_SCOPE)
        invocation = None
        if kind == PROXIED or kind == FAILED:
            invocation = scoped_labels({"http_response_status_code": str(status)}, QUEUE_SCOPE)
        return server, client, invocation

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import Metric

        fams = request_families(self.series, self.labels_of, self._labels, invocation=True)
        if self.queue_depth is not None:
            g = Metric("kn_serving_queue_depth", "Number of current requests in the queue",
                       "gauge")
            depth = self.queue_depth_of() if self.queue_depth_of is not None else self.queue_depth
            g.add_sample("kn_serving_queue_depth", dict(scoped_labels({}, QUEUE_SCOPE)), depth)
            fams.append(g)
        if self.resource is not None:
            fams.append(target_info(self.resource))
        yield from sorted(fams, key=lambda f: f.name)

    def describe(self) -> Iterator[Any]:
        return iter(())


# --------------------------------------------------------------------------- process, serving


class ProcessExtras:
    """The process families Go's client adds to prometheus-client's ``ProcessCollector``:
    ``process_network_receive_bytes_total``/``_transmit_`` (IpExt's In/OutOctets of the
    network namespace, /proc/self/net/netstat) and ``process_virtual_memory_max_bytes``
    (RLIMIT_AS; unlimited is 2^64 - 1, as Go reads it). Linux only: elsewhere, none."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            with open("/proc/self/net/netstat") as f:
                lines = f.read().splitlines()
            ip = [line.split()[1:] for line in lines if line.startswith("IpExt:")]
            values = dict(zip(ip[0], map(float, ip[1]), strict=False)) if len(ip) == 2 else {}
        except OSError:
            values = {}
        if values:
            yield CounterMetricFamily(
                "process_network_receive_bytes",
                "Number of bytes received by the process over the network.",
                value=values.get("InOctets", 0.0))
            yield CounterMetricFamily(
                "process_network_transmit_bytes",
                "Number of bytes sent by the process over the network.",
                value=values.get("OutOctets", 0.0))
        try:
            import resource

            soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        except (ImportError, OSError, ValueError):
            return
        yield GaugeMetricFamily(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            value=float(2**64 - 1 if soft == resource.RLIM_INFINITY else soft))

    def describe(self) -> Iterator[Any]:
        return iter(())


def register_process_collectors(registry: Any) -> None:
    """The ``process_*`` families of Go's default registry, into ``registry``."""
    from prometheus_client.process_collector import ProcessCollector

    ProcessCollector(registry=registry)
    registry.register(ProcessExtras())


class PrometheusHandler:
    """The Prometheus server's engine handler: ``GET /metrics``, the registry's text exposition
    (knative.dev/pkg's server: ``mux.Handle("GET /metrics", promhttp.Handler())``)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def handle(self, ex: Any) -> None:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        if ex.target.split(b"?", 1)[0] != b"/metrics":
            ex.error(404, "404 page not found")
            return
        if ex.method not in (b"GET", b"HEAD"):
            ex.respond(405, b"Method Not Allowed\n",
                       b"Allow: GET, HEAD\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       b"X-Content-Type-Options: nosniff\r\n")
            return
        body = generate_latest(self.registry)
        ex.respond(200, body, b"Content-Type: " + CONTENT_TYPE_LATEST.encode() + b"\r\n")
