"""otelhttp's two spans, made cheaply, for both proxies' traced handlers.

Knative's queue-proxy and activator each wrap their request path in otelhttp's server handler
and send requests on through otelhttp's transport; ``HttpSpans`` makes those two spans for
``proxy.queue_tracing`` and ``activator.activator.tracing``, which add their own spans between
them (each keeps its spans' ids and times in a subclass of ``Trace``).

- the server span: named after the method (``HTTP`` for a non-standard one: otelhttp's
  ``SpanName``, whatever operation the handler was given), kind SERVER, scope otelhttp (its
  version, 0.69.0), parent the incoming ``traceparent`` (W3C trace context; ``tracestate``
  kept). Attributes, in otelhttp's order: ``server.address`` (and ``server.port`` unless 80/443)
  from Host, ``http.request.method`` (``_OTHER`` and ``http.request.method_original`` for
  others), ``url.scheme``, ``network.peer.address``, ``network.peer.port``,
  ``user_agent.original``, ``client.address`` (X-Forwarded-For's first entry, else the peer),
  ``url.path``, ``network.protocol.version``; the handler's own (``extra``); at the end
  ``http.request.body.size``, ``http.response.body.size``, ``http.response.status_code``;
  status Error from 500 on.
- the client span: kind CLIENT, scope otelhttp, from the request going upstream to the end of
  its response; ``http.request.method``, ``url.full``, ``server.address``, ``server.port``
  (unless the scheme's default), ``network.protocol.version``, ``http.response.status_code``,
  ``error.type`` and status Error from 400 on. The head sent upstream carries its context: the
  incoming ``traceparent`` (and ``tracestate``, when the trace has one) are replaced, as
  otelhttp's transport injects them.

How the spans are made (PERF): the OpenTelemetry SDK's sampler decides for the server span, as
``Tracer.start_span`` would (same trace id rules, same parent context, same tracestate), and its
id generator makes the ids; the other spans follow the server span's decision (every sampler
Knative configures follows the parent or the trace id). The request keeps ids and times; when it
ends, each span goes to the SDK's batch span processor as a finished ``ReadableSpan``, the type
its exporters take. The queue-proxy's four spans made through ``Tracer.start_span`` cost about
200 us a request (locks, bounded attribute maps, span processors' start hooks, contexts); made
this way, about 20. Span limits (``OTEL_SPAN_*_LIMIT``) are not applied: these spans have at
most 14 short attributes and no events or links. An unsampled request makes no span object at
all: upstream gets a fresh span id in an unsampled ``traceparent``, as from Knative.

Nothing of OpenTelemetry is imported until an ``HttpSpans`` is made (tracing is on).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote_to_bytes

from _speedups import fields as F
from proxy.engine import states as S
from proxy.headers import split_absolute
from proxy.metrics import _METHODS, split_host_port

if TYPE_CHECKING:
    from proxy.tracing import Tracing

__all__ = ["HttpSpans", "Trace", "method_attributes", "protocol_version", "url_path"]

_TRACEPARENT = re.compile(rb"\r\ntraceparent:[^\r\n]*", re.IGNORECASE)
_TRACESTATE = re.compile(rb"\r\ntracestate:[^\r\n]*", re.IGNORECASE)


class Trace:
    """One traced request: the trace, and the server and client spans' ids and times until the
    exchange ends (a handler's subclass adds its own spans' slots)."""

    __slots__ = ("trace_id", "state", "sampled", "parent", "server_id", "server_start",
                 "server_attrs", "client_id", "client_start", "client_attrs", "prev")

    def __init__(self, trace_id: int, state: Any, sampled: bool, parent: Any) -> None:
        self.trace_id = trace_id
        self.state = state  # the W3C tracestate (the parent's)
        self.sampled = sampled
        self.parent = parent  # the caller's span context, or None for a root
        self.server_id = 0
        self.server_start = 0
        self.server_attrs: dict[str, Any] | None = None
        self.client_id = 0  # 0: not sent upstream (yet)
        self.client_start = 0
        self.client_attrs: dict[str, Any] | None = None
        self.prev: Any = None  # the on_done the base handler set, called first


T = TypeVar("T", bound=Trace)


class HttpSpans:
    """What a traced handler takes from a ``proxy.tracing.Tracing``, the server and client
    spans (see the module docstring), and the requests being traced (``traces``, by exchange):
    ``start`` one, ``follow`` it once the base handler has taken it, and ``finish(ex, t)``
    (the handler's) is called when it ends, sampled."""

    def __init__(self, tracing: Tracing, finish: Callable[[Any, Any], None]) -> None:
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

        self.tracing = tracing
        self.sampler = tracing.sampler
        self.new_trace_id = tracing.id_generator.generate_trace_id
        self.new_span_id = tracing.id_generator.generate_span_id
        self.on_end = tracing.processor.on_end
        self.resource = tracing.resource
        self.http_scope = tracing.http_scope
        self.propagator = tracing.propagator
        self.root = Context()  # parents are explicit: nothing is read from contextvars
        self._current_span = get_current_span
        self._readable = ReadableSpan
        self._context = SpanContext
        self._sampled_flags = TraceFlags(TraceFlags.SAMPLED)
        self.server_kind = SpanKind.SERVER
        self.client_kind = SpanKind.CLIENT
        self.internal_kind = SpanKind.INTERNAL
        self.error = Status(StatusCode.ERROR)
        self.unset = Status(StatusCode.UNSET)
        self._error_status = Status
        self.traces: dict[Any, Trace] = {}
        self._finish = finish
        self._ended = self._end  # PERF: one bound method, not one per request

    # --------------------------------------------------------------------- a traced request

    def follow(self, ex: Any, t: Trace) -> None:
        """The base handler has taken ``ex``: its spans end now if it was answered at once,
        else when it ends (after the ``on_done`` the base set)."""
        if ex.state == S.DONE:
            self._end_trace(ex, t)
        else:
            t.prev = ex.on_done
            ex.on_done = self._ended

    def _end(self, ex: Any) -> None:
        t = self.traces.get(ex)
        if t is not None:
            prev = t.prev
            if prev is not None:
                prev(ex)
            self._end_trace(ex, t)

    def _end_trace(self, ex: Any, t: Trace) -> None:
        del self.traces[ex]
        if t.sampled:
            self._finish(ex, t)

    # --------------------------------------------------------------------- the server span

    def start(self, ex: Any, ua: bytes | None, trace_type: type[T]) -> T:
        """The server span's trace and sampling decision, as the SDK's ``Tracer.start_span``
        makes them; its id, start and attributes when sampled. The request is traced from now
        on (``traces``)."""
        lnames = ex.lnames
        context = self.root
        parent = None
        if b"traceparent" in lnames:
            hs = ex.headers
            carrier = {"traceparent": hs[lnames.index(b"traceparent")][1].decode("latin-1")}
            if b"tracestate" in lnames:
                carrier["tracestate"] = hs[lnames.index(b"tracestate")][1].decode("latin-1")
            context = self.propagator.extract(carrier, context)
            parent = self._current_span(context).get_span_context()
            if not parent.is_valid:
                parent = None
        trace_id = parent.trace_id if parent is not None else self.new_trace_id()
        method = ex.method.decode("latin-1")
        name = method if method in _METHODS else "HTTP"
        decision = self.sampler.should_sample(context, trace_id, name, self.server_kind)
        t = trace_type(trace_id, decision.trace_state, decision.decision.is_sampled(), parent)
        if t.sampled:
            t.server_id = self.new_span_id()
            t.server_start = time_ns()
            attrs = self.server_attributes(ex, method, ua)
            if decision.attributes:
                attrs.update(decision.attributes)
            t.server_attrs = attrs
        self.traces[ex] = t
        return t

    def end_server(self, ex: Any, t: Trace, now: int, extra: dict[str, Any] | None = None
                   ) -> None:
        """Emits the server span (sampled traces only), ``extra`` added before the response's
        attributes."""
        attrs = t.server_attrs or {}
        if extra:
            attrs.update(extra)
        length = ex.fields[F.CONTENT_LENGTH]
        if length is not None and length.isdigit() and int(length) > 0:
            attrs["http.request.body.size"] = int(length)
        if ex.resp_bytes > 0:
            attrs["http.response.body.size"] = ex.resp_bytes
        status = ex.resp_status
        if status:
            attrs["http.response.status_code"] = status
        method = ex.method.decode("latin-1")
        self.emit(method if method in _METHODS else "HTTP", self.context(t, t.server_id),
                  t.parent, self.server_kind, attrs, t.server_start, now, self.http_scope,
                  self.error if status >= 500 or status < 100 else self.unset)

    # --------------------------------------------------------------------- the client span

    def start_client(self, ex: Any, t: Trace, host: str, port: int, https: bool = False) -> int:
        """The request goes upstream (to ``host``:``port``): the client span starts, and the
        head carries its context (otelhttp's transport injects it). Returns the time (ns, 0
        when unsampled)."""
        t.client_id = self.new_span_id()
        now = 0
        if t.sampled:
            now = t.client_start = time_ns()
            t.client_attrs = self.client_attributes(ex, ex.method.decode("latin-1"), host, port,
                                                    https)
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
        return now

    def end_client(self, ex: Any, t: Trace, name: str, parent: Any, now: int) -> None:
        """Emits the client span (sampled, sent upstream), child of ``parent``."""
        attrs = t.client_attrs
        if attrs is None:
            return
        status = ex.resp_status
        if status:
            attrs["http.response.status_code"] = status
            if status >= 400:
                attrs["error.type"] = str(status)
        self.emit(name, self.context(t, t.client_id), parent, self.client_kind, attrs,
                  t.client_start, now, self.http_scope,
                  self.error if status >= 400 or status < 100 else self.unset)

    # --------------------------------------------------------------------- any span

    def context(self, t: Trace, span_id: int) -> Any:
        """The span context of ``t``'s span ``span_id`` (sampled)."""
        return self._context(t.trace_id, span_id, False, self._sampled_flags, t.state)

    def error_status(self, description: str) -> Any:
        """Status Error with ``description`` (Go's ``span.SetStatus(codes.Error, msg)``)."""
        return self._error_status(self.error.status_code, description)

    def emit(self, name: str, context: Any, parent: Any, kind: Any, attrs: Any, start: int,
             end: int, scope: Any, status: Any) -> None:
        # PERF: a finished span straight to the processor (the SDK's exporters take these,
        # ReadableSpan); a Span made by Tracer.start_span cost ten times more here.
        self.on_end(self._readable(
            name, context=context, parent=parent, resource=self.resource,
            attributes=attrs or {}, kind=kind, status=status, start_time=start, end_time=end,
            instrumentation_scope=scope))

    # --------------------------------------------------------------------- attributes

    def server_attributes(self, ex: Any, method: str, ua: bytes | None) -> dict[str, Any]:
        """otelhttp's server request attributes, in its order."""
        f = ex.fields
        host, port = split_host_port((f[F.HOST] or b"").decode("latin-1"))
        tls = _is_tls(ex.conn)
        attrs: dict[str, Any] = {"server.address": host}
        method_attributes(attrs, method)
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
        path = url_path(ex.target)
        if path:
            attrs["url.path"] = path
        attrs["network.protocol.version"] = protocol_version(ex)
        return attrs

    def client_attributes(self, ex: Any, method: str, host: str, port: int,
                          https: bool = False) -> dict[str, Any]:
        """otelhttp's transport attributes for the request sent to ``host``:``port``."""
        attrs: dict[str, Any] = {}
        method_attributes(attrs, method)
        target = split_absolute(ex.target)[0].decode("latin-1")
        scheme = "https" if https else "http"
        attrs["url.full"] = f"{scheme}://{host}:{port}{target}"
        attrs["server.address"] = host
        if port != (443 if https else 80):
            attrs["server.port"] = port
        attrs["network.protocol.version"] = protocol_version(ex)
        return attrs


def _is_tls(conn: Any) -> bool:
    transport = getattr(conn, "transport", None)
    if transport is None:
        return False
    return transport.get_extra_info("sslcontext") is not None


def method_attributes(attrs: dict[str, Any], method: str) -> None:
    """otelhttp's ``http.request.method`` (and ``_original`` for a method Go does not know)."""
    if method in _METHODS:
        attrs["http.request.method"] = method
        return
    upper = method.upper()
    attrs["http.request.method"] = upper if upper in _METHODS else "_OTHER"
    attrs["http.request.method_original"] = method


def protocol_version(ex: Any) -> str:
    """Go's ``Request.Proto`` as otelhttp reports it: ``1.0``, ``1.1`` or ``2.0``."""
    if getattr(ex, "sid", 0):  # a stream of an HTTP/2 connection: Go's Proto "HTTP/2.0"
        return "2.0"
    return "1.0" if ex.http10 else "1.1"


def url_path(target: bytes) -> str:
    """Go's ``URL.Path``: the target's path, percent-decoded."""
    path = split_absolute(target)[0].split(b"?", 1)[0]
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path.decode("utf-8", "replace")
