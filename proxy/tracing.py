"""Tracing as Knative's queue-proxy sets it up: the configuration and the OpenTelemetry provider.

What Knative reads (knative.dev/pkg/observability/tracing, pkg/queue/sharedmain/otel.go):

- ``OBSERVABILITY_CONFIG``'s ``tracing`` object: ``protocol`` (``grpc``, ``http/protobuf``,
  ``stdout`` or ``none``, the default), ``endpoint`` (a URL; one with no ``//`` after its scheme,
  ``collector:4317``, gets ``https://`` in front), ``samplingRate`` (0 to 1). Another protocol is
  fatal at start-up.
- the sampler: ``stdout`` samples everything; otherwise a rate of 1 or more (or
  ``OTEL_TRACES_SAMPLER_ARG`` of 1 or more) samples everything, whatever the parent said; a
  configured rate of 0 or less samples nothing, whatever the parent said; in between,
  ``ParentBased(TraceIDRatioBased(samplingRate))`` (the configured rate: Knative reads
  ``OTEL_TRACES_SAMPLER_ARG`` only for the "1 or more" test). With ``OTEL_TRACES_SAMPLER`` set,
  the SDK's own sampler from the environment.
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set: the
  configured endpoint is ignored and the exporter takes the environment's. The other ``OTEL_*``
  variables (``OTEL_EXPORTER_OTLP_*`` headers, timeout, compression, certificates; ``OTEL_BSP_*``
  batching; ``OTEL_RESOURCE_ATTRIBUTES``) are read by the SDK itself, in Python as in Go.
- spans are batched (a background thread exports them) and flushed when the process stops.
- the resource: ``service.name`` (``OTEL_SERVICE_NAME``, else ``SERVING_SERVICE``,
  ``SERVING_CONFIGURATION``, ``SERVING_REVISION``, the pod name), ``service.version``,
  ``service.instance.id`` and ``k8s.pod.name`` (``POD_NAME``, else ``HOSTNAME``),
  ``k8s.namespace.name``, ``container.name: queue-proxy`` (sic: Knative's key) and
  ``kn.service.name`` / ``kn.configuration.name`` / ``kn.revision.name`` when set.

This module imports no OpenTelemetry package until a provider is built (``build``): with tracing
off (``none``, the default) nothing of it is ever loaded. Which spans a request gets is the
handler's business (``proxy.queue_tracing``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy.metrics import OTELHTTP_SCOPE

__all__ = ["PROTOCOLS", "TracingSettings", "Tracing", "settings_from", "build"]

log = logging.getLogger("proxy")

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
STDOUT = "stdout"
NONE = "none"
PROTOCOLS = (GRPC, HTTP_PROTOBUF, STDOUT, NONE)

# The instrumentation scopes of Knative's spans: otelhttp's (the server and client spans, with
# its version), the queue package's tracer (kn.queueproxy.proxy and .wait) and the activator's
# (throttler_try, activator_proxy). Kept, so that a query by scope finds the same spans from
# ours as from Knative's.
HTTP_SCOPE, HTTP_SCOPE_VERSION = OTELHTTP_SCOPE
QUEUE_SCOPE = "knative.dev/serving/pkg/queue"
ACTIVATOR_SCOPE = "knative.dev/serving/pkg/activator"

# Knative flushes the provider on the way out with this bound (main.go: a 10 s context).
SHUTDOWN_TIMEOUT = 10.0

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class TracingSettings:
    """``OBSERVABILITY_CONFIG``'s ``tracing`` and the ``OTEL_*`` variables Knative itself reads."""

    protocol: str = NONE
    endpoint: str = ""
    sampling_rate: float = 0.0
    sampler_from_env: bool = False  # OTEL_TRACES_SAMPLER is set: the SDK's choice
    rate_override: float | None = None  # OTEL_TRACES_SAMPLER_ARG
    endpoint_from_env: bool = False  # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set

    @property
    def enabled(self) -> bool:
        return self.protocol != NONE

    def sampler_kind(self) -> str:
        """``env``, ``always_on``, ``always_off`` or ``parentbased_traceidratio`` (Knative's
        ``sampleFor``)."""
        if self.sampler_from_env:
            return "env"
        if self.protocol == STDOUT:
            return "always_on"
        rate = self.rate_override if self.rate_override is not None else self.sampling_rate
        if rate >= 1.0:
            return "always_on"
        if self.sampling_rate <= 0.0:  # sic: the configured rate, not the override
            return "always_off"
        return "parentbased_traceidratio"

    def endpoint_url(self) -> str | None:
        """The exporter's endpoint, or None for the SDK's (the environment's, or its default)."""
        if self.endpoint_from_env or not self.endpoint:
            return None
        ep = self.endpoint
        # Go's url.Parse: "host:4317" is scheme "host" with an opaque part; Knative then
        # prefixes https://.
        m = _SCHEME.match(ep)
        if m is not None and not ep[m.end():].startswith("/"):
            return "https://" + ep
        return ep


