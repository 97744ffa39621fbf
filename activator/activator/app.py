"""The activator: its request path, its revisions, its control API and its Python API.

Theory of operation. ``Activator`` owns one ``proxy.engine.Server`` for requests and one for the
control API. ``ActivatorHandler`` is Knative's activator handler chain (cmd/activator/main.go),
outermost first:

1. kubelet probes: 200 when healthy, 500 with the reason otherwise (Knative's HealthHandler);
2. ``K-Network-Probe: probe``: the hash echoed (knative.dev/networking's probe handler);
3. any other ``K-Network-Probe``: 200 ``activator`` for ``activator``, else 400;
4. the revision, from Knative-Serving-Revision/-Namespace or a ``name.ns.svc.<domain>`` Host;
   an unknown one: 404 (Knative's context handler);
5. the concurrency reporter: request in / out (the first request of a revision pokes at once);
6. the revision timeouts, body ``activator request timeout``, counting time spent waiting;
7. the throttler: run now on a pod with a free slot, wait, or 503 when 10 000 already wait;
   a revision its embedder marked failing (``Activator.fail_revision``) and that has no healthy
   pod gets 503 with the reason at once, its waiters too;
8. the proxy: K-Proxy-Request: activator, Host moved to K-Original-Host, Knative-Serving-*
   removed, X-Forwarded-For appended; the request goes to the pod's queue-proxy.

Each revision (``Revision``) joins a sans-IO ``RevisionThrottler`` to its ``Backends`` (probing)
and one ``UpstreamPool`` per pod. Grants from the throttler (a slot freed, a pod appeared) run
the waiting exchanges at once, in the callback that freed the slot: nothing polls.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

from _speedups import fields as F
from activator.activator.backends import PROBE_MAX_INTERVAL, Backends, split_address
from activator.activator.control import (
    ControlError,
    RevisionSpec,
    error_body,
    parse_activators,
    parse_endpoints_and_cluster,
    parse_revision,
    parse_target,
    status_body,
)
from activator.activator.stats import ConcurrencyReporter, RevisionStat
from activator.activator.throttler import (
    ACQUIRED,
    DEFAULT_QUEUE_DEPTH,
    FULL,
    RevisionThrottler,
    infer_index,
)
from activator.activator.tls import BACKEND_HTTPS_PORT, ActivatorTLS
from proxy.engine import Server, UpstreamPool
from proxy.engine.parsers import MAX_REQUEST_HEAD
from proxy.headers import drop_set, request_head, split_absolute
from proxy.metrics import FAILED, PROXIED, SERVED

if TYPE_CHECKING:
    from proxy.engine.server import Exchange

__all__ = ["Activator", "ActivatorHandler", "Revision", "RevisionNotFound"]

log = logging.getLogger("activator")

REPORTING_PERIOD = 1.0  # seconds between concurrency reports (Knative's reportInterval)
TIMEOUT_BODY = b"activator request timeout"
TEXT_PLAIN = b"Content-Type: text/plain; charset=utf-8\r\n"
JSON_TYPE = b"Content-Type: application/json\r\n"
HEALTH_USER_AGENT = b"kube-probe/"

# Knative: activator.RevisionHeaders are pruned, K-Proxy-Request is set (so any incoming one goes).
_DROP = drop_set(b"knative-serving-revision", b"knative-serving-namespace", b"k-proxy-request")
_PROXY_LINE = b"K-Proxy-Request: activator\r\n"
_DROP_EMPTY_ORIGINAL = (b"k-original-host",)  # present but empty: Go's Header.Get says unset

# Per-exchange state in ``ex.ctx``: [revision, pod address or None, state, when it went to the
# pod] (the revision None: an unknown one, kept only to be measured)
_QUEUED = 0
_RUNNING = 1
_REJECTED = 2


class RevisionNotFound(KeyError):
    pass


class Revision:
    """One revision as this activator sees it: throttler, probed pods, their pools."""

    def __init__(self, activator: Activator, namespace: str, name: str,
                 spec: RevisionSpec) -> None:
        self.activator = activator
        self.handler = activator.handler  # PERF: typed (a C call to run), no attribute lookup
        self.namespace = namespace
        self.name = name
        self.key = (namespace, name)
        self.spec = spec
        self.throttler = RevisionThrottler(
            spec.container_concurrency,
            queue_depth=activator.queue_depth,
            max_waiting=activator.max_waiting,
            activator_index=activator.activator_index,
            activator_count=activator.activator_count,
        )
        self.timeouts = activator.timeouts_for(spec)
        self.pools: dict[str, UpstreamPool] = {}
        self.hosts: dict[str, bytes] = {}  # pod address -> the Host sent to it
        self.backends = Backends(activator.loop, self._healthy_changed,
                                 on_failed=self._probe_failed,
                                 max_interval=activator.probe_interval)
        # Mesh (Knative's mesh-compatibility-mode): pods are not addressed one by one; requests
        # go through the private service's cluster address once it answers the probe, and
        # capacity is CC x ready pods / activators (RevisionThrottler). "enabled": always;
        # "auto": once no pod could be probed, every failure could have been a mesh's (no
        # answer, 502, 503) and the cluster address answers (then for good: Knative's
        # podsAddressable).
        self.cluster_ip: str | None = None
        self.cluster_healthy = False
        self.pods_addressable = activator.mesh_mode != "enabled"
        self.fallback_ip: str | None = None  # auto: where to try once pods cannot be probed
        self.failures: dict[str, bool] = {}  # auto: pod -> its last failed probe's notMesh
        self.ready: list[str] = []
        self.cluster_backends = Backends(activator.loop, self._cluster_changed,
                                         max_interval=activator.probe_interval)
        self.removed = False
        # Why the revision is failing (its embedder says so: its pods crash, say), or None.
        # While set and no pod is healthy, requests get 503 with it (``fail``).
        self.failure: str | None = None

    # ------------------------------------------------------------------ pods

    def set_endpoints(self, ready: Iterable[str], not_ready: Iterable[str],
                      cluster_ip: str | None = None) -> None:
        ready = list(ready)
        mode = self.activator.mesh_mode
        self.fallback_ip = cluster_ip if mode == "auto" else None
        if cluster_ip is not None and not self.pods_addressable:
            self.ready = ready
            if self.cluster_ip != cluster_ip:
                self.cluster_healthy = False
            self.cluster_ip = cluster_ip
            self.backends.update((), ())  # not probed one by one
            # Scaled to zero: the cluster address is no longer healthy (Knative's checkDests).
            self.cluster_backends.update([cluster_ip] if ready else [], ())
            if self.cluster_healthy:
                self._route_cluster()
            return
        if self.cluster_ip is not None:
            self.cluster_ip = None
            self.cluster_healthy = False
            self.cluster_backends.update((), ())
        listed = set(ready).union(not_ready)
        self.failures = {a: m for a, m in self.failures.items() if a in listed}
        self.backends.update(ready, not_ready)
        self._consider_fallback()

    def _probe_failed(self, address: str, not_mesh: bool) -> None:
        if self.fallback_ip is not None and not self.removed:
            self.failures[address] = not_mesh
            self._consider_fallback()

    def _consider_fallback(self) -> None:
        """auto: probes the cluster address while no pod could be probed and every pod's last
        failure could have been a mesh's; stops as soon as that is no longer so."""
        if not self.pods_addressable:
            return  # fallen back already: the cluster address is managed as in "enabled"
        b = self.backends
        listed = b.ready | b.not_ready
        ip = self.fallback_ip
        try_it = (ip is not None and self.pods_addressable and bool(listed) and not b.healthy
                  and all(a in self.failures for a in listed)
                  and not any(self.failures.values()))
        self.cluster_backends.update([ip] if try_it and ip is not None else [], ())

    def _cluster_changed(self, healthy: list[str]) -> None:
        if self.removed:
            return
        if self.cluster_ip is None:
            fallback = self.fallback_ip
            if fallback is None or fallback not in healthy or self.backends.healthy:
                return
            # auto: pods cannot be addressed, the cluster address answers (Knative's
            # "ClusterIP is successfully probed"): from now on, as in "enabled".
            log.info("revision %s/%s: pods cannot be probed, the cluster address %s can: "
                     "requests go through it", self.namespace, self.name, fallback)
            self.pods_addressable = False
            self.failures.clear()
            self.cluster_ip, self.cluster_healthy = fallback, True
            self.set_endpoints(sorted(self.backends.ready), sorted(self.backends.not_ready),
                               fallback)
            return
        self.cluster_healthy = self.cluster_ip in healthy
        if self.cluster_healthy:
            self._route_cluster()
        else:
            self._set_pools([])
            self.run_grants(self.throttler.update_pods([]))

    def _route_cluster(self) -> None:
        address = self.cluster_ip
        assert address is not None
        self._set_pools([address])
        self.run_grants(self.throttler.update_pods(self.ready, address))

    def _healthy_changed(self, healthy: list[str]) -> None:
        if self.removed or self.cluster_ip is not None:
            return
        if self.fallback_ip is not None:
            self._consider_fallback()
        self._set_pools(healthy)
        self.run_grants(self.throttler.update_pods(healthy))

    def _set_pools(self, healthy: list[str]) -> None:
        """A pool for each address requests may go to now; the others closed."""
        act = self.activator
        cc = self.spec.container_concurrency
        for address in healthy:
            if address not in self.pools:
                host, port = split_address(address)
                # A pod takes at most CC requests at once from this activator: more idle
                # connections than that are never all needed, and requests spread over them
                # (each client's own first) cost the pod and us a colder socket each time.
                # The cluster address fronts every pod: no such bound.
                max_idle = cc if cc > 0 and address != self.cluster_ip else 1000
                tls = act.tls
                if tls is None:
                    self.pools[address] = UpstreamPool(act.loop, host, port, backend=act.backend,
                                                       max_idle=max_idle)
                else:  # Knative's useSecurePort: the pod's TLS port, whatever the endpoint says
                    self.pools[address] = UpstreamPool(
                        act.loop, host, tls.pod_port, backend=act.backend, max_idle=max_idle,
                        ssl=tls.client, server_hostname=tls.server_name, ssl_h2=tls.client_h2)
                self.hosts[address] = address.encode()
        keep = set(healthy)
        for address in [a for a in self.pools if a not in keep]:
            self.pools.pop(address).close()  # running requests finish on their connections
            del self.hosts[address]
        if self.pools:
            self.failure = None  # a pod is healthy: the revision serves again

    # ------------------------------------------------------------------ requests

    # ------------------------------------------------------------------ for embedders

    @property
    def healthy(self) -> list[str]:
        """The pods that answered their probe and take requests (``"ip:port"``)."""
        return list(self.pools)

    def pool(self, address: str) -> UpstreamPool | None:
        """The connection pool to a healthy pod, None for any other address. An embedder that
        routes around the activator (the local runtime, once the activator leaves the path)
        forwards there."""
        return self.pools.get(address)

    def hold(self, ex: Exchange) -> None:
        """Takes a request for this revision into the activator's path: reported, timed out,
        throttled and forwarded as if it had come in on the activator's port."""
        self.handler.handle_revision(ex, self)

    def run_grants(self, grants: list, now: float = -1.0) -> None:
        """Runs the waiters the throttler granted slots; ``now``: the clock, if read already."""
        handler = self.handler
        if grants and handler._series is not None:  # measured: the waiters' start times
            if now < 0:
                now = handler.clock()
            for ex, _pod in grants:
                ex.ctx[3] = now  # when the waiter goes to its pod (the client duration's)
        for ex, pod in grants:
            handler.run(ex, pod)

    def fail(self, reason: str | None) -> int:
        """Marks the revision failing (``reason``, the 503's body) or no longer (None). While it
        is failing and no pod is healthy, waiting requests get 503 ``reason`` now and new ones at
        once; requests running on pods are not touched. A pod turning healthy lifts the mark.
        Returns how many waiting requests were answered."""
        self.failure = reason
        if reason is None or self.pools:
            return 0
        waiters = self.activator.handler.waiting_for(self)
        for ex in waiters:
            ex.error(503, reason)
        return len(waiters)

    def status(self) -> dict[str, Any]:
        t = self.throttler
        cap = t.capacity
        return {
            "namespace": self.namespace,
            "name": self.name,
            "containerConcurrency": self.spec.container_concurrency,
            "timeoutSeconds": self.spec.timeout_seconds,
            "capacity": None if cap >= 2**31 - 1 else cap,
            "waiting": t.waiting,
            "inFlight": t.active,
            "healthyPods": sorted(self.backends.healthy),
            "notReadyPods": sorted(self.backends.not_ready),
            "probing": self.backends.probing,
            "failure": self.failure,
            "clusterIP": self.cluster_ip if self.cluster_healthy else None,
        }

    def close(self, reason: str) -> None:
        """The revision is gone: its waiters get ``reason`` as a 404, running requests finish."""
        self.removed = True
        self.backends.close()
        self.cluster_backends.close()
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()
        self.throttler.update_pods([])  # no pods: no grants
        for ex in self.activator.handler.waiting_for(self):
            ex.error(404, reason)


