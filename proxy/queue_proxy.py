"""The queue-proxy's main handler: Knative's handler chain as one policy over the engine.

Knative composes its main handler from nested Go handlers (pkg/queue/sharedmain/handlers.go);
outermost first, and in this order here:

1. health checks (kubelet, activator and autoscaler User-Agents), answered, never proxied;
2. ``K-Network-Probe: probe``, answered with the hash echoed;
3. while draining, every other request restarts the drain quiet period;
4. the revision timeouts (total, response start, idle), which count time spent queued;
5. the Forwarded shim;
6. a non-empty ``K-Kubelet-Probe`` (without a kube-probe User-Agent): straight to the app, with
   no stats, breaker or host rewrite (Knative's ProxyHandler: its ``IsKubeletProbe``, from the
   networking package, includes the header; the Drainer's, from knative.dev/pkg, checks only the
   User-Agent, so step 1 does not answer it. Checked against Knative's binary);
7. stats: request in / out (``K-Proxy-Request: activator`` marks it proxied);
8. ``K-Original-Host`` becomes the Host sent upstream;
9. the breaker (containerConcurrency slots, ten waiters per slot);
10. the proxy to the user container.

The policy is synchronous and cheap: it decides, and the engine moves the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from _speedups import fields as F
from _speedups.head import valid_host
from proxy.breaker import ACQUIRED, FULL, Breaker
from proxy.forwarded import forwarded_from
from proxy.headers import drop_set, request_head
from proxy.metrics import FAILED, PROBE_FAILED, PROBE_PROXIED, PROXIED, SERVED

if TYPE_CHECKING:
    from proxy.engine.server import Exchange

__all__ = ["QueueProxyHandler", "HEALTH_USER_AGENTS"]

HEALTH_USER_AGENTS = (b"kube-probe/", b"Knative-Activator-Probe", b"Knative-Autoscaling-Probe")

# Knative strips the revision routing headers before the user container sees the request.
_DROP = drop_set(b"knative-serving-revision", b"knative-serving-namespace")
_DROP_ORIGINAL_HOST = (b"k-original-host",)
_DROP_FORWARDED = (b"forwarded",)  # an empty one, replaced by the shim's
_DROP_BOTH = _DROP_ORIGINAL_HOST + _DROP_FORWARDED

# Per-request handler state kept in ``exchange.ctx``: [state, proxied, app start time].
_NEW = 0
_RUNNING = 1
_QUEUED = 2
_REJECTED = 3


class QueueProxyHandler:
    """The handler the engine calls for each request on the queue-proxy's serving port.

    ``stats`` (``proxy.stats.RequestStats``), ``metrics`` (``proxy.metrics.RequestMetrics``)
    and ``request_log`` (``proxy.request_log.RequestLog``) are optional; each costs nothing
    when absent. ``clock`` must be the clock the engine stamps ``ex.started`` with,
    ``time.monotonic`` (the default; ``proxy.engine.deadlines.clock``): a request's start is
    read from there.
    """

    def __init__(
        self,
        *,
        pool: Any,
        timeouts: tuple,
        container_concurrency: int,
        health: Callable[[Any], None] | None = None,
        stats: Any = None,
        metrics: Any = None,
        request_log: Any = None,
        drainer: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.pool = pool
        self.timeouts = timeouts
        cc = container_concurrency
        self.breaker: Breaker | None = Breaker(10 * cc, cc, cc) if cc > 0 else None
        self.health = health
        self.stats = stats
        self.metrics = metrics
        self.request_log = request_log
        self.drainer = drainer
        self.clock = clock or monotonic
        self.default_host = f"{pool.host}:{pool.port}".encode()
        self._track = stats is not None or metrics is not None or request_log is not None
        # PERF: typed in the compiled build (queue_proxy.pxd), so each update is a C call.
        self._stats: Any = stats
        self._series: Any = metrics.series if metrics is not None else None
        self._on_done = self._done  # PERF: one bound method, not a new one per request
        # The last Forwarded line the shim built, and the X-Forwarded-* it was built from.
        self._fwd_for: bytes | None = None
        self._fwd_host: bytes | None = None
        self._fwd_proto: bytes | None = None
        self._fwd_line = b""
        # The breaker's depth as a request entered the app, read by the metrics when scraped.
        self._depth_seen = 0
        self._track_depth = (metrics is not None and metrics.queue_depth is not None
                             and self.breaker is not None)
        if self._track_depth:
            metrics.queue_depth_of = self.queue_depth_seen

    # --------------------------------------------------------------------- the chain

    def handle(self, ex: Exchange) -> None:
        f = ex.fields
        ua = f[F.USER_AGENT]
        if ua is not None and ua.startswith(HEALTH_USER_AGENTS):
            self._probe_log(ex)
            if self.health is not None:
                self.health(ex)
            else:
                ex.respond(200)
            return
        probe = f[F.K_NETWORK_PROBE]
        if probe is not None and probe == b"probe":  # PERF: no comparison with None
            self._probe_log(ex)
            self._network_probe(ex)
            return
        drainer = self.drainer
        if drainer is not None and drainer.draining:
            drainer.touch()

        ex.arm_timeouts(self.timeouts, ex.started)  # PERF: no second clock read

        extra = b""
        xff = f[F.X_FORWARDED_FOR]
        xfh = f[F.X_FORWARDED_HOST]
        xfp = f[F.X_FORWARDED_PROTO]
        if (xff or xfh or xfp) and not f[F.FORWARDED]:
            # PERF: the last request's line when its X-Forwarded-* were the same (behind the
            # activator or an ingress they mostly are): three compares, not a call into the
            # shim's Python (proxy.forwarded).
            if xff == self._fwd_for and xfh == self._fwd_host and xfp == self._fwd_proto:
                extra = self._fwd_line
            else:
                extra = b"Forwarded: " + forwarded_from(xff, xfh, xfp) + b"\r\n"
                self._fwd_for, self._fwd_host, self._fwd_proto = xff, xfh, xfp
                self._fwd_line = extra

        original_host = f[F.K_ORIGINAL_HOST]
        shim_drop = _DROP_FORWARDED if extra and f[F.FORWARDED] is not None else ()
        if f[F.K_KUBELET_PROBE]:
            # Step 6: to the app as it came (its K-Original-Host too), past stats and breaker;
            # a probe for the request log (Knative's IsProbe).
            self._probe_log(ex)
            ex.head_out = request_head(ex, _DROP, None, extra, shim_drop, self.default_host)
            ex.forward(self.pool)
            return
        if original_host:
            if not valid_host(original_host):
                # Knative's RewriteHostOut makes it the Host; Go's transport (1.22 on) never
                # writes a Host that is not valid (httpguts.ValidHostHeader): it sends an empty
                # one instead (valid, RFC 9112 3.2). Checked against Knative's binary.
                original_host = b""
            # PERF: positional arguments: a C call (keywords go through the Python wrapper)
            ex.head_out = request_head(ex, _DROP, original_host, extra,
                                       _DROP_BOTH if shim_drop else _DROP_ORIGINAL_HOST,
                                       self.default_host)
        else:
            ex.head_out = request_head(ex, _DROP, None, extra, shim_drop, self.default_host)

        breaker = self.breaker
        if not self._track:
            if breaker is None:
                ex.forward(self.pool)
                return
            ctx = ex.ctx = [_NEW, False, 0.0]
        else:
            via = f[F.K_PROXY_REQUEST]
            proxied = via is not None and via == b"activator"
            ctx = ex.ctx = [_NEW, proxied, 0.0]
            if self._stats is not None:
                # PERF: the engine read the clock when it dispatched (this same callback)
                self._stats.request_in(ex.started, proxied)
        ex.on_done = self._on_done
        if breaker is None:
            self._run(ex, ctx, ex.started)
            return
        outcome = breaker.acquire(ex)
        if outcome == ACQUIRED:
            self._run(ex, ctx, ex.started)
        elif outcome == FULL:
            ctx[0] = _REJECTED
            ex.error(503, "pending request queue full")
        else:
            ctx[0] = _QUEUED

    def _run(self, ex: Any, ctx: list, now: float) -> None:
        ctx[0] = _RUNNING
        if self.metrics is not None:
            ctx[2] = now
            if self._track_depth:
                self._depth_seen = self.breaker.in_flight  # type: ignore[union-attr]
        ex.forward(self.pool)

    def queue_depth_seen(self) -> int:
        """The breaker's depth (queued and running) when a request last entered the app."""
        return self._depth_seen

    # --------------------------------------------------------------------- endings

    def _done(self, ex: Exchange) -> None:
        ctx = ex.ctx
        state = ctx[0]
        breaker = self.breaker
        now = self.clock() if self._track else 0.0
        if breaker is not None:
            if state == _RUNNING:
                nxt: Any = breaker.release()
                while nxt is not None:
                    if nxt.state == 0:  # still waiting: it runs now
                        self._run(nxt, nxt.ctx, now)
                        break
                    nxt = breaker.release()
            elif state == _QUEUED:
                breaker.cancel(ex)
        if not self._track:
            return
        if self._stats is not None:
            self._stats.request_out(now, ctx[1])
        f = ex.fields
        probe = f[F.K_NETWORK_PROBE]
        if self._series is not None and (not probe or state == _RUNNING):
            # PERF: one C call into the compiled HistogramGroup, the raw values as the key:
            # labels are made when scraped (proxy.metrics, RequestMetrics.observe is the same).
            status = ex.resp_status
            conn = ex.conn
            proto = ex.http10 | (2 if conn.h2 is not None else 0) | (4 if conn.tls else 0)
            if state == _RUNNING:
                app = now - ctx[2]
                # No answer of the app's (refused, broken, timed out, client gone): the
                # transport's error_type.
                kind = FAILED if ex.resp_local or not status else PROXIED
            else:
                app = -1.0
                kind = SERVED
            if not status:
                status = 502
            if probe:
                # Knative's IsProbe: otelhttp's server handler skips it (so does the
                # invocation); its trip to the app is still the transport's, untagged.
                kind = PROBE_FAILED if kind == FAILED else PROBE_PROXIED
                self._series.observe((ex.method, status, None, None, None, proto, kind),
                                     -1.0, app, ex.req_bytes, -1.0)
            else:
                self._series.observe(
                    (ex.method, status, f[F.KNATIVE_SERVING_TAG],
                     f[F.KNATIVE_SERVING_DEFAULT_ROUTE], f[F.HOST], proto, kind),
                    now - ex.started, app, ex.req_bytes, ex.resp_bytes)
        if probe:
            # Counted for the autoscaler, not logged (unless probe logging is on).
            if self.request_log is not None and self.request_log.probes:
                self.request_log.log(ex, now)
            return
        if self.request_log is not None:
            self.request_log.log(ex, now)

    def _probe_log(self, ex: Any) -> None:
        log = self.request_log
        if log is not None and log.probes:
            ex.on_done = self._log_probe

    def _log_probe(self, ex: Any) -> None:
        self.request_log.log(ex, self.clock())  # type: ignore[union-attr]

    # --------------------------------------------------------------------- probes

    def _network_probe(self, ex: Any) -> None:
        if self.drainer is not None and self.drainer.draining:
            ex.error(503, "shutting down")
            return
        value = ex.fields[F.K_NETWORK_HASH]
        if not value:
            ex.error(400, 'a probe request must contain a non-empty "K-Network-Hash" header')
            return
        ex.respond(200, b"", b"K-Network-Hash: " + value + b"\r\n")
