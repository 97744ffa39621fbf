"""The queue-proxy's main handler with tracing on: Knative's spans around the same policy.

Chosen once, at start-up, when ``OBSERVABILITY_CONFIG`` turns tracing on
(``proxy.app.QueueProxy``). ``TracingQueueProxyHandler`` is a subclass of the compiled
``QueueProxyHandler``: with tracing off that class runs alone and does exactly the work it did
before tracing existed (no flag is tested per request); this one wraps its ``handle`` and
``_run`` (which the base calls, as a C call that finds the override) and chains ``on_done``.

Knative's spans, as its queue-proxy emits them (pkg/queue/sharedmain/handlers.go, handler.go,
otelhttp; each checked against Knative's binary built from 98e5ef90 with an OTLP stand-in):

- ``GET`` (the method; ``HTTP`` for a non-standard one), kind SERVER, scope otelhttp: the whole
  request, parent the incoming ``traceparent`` (W3C trace context; ``tracestate`` kept). Not
  for probes: a ``kube-probe/`` User-Agent, a non-empty ``K-Kubelet-Probe`` or a non-empty
  ``K-Network-Probe`` (Knative's ``IsProbe`` filter). Attributes: ``server.address`` (and
  ``server.port`` unless 80/443) from Host, ``http.request.method`` (``_OTHER`` and
  ``http.request.method_original`` for others), ``url.scheme``, ``network.peer.address``,
  ``network.peer.port``, ``user_agent.original``, ``client.address`` (X-Forwarded-For's first
  entry, else the peer), ``url.path``, ``network.protocol.version``, ``kn.route.tag`` (not on
  health checks), and at the end ``http.request.body.size``, ``http.response.body.size``,
  ``http.response.status_code``; status Error from 500 on.
- ``kn.queueproxy.proxy``, INTERNAL, scope ``knative.dev/serving/pkg/queue``: child of the
  server span, from the proxy handler to the end (not for health checks).
- ``kn.queueproxy.wait``, INTERNAL, same scope: child of the proxy span, from the breaker's
  acquire to the slot (or the 503); only with a breaker (containerConcurrency > 0).
- ``HTTP GET`` (``HTTP`` and the method as sent), kind CLIENT, scope otelhttp: child of the wait
  span (of the proxy span without a breaker), from the slot to the end of the response;
  ``http.request.method``, ``url.full``, ``server.address``, ``server.port``,
  ``network.protocol.version``, ``http.response.status_code``, ``error.type`` and status Error
  from 400 on. The app's ``traceparent`` is this span's (its ``tracestate`` too, when the trace
  has one): the incoming ones are replaced.

Differences: Knative also opens spans for a probe it proxies (a ``K-Kubelet-Probe`` request gets
a root CLIENT span, a ``K-Network-Probe`` other than ``probe``/``queue`` root proxy, wait and
client spans, and their ``traceparent`` is replaced); here probes are never traced and their
headers pass as they came. ``http.request.body.size`` is the request's Content-Length (Go counts
the bytes its handler read); a response the proxy made itself (502, 504) is reported on the
client span with its status code (Go reports the transport's error type).

How the spans are made (PERF): ``proxy.http_spans`` (finished ``ReadableSpan``s handed to the
batch processor when the request ends; the queue-proxy's own two ride along).
"""

from __future__ import annotations

from time import time_ns
from typing import TYPE_CHECKING, Any

from _speedups import fields as F
from proxy.http_spans import HttpSpans, Trace
from proxy.queue_proxy import HEALTH_USER_AGENTS, QueueProxyHandler

if TYPE_CHECKING:
    from proxy.engine.server import Exchange
    from proxy.tracing import Tracing

__all__ = ["TracingQueueProxyHandler"]

_KUBE_PROBE = b"kube-probe/"