def _log_revision(rev: Revision | None) -> dict[str, str]:
    if rev is None:
        return {}
    spec = rev.spec
    return {"Name": rev.name, "Namespace": rev.namespace,
            "Service": spec.service, "Configuration": spec.configuration}


class ActivatorHandler:
    """The engine handler for the activator's request port (see the module docstring)."""

    def __init__(self, activator: Activator) -> None:
        self.act = activator
        self.revisions: dict[tuple[bytes, bytes], Revision] = {}
        self.reporter = activator.reporter
        self.clock = monotonic  # the engine's clock (proxy.engine.deadlines)
        self.cluster_domain = activator.cluster_domain.encode()
        self._on_done = self._done  # PERF: one bound method, not a new one per request
        metrics = activator.metrics  # activator.activator.metrics.ActivatorMetrics
        self._series: Any = metrics.series if metrics is not None else None
        # Knative's activator request log (proxy.request_log.RequestLog, Go's text/template):
        # the revision's name, namespace, service and configuration; no pod, no trace id.
        self.request_log: Any = activator.request_log
        self._last: Revision | None = None  # the revision the last request named, and its name
        self._last_name = b""
        self._last_ns = b""

    def handle(self, ex: Exchange) -> None:
        f = ex.fields
        ua = f[F.USER_AGENT]
        if (ua is not None and ua.startswith(HEALTH_USER_AGENT)) or f[F.K_KUBELET_PROBE]:
            err = self.act.health_error()
            if err is None:
                ex.respond(200)
            else:
                ex.error(500, err)
            return
        probe = f[F.K_NETWORK_PROBE]
        if probe:
            self._network_probe(ex, probe)
            return
        name = f[F.KNATIVE_SERVING_REVISION] or b""
        namespace = f[F.KNATIVE_SERVING_NAMESPACE] or b""
        if not name or not namespace:
            host = f[F.HOST]
            if host:
                parts = host.split(b".", 3)
                if (len(parts) == 4 and parts[2] == b"svc"
                        and parts[3].split(b":", 1)[0] == self.cluster_domain):
                    name, namespace = parts[0], parts[1]
        # PERF: the last request's revision, when this one names it too: two byte compares,
        # not a dict lookup that hashes a new tuple of new bytes. Removing a revision (the
        # only way one leaves ``revisions``) marks it removed.
        rev = self._last
        if rev is None or rev.removed or name != self._last_name or namespace != self._last_ns:
            rev = self.revisions.get((namespace, name))
            if rev is None:
                if self._series is not None:  # measured, without the revision's labels
                    ex.ctx = [None, None, _REJECTED, 0.0]
                    ex.on_done = self._on_done
                ex.error(404, _not_found(name.decode("latin-1")))
                return
            self._last, self._last_name, self._last_ns = rev, name, namespace
        self.handle_revision(ex, rev)

    def handle_revision(self, ex: Exchange, rev: Revision) -> None:
        """From step 5 on, for a revision already known (the local runtime's front door hands
        requests over here when the activator is in the revision's path)."""
        reporter = self.reporter
        if reporter is not None:
            poke = reporter.request_in(rev.key, ex.started)
            if poke is not None:
                self.act.send_stats([poke])
        ex.timeout_body = TIMEOUT_BODY
        ex.arm_timeouts(rev.timeouts, ex.started)  # PERF: dispatched in this same callback
        ctx = ex.ctx = [rev, None, _QUEUED, 0.0]
        if self._series is not None:
            ctx[3] = ex.started  # PERF: no float made per request with metrics off
        ex.on_done = self._on_done
        if rev.failure is not None and not rev.pools:  # Activator.fail_revision
            ctx[2] = _REJECTED
            ex.error(503, rev.failure)
            return
        outcome, pod = rev.throttler.acquire(ex)
        if outcome == ACQUIRED:
            self.run(ex, pod)  # type: ignore[arg-type]
        elif outcome == FULL:
            ctx[2] = _REJECTED
            ex.error(503, "pending request queue full")

    def run(self, ex: Exchange, pod: str) -> None:
        """A slot on ``pod`` is this exchange's: forward it there."""
        ctx = ex.ctx
        rev = ctx[0]
        ctx[1] = pod
        ctx[2] = _RUNNING
        pool = rev.pools.get(pod)
        if pool is None:  # a removed pod whose slot was handed out in the same update
            ex.error(502, f"dial tcp {pod}: no such pod")
            return
        f = ex.fields
        original = f[F.K_ORIGINAL_HOST]
        also_drop: Any = ()
        if original:
            extra: Any = _PROXY_LINE
        else:
            host = f[F.HOST] or b""
            target = ex.target
            if target[0] != 47:  # absolute-form: Go makes the URL's host the request's Host
                url_host = split_absolute(target)[1]
                if url_host:
                    host = url_host
            # PERF: in pieces, copied once into the head
            extra = (_PROXY_LINE, b"K-Original-Host: ", host, b"\r\n")
            if original is not None:  # empty
                also_drop = _DROP_EMPTY_ORIGINAL
        # PERF: positional arguments: a C call (keywords go through the Python wrapper)
        ex.head_out = request_head(ex, _DROP, rev.hosts[pod], extra, also_drop)
        self.forward(ex, pool)

    def forward(self, ex: Exchange, pool: UpstreamPool) -> None:
        """Sends the exchange, its head built, to the pod (a hook: tracing puts its
        ``traceparent`` in the head here, ``activator.activator.tracing``)."""
        ex.forward(pool)

    def _done(self, ex: Exchange) -> None:
        rev, pod, state, sent = ex.ctx
        reporter = self.reporter
        series = self._series
        # PERF: one clock read, for the reports and the metrics and for the waiters this
        # request's slot goes to
        timed = reporter is not None or series is not None or self.request_log is not None
        now = self.clock() if timed else -1.0
        if rev is not None:
            if state == _RUNNING:
                rev.run_grants(rev.throttler.release(pod), now)
            elif state == _QUEUED:
                rev.throttler.cancel(ex)
        if not timed:
            return
        if reporter is not None and rev is not None:
            reporter.request_out(rev.key, now)
        if series is not None:
            # PERF: one C call, the raw values as the key (proxy.metrics: labels when scraped)
            status = ex.resp_status
            conn = ex.conn
            proto = ex.http10 | (2 if conn.h2 is not None else 0) | (4 if conn.tls else 0)
            if state == _RUNNING:
                kind = FAILED if ex.resp_local or not status else PROXIED
                to_pod = now - sent
            else:
                kind = SERVED
                to_pod = -1.0
                pod = None
            series.observe((ex.method, status or 502, ex.fields[F.HOST], proto, rev, pod, kind),
                           now - ex.started, to_pod, ex.req_bytes, ex.resp_bytes)
        if self.request_log is not None:
            self.request_log.log(ex, now, _log_revision(rev))

    def waiting_for(self, rev: Revision) -> list[Any]:
        """Exchanges still waiting for a pod of ``rev``: the throttler's waiters, wherever they
        came in (this activator's ports, or an embedder's server that handed them over)."""
        return rev.throttler.waiters()

    def _network_probe(self, ex: Any, probe: bytes) -> None:
        if probe == b"probe":
            value = ex.fields[F.K_NETWORK_HASH]
            if not value:
                ex.error(400, 'a probe request must contain a non-empty "K-Network-Hash" header')
                return
            ex.respond(200, b"", b"K-Network-Hash: " + value + b"\r\n")
        elif probe == b"activator":
            ex.respond(200, b"activator", TEXT_PLAIN)
        else:
            text = html.escape(probe.decode("utf-8", "replace"))
            ex.error(400, f"unexpected probe header value: {_go_quote(text)}")