def settings_from(tracing: Any, env: Mapping[str, str]) -> TracingSettings:
    """The settings from ``OBSERVABILITY_CONFIG``'s ``tracing`` object (None: absent) and the
    environment. ``ValueError`` where Knative's queue-proxy would not start."""
    if tracing is None:
        tracing = {}
    if not isinstance(tracing, dict):
        raise ValueError("OBSERVABILITY_CONFIG: tracing must be a JSON object")
    protocol = tracing.get("protocol", NONE)
    if not isinstance(protocol, str):
        raise ValueError("OBSERVABILITY_CONFIG: tracing: protocol must be a string")
    if protocol not in PROTOCOLS:
        # Knative: "error creating tracer exporter: unsupported metric exporter" (sic)
        raise ValueError(f"OBSERVABILITY_CONFIG: tracing: unsupported protocol {protocol!r}")
    endpoint = tracing.get("endpoint", "")
    if not isinstance(endpoint, str):
        raise ValueError("OBSERVABILITY_CONFIG: tracing: endpoint must be a string")
    endpoint_from_env = bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if protocol in (GRPC, HTTP_PROTOBUF) and not endpoint_from_env and endpoint:
        first = endpoint.split("/", 1)[0]
        if _SCHEME.match(endpoint) is None and ":" in first:
            # Go's url.Parse, which Knative's endpointFor calls: fatal at start-up.
            raise ValueError(
                f"OBSERVABILITY_CONFIG: tracing: unable to process traces endpoint: parse "
                f"{endpoint!r}: first path segment in URL cannot contain colon"
            )
    rate = tracing.get("samplingRate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError("OBSERVABILITY_CONFIG: tracing: samplingRate must be a number")
    override = None
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "")
    if protocol != NONE and raw and not env.get("OTEL_TRACES_SAMPLER"):
        try:
            override = float(raw)
        except ValueError:
            raise ValueError(
                f"OTEL_TRACES_SAMPLER_ARG: unable to parse sample rate override {raw!r}"
            ) from None
    return TracingSettings(
        protocol=protocol,
        endpoint=endpoint,
        sampling_rate=float(rate),
        sampler_from_env=bool(env.get("OTEL_TRACES_SAMPLER")),
        rate_override=override,
        endpoint_from_env=endpoint_from_env,
    )


class Tracing:
    """A built provider and what the handler takes from it: the sampler, the id generator,
    the resource, the span processor (batching, exporting), the two instrumentation scopes and
    the W3C trace-context propagator; and a bounded shutdown.

    The handler makes its spans as finished ``ReadableSpan``s, handed to the processor when the
    request ends, rather than through ``Tracer.start_span``: see ``proxy.queue_tracing``."""

    def __init__(self, settings: TracingSettings, provider: Any, processor: Any) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.settings = settings
        self.provider = provider
        self.processor = processor
        self.sampler = provider.sampler
        self.id_generator = provider.id_generator
        self.resource = provider.resource
        self.http_scope = InstrumentationScope(HTTP_SCOPE, HTTP_SCOPE_VERSION)
        self.queue_scope = InstrumentationScope(QUEUE_SCOPE)
        self.activator_scope = InstrumentationScope(ACTIVATOR_SCOPE)
        self.propagator = TraceContextTextMapPropagator()
        self._shut = False

    def force_flush(self, timeout: float = SHUTDOWN_TIMEOUT) -> bool:
        """Exports what has ended (blocking: call it from a thread, not the loop)."""
        return bool(self.provider.force_flush(int(timeout * 1000)))

    def shutdown(self) -> None:
        """Exports what has ended and stops the exporter (blocking: the export's own timeouts
        bound it); twice is once."""
        if self._shut:
            return
        self._shut = True
        self.provider.shutdown()

    def shutdown_in_background(self, then: Callable[[], None] | None = None) -> None:
        """``shutdown`` in a daemon thread, then ``then()`` there: an export never blocks the
        loop, and one stuck on an unreachable collector never holds the process's exit."""

        def run() -> None:
            try:
                self.shutdown()
            except Exception:  # pragma: no cover - an exporter's own failure
                log.exception("Error flushing traces")
            if then is not None:
                then()

        threading.Thread(target=run, name="tracing-shutdown", daemon=True).start()

    async def drain(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Flushes and stops the exporter, waiting at most ``timeout`` (Knative's 10 s)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def then() -> None:
            try:
                loop.call_soon_threadsafe(finished)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        self.shutdown_in_background(then)
        try:
            await asyncio.wait_for(done, timeout)
        except asyncio.TimeoutError:
            log.error("Error flushing traces: not done within %.0f s", timeout)


def _sampler(settings: TracingSettings) -> Any:
    from opentelemetry.sdk.trace import sampling

    kind = settings.sampler_kind()
    if kind == "env":
        return None  # TracerProvider reads OTEL_TRACES_SAMPLER(_ARG) itself
    if kind == "always_on":
        return sampling.ALWAYS_ON
    if kind == "always_off":
        return sampling.ALWAYS_OFF
    return sampling.ParentBased(sampling.TraceIdRatioBased(settings.sampling_rate))


def _exporter(settings: TracingSettings) -> Any:
    url = settings.endpoint_url()
    if settings.protocol == HTTP_PROTOBUF:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=url)
    if settings.protocol == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=url)
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(out=sys.stdout)


