"""The activator's handler with tracing on: Knative's activator spans around the same chain.

Chosen once, when the ``Activator`` is given a ``proxy.tracing.Tracing`` (``tracing_for`` builds
one from ``OBSERVABILITY_CONFIG``'s JSON and the ``OTEL_*`` variables, as the queue-proxy reads
them; the resource is Knative's ``resource.Default("activator")``). ``TracingActivatorHandler``
is a subclass of the compiled ``ActivatorHandler``: with tracing off that class runs alone, as
before tracing existed, and this module is not even imported. This one wraps ``handle``,
``handle_revision``, ``run`` and ``forward`` (the base calls them as C calls that find the
overrides) and chains ``on_done``.

Knative's spans, from its source (cmd/activator/main.go's handler chain,
pkg/activator/handler/handler.go and tracing_handler.go, otelhttp 0.69.0):

- the server span (otelhttp's handler, given the operation ``handle``; otelhttp names the span
  after the method, ``GET``): around everything past the health and network probes, which are
  answered outside it and never traced; parent the caller's ``traceparent``. Its attributes are
  otelhttp's (``proxy.http_spans``) and, for a request whose revision is known (past Knative's
  context handler: an unknown one gets its 404 without them), the four its tracing attribute
  handler copies from the labeler: ``kn.service.name``, ``kn.configuration.name``,
  ``kn.revision.name``, ``k8s.namespace.name``. No ``kn.route.tag`` (the queue-proxy's).
- ``throttler_try``, INTERNAL, scope ``knative.dev/serving/pkg/activator``: child of the server
  span, from the request entering the throttler to getting a slot on a pod. Without one, status
  Error with Go's error text: ``pending request queue full`` when the queue is full,
  ``context canceled`` when the request ended while it waited (its revision timeout, or its
  client gone: Knative's timeout handler cancels the request's context).
- ``activator_proxy``, INTERNAL, same scope: from the slot to the end of the proxied request; a
  sibling of ``throttler_try`` (child of the server span: Go starts it from the request's
  context, not from the try's).
- the client span (otelhttp's transport): child of ``activator_proxy``, named ``GET /path``
  (the method and the decoded path sent: Knative's name formatter); ``url.full`` names the pod
  (``https`` and its TLS port with system-internal TLS). The pod's queue-proxy gets its context
  as ``traceparent`` (and the trace's ``tracestate``), the incoming ones replaced.

Differences: a request handed over by an embedder (``Revision.hold``: the local runtime's front
door) is not traced, as it never passed the activator's listeners; Knative's ``baggage``
propagator re-encodes a ``baggage`` header (here it passes as it came); a request the activator
answers itself once it has a slot (a pod removed meanwhile: 502) has no client span.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from time import time_ns
from typing import TYPE_CHECKING, Any

from _speedups import fields as F
from activator.activator.app import _REJECTED, HEALTH_USER_AGENT, ActivatorHandler
from proxy.http_spans import HttpSpans, Trace, url_path

if TYPE_CHECKING:
    from activator.activator.app import Activator, Revision
    from proxy.engine import UpstreamPool
    from proxy.engine.server import Exchange
    from proxy.tracing import Tracing

__all__ = ["TracingActivatorHandler", "tracing_for"]

QUEUE_FULL = "pending request queue full"  # Knative's queue.ErrRequestQueueFull
CANCELED = "context canceled"  # Go's context.Canceled


def tracing_for(observability: str | Mapping[str, Any] | None, env: Mapping[str, str],
                pod_name: str) -> Tracing | None:
    """The activator's tracing from ``OBSERVABILITY_CONFIG``'s JSON (text or parsed) and the
    environment, or None when it is off (then no OpenTelemetry module is imported).
    ``ValueError`` where Knative's activator would not start."""
    from proxy.tracing import build, settings_from

    obs: Any = {} if observability is None else observability
    if isinstance(obs, str):
        try:
            obs = json.loads(obs) if obs.strip() else {}
        except ValueError as exc:
            raise ValueError(f"OBSERVABILITY_CONFIG: invalid JSON: {exc}") from None
    if not isinstance(obs, Mapping):
        raise ValueError("OBSERVABILITY_CONFIG: must be a JSON object")
    settings = settings_from(obs.get("tracing"), env)
    if not settings.enabled:
        return None
    from activator.activator.metrics import activator_attributes

    return build(settings, env, resource=activator_attributes(pod_name, env))