def _not_found(name: str) -> str:
    return f'Error getting active endpoint: revision.serving.knative.dev "{name}" not found'


def _go_quote(s: str) -> str:
    """Go's %q for the printable text html.EscapeString leaves."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x80 else f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


class ControlHandler:
    """The control API on the admin port (see ``activator.activator.control`` for the routes)."""

    def __init__(self, activator: Activator) -> None:
        self.act = activator

    def handle(self, ex: Exchange) -> None:
        try:
            route = parse_target(ex.method, ex.target)
        except ControlError as err:
            self._error(ex, err)
            return
        if route.action in ("put_revision", "put_endpoints", "put_activators"):
            ex.read_body(lambda body: self._with_body(ex, route, body), limit=1 << 20)
        else:
            self._with_body(ex, route, b"")

    def _with_body(self, ex: Any, route: Any, body: bytes) -> None:
        act = self.act
        try:
            if route.action == "put_revision":
                spec = parse_revision(body)
                created = act.set_spec(route.namespace, route.name, spec)
                self._json(ex, 201 if created else 200,
                           act.revision_status(route.namespace, route.name))
            elif route.action == "put_endpoints":
                ready, not_ready, cluster_ip = parse_endpoints_and_cluster(body)
                act.set_endpoints(route.namespace, route.name, ready=ready, not_ready=not_ready,
                                  cluster_ip=cluster_ip)
                self._json(ex, 200, act.revision_status(route.namespace, route.name))
            elif route.action == "put_activators":
                listed = parse_activators(body)
                index = act.set_activators(route.namespace, route.name, listed)
                self._json(ex, 200, {"index": index, "count": len(set(listed))})
            elif route.action == "get_revision":
                self._json(ex, 200, act.revision_status(route.namespace, route.name))
            elif route.action == "delete_revision":
                act.remove_revision(route.namespace, route.name)
                ex.respond(204)
            elif route.action == "list_revisions":
                self._json(ex, 200, {"revisions": [r.status() for r in act.revisions()]})
            else:  # pragma: no cover - parse_target knows every action
                ex.error(404, "404 page not found")
        except ControlError as err:
            self._error(ex, err)
        except RevisionNotFound as err:
            ex.error(404, _not_found(str(err.args[0])))
        except Exception:  # pragma: no cover - a bug must answer, not hang the caller
            log.exception("control API failed")
            ex.error(500, "internal error")

    def _json(self, ex: Any, status: int, doc: dict[str, Any]) -> None:
        ex.respond(status, status_body(doc), JSON_TYPE)

    def _error(self, ex: Any, err: ControlError) -> None:
        extra = b""
        allow = getattr(err, "allow", None)
        if allow:
            extra = b"Allow: " + ", ".join(allow).encode() + b"\r\n"
        ex.respond(err.status, error_body(err), JSON_TYPE + extra)


StatSink = Callable[[list[RevisionStat]], None]


class Activator:
    """An activator: request and control listeners, revisions, probes and stats.

    Embedding::

        act = Activator(stat_sink=print)
        await act.start(port=8012, admin_port=8014, h2c_port=8013)
        act.set_revision("default", "hello-00001", container_concurrency=1)
        act.set_endpoints("default", "hello-00001", not_ready=["10.0.0.5:8012"])
        ...
        await act.drain()
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        pod_name: str = "activator",
        stat_sink: StatSink | None = None,
        cluster_domain: str = "cluster.local",
        queue_depth: int = DEFAULT_QUEUE_DEPTH,
        max_waiting: int = 0,
        pod_ip: str = "",
        mesh_mode: str = "auto",
        request_log_template: str = "",
        activator_index: int = -1,
        activator_count: int = 1,
        probe_interval: float = PROBE_MAX_INTERVAL,
        drain_timeout: float = 45.0,
        backend: str | None = None,
        max_head: int = MAX_REQUEST_HEAD,
        header_timeout: float = 60.0,
        metrics: Any = None,
        tls: ActivatorTLS | None = None,
        tracing: Any = None,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        # System-internal TLS (activator.activator.tls): requests to pods go over TLS, and
        # ``start`` serves TLS on ``tls_port`` beside plain HTTP.
        self.tls = tls
        self.pod_name = pod_name
        self.stat_sink = stat_sink
        self.cluster_domain = cluster_domain
        self.queue_depth = queue_depth
        self.max_waiting = max_waiting  # waiters per revision before a 503 (0: Knative's, none)
        # This activator's address among a revision's activators (Knative's POD_IP): with
        # ``set_activators`` it gives this activator's share of the revision's pods.
        self.pod_ip = pod_ip
        if mesh_mode not in ("auto", "enabled", "disabled"):
            raise ValueError(f"mesh mode must be auto, enabled or disabled, got {mesh_mode!r}")
        # Knative's config-network mesh-compatibility-mode. "enabled": through the cluster
        # address (set_endpoints' cluster_ip); "auto" and "disabled": pods one by one (Knative's
        # "auto" falls back to the cluster address when no pod can be probed: not done here).
        self.mesh_mode = mesh_mode
        self.request_log: Any = None
        if request_log_template:
            from proxy.request_log import RequestLog, TemplateError

            # Knative's activator: logging.request-log-template of config-observability. A
            # template Go would refuse is logged and the activator runs without a request log.
            try:
                self.request_log = RequestLog(request_log_template, {}, trace_ids=False)
            except TemplateError as exc:
                log.error("Failed to set request log template; request logs will be "
                          "unavailable: %s", exc)
        self.activator_index = activator_index
        self.activator_count = activator_count
        self.probe_interval = probe_interval
        self.drain_timeout = drain_timeout
        self.backend = backend
        self.max_head = max_head
        self.reporter: ConcurrencyReporter | None = ConcurrencyReporter(pod_name)
        # Prometheus (activator.activator.metrics.ActivatorMetrics): None, nothing measured.
        self.metrics = metrics
        if metrics is not None and tls is not None:
            metrics.pod_tls_port = tls.pod_port  # client labels: https, the pods' TLS port
        if metrics is not None:
            metrics.revisions = self.revisions
        self.server = Server(None, loop=self.loop, backend=backend, max_head=max_head,
                             header_timeout=header_timeout)
        # Tracing (a proxy.tracing.Tracing, activator.activator.tracing.tracing_for): Knative's
        # spans from a handler subclass chosen here. None: the plain handler, and no
        # OpenTelemetry module is loaded.
        self.tracing = tracing
        if tracing is None:
            self.handler = ActivatorHandler(self)
        else:
            from activator.activator.tracing import TracingActivatorHandler

            self.handler = TracingActivatorHandler(self, tracing)
        self.server.handler = self.handler
        self.admin = Server(ControlHandler(self), loop=self.loop, backend=backend)
        self._timeouts: dict[tuple[int, int, int], tuple] = {}
        self._reporter: asyncio.TimerHandle | None = None
        self.ports: dict[str, int] = {}
        self.draining = False
        self._stopped = self.loop.create_future()

    # ------------------------------------------------------------------ listeners

    async def start(self, host: str = "0.0.0.0", port: int = 8012,
                    admin_port: int | None = 8014, h2c_port: int | None = 8013,
                    tls_port: int | None = BACKEND_HTTPS_PORT) -> None:
        """Binds the request ports and (unless ``admin_port`` is None) the control API.

        Like Knative's activator, both request ports (``port``, 8012, and ``h2c_port``, 8013,
        where Knative's ingress sends h2c; None: not bound) serve HTTP/1.1 and h2c alike. With
        ``tls``, ``tls_port`` (8112; None: not bound) serves the same over TLS, h2 by ALPN."""
        main = await self.server.listen(host, port, backlog=4096)
        self.ports["main"] = main.sockets[0].getsockname()[1]
        if h2c_port is not None:
            h2c = await self.server.listen(host, h2c_port, backlog=4096)
            self.ports["h2c"] = h2c.sockets[0].getsockname()[1]
        if self.tls is not None:
            self.tls.start(self.loop)
            if tls_port is not None:
                secure = await self.server.listen(host, tls_port, backlog=4096,
                                                  ssl=self.tls.server)
                self.ports["tls"] = secure.sockets[0].getsockname()[1]
        if admin_port is not None and admin_port >= 0:  # -1: no control API
            admin = await self.admin.listen(host, admin_port)
            self.ports["admin"] = admin.sockets[0].getsockname()[1]
        self.start_reporting()

    def start_reporting(self) -> None:
        """Starts the 1 s concurrency reports (``start`` does; an embedder that hands requests
        over without listening calls it itself)."""
        if self._reporter is None:
            self._reporter = self.loop.call_later(REPORTING_PERIOD, self._report)

    # ------------------------------------------------------------------ Python API

    def set_revision(self, namespace: str, name: str, *, container_concurrency: int = 0,
                     timeout_seconds: int = 300, response_start_timeout_seconds: int = 0,
                     idle_timeout_seconds: int = 0, service: str = "",
                     configuration: str = "") -> bool:
        """Creates or updates a revision; True if it was created. ``ValueError`` on bad values
        (``activator.activator.control.ControlError``), and when containerConcurrency would change:
        Knative revisions are immutable, a new one is a new revision. ``service`` and
        ``configuration`` are its Knative labels' (for the metrics)."""
        spec = RevisionSpec(
            container_concurrency=container_concurrency,
            timeout_seconds=timeout_seconds,
            response_start_timeout_seconds=response_start_timeout_seconds,
            idle_timeout_seconds=idle_timeout_seconds,
            service=service,
            configuration=configuration,
        )
        return self.set_spec(namespace, name, spec)

    def set_spec(self, namespace: str, name: str, spec: RevisionSpec) -> bool:
        key = (namespace.encode(), name.encode())
        rev = self.handler.revisions.get(key)
        if rev is None:
            self.handler.revisions[key] = Revision(self, namespace, name, spec)
            return True
        if spec.container_concurrency != rev.spec.container_concurrency:
            raise ControlError(
                f"containerConcurrency of revision {namespace}/{name} cannot change "
                f"({rev.spec.container_concurrency} -> {spec.container_concurrency}): "
                "revisions are immutable, create a new one", 409)
        rev.spec = spec
        rev.timeouts = self.timeouts_for(spec)  # for requests from now on
        return False

    def set_endpoints(self, namespace: str, name: str, *, ready: Iterable[str] = (),
                      not_ready: Iterable[str] = (), cluster_ip: str | None = None) -> None:
        """The revision's pod addresses (``"ip:port"`` of their queue-proxies) now. Ready and
        not-ready pods are probed until healthy; requests go to healthy ones only. With
        ``mesh_mode="enabled"`` and ``cluster_ip`` (its private service, ``"ip:port"``),
        requests go there instead once it answers the probe, CC x ready pods at once."""
        self.revision(namespace, name).set_endpoints(ready, not_ready, cluster_ip)

    def set_activators(self, namespace: str, name: str, addresses: Iterable[str]) -> int:
        """The activators in the revision's path now (the addresses of its public service's
        endpoints, Knative's subsetting): this one, found by ``pod_ip``, takes its slice of the
        revision's pods and of its capacity. Returns this activator's index, -1 if it is not
        among them (then nothing changes, as Knative's handlePubEpsUpdate)."""
        rev = self.revision(namespace, name)
        listed = sorted(set(addresses))
        index = infer_index(listed, self.pod_ip)
        if index < 0:
            return -1
        t = rev.throttler
        if (t.activator_index, t.activator_count) != (index, len(listed)):
            rev.run_grants(t.update_activators(index, len(listed)))
        return index

    def fail_revision(self, namespace: str, name: str, reason: str | None) -> int:
        """Marks a revision failing, for an embedder that runs its pods and sees them fail
        (the local runtime: every pod crash-looping, none ready). While it is failing and has
        no healthy pod, its waiting requests get 503 with ``reason`` as the body now, and new
        ones at once, instead of waiting out their timeout; requests running on pods are not
        touched. The first pod to turn healthy lifts the mark, as does ``reason=None``. Returns
        how many waiting requests were answered; raises ``RevisionNotFound``."""
        return self.revision(namespace, name).fail(reason)

    def remove_revision(self, namespace: str, name: str) -> None:
        """Forgets a revision: its waiting requests get 404, running ones finish."""
        rev = self.handler.revisions.pop((namespace.encode(), name.encode()), None)
        if rev is None:
            raise RevisionNotFound(name)
        rev.close(_not_found(name))

    def revision_status(self, namespace: str, name: str) -> dict[str, Any]:
        return self.revision(namespace, name).status()

    def revisions(self) -> list[Revision]:
        return list(self.handler.revisions.values())

    def revision(self, namespace: str, name: str) -> Revision:
        """The revision's state (``healthy``, ``pool``, ``hold``, ``status``); raises
        ``RevisionNotFound``."""
        rev = self.handler.revisions.get((namespace.encode(), name.encode()))
        if rev is None:
            raise RevisionNotFound(name)
        return rev

    def timeouts_for(self, spec: RevisionSpec) -> tuple:
        key = (spec.timeout_seconds, spec.response_start_timeout_seconds,
               spec.idle_timeout_seconds)
        queues = self._timeouts.get(key)
        if queues is None:
            queues = self._timeouts[key] = self.server.timeouts(*map(float, key))
        return queues

    # ------------------------------------------------------------------ stats and health

    def send_stats(self, reports: list[RevisionStat]) -> None:
        sink = self.stat_sink
        if sink is None or not reports:
            return
        try:
            sink(reports)
        except Exception:  # a sink must never break the request path
            log.exception("stat sink failed")

    def _report(self) -> None:
        self.report_now()
        self._reporter = self.loop.call_later(REPORTING_PERIOD, self._report)

    def report_now(self) -> None:
        """Closes the concurrency window and sends it (what the 1 s timer does; an embedder that
        keeps its own 1 s clock calls this instead of ``start_reporting``)."""
        if self.reporter is not None:
            reports = self.reporter.report(monotonic())
            if self.metrics is not None:
                self.metrics.record_concurrency(reports, self._revision_or_none)
            self.send_stats(reports)

    def _revision_or_none(self, namespace: str, name: str) -> Revision | None:
        return self.handler.revisions.get((namespace.encode(), name.encode()))

    def health_error(self) -> str | None:
        """None when healthy, else why not (Knative: SIGTERM seen, or the stat sink down)."""
        if self.draining:
            return "received SIGTERM from kubelet"
        connected = getattr(self.stat_sink, "connected", True)
        if not connected:
            return "connection has not yet been established"  # Knative's websocket Status()
        return None

    # ------------------------------------------------------------------ drain

    async def drain(self, timeout: float | None = None) -> None:
        """Knative's SIGTERM path: fail readiness, wait ``drain_timeout`` for the endpoint
        change to spread, then stop accepting and finish every request, held ones included."""
        self.draining = True
        wait = self.drain_timeout if timeout is None else timeout
        if wait > 0:
            await asyncio.sleep(wait)
        await self.server.shutdown()
        await self.admin.shutdown()
        await self.server.drain_tunnels(0)
        if self.tracing is not None:
            await self.tracing.drain()  # the last requests' spans, flushed (10 s at most)
        self._stop()

    async def wait_stopped(self) -> None:
        await self._stopped

    def _stop(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None
        if self.tls is not None:
            self.tls.stop()
        for rev in self.handler.revisions.values():
            rev.backends.close()
            rev.cluster_backends.close()
            for pool in rev.pools.values():
                pool.close()
        if not self._stopped.done():
            self._stopped.set_result(None)

    def close(self) -> None:
        """Stops at once: connections are cut."""
        self.server.close()
        self.admin.close()
        if self.tracing is not None:
            self.tracing.shutdown_in_background()  # best effort: close() does not wait
        self._stop()
