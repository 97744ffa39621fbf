"""The local runtime: Knative Services on one machine, processes as pods, scaled by the KPA.

Theory of operation. One asyncio process holds:

- the **front door** (a ``proxy.engine.Server``): it routes by Host
  ``<service>.<namespace>.<domain>`` (``<tag>-<service>...`` for tagged traffic) or by the
  Knative-Serving-Revision/-Namespace headers to a revision, splitting by ``spec.traffic``
  percent. While the KPA says the activator is in the revision's path (no ready pod, negative
  excess burst capacity, or on its way to zero), the request goes to the **embedded activator**
  (``activator.activator.app.Activator``, in-process: the exchange is handed over, no extra hop);
  otherwise straight to a ready pod's queue-proxy, round robin, as Knative's ingress would once
  the activator leaves the path;
- per revision, a **Decider** (``activator.autoscaler``) fed every second with the revision's
  observed metric (``activator.autoscaler.metrics``: concurrency, or requests per second for
  ``metric: rps``): each ready pod's queue-proxy stats (scraped as protobuf ``Stat``) minus
  their proxied share, plus the activator's report; asked for a decision every 2 s, and at once when
  the activator pokes a revision at zero;
- a **process scaler** (``activator.runtime.pods``): scale up starts pods (app + sidecar) and lists
  them with the activator, which probes them and sends traffic the moment one answers; scale down
  takes pods out of every route first, then drains their sidecars, then stops their apps;
- per pod, a **supervisor**, the kubelet's part: a pod whose app exits (or whose sidecar does),
  whose command is not there, or whose app does not listen on ``$PORT`` within the listen
  deadline has failed; it leaves every route, is reported once (what failed, after how long,
  the last lines of the app's stderr) and is restarted in place after kubelet's
  CrashLoopBackOff (``pods.FailurePolicy``). While every pod of a revision has failed and none
  is ready, the activator refuses its requests with 503 and the reason
  (``Activator.fail_revision``), held ones included; the first pod ready lifts that.

Every decision that changes a revision's pod count is printed as one line, and so is each pod
failure; the apps' output goes to the console line by line, prefixed with the pod's name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from activator.activator import Activator, Revision, RevisionStat
from activator.activator.backends import http_get
from activator.autoscaler import (
    Decider,
    Decision,
    MetricObserver,
    PodSample,
    ScalingConfig,
)
from activator.runtime.frontdoor import FrontDoor, Route
from activator.runtime.pods import (
    PYCACHE,
    REPO,
    CrashLoopBackOff,
    FailurePolicy,
    Pod,
    PodSpec,
    console,
    exit_reason,
    listening,
)
from activator.runtime.service import Service, serving_readiness_probe, template_digest
from activator.runtime.zygote import Zygote
from proxy.engine import Server
from proxy.stats import decode_stat

__all__ = ["Runtime", "RevisionRuntime"]

log = logging.getLogger("activator.runtime")

SCRAPE_TIMEOUT = 0.5
POD_STOP_GRACE = 5.0  # seconds from a pod's SIGTERM to its SIGKILL when the runtime stops
RETIRE_CHECK_INTERVAL = 0.05  # how often a deleted revision is looked at while its pods drain
LISTEN_CHECK_INTERVAL = 0.05  # how often a starting app's $PORT is tried
_POD_VARS = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")


class RevisionRuntime:
    """One revision: its KPA decider, its pods, and its place in the activator."""

    def __init__(self, runtime: Runtime, service: Service, name: str) -> None:
        self.runtime = runtime
        self.service = service
        self.namespace = service.namespace
        self.name = name
        self.key = (self.namespace, name)
        tpl = service.template
        self.config = ScalingConfig.from_annotations(
            tpl.annotations, tpl.container_concurrency, **runtime.scaling_overrides)
        now = runtime.clock()
        self.decider = Decider(self.config, now=now)
        container = tpl.container
        # Knative's ingress speaks h2c to a revision whose port is named h2c, else HTTP/1.1.
        self.h2c = container.port_name == "h2c"
        source_dir = Path(service.source).resolve().parent if os.path.exists(
            service.source) else Path.cwd()
        cwd = container.working_dir
        if cwd and not os.path.isabs(cwd):
            cwd = str(source_dir / cwd)
        self.pod_spec = PodSpec(
            namespace=self.namespace, service=service.name, configuration=service.name,
            revision=name, command=container.argv, env=container.environ(),
            container_port=container.port, container_concurrency=tpl.container_concurrency,
            timeout_seconds=tpl.timeout_seconds,
            response_start_timeout_seconds=tpl.response_start_timeout_seconds,
            idle_timeout_seconds=tpl.idle_timeout_seconds,
            readiness=lambda port: serving_readiness_probe(container, port),
            # The kubelet expands $(VAR) in command and args against the container's own env.
            expand=lambda env: container.process_args(container.environ(
                {k: env[k] for k in _POD_VARS})),
            cwd=cwd or str(source_dir), sidecar_env=runtime.sidecar_env,
        )
        act = runtime.activator
        act.set_spec(self.namespace, name, tpl.revision_spec())
        self.act_rev: Revision = act.revision(self.namespace, name)
        self.pods: dict[str, Pod] = {}
        self.serial = 0
        self.desired = self.config.initial_scale if not self.config.min_scale else max(
            self.config.min_scale, self.config.initial_scale)
        self.decision: Decision | None = None
        self.activator_in_path = True
        self.observer = MetricObserver(self.config.metric)
        self._rr = 0
        self._reconciling = False
        self._again = False

    # ------------------------------------------------------------------ routing

    def next_pod(self) -> str | None:
        addresses = self.act_rev.healthy
        if not addresses:
            return None
        self._rr = (self._rr + 1) % len(addresses)
        return addresses[self._rr]

    # ------------------------------------------------------------------ scaling

    def observe(self, now: float, samples: list[PodSample]) -> None:
        """The second's observation (``activator.autoscaler.metrics``): the ready pods' stats
        minus their proxied part, plus the activator's report, in the revision's metric."""
        value = self.observer.observe(now, samples, bool(self.pods))
        if value is not None:
            self.decider.record(now, value)

    def decide(self, now: float) -> None:
        ready = len(self.act_rev.healthy)
        d = self.decider.scale(now, ready)
        previous = self.decision
        self.decision = d
        self.activator_in_path = d.activator_in_path
        line = (f"{self.namespace}/{self.name}: {ready} ready -> {d.desired_pods} desired "
                f"(stable {d.stable_concurrency:.1f}, panic {d.panic_concurrency:.1f}, "
                f"{'panic' if d.panicking else 'stable'} mode"
                f"{', activator in path' if d.activator_in_path else ''})")
        if d.desired_pods != self.desired or (
                previous is not None and previous.panicking != d.panicking):
            self.runtime.say(line)
        else:
            self.runtime.detail(line)
        self.desired = d.desired_pods
        self.reconcile()

    def reconcile(self) -> None:
        """Starts or stops pods until their count is the desired one (one pass at a time)."""
        if self._reconciling:
            self._again = True
            return
        self._reconciling = True
        self.runtime.loop.create_task(self._reconcile())

    async def _reconcile(self) -> None:
        try:
            while True:
                self._again = False
                # A pod that failed stays (its supervisor restarts it after its back-off): it
                # counts, as a crash-looping pod counts in its Deployment.
                live = [p for p in self.pods.values() if not p.stopping]
                want = 0 if self.runtime.stopping else self.desired
                if len(live) < want:
                    await asyncio.gather(*(self._add() for _ in range(want - len(live))))
                elif len(live) > want:
                    healthy = set(self.act_rev.healthy)
                    # Not-ready pods go first, then the youngest.
                    order = sorted(live, key=lambda p: (p.address in healthy, p.started_at))
                    await asyncio.gather(*(self._remove(p) for p in order[:len(live) - want]))
                self._update_failing()
                if not self._again:
                    return
        except Exception:  # pragma: no cover - a scaler bug must not stop the runtime
            log.exception("reconcile of %s/%s failed", self.namespace, self.name)
        finally:
            self._reconciling = False

    async def _add(self) -> None:
        self.serial += 1
        rt = self.runtime
        pod = Pod(self.pod_spec, f"{self.name}-pod-{self.serial}", echo=rt.app_output,
                  log_dir=rt.log_dir)
        self.pods[pod.name] = pod
        failure = await self._start(pod)
        rt.loop.create_task(self._supervise(pod, failure))

    async def _start(self, pod: Pod) -> str | None:
        """Starts the pod's processes and lists it; why not, when they could not start."""
        try:
            await pod.start(None, self.runtime.zygote)
        except Exception as exc:  # OSError; or the zygote gone (RuntimeError), say
            await pod.halt(1.0, drain=False)
            return str(exc) or type(exc).__name__
        self._publish()
        return None

    async def _supervise(self, pod: Pod, failure: str | None) -> None:
        """The kubelet's part for one pod, until it is stopped: waits for it to fail (see the
        module docstring), reports it, and restarts it after its back-off."""
        policy = self.runtime.failure_policy
        backoff = CrashLoopBackOff(policy.backoff_base, policy.backoff_cap, policy.backoff_reset)
        try:
            while not pod.stopping:
                detail = ""
                was_ready = False
                if failure is None:
                    found = await self._until_failure(pod, policy.listen_deadline)
                    if found is None:
                        return  # stopped
                    failure, detail = found
                    # Still listed healthy: its probe had passed (healthy pods are not probed
                    # again; the activator learns of the failure from _publish).
                    was_ready = pod.address in self.act_rev.healthy
                    self._publish()  # out of every route at once
                    await pod.halt(drain=False)
                    if pod.stopping:
                        return
                ran_for = time.monotonic() - pod.started_at
                delay = backoff.failed(ran_for)
                tail = list(pod.stderr_tail) if failure.startswith("app ") else []
                last = next((line.strip() for line in reversed(tail) if line.strip()), "")
                # Crash-looping (what fails the revision, _update_failing): failed before it
                # was ready, or held back by its back-off. A pod that was ready and fails once
                # restarts at once, and its revision's requests wait for it as for a new pod.
                # The 503's reason: what failed, and the app's last words when it exited.
                pod.failure = None if was_ready and delay == 0 else (
                    f"{failure}: {last}" if last and failure.startswith(
                        ("app exited", "app was killed")) else failure)
                pod.failed_at = time.monotonic()
                self._publish()  # out of every route while it is down
                self._update_failing()
                when = (f"now (restart {pod.restarts + 1})" if delay == 0 else
                        f"in {delay:g} s (back-off, restart {pod.restarts + 1})")
                self.runtime.warn(
                    f"{self.namespace}/{self.name}: pod {pod.name}: {failure}{detail}; "
                    f"restarting {when}"
                    + ("; last output:\n" + "\n".join(f"    {line}" for line in tail)
                       if tail else ""))
                if delay > 0:
                    try:
                        await asyncio.wait_for(pod.stop_requested.wait(), delay)
                        return  # stopped during its back-off
                    except asyncio.TimeoutError:
                        pass
                if pod.stopping:
                    return
                pod.restarts += 1
                failure = await self._start(pod)
        except Exception:  # pragma: no cover - a supervisor bug must not stop the runtime
            log.exception("supervisor of pod %s failed", pod.name)

    async def _until_failure(self, pod: Pod, deadline: float) -> tuple[str, str] | None:
        """Waits until the pod fails: (why, what happened when) or None once it is stopping."""
        exited = asyncio.ensure_future(pod.exited())
        listened = False
        started = pod.started_at
        try:
            while not pod.stopping:
                if not listened:
                    listened = await listening(pod.app_port)
                now = time.monotonic()
                if not listened and now - started >= deadline:
                    spec = self.pod_spec
                    return (f"app did not listen on $PORT={pod.app_port} within {deadline:g} s "
                            f"(is it listening on {spec.container_port}, the containerPort? it "
                            "must listen on $PORT)"), ""
                wait = None if listened else min(LISTEN_CHECK_INTERVAL,
                                                  started + deadline - now)
                await asyncio.wait((exited,), timeout=wait)
                if not exited.done():
                    continue
                if pod.stopping:
                    return None
                ran_for = time.monotonic() - started
                app, sidecar = pod.app, pod.sidecar
                if app is not None and app.returncode is not None:
                    await pod.output_done(0.5)  # its last words, into the tail
                    return f"app {exit_reason(app.returncode)}", f" after {ran_for:.2f} s"
                code = sidecar.returncode if sidecar is not None else None
                return (f"queue-proxy {exit_reason(code) if code is not None else 'is gone'}",
                        f" after {ran_for:.2f} s")
            return None
        finally:
            exited.cancel()

    def _update_failing(self) -> None:
        """Tells the activator whether the revision is failing: every live pod has failed since
        it was last ready, and none is ready now (no pods at all is not failing: a request then
        starts one)."""
        healthy = set(self.act_rev.healthy)
        live = [p for p in self.pods.values() if not p.stopping]
        for pod in live:
            if pod.address in healthy:
                pod.failure = None
        failed = [p for p in live if p.failure is not None]
        act = self.runtime.activator
        if live and len(failed) == len(live):
            last = max(failed, key=lambda p: p.failed_at)
            act.fail_revision(self.namespace, self.name,
                              f"revision {self.name} is failing: {last.failure}")
        elif self.act_rev.failure is not None:
            act.fail_revision(self.namespace, self.name, None)

    async def _remove(self, pod: Pod) -> None:
        pod.stopping = True
        self._publish()  # out of every route first
        await pod.stop()
        self.pods.pop(pod.name, None)

    def _publish(self) -> None:
        """The activator's endpoints: every live pod whose processes run; healthy ones listed
        ready."""
        healthy = set(self.act_rev.healthy)
        live = [p.address for p in self.pods.values() if not p.stopping and p.alive]
        self.runtime.activator.set_endpoints(
            self.namespace, self.name,
            ready=[a for a in live if a in healthy],
            not_ready=[a for a in live if a not in healthy])

    async def scrape(self) -> list[PodSample]:
        """The ready pods' stats for the last second (a pod that does not answer counts 0)."""
        healthy = set(self.act_rev.healthy)
        pods = [p for p in self.pods.values() if p.address in healthy and not p.stopping]
        for pod in pods:
            pod.failure = None  # ready again: no longer failing
        if not pods:
            return []
        return list(await asyncio.gather(*(_scrape(p) for p in pods)))

    async def stop(self) -> None:
        self.desired = 0
        await asyncio.gather(*(p.stop(grace=POD_STOP_GRACE) for p in list(self.pods.values())))
        self.pods.clear()