class _Trace(Trace):
    """A traced request through the activator: its revision, try and proxy spans too."""

    __slots__ = ("revision", "try_id", "try_start", "try_end", "proxy_id", "proxy_start")

    def __init__(self, trace_id: int, state: Any, sampled: bool, parent: Any) -> None:
        super().__init__(trace_id, state, sampled, parent)
        self.revision: Revision | None = None  # past the context handler
        self.try_id = 0  # 0: no such span
        self.try_start = 0
        self.try_end = 0  # 0: no slot (yet)
        self.proxy_id = 0
        self.proxy_start = 0


class TracingActivatorHandler(ActivatorHandler):
    """``ActivatorHandler`` with Knative's spans (see the module docstring)."""

    def __init__(self, activator: Activator, tracing: Tracing) -> None:
        super().__init__(activator)
        self.tracing = tracing
        self.spans = HttpSpans(tracing, self._finish)
        self._traces: dict[Any, _Trace] = self.spans.traces  # type: ignore[assignment]
        self._scope = tracing.activator_scope
        self._https = activator.tls is not None  # Knative's useSecurePort: pods over TLS

    # --------------------------------------------------------------------- the chain

    def handle(self, ex: Exchange) -> None:
        f = ex.fields
        ua = f[F.USER_AGENT]
        if ((ua is not None and ua.startswith(HEALTH_USER_AGENT)) or f[F.K_KUBELET_PROBE]
                or f[F.K_NETWORK_PROBE]):
            ActivatorHandler.handle(self, ex)  # answered outside otelhttp's handler
            return
        t = self.spans.start(ex, ua, _Trace)
        ActivatorHandler.handle(self, ex)
        self.spans.follow(ex, t)  # answered at once (404, 503 queue full) or later

    def handle_revision(self, ex: Exchange, rev: Revision) -> None:
        t = self._traces.get(ex)
        if t is not None:
            t.revision = rev
            if t.sampled:
                t.try_id = self.spans.new_span_id()
                t.try_start = time_ns()
        ActivatorHandler.handle_revision(self, ex, rev)

    def run(self, ex: Exchange, pod: str) -> None:
        t = self._traces.get(ex)
        if t is not None and t.try_id and not t.try_end:
            # The throttler gave a slot: the try ends, the proxy span starts.
            t.try_end = t.proxy_start = time_ns()
            t.proxy_id = self.spans.new_span_id()
        ActivatorHandler.run(self, ex, pod)

    def forward(self, ex: Exchange, pool: UpstreamPool) -> None:
        t = self._traces.get(ex)
        if t is not None and not t.client_id:
            self.spans.start_client(ex, t, pool.host, pool.port, self._https)
        ActivatorHandler.forward(self, ex, pool)

    # --------------------------------------------------------------------- spans

    def _finish(self, ex: Any, t: _Trace) -> None:
        """The exchange ended (sampled): its spans, finished, go to the batch processor."""
        spans = self.spans
        now = time_ns()
        server_ctx = spans.context(t, t.server_id)
        if t.try_id:
            if t.try_end:
                end, status = t.try_end, spans.unset
            else:
                ctx = ex.ctx
                rejected = ctx is not None and ctx[2] == _REJECTED
                failing = t.revision.failure if t.revision is not None else None
                if failing is not None and ex.resp_status == 503:
                    why = failing  # Activator.fail_revision (ours: Knative has no such 503)
                else:
                    why = QUEUE_FULL if rejected else CANCELED
                end, status = now, spans.error_status(why)
            spans.emit("throttler_try", spans.context(t, t.try_id), server_ctx,
                       spans.internal_kind, None, t.try_start, end, self._scope, status)
        if t.proxy_id:
            proxy_ctx = spans.context(t, t.proxy_id)
            spans.end_client(ex, t, f"{ex.method.decode('latin-1')} {url_path(ex.target) or '/'}",
                             proxy_ctx, now)
            spans.emit("activator_proxy", proxy_ctx, server_ctx, spans.internal_kind, None,
                       t.proxy_start, now, self._scope, spans.unset)
        rev = t.revision
        extra = None
        if rev is not None:  # Knative's labeler, copied onto the span by its tracing handler
            spec = rev.spec
            extra = {"kn.service.name": spec.service,
                     "kn.configuration.name": spec.configuration,
                     "kn.revision.name": rev.name, "k8s.namespace.name": rev.namespace}
        spans.end_server(ex, t, now, extra)