def resource_attributes(env: Mapping[str, str], namespace: str, service: str,
                        configuration: str, revision: str, version: str) -> dict[str, str]:
    """Knative's resource attributes for the queue-proxy (sharedmain/otel.go ``res``);
    ``service``, ``configuration`` and ``revision`` are SERVING_SERVICE and the others."""
    pod = env.get("POD_NAME") or env.get("HOSTNAME") or ""
    service_name = (env.get("OTEL_SERVICE_NAME") or service or configuration or revision
                    or pod)
    attrs = {
        "container.name": "queue-proxy",
        "k8s.namespace.name": namespace,
        "k8s.pod.name": pod,
        "service.version": version,
        "service.name": service_name,
        "service.instance.id": pod,
    }
    for value, key in ((service, "kn.service.name"), (configuration, "kn.configuration.name"),
                       (revision, "kn.revision.name")):
        if value:
            attrs[key] = value
    return attrs


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("kn-dataplane")
    except Exception:  # not installed as a distribution (a plain checkout on sys.path)
        return ""


class _Sparse(logging.Filter):
    """Lets the batch processor's "queue full" warning through once a minute: it logs one per
    dropped span, thousands a second when the exporter falls behind (Go's drops silently)."""

    def __init__(self, period: float = 60.0) -> None:
        super().__init__()
        self.period = period
        self.last = -period
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "full" not in str(record.msg):
            return True
        self.dropped += 1
        now = time.monotonic()
        if now - self.last < self.period:
            return False
        self.last = now
        record.msg = f"{record.msg} (spans dropped so far: {self.dropped})"
        return True


_SPARSE = _Sparse()
# The batch processor's logger: its module in the SDK's later releases and in the 1.3x.
_BATCH_LOGGERS = ("opentelemetry.sdk._shared_internal", "opentelemetry.sdk.trace.export")


def build(settings: TracingSettings, env: Mapping[str, str], namespace: str = "",
          service: str = "", configuration: str = "", revision: str = "",
          resource: Mapping[str, str] | None = None) -> Tracing:
    """The provider for ``settings`` (enabled): sampler, batching exporter, resource (the
    queue-proxy's for that revision, unless ``resource`` gives another: the activator's)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    for name in _BATCH_LOGGERS:
        if _SPARSE not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_SPARSE)
    if resource is None:
        resource = resource_attributes(env, namespace, service, configuration, revision,
                                       _version())
    created = Resource.create(dict(resource))

    class HashedResource(Resource):
        """PERF: the OTLP encoder groups every span by its resource, and a Resource hashes a
        JSON dump of its attributes each time (11 us of a span's 50 here); it never changes."""

        def __init__(self, attributes: Any, schema_url: str | None = None) -> None:
            super().__init__(attributes, schema_url)
            self._hash = super().__hash__()

        def __hash__(self) -> int:
            return self._hash

    hashed = HashedResource(created.attributes, created.schema_url)
    # shutdown_on_exit=False: the proxies flush on drain (bounded), not in atexit.
    provider = TracerProvider(sampler=_sampler(settings), resource=hashed,
                              shutdown_on_exit=False)
    processor = BatchSpanProcessor(_exporter(settings))
    provider.add_span_processor(processor)
    return Tracing(settings, provider, processor)
