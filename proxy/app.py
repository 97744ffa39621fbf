"""The queue-proxy process: its listeners, the drain on SIGTERM, and the Python API.

``QueueProxy(config)`` builds everything; ``await qp.start()`` binds the listeners (port 0 picks a
free port, see ``qp.ports``): the main handler, the admin port (``/wait-for-drain``), the
autoscaler stats port (``/metrics``, protobuf ``Stat``, closed every second) and, when
OBSERVABILITY_CONFIG turns request metrics on, Prometheus. ``await qp.drain()`` runs Knative's
shutdown: health checks start failing, the quiet period runs (each request restarts it), then
the listeners stop accepting, in-flight requests finish, upgraded connections get
``hijack_drain_period``, and ``drain`` returns. ``python -m proxy`` wires SIGTERM to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from time import monotonic
from typing import TYPE_CHECKING, Any

from _speedups import fields as F
from proxy.binding import listen
from proxy.config import Config
from proxy.engine.server import Server
from proxy.engine.upstream import UpstreamPool
from proxy.metrics import PrometheusHandler
from proxy.queue_proxy import QueueProxyHandler
from proxy.readiness import ReadinessProbe
from proxy.request_log import DEFAULT_TEMPLATE, RequestLog, TemplateError
from proxy.stats import RequestStats, encode_stat
from proxy.tls import CertWatcher, cert_paths, server_context
from proxy.tracing import settings_from

if TYPE_CHECKING:
    from proxy.engine.server import Exchange

__all__ = ["QueueProxy", "Drainer"]

log = logging.getLogger("proxy")

DRAIN_PATH = b"/wait-for-drain"
REPORTING_PERIOD = 1.0
PROTOBUF = b"Content-Type: application/protobuf\r\n"
TEXT_PLAIN = b"Content-Type: text/plain; charset=utf-8\r\n"  # what Go's sniffing gives "queue"


class Drainer:
    """Knative's drainer (knative.dev/pkg/network/handlers/drain.go) on an asyncio loop.

    ``drain()`` starts the quiet period and resolves when a whole period passes with no request;
    ``touch()`` (each request while draining) restarts it; ``reset()`` cancels the drain.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, quiet_period: float) -> None:
        self.loop = loop
        self.quiet_period = quiet_period
        self._timer: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] | None = None
        # PERF: a plain attribute, read on every request (a property was a Python call).
        self.draining = False

    def drain(self) -> asyncio.Future[None]:
        if self._done is None:
            self._done = self.loop.create_future()
            self._timer = self.loop.call_later(self.quiet_period, self._fire)
            self.draining = True
        return self._done

    def touch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self.loop.call_later(self.quiet_period, self._fire)

    def reset(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.draining = False
        done, self._done = self._done, None
        if done is not None and not done.done():
            done.set_result(None)

    def _fire(self) -> None:
        self._timer = None
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)
        # Stay "draining" for health checks: Knative's timer stays set after it fires.
        self._timer = self.loop.call_later(1e9, lambda: None)


