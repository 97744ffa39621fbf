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

How the spans are made (PERF): the OpenTelemetry SDK's sampler decides for the server span, as
``Tracer.start_span`` would (same trace id rules, same parent context, same tracestate), and its
id generator makes the ids; the children follow the server span's decision (every sampler
Knative configures follows the parent or the trace id). The request keeps ids and times; when it
ends, each span goes to the SDK's batch span processor as a finished ``ReadableSpan``, the type
its exporters take. Four spans made through ``Tracer.start_span`` cost about 200 us a request
here (locks, bounded attribute maps, span processors' start hooks, contexts); made this way,
about 20. Span limits (``OTEL_SPAN_*_LIMIT``) are not applied: these spans have at most 14
short attributes and no events or links. An unsampled request makes no span object at all: the
app gets a fresh span id in an unsampled ``traceparent``, as from Knative.
"""

from __future__ import annotations

import re
from time import time_ns
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from _speedups import fields as F
from proxy.engine import states as S
from proxy.headers import split_absolute
from proxy.metrics import _METHODS, split_host_port
from proxy.queue_proxy import HEALTH_USER_AGENTS, QueueProxyHandler

if TYPE_CHECKING:
    from proxy.engine.server import Exchange
    from proxy.tracing import Tracing

__all__ = ["TracingQueueProxyHandler"]

_KUBE_PROBE = b"kube-probe/"
_TRACEPARENT = re.compile(rb"\r\ntraceparent:[^\r\n]*", re.IGNORECASE)
_TRACESTATE = re.compile(rb"\r\ntracestate:[^\r\n]*", re.IGNORECASE)


class _Trace:
    """One traced request: the trace, and its spans' ids and times until the exchange ends."""

    __slots__ = ("trace_id", "state", "sampled", "parent", "server_id", "server_start",
                 "server_attrs", "proxy_id", "proxy_start", "wait_id", "wait_start", "wait_end",
                 "client_id", "client_start", "client_attrs", "prev")

    def __init__(self, trace_id: int, state: Any, sampled: bool, parent: Any) -> None:
        self.trace_id = trace_id
        self.state = state  # the W3C tracestate (the parent's)
        self.sampled = sampled
        self.parent = parent  # the caller's span context, or None for a root
        self.server_id = 0
        self.server_start = 0
        self.server_attrs: dict[str, Any] | None = None
        self.proxy_id = 0  # 0: no such span
        self.proxy_start = 0
        self.wait_id = 0
        self.wait_start = 0
        self.wait_end = 0
        self.client_id = 0
        self.client_start = 0
        self.client_attrs: dict[str, Any] | None = None
        self.prev: Any = None  # the on_done the base handler set, called first


class TracingQueueProxyHandler(QueueProxyHandler):
    """``QueueProxyHandler`` with Knative's spans (see the module docstring)."""

    def __init__(self, *, tracing: Tracing, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Every request through _run (where the client span starts) and on_done, as when stats
        # are on (they always are in Knative): the base skips both for CC=0 with nothing to
        # count.
        self._track = True
        self.tracing = tracing
        self._sampler = tracing.sampler
        self._new_trace_id = tracing.id_generator.generate_trace_id
        self._new_span_id = tracing.id_generator.generate_span_id
        self._on_end = tracing.processor.on_end
        self._resource = tracing.resource
        self._http_scope = tracing.http_scope
        self._queue_scope = tracing.queue_scope
        self._propagator = tracing.propagator
        self._traces: dict[Any, _Trace] = {}
        self._ended = self._end  # PERF: one bound method, not one per request
        from opentelemetry.context import Context
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import (
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
            get_current_span,
        )

        from proxy.metrics import route_tag

        self._route_tag = route_tag
        self._root = Context()  # parents are explicit: nothing is read from contextvars
        self._current_span = get_current_span
        self._readable = ReadableSpan
        self._context = SpanContext
        self._sampled_flags = TraceFlags(TraceFlags.SAMPLED)
        self._server_kind = SpanKind.SERVER
        self._client_kind = SpanKind.CLIENT
        self._internal_kind = SpanKind.INTERNAL
        self._error = Status(StatusCode.ERROR)
        self._unset = Status(StatusCode.UNSET)

    # --------------------------------------------------------------------- the chain

    def handle(self, ex: Exchange) -> None:
        f = ex.fields
        ua = f[F.USER_AGENT]
        if ((ua is not None and ua.startswith(_KUBE_PROBE)) or f[F.K_KUBELET_PROBE]
                or f[F.K_NETWORK_PROBE]):
            QueueProxyHandler.handle(self, ex)  # Knative's filter: probes are not traced
            return
        t = self._start(ex, ua)
        if t.sampled and not (ua is not None and ua.startswith(HEALTH_USER_AGENTS)):
            # Knative's route tag handler, then its proxy handler; the wait span around the
            # breaker. (Health checks are answered before either.)
            t.server_attrs["kn.route.tag"] = self._route_tag(  # type: ignore[index]
                f[F.KNATIVE_SERVING_TAG], f[F.KNATIVE_SERVING_DEFAULT_ROUTE])
            t.proxy_id = self._new_span_id()
            t.proxy_start = time_ns()
            if self.breaker is not None:
                t.wait_id = self._new_span_id()
                t.wait_start = time_ns()
        self._traces[ex] = t
        QueueProxyHandler.handle(self, ex)
        if ex.state == S.DONE:  # answered at once (a health check, 503 queue full, an error)
            self._finish(ex, t)
        else:
            t.prev = ex.on_done
            ex.on_done = self._ended

    def _run(self, ex: Exchange, ctx: list, now: float) -> None:
        t = self._traces.get(ex)
        if t is not None and not t.client_id:
            self._start_client(ex, t)
        QueueProxyHandler._run(self, ex, ctx, now)

    # --------------------------------------------------------------------- spans

    def _start(self, ex: Any, ua: bytes | None) -> _Trace:
        """The server span's trace and sampling decision, as the SDK's ``Tracer.start_span``
        makes them."""
        lnames = ex.lnames
        context = self._root
        parent = None
        if b"traceparent" in lnames:
            hs = ex.headers
            carrier = {"traceparent": hs[lnames.index(b"traceparent")][1].decode("latin-1")}
            if b"tracestate" in lnames:
                carrier["tracestate"] = hs[lnames.index(b"tracestate")][1].decode("latin-1")
            context = self._propagator.extract(carrier, context)
            parent = self._current_span(context).get_span_context()
            if not parent.is_valid:
                parent = None
        trace_id = parent.trace_id if parent is not None else self._new_trace_id()
        method = ex.method.decode("latin-1")
        name = method if method in _METHODS else "HTTP"
        decision = self._sampler.should_sample(context, trace_id, name, self._server_kind)
        t = _Trace(trace_id, decision.trace_state, decision.decision.is_sampled(), parent)
        if t.sampled:
            t.server_id = self._new_span_id()
            t.server_start = time_ns()
            attrs = self._server_attributes(ex, method, ua)
            if decision.attributes:
                attrs.update(decision.attributes)
            t.server_attrs = attrs
        return t

    def _start_client(self, ex: Any, t: _Trace) -> None:
        """The slot is granted: the wait ends, the client span starts, and the head going
        upstream carries its context (Knative's otelhttp transport injects it)."""
        t.client_id = self._new_span_id()
        if t.sampled:
            now = time_ns()
            if t.wait_id:
                t.wait_end = now
            t.client_start = now
            t.client_attrs = self._client_attributes(ex, ex.method.decode("latin-1"))
        lines = b"Traceparent: 00-%032x-%016x-%s\r\n" % (
            t.trace_id, t.client_id, b"01" if t.sampled else b"00")
        head = ex.head_out
        state = t.state
        if state:
            lines += b"Tracestate: " + state.to_header().encode("latin-1") + b"\r\n"
            if b"tracestate" in ex.lnames:
                head = _TRACESTATE.sub(b"", head)
        if b"traceparent" in ex.lnames:
            head = _TRACEPARENT.sub(b"", head)
        ex.head_out = head[:-2] + lines + b"\r\n"  # before the blank line that ends the head

    def _end(self, ex: Any) -> None:
        t = self._traces.get(ex)
        if t is not None:
            prev = t.prev
            if prev is not None:
                prev(ex)
            self._finish(ex, t)

    def _finish(self, ex: Any, t: _Trace) -> None:
        """The exchange ended: its spans, finished, go to the batch processor (Go's order:
        wait, client, proxy, server)."""
        self._traces.pop(ex, None)
        if not t.sampled:
            return
        now = time_ns()
        status = ex.resp_status
        server_ctx = self._span_context(t, t.server_id)
        proxy_ctx = self._span_context(t, t.proxy_id) if t.proxy_id else None
        wait_ctx = self._span_context(t, t.wait_id) if t.wait_id else None
        if wait_ctx is not None:
            self._emit("kn.queueproxy.wait", wait_ctx, proxy_ctx, self._internal_kind,
                       None, t.wait_start, t.wait_end or now, self._queue_scope, self._unset)
        if t.client_id and t.client_attrs is not None:
            attrs = t.client_attrs
            if status:
                attrs["http.response.status_code"] = status
                if status >= 400:
                    attrs["error.type"] = str(status)
            self._emit("HTTP " + ex.method.decode("latin-1"),
                       self._span_context(t, t.client_id), wait_ctx or proxy_ctx,
                       self._client_kind, attrs, t.client_start, now, self._http_scope,
                       self._error if status >= 400 or status < 100 else self._unset)
        if proxy_ctx is not None:
            self._emit("kn.queueproxy.proxy", proxy_ctx, server_ctx, self._internal_kind, None,
                       t.proxy_start, now, self._queue_scope, self._unset)
        attrs = t.server_attrs or {}
        length = ex.fields[F.CONTENT_LENGTH]
        if length is not None and length.isdigit() and int(length) > 0:
            attrs["http.request.body.size"] = int(length)
        if ex.resp_bytes > 0:
            attrs["http.response.body.size"] = ex.resp_bytes
        if status:
            attrs["http.response.status_code"] = status
        method = ex.method.decode("latin-1")
        self._emit(method if method in _METHODS else "HTTP", server_ctx, t.parent,
                   self._server_kind, attrs, t.server_start, now, self._http_scope,
                   self._error if status >= 500 or status < 100 else self._unset)

    def _span_context(self, t: _Trace, span_id: int) -> Any:
        return self._context(t.trace_id, span_id, False, self._sampled_flags, t.state)

    def _emit(self, name: str, context: Any, parent: Any, kind: Any, attrs: Any, start: int,
              end: int, scope: Any, status: Any) -> None:
        # PERF: a finished span straight to the processor (the SDK's exporters take these,
        # ReadableSpan); a Span made by Tracer.start_span cost ten times more here.
        self._on_end(self._readable(
            name, context=context, parent=parent, resource=self._resource,
            attributes=attrs or {}, kind=kind, status=status, start_time=start, end_time=end,
            instrumentation_scope=scope))

    # --------------------------------------------------------------------- attributes

    def _server_attributes(self, ex: Any, method: str, ua: bytes | None) -> dict[str, Any]:
        """otelhttp's server request attributes, in its order."""
        f = ex.fields
        host, port = split_host_port((f[F.HOST] or b"").decode("latin-1"))
        tls = self._is_tls(ex.conn)
        attrs: dict[str, Any] = {"server.address": host}
        _method_attrs(attrs, method)
        attrs["url.scheme"] = "https" if tls else "http"
        if port > 0 and port != (443 if tls else 80):
            attrs["server.port"] = port
        peer, peer_port = split_host_port(ex.conn.peer_addr)
        if peer:
            attrs["network.peer.address"] = peer
            if peer_port > 0:
                attrs["network.peer.port"] = peer_port
        if ua:
            attrs["user_agent.original"] = ua.decode("latin-1")
        xff = f[F.X_FORWARDED_FOR]
        client = xff.split(b",", 1)[0].decode("latin-1") if xff else peer
        if client:
            attrs["client.address"] = client
        path = _path(ex.target)
        if path:
            attrs["url.path"] = path
        attrs["network.protocol.version"] = _version(ex)
        return attrs

    def _client_attributes(self, ex: Any, method: str) -> dict[str, Any]:
        """otelhttp's transport attributes for the request sent to the user container."""
        pool = self.pool
        attrs: dict[str, Any] = {}
        _method_attrs(attrs, method)
        target = split_absolute(ex.target)[0].decode("latin-1")
        attrs["url.full"] = f"http://{pool.host}:{pool.port}{target}"
        attrs["server.address"] = pool.host
        if pool.port != 80:
            attrs["server.port"] = pool.port
        attrs["network.protocol.version"] = _version(ex)
        return attrs

    def _is_tls(self, conn: Any) -> bool:
        transport = getattr(conn, "transport", None)
        if transport is None:
            return False
        return transport.get_extra_info("sslcontext") is not None


def _method_attrs(attrs: dict[str, Any], method: str) -> None:
    if method in _METHODS:
        attrs["http.request.method"] = method
        return
    upper = method.upper()
    attrs["http.request.method"] = upper if upper in _METHODS else "_OTHER"
    attrs["http.request.method_original"] = method


def _version(ex: Any) -> str:
    if getattr(ex, "sid", 0):  # a stream of an HTTP/2 connection: Go's Proto "HTTP/2.0"
        return "2.0"
    return "1.0" if ex.http10 else "1.1"


def _path(target: bytes) -> str:
    """Go's ``URL.Path``: the target's path, percent-decoded."""
    path = split_absolute(target)[0].split(b"?", 1)[0]
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path.decode("utf-8", "replace")