_NOTHING = PodSample()


async def _scrape(pod: Pod) -> PodSample:
    try:
        status, body = await asyncio.wait_for(
            http_get("127.0.0.1", pod.stats_port, b"/metrics",
                     (("Accept", "application/protobuf"),)), SCRAPE_TIMEOUT)
        if status != 200:
            return _NOTHING
        stat = decode_stat(body)
    except (OSError, asyncio.TimeoutError, ValueError):
        return _NOTHING
    return PodSample(float(stat["average_concurrency"]), float(stat["average_proxied_concurrency"]),
                     float(stat["request_count"]), float(stat["proxied_request_count"]))


class Runtime:
    """Runs Knative Services locally. ``await start()``, then ``await stop()``."""

    def __init__(
        self,
        services: Iterable[Service],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        domain: str = "example.com",
        scaling_overrides: dict[str, Any] | None = None,
        say: Callable[[str], None] | None = None,
        log_dir: Path | None = None,
        sidecar_env: dict[str, str] | None = None,
        zygote: bool = True,
        failure_policy: FailurePolicy | None = None,
        app_output: Callable[[str], None] = console,
        warn: Callable[[str], None] | None = None,
        detail: Callable[[str], None] | None = None,
        access_log: Callable[[str], None] | None = None,
    ) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.clock = self.loop.time
        self.host = host
        self.port = port
        self.domain = domain
        self.scaling_overrides = dict(scaling_overrides or {})
        self._say = say or (lambda line: print(line, flush=True))
        # Problems (a pod that failed, a file that does not load), and with --verbose every
        # decision; a line per request with --access-log (the front door writes it).
        self._warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self._detail = detail
        self.access_log = access_log
        self.log_dir = log_dir
        self.sidecar_env = dict(sidecar_env or {})
        self.use_zygote = zygote
        # Pods that fail (activator.runtime.pods.FailurePolicy: back-off, listen deadline), and
        # where the apps' output lines go (prefixed with their pod's name): one function, so
        # that it can be silenced.
        self.failure_policy = failure_policy or FailurePolicy()
        self.app_output = app_output
        self.zygote: Zygote | None = None
        self.activator = Activator(loop=self.loop, stat_sink=self._activator_stats,
                                   drain_timeout=0)
        self.server = Server(FrontDoor(self), loop=self.loop)
        self.services: dict[tuple[str, str], Service] = {}
        self.generations: dict[tuple[str, str], tuple[int, str]] = {}
        self.revisions: dict[tuple[str, str], RevisionRuntime] = {}
        self.latest: dict[tuple[str, str], RevisionRuntime] = {}
        self.routes: dict[str, Route] = {}
        self.stopping = False
        self.ports: dict[str, int] = {}
        self._ticker: asyncio.Task[None] | None = None
        # Revisions of deleted services, while their pods drain (``delete``).
        self.retiring: set[RevisionRuntime] = set()
        for svc in services:
            self.apply(svc)

    def say(self, line: str) -> None:
        self._say(line)

    def warn(self, line: str) -> None:
        self._warn(line)

    def detail(self, line: str) -> None:
        if self._detail is not None:
            self._detail(line)

    def pod_count(self) -> int:
        """Pods running now, every revision's (those of deleted services too)."""
        return sum(len(r.pods) for r in [*self.revisions.values(), *self.retiring])

    def kill(self) -> None:
        """Every pod process and the zygote killed now (a second Ctrl-C): no draining."""
        self.stopping = True
        for rev in [*self.revisions.values(), *self.retiring]:
            for pod in list(rev.pods.values()):
                pod.kill()
        if self.zygote is not None and self.zygote.proc is not None and (
                self.zygote.proc.returncode is None):
            self.zygote.proc.kill()

    # ------------------------------------------------------------------ services

    def apply(self, svc: Service) -> RevisionRuntime:
        """Adds or updates a Service: a new revision when its template changed."""
        key = (svc.namespace, svc.name)
        digest = template_digest(svc.template)
        gen = self.generations.get(key)
        previous = self.services.get(key)
        if previous is not None:
            svc.verify_update(previous)
        if gen is None or gen[1] != digest:
            number = 1 if gen is None else gen[0] + 1
            name = svc.revision_name_for(number)
            if any(r.key == (svc.namespace, name) for r in self.retiring):
                raise svc.error("spec.template.metadata.name",
                                f"revision {name} of the deleted service is still draining: "
                                "save the file again in a few seconds")
            self.generations[key] = (number, digest)
            rev = RevisionRuntime(self, svc, name)
            self.revisions[(svc.namespace, name)] = rev
            self.latest[key] = rev
        self.services[key] = svc
        self._route(svc)
        return self.latest[key]

    def delete(self, namespace: str, name: str) -> int:
        """Deletes a Service (Knative: its Configuration and Revisions go with it): its routes
        go at once (requests then get the front door's 404), its revisions leave the scaler and
        their pods drain and stop in the background. Returns how many pods are draining.
        Raises KeyError for a Service the runtime does not run. Its generation is kept, so a
        Service added again under that name continues its revision numbers (the old ones may
        still be draining)."""
        key = (namespace, name)
        del self.services[key]
        self.latest.pop(key, None)
        number, _ = self.generations[key]
        self.generations[key] = (number, "")  # the same template added again: a new revision
        self._unroute(key)
        revs = [r for r in self.revisions.values()
                if (r.namespace, r.service.name) == key]
        pods = 0
        for rev in revs:
            del self.revisions[rev.key]
            pods += sum(not p.stopping for p in rev.pods.values())
            self.retiring.add(rev)
            self.loop.create_task(self._retire(rev))
        return pods

    async def _retire(self, rev: RevisionRuntime) -> None:
        """Scales a deleted revision to zero (its pods drain, Knative's scale-down order), then
        removes it from the activator (a request still held there gets 404)."""
        rev.desired = 0
        rev.reconcile()
        # The reconcile pass also takes the pods a pass in progress is still starting.
        while rev.pods or rev._reconciling:
            await asyncio.sleep(RETIRE_CHECK_INTERVAL)
        self.retiring.discard(rev)
        if not self.stopping:
            self.activator.remove_revision(rev.namespace, rev.name)

    def _unroute(self, key: tuple[str, str]) -> None:
        """Drops every route (host and tags) to the revisions of Service ``key``."""
        for host, route in list(self.routes.items()):
            if any((r.namespace, r.service.name) == key for r in route.targets):
                del self.routes[host]

    def _route(self, svc: Service) -> None:
        self._unroute((svc.namespace, svc.name))  # a tag no longer listed goes
        latest = self.latest[(svc.namespace, svc.name)]
        targets: list[tuple[RevisionRuntime, int]] = []
        base = f"{svc.name}.{svc.namespace}.{self.domain}"
        for t in svc.traffic:
            rev = latest if t.latest_revision or t.revision_name is None else self.revisions.get(
                (svc.namespace, t.revision_name))
            if rev is None:
                raise svc.error("spec.traffic", f"revision {t.revision_name!r} does not exist")
            if t.percent:
                targets.append((rev, t.percent))
            if t.tag:
                self.routes[f"{t.tag}-{base}"] = Route([(rev, 100)])
        self.routes[base] = Route(targets or [(latest, 100)])

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Binds the front door (an ``OSError`` when its port cannot be bound: nothing else is
        started then), then starts the zygote and the initial pods."""
        srv = await self.server.listen(self.host, self.port, backlog=4096)
        self.ports["http"] = srv.sockets[0].getsockname()[1]
        if self.use_zygote:
            # Sidecars are forked from a warm queue-proxy: a cold start does not wait for one
            # to import (activator/runtime/zygote.py).
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE / "pycache"))
            self.zygote = Zygote(self.loop, env=env, cwd=str(REPO))
            await self.zygote.start()
        self._ticker = self.loop.create_task(self._tick())
        for rev in self.revisions.values():
            if rev.desired:
                self.say(f"{rev.namespace}/{rev.name}: 0 ready -> {rev.desired} desired "
                         "(initial scale)")
            rev.reconcile()  # initial scale

    async def stop(self) -> None:
        """Stops taking requests and stops every pod process (none is left behind)."""
        self.stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
        self.server.close()
        self.activator.close()
        await asyncio.gather(*(r.stop() for r in [*self.revisions.values(), *self.retiring]))
        if self.zygote is not None:
            await self.zygote.close()

    async def _tick(self) -> None:
        n = 0
        tick = 1.0
        decide_every = max(1, round(next(iter(self.revisions.values())).config.tick_interval)
                           if self.revisions else 2)
        next_at = self.clock() + tick
        while not self.stopping:
            await asyncio.sleep(max(0.0, next_at - self.clock()))
            # A tick that ran late (a slow scrape, a busy machine) is not caught up with a burst
            # of ticks: the clock is resynchronised instead.
            next_at = max(next_at + tick, self.clock() + tick / 2)
            revs = list(self.revisions.values())
            values = await asyncio.gather(*(r.scrape() for r in revs))
            # The activator's window closes on the same clock as the scrapes: one report per
            # revision per second, none lost between two ticks.
            self.activator.report_now()
            now = self.clock()
            for rev, value in zip(revs, values, strict=True):
                rev.observe(now, value)
            n += 1
            if n % decide_every == 0:
                for rev in revs:
                    rev.decide(self.clock())
            else:
                for rev in revs:
                    if rev.pods and any(not p.alive and not p.stopping
                                        for p in rev.pods.values()):
                        rev.reconcile()

    def _activator_stats(self, reports: list[RevisionStat]) -> None:
        now = self.clock()
        for r in reports:
            rev = self.revisions.get((r.namespace, r.name))
            if rev is None:
                continue
            sample = PodSample(average_concurrency=r.average_concurrency,
                               request_count=r.request_count)
            rev.observer.activator(sample)
            if not rev.pods or rev.desired == 0:
                # Knative's Poke scales at once when the stat has concurrency; the value recorded
                # is the revision's metric (at least one request: the one being held).
                value = max(sample.value(rev.config.metric), 1.0)
                if rev.decider.poke(now, value):
                    rev.decide(now)