class _Trace(Trace):
    """A traced request through the queue-proxy: its proxy and wait spans too."""

    __slots__ = ("proxy_id", "proxy_start", "wait_id", "wait_start", "wait_end")

    def __init__(self, trace_id: int, state: Any, sampled: bool, parent: Any) -> None:
        super().__init__(trace_id, state, sampled, parent)
        self.proxy_id = 0  # 0: no such span
        self.proxy_start = 0
        self.wait_id = 0
        self.wait_start = 0
        self.wait_end = 0


class TracingQueueProxyHandler(QueueProxyHandler):
    """``QueueProxyHandler`` with Knative's spans (see the module docstring)."""

    def __init__(self, *, tracing: Tracing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Every request through _run (where the client span starts) and on_done, as when stats
        # are on (they always are in Knative): the base skips both for CC=0 with nothing to
        # count.
        self._track = True
        self.tracing = tracing
        self.spans = HttpSpans(tracing, self._finish)
        self._traces: dict[Any, _Trace] = self.spans.traces  # type: ignore[assignment]
        self._queue_scope = tracing.queue_scope
        from proxy.metrics import route_tag

        self._route_tag = route_tag

    # --------------------------------------------------------------------- the chain

    def handle(self, ex: Exchange) -> None:
        f = ex.fields
        ua = f[F.USER_AGENT]
        if ((ua is not None and ua.startswith(_KUBE_PROBE)) or f[F.K_KUBELET_PROBE]
                or f[F.K_NETWORK_PROBE]):
            QueueProxyHandler.handle(self, ex)  # Knative's filter: probes are not traced
            return
        t = self.spans.start(ex, ua, _Trace)
        if t.sampled and not (ua is not None and ua.startswith(HEALTH_USER_AGENTS)):
            # Knative's route tag handler, then its proxy handler; the wait span around the
            # breaker. (Health checks are answered before either.)
            t.server_attrs["kn.route.tag"] = self._route_tag(  # type: ignore[index]
                f[F.KNATIVE_SERVING_TAG], f[F.KNATIVE_SERVING_DEFAULT_ROUTE])
            new_span_id = self.spans.new_span_id
            t.proxy_id = new_span_id()
            t.proxy_start = time_ns()
            if self.breaker is not None:
                t.wait_id = new_span_id()
                t.wait_start = time_ns()
        QueueProxyHandler.handle(self, ex)
        self.spans.follow(ex, t)  # answered at once (a health check, 503 queue full) or later

    def _run(self, ex: Exchange, ctx: list, now: float) -> None:
        t = self._traces.get(ex)
        if t is not None and not t.client_id:
            # The slot is granted: the wait ends, the client span starts.
            pool = self.pool
            started = self.spans.start_client(ex, t, pool.host, pool.port)
            if t.wait_id:
                t.wait_end = started
        QueueProxyHandler._run(self, ex, ctx, now)

    # --------------------------------------------------------------------- spans

    def _finish(self, ex: Any, t: _Trace) -> None:
        """The exchange ended (sampled): its spans, finished, go to the batch processor (Go's
        order: wait, client, proxy, server)."""
        spans = self.spans
        now = time_ns()
        proxy_ctx = spans.context(t, t.proxy_id) if t.proxy_id else None
        wait_ctx = spans.context(t, t.wait_id) if t.wait_id else None
        if wait_ctx is not None:
            spans.emit("kn.queueproxy.wait", wait_ctx, proxy_ctx, spans.internal_kind,
                       None, t.wait_start, t.wait_end or now, self._queue_scope, spans.unset)
        spans.end_client(ex, t, "HTTP " + ex.method.decode("latin-1"), wait_ctx or proxy_ctx,
                         now)
        if proxy_ctx is not None:
            spans.emit("kn.queueproxy.proxy", proxy_ctx, spans.context(t, t.server_id),
                       spans.internal_kind, None, t.proxy_start, now, self._queue_scope,
                       spans.unset)
        spans.end_server(ex, t, now)
