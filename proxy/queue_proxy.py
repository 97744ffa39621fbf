"""The queue-proxy's main handler: Knative's handler chain as one policy over the engine.

Knative composes its main handler from nested Go handlers (pkg/queue/sharedmain/handlers.go);
outermost first, and in this order here:

1. health checks (kubelet, activator and autoscaler User-Agents), answered, never proxied;
2. ``K-Network-Probe: probe``, answered with the hash echoed;
3. while draining, every other request restarts the drain quiet period;
4. the revision timeouts (total, response start, idle), which count time spent queued;
5. the Forwarded shim;
6. (``K-Kubelet-Probe``: Knative's ProxyHandler forwards such requests without stats, breaker
   or host rewrite, but its Drainer, outermost, already answers them as health checks, since
   ``network.IsKubeletProbe`` includes that header. We follow the source: step 1 answers them.)
7. stats: request in / out (``K-Proxy-Request: activator`` marks it proxied);
8. ``K-Original-Host`` becomes the Host sent upstream;
9. the breaker (containerConcurrency slots, ten waiters per slot);
10. the proxy to the user container.

The policy is synchronous and cheap: it decides, and the engine moves the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _speedups import fields as F
from proxy.breaker import ACQUIRED, FULL, Breaker
from proxy.forwarded import forwarded_from
from proxy.headers import drop_set, request_head

__all__ = ["QueueProxyHandler", "HEALTH_USER_AGENTS"]

HEALTH_USER_AGENTS = (b"kube-probe/", b"Knative-Activator-Probe", b"Knative-Autoscaling-Probe")

# Knative strips the revision routing headers before the user container sees the request.
_DROP = drop_set(b"knative-serving-revision", b"knative-serving-namespace")
_DROP_ORIGINAL_HOST = (b"k-original-host",)
_DROP_FORWARDED = (b"forwarded",)  # an empty one, replaced by the shim's
_DROP_BOTH = _DROP_ORIGINAL_HOST + _DROP_FORWARDED

_RUNNING = 1
_QUEUED = 2


class QueueProxyHandler:
    """The handler the engine calls for each request on the queue-proxy's serving port."""

    def __init__(
        self,
        *,
        pool: Any,
        timeouts: tuple,
        container_concurrency: int,
        health: Callable[[Any], None] | None = None,
        stats: Any = None,
        drainer: Any = None,
    ) -> None:
        self.pool = pool
        self.timeouts = timeouts
        cc = container_concurrency
        self.breaker: Breaker | None = Breaker(10 * cc, cc, cc) if cc > 0 else None
        self.health = health
        self.stats = stats
        self.drainer = drainer
        self.default_host = f"{pool.host}:{pool.port}".encode()

    # --------------------------------------------------------------------- the chain

    def handle(self, ex: Any) -> None:
        f = ex.fields
        ua = f[F.USER_AGENT]
        if (ua is not None and ua.startswith(HEALTH_USER_AGENTS)) or f[F.K_KUBELET_PROBE]:
            if self.health is not None:
                self.health(ex)
            else:
                ex.respond(200)
            return
        probe = f[F.K_NETWORK_PROBE]
        if probe == b"probe":
            self._network_probe(ex)
            return
        drainer = self.drainer
        if drainer is not None and drainer.draining:
            drainer.touch()

        ex.arm_timeouts(self.timeouts)

        extra = b""
        if not f[F.FORWARDED] and (
            f[F.X_FORWARDED_FOR] or f[F.X_FORWARDED_HOST] or f[F.X_FORWARDED_PROTO]
        ):
            fwd = forwarded_from(f[F.X_FORWARDED_FOR], f[F.X_FORWARDED_HOST],
                                 f[F.X_FORWARDED_PROTO])
            extra = b"Forwarded: " + fwd + b"\r\n"

        stats = self.stats
        if stats is not None:
            proxied = f[F.K_PROXY_REQUEST] == b"activator"
            ex.ctx = proxied
            stats.request_in(proxied)

        original_host = f[F.K_ORIGINAL_HOST]
        shim_drop = _DROP_FORWARDED if extra and f[F.FORWARDED] is not None else ()
        if original_host:
            ex.head_out = request_head(ex, _DROP, host=original_host, extra=extra,
                                       also_drop=_DROP_BOTH if shim_drop else _DROP_ORIGINAL_HOST,
                                       default_host=self.default_host)
        else:
            ex.head_out = request_head(ex, _DROP, extra=extra, also_drop=shim_drop,
                                       default_host=self.default_host)

        breaker = self.breaker
        if breaker is None:
            if stats is not None:
                ex.on_done = self._done_unlimited
            ex.forward(self.pool)
            return
        outcome = breaker.acquire(ex)
        if outcome == ACQUIRED:
            ex.ctx = (_RUNNING, ex.ctx)
            ex.on_done = self._done
            ex.forward(self.pool)
        elif outcome == FULL:
            if stats is not None:
                stats.request_out(ex.ctx)
            ex.error(503, "pending request queue full")
        else:
            ex.ctx = (_QUEUED, ex.ctx)
            ex.on_done = self._done

    # --------------------------------------------------------------------- endings

    def _done_unlimited(self, ex: Any) -> None:
        self.stats.request_out(ex.ctx)

    def _done(self, ex: Any) -> None:
        state, proxied = ex.ctx
        breaker = self.breaker
        if state == _RUNNING:
            nxt = breaker.release()  # type: ignore[union-attr]
            while nxt is not None:
                nxt.ctx = (_RUNNING, nxt.ctx[1])
                if nxt.state == 0:  # still waiting: run it
                    nxt.forward(self.pool)
                    break
                nxt = breaker.release()  # type: ignore[union-attr]
        else:
            breaker.cancel(ex)  # type: ignore[union-attr]
        if self.stats is not None:
            self.stats.request_out(proxied)

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