class QueueProxy:
    """A queue-proxy: main, admin and stats listeners around one engine."""

    def __init__(self, config: Config, *, backend: str | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.config = config
        self.loop = loop or asyncio.get_running_loop()
        self.backend = backend
        self.drainer = Drainer(self.loop, config.drain_quiet_period)
        self.prober = ReadinessProbe.from_config(
            config.readiness_probe, config.enable_multi_container_probes,
            config.readiness_retry_interval, config.enable_http2_auto_detection,
        )
        cc = config.container_concurrency
        self.clock = clock = monotonic  # the engine's clock (proxy.engine.deadlines)
        self.started_at = clock()
        self.stats = RequestStats(clock())
        self.stat_bytes = encode_stat(config.pod)  # before the first report: pod name only
        self.metrics: Any = None  # proxy.metrics.RequestMetrics
        if config.request_metrics_enabled:
            # PERF: prometheus_client is imported only when metrics are on (start-up time).
            from proxy.metrics import (
                RequestMetrics,
                queue_proxy_resource,
                register_process_collectors,
            )

            self.metrics = RequestMetrics(
                queue_depth_enabled=cc > 0, user_host=config.user_host, user_port=config.user_port,
                resource=queue_proxy_resource(config.namespace, config.service,
                                              config.configuration, config.revision),
            )
            register_process_collectors(self.metrics.registry)
        self.request_log = self._request_log()
        self.pool = UpstreamPool(
            self.loop,
            config.user_host,
            config.user_port,
            backend=backend,
            max_idle=cc if cc > 0 else 1000,
        )
        self.server = Server(
            None,
            loop=self.loop,
            backend=backend,
            max_head=config.max_head_size,
            header_timeout=config.header_read_timeout,
        )
        # Tracing (OBSERVABILITY_CONFIG's "tracing"): chosen once here. Off, the handler is
        # the plain one and OpenTelemetry is never imported.
        self.tracing: Any = None  # proxy.tracing.Tracing
        handler_class: Any = QueueProxyHandler
        handler_extra: dict[str, Any] = {}
        tracing = settings_from(config.observability.get("tracing"), os.environ)
        if tracing.enabled:
            from proxy.queue_tracing import TracingQueueProxyHandler
            from proxy.tracing import build

            self.tracing = build(tracing, os.environ, config.namespace, config.service,
                                 config.configuration, config.revision)
            handler_class = TracingQueueProxyHandler
            handler_extra["tracing"] = self.tracing
        self.handler = handler_class(
            **handler_extra,
            pool=self.pool,
            timeouts=self.server.timeouts(
                config.revision_timeout, config.response_start_timeout, config.idle_timeout
            ),
            container_concurrency=cc,
            health=self._health,
            stats=self.stats if config.stats_enabled else None,
            metrics=self.metrics,
            request_log=self.request_log,
            drainer=self.drainer,
            clock=clock,
        )
        self.server.handler = self.handler
        self.admin = Server(_AdminHandler(self), loop=self.loop, backend=backend)
        self.stats_server = Server(_StatsHandler(self), loop=self.loop, backend=backend)
        self.prometheus: Server | None = None
        if self.metrics is not None:
            self.prometheus = Server(PrometheusHandler(self.metrics.registry), loop=self.loop,
                                     backend=backend)
        self._reporter: asyncio.TimerHandle | None = None
        self.cert_watcher: CertWatcher | None = None  # TLS on (the pair is mounted)
        self.ports: dict[str, int] = {}
        self.terminating = False  # SIGTERM (or drain()) seen
        self._stopped = self.loop.create_future()

    async def start(self) -> None:
        cfg = self.config
        host = cfg.bind_host
        # A port that cannot be bound raises a BindError naming the variable that chose it.
        main = await listen(self.server, host, cfg.serving_port, "QUEUE_SERVING_PORT",
                            backlog=1024)
        self.ports["main"] = main.sockets[0].getsockname()[1]
        admin = await listen(self.admin, host, cfg.admin_port, "QUEUE_ADMIN_PORT")
        self.ports["admin"] = admin.sockets[0].getsockname()[1]
        stats = await listen(self.stats_server, host, cfg.metrics_port, "QUEUE_METRICS_PORT")
        self.ports["metrics"] = stats.sockets[0].getsockname()[1]
        if self.prometheus is not None:
            prom = await listen(self.prometheus, cfg.prometheus_host or host,
                                cfg.prometheus_port, "METRICS_PROMETHEUS_PORT")
            self.ports["prometheus"] = prom.sockets[0].getsockname()[1]
        pair = cert_paths(cfg.certs_dir)
        if pair is not None:
            # Knative: TLS is on when the certificate is mounted; the same main handler.
            ctx = server_context(cfg.tls_settings)
            self.cert_watcher = CertWatcher(ctx, *pair, period=cfg.certs_check_period)
            self.cert_watcher.start(self.loop)
            tls = await listen(self.server, host, cfg.serving_tls_port, "QUEUE_SERVING_TLS_PORT",
                               backlog=1024, ssl=ctx)
            self.ports["tls"] = tls.sockets[0].getsockname()[1]
        self._reporter = self.loop.call_later(REPORTING_PERIOD, self._report)

    def _report(self) -> None:
        """Closes the stats window (Knative: every second) and keeps its wire form."""
        now = monotonic()
        report = self.stats.report(now)
        self.stat_bytes = encode_stat(self.config.pod, report, now - self.started_at)
        self._reporter = self.loop.call_later(REPORTING_PERIOD, self._report)

    def _request_log(self) -> RequestLog | None:
        obs = self.config.observability
        if not obs.get("enableRequestLog"):
            return None
        cfg = self.config
        revision = {
            "Name": cfg.revision, "Namespace": cfg.namespace, "Service": cfg.service,
            "Configuration": cfg.configuration, "PodName": cfg.pod, "PodIP": cfg.pod_ip,
        }
        # Knative unmarshals the JSON over its defaults: no key, the default template; an
        # empty one turns the request log off.
        template = str(obs.get("requestLogTemplate", DEFAULT_TEMPLATE) or "")
        if not template:
            return None
        try:
            return RequestLog(template, revision, probes=bool(obs.get("enableProbeRequestLog")))
        except TemplateError as exc:
            log.error("Error setting up request logger. Request logs will be unavailable: %s",
                      exc)
            return None

    # --------------------------------------------------------------------- health

    def _health(self, ex: Any) -> None:
        if self.drainer.draining:
            ex.error(503, "shutting down")
            return
        value = ex.fields[F.K_NETWORK_PROBE] or b""
        if value != b"queue":
            ex.error(400, b"unexpected probe header value: " + value)
            return
        prober = self.prober
        if prober is None:
            ex.respond(200, b"queue", TEXT_PLAIN)
            return

        def answer(fut: asyncio.Future[bool]) -> None:
            ok = not fut.cancelled() and fut.exception() is None and fut.result()
            if ok:
                ex.respond(200, b"queue", TEXT_PLAIN)
            else:
                ex.respond(503)

        prober.probe().add_done_callback(answer)

    # --------------------------------------------------------------------- drain

    async def drain(self) -> None:
        """Knative's SIGTERM path; returns when the queue-proxy may exit."""
        self.terminating = True
        await self.drainer.drain()
        # Knative's lines as it shuts its servers (its order is a Go map's: any).
        log.info("Shutting down server: main")
        if "tls" in self.ports:
            log.info("Shutting down server: main tls")
        await self.server.shutdown()  # the TLS port's listener is this server's too
        log.info("Shutting down server: admin")
        await self.admin.shutdown()
        log.info("Shutting down server: metrics")
        await self.stats_server.shutdown()
        if self.prometheus is not None:
            await self.prometheus.shutdown()
        await self.server.drain_tunnels(self.config.hijack_drain_period)
        self.pool.close()
        if self._reporter is not None:
            self._reporter.cancel()
        if self.cert_watcher is not None:
            self.cert_watcher.stop()
        if self.tracing is not None:
            await self.tracing.drain()  # the spans of the last requests, flushed (10 s at most)
        log.info("Shutdown complete, exiting...")
        if not self._stopped.done():
            self._stopped.set_result(None)

    async def wait_stopped(self) -> None:
        await self._stopped

    def close(self) -> None:
        self.server.close()
        self.admin.close()
        self.stats_server.close()
        if self.prometheus is not None:
            self.prometheus.close()
        self.pool.close()
        if self._reporter is not None:
            self._reporter.cancel()
        if self.cert_watcher is not None:
            self.cert_watcher.stop()
        if self.tracing is not None:
            self.tracing.shutdown_in_background()  # best effort: close() does not wait
        if not self._stopped.done():
            self._stopped.set_result(None)


class _AdminHandler:
    """Port 8022: ``/wait-for-drain`` blocks until the drain ends (any method)."""

    def __init__(self, qp: QueueProxy) -> None:
        self.qp = qp

    def handle(self, ex: Exchange) -> None:
        path = ex.target.split(b"?", 1)[0]
        if path != DRAIN_PATH:
            ex.error(404, "404 page not found")
            return
        qp = self.qp
        loop = qp.loop
        waiter = qp.drainer.drain()

        def reset_if_no_sigterm() -> None:
            # Knative: with no SIGTERM within a second, the user container's liveness probe
            # is restarting it; do not hold that restart up.
            if not qp.terminating:
                qp.drainer.reset()

        loop.call_later(1.0, reset_if_no_sigterm)

        def finished(_f: Any) -> None:
            ex.respond(200)

        waiter.add_done_callback(finished)


class _StatsHandler:
    """QUEUE_METRICS_PORT (9090): ``/metrics`` is the protobuf ``Stat``, whatever the Accept."""

    def __init__(self, qp: QueueProxy) -> None:
        self.qp = qp

    def handle(self, ex: Exchange) -> None:
        if ex.target.split(b"?", 1)[0] != b"/metrics":
            ex.error(404, "404 page not found")
            return
        ex.respond(200, self.qp.stat_bytes, PROTOBUF)
