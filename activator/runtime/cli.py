"""``python -m activator run``: Knative Service YAML served on this machine until Ctrl-C.

Loads and validates every file (annotations included) before anything starts, and refuses them
with every problem found (exit status 2); runs a ``Runtime``, prints where each service answers,
and re-reads a file when it changes (hot reload, ``Manifests``): a changed template makes a new
revision, a changed traffic block re-routes, a Service gone from its file is deleted, and a file
that does not load is reported and leaves what runs as it was. A front door port that cannot be
bound is one line naming ``--port`` (exit status 2).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activator.autoscaler import ScalingConfig
from activator.runtime.console import Console
from activator.runtime.manifest import errors_of, in_file_order, load_services, raise_all
from activator.runtime.pods import FailurePolicy
from activator.runtime.runtime import POD_STOP_GRACE, Runtime
from activator.runtime.service import Service, ServiceError
from proxy.binding import bind_problem

__all__ = ["Manifests", "add_arguments", "load", "run"]

Key = tuple[str, str]  # a Service's (namespace, name)

log = logging.getLogger("activator.runtime")


def add_arguments(r: argparse.ArgumentParser) -> None:
    """The ``run`` command's flags."""
    r.add_argument("files", nargs="+", metavar="SERVICE.yaml",
                   help="Knative Service YAML (serving.knative.dev/v1, kind: Service)")
    r.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    r.add_argument("--port", type=int, default=8080, help="front door port (8080; 0 = any)")
    r.add_argument("--domain", default="example.com",
                   help="services answer on <service>.<namespace>.<domain> (example.com)")
    r.add_argument("--scale-to-zero-grace-period", type=float, default=None, metavar="SECONDS",
                   help="Knative's scale-to-zero-grace-period (30)")
    r.add_argument("--stable-window", type=float, default=None, metavar="SECONDS",
                   help="the KPA's default stable window (60; the window annotation wins)")
    r.add_argument("--allow-zero-initial-scale", action="store_true",
                   help="Knative's allow-zero-initial-scale: the initial-scale annotation may be "
                        "0 (a service then starts at zero)")
    r.add_argument("--reload-interval", type=float, default=1.0, metavar="SECONDS",
                   help="how often the files are checked for changes (1)")
    r.add_argument("--log-dir", default=None,
                   help="also write each pod's app and queue-proxy output here (<pod>.log)")
    r.add_argument("--crash-backoff", type=_crash_backoff, default=FailurePolicy(),
                   metavar="BASE[,CAP[,RESET]]",
                   help="kubelet's CrashLoopBackOff for failed pods: restart at once, then "
                        "after BASE seconds doubling to CAP, started over once a pod ran RESET "
                        "(10,300,600)")
    r.add_argument("--listen-deadline", type=_seconds, default=None, metavar="SECONDS",
                   help="a pod whose app does not listen on $PORT within this has failed (30)")
    r.add_argument("--quiet", "-q", action="store_true",
                   help="only problems: no scale decisions, no app output")
    r.add_argument("--verbose", "-v", action="store_true",
                   help="also every decision of the autoscaler and the runtime's own log")
    r.add_argument("--access-log", action="store_true",
                   help="a line per request: Host, request line, status, bytes, time")


def _crash_backoff(text: str) -> FailurePolicy:
    try:
        parts = [float(p) for p in text.split(",")]
        if not 1 <= len(parts) <= 3:
            raise ValueError("BASE[,CAP[,RESET]]")
        base = parts[0]
        cap = parts[1] if len(parts) > 1 else max(base, FailurePolicy.backoff_cap)
        reset = parts[2] if len(parts) > 2 else FailurePolicy.backoff_reset
        return FailurePolicy(backoff_base=base, backoff_cap=cap, backoff_reset=reset)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds, more than 0")
    return value


def run(args: argparse.Namespace, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """The command: exit status 2 when a file does not load or the front door port cannot be
    bound, 0 after Ctrl-C or SIGTERM."""
    try:
        services, overrides, manifests = load(args)
    except ServiceError as exc:
        for error in errors_of(exc):
            print(f"activator: {error}", file=sys.stderr)
        return 2
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_run(args, services, overrides, manifests))
    finally:
        loop.close()


def load(args: argparse.Namespace) -> tuple[list[Service], dict[str, Any], Manifests]:
    """The services of every file, validated (annotations included) and checked across files;
    raises ServiceError (``ServiceErrors`` for several) with every problem of every file."""
    overrides: dict[str, Any] = {}
    if args.scale_to_zero_grace_period is not None:
        overrides["scale_to_zero_grace_period"] = args.scale_to_zero_grace_period
    if args.stable_window is not None:
        overrides["stable_window"] = args.stable_window
    if args.allow_zero_initial_scale:
        overrides["allow_zero_initial_scale"] = True
    manifests = Manifests(args.files, overrides)
    services: list[Service] = []
    errors: list[ServiceError] = []
    for name in manifests.files:
        found, problems = manifests.read(name)
        errors += problems
        manifests.adopt(name, found)  # the next files are checked against these
        services += found
    raise_all(errors)
    return services, overrides, manifests


class Manifests:
    """The YAML files the runtime serves and which file defines each Service: what a file's
    text means now (``read``: its services, or every refusal), and which services a new text
    drops (``dropped``). A Service is defined once across the files, as within one file."""

    def __init__(self, files: list[str], overrides: dict[str, Any],
                 warn: Callable[[str], None] | None = None) -> None:
        # One entry per file (the same file named twice, or by two paths, is read once).
        by_path: dict[str, str] = {}
        for name in files:
            by_path.setdefault(os.path.realpath(name), name)
        self.files = list(by_path.values())
        self.overrides = overrides
        self.warn = warn or (lambda line: print(line, file=sys.stderr, flush=True))
        self.defined: dict[Key, Service] = {}  # what runs, by (namespace, name)

    def read(self, name: str) -> tuple[list[Service], list[ServiceError]]:
        """The file's services, or (with what could be read) every problem: the file's own
        (its annotations validated by the KPA included) and a Service another file defines.
        Warnings (unknown Knative annotations) go to ``warn`` as they are found."""
        try:
            services = load_services(
                Path(name), warn=lambda w: self.warn(f"activator: warning: {w}"),
                check_annotations=lambda annotations, cc: ScalingConfig.from_annotations(
                    annotations, cc, **self.overrides))
        except ServiceError as exc:
            return [], errors_of(exc)
        errors: list[ServiceError] = []
        for svc in services:
            other = self.defined.get((svc.namespace, svc.name))
            if other is not None and not _same_file(other.source, name):
                where = other.source + (f":{other.line}" if other.line is not None else "")
                errors.append(svc.error(
                    "metadata.name", f"Service {svc.namespace}/{svc.name} is defined twice "
                    f"(first at {where})"))
        return services, in_file_order(errors)

    def adopt(self, name: str, services: list[Service]) -> None:
        """Records ``services`` as what file ``name`` defines now (those it dropped go)."""
        for key in self.dropped(name, services):
            del self.defined[key]
        for svc in services:
            self.defined[(svc.namespace, svc.name)] = svc

    def dropped(self, name: str, services: list[Service]) -> list[Key]:
        """The services file ``name`` defined and ``services`` (its new text) does not."""
        now = {(s.namespace, s.name) for s in services}
        return [key for key, svc in self.defined.items()
                if _same_file(svc.source, name) and key not in now]


def _same_file(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


async def _run(args: argparse.Namespace, services: list[Service], overrides: dict[str, Any],
               manifests: Manifests) -> int:
    loop = asyncio.get_running_loop()
    log_dir = Path(args.log_dir) if args.log_dir else None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    policy = args.crash_backoff
    if args.listen_deadline is not None:
        policy = dataclasses.replace(policy, listen_deadline=args.listen_deadline)
    console = Console(quiet=args.quiet, verbose=args.verbose)
    manifests.warn = console.warn
    if args.verbose:
        logging.getLogger("activator").setLevel(logging.INFO)
    rt = Runtime(services, loop=loop, host=args.host, port=args.port, domain=args.domain,
                 scaling_overrides=overrides, log_dir=log_dir, failure_policy=policy,
                 say=console.say, warn=console.warn, detail=console.detail,
                 app_output=console.app, access_log=console.access if args.access_log else None)
    done = loop.create_future()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            done.set_result(None)
        elif signals == 2:  # a second Ctrl-C: every process killed now, no draining
            console.warn("activator: killing every pod now")
            rt.kill()

    loop.add_signal_handler(signal.SIGTERM, on_signal)
    loop.add_signal_handler(signal.SIGINT, on_signal)
    try:
        await rt.start()
    except OSError as exc:  # the front door's port (nothing else is bound or started yet)
        await rt.stop()
        print(f"activator: {bind_problem(exc, args.port, '--port')}", file=sys.stderr)
        return 2
    port = rt.ports["http"]
    console.say(f"activator: front door on http://{args.host}:{port}")
    for svc in services:
        host = f"{svc.name}.{svc.namespace}.{args.domain}"
        console.say(f"  {host}: curl -H 'Host: {host}' http://{args.host}:{port}/")
    console.say(f"activator: status: python -m activator status --port {port}; "
                "files reload when saved; Ctrl-C stops")
    watcher = loop.create_task(_watch(manifests, rt, args.domain, args.reload_interval))
    await done
    watcher.cancel()
    pods = rt.pod_count()
    console.warn(f"activator: stopping: {pods} {'pod' if pods == 1 else 'pods'} draining "
                 f"(their requests finish; at most {POD_STOP_GRACE:g} s); Ctrl-C again "
                 "kills them now")
    await rt.stop()
    return 0 if signals < 2 else 1


def _stamp(name: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(name)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def _watch(manifests: Manifests, rt: Runtime, domain: str, interval: float) -> None:
    """Hot reload: re-reads a file when it changes (looked at every ``interval`` seconds).

    A changed template makes a new revision (Knative's Configuration), a changed traffic block
    re-routes, a new Service starts. A Service gone from its file (or whose file is gone) is
    deleted: its routes go at once (404), its pods drain and stop. A text that removes a
    Service takes effect once it has stayed the same for one more look, so that an editor's
    save (truncate, then write; or move away, then write) does not delete it for a moment. A
    file that does not load is reported, every problem at once, and what runs stays as it was
    until the file loads."""
    seen = {name: _stamp(name) for name in manifests.files}
    pending: dict[str, tuple[int, int, int] | None] = {}  # a removal seen once, by its stamp
    while True:
        await asyncio.sleep(interval)
        for name in manifests.files:
            now = _stamp(name)
            if now == seen[name]:
                continue
            try:
                if _reload(manifests, rt, name, now, pending, domain):
                    seen[name] = now
            except Exception:  # pragma: no cover - a reload bug must not stop the runtime
                log.exception("reload of %s failed", name)
                seen[name] = now


def _reload(manifests: Manifests, rt: Runtime, name: str, now: tuple[int, int, int] | None,
            pending: dict[str, tuple[int, int, int] | None], domain: str) -> bool:
    """Applies file ``name``'s new text; False when it waits for one more look."""
    if now is None:
        services: list[Service] = []
        errors: list[ServiceError] = []
    else:
        services, errors = manifests.read(name)
    if errors:
        for error in errors:
            rt.warn(f"activator: {error}")
        rt.warn(f"activator: {name} not reloaded ({len(errors)} "
                f"{'problem' if len(errors) == 1 else 'problems'}): its services run as they "
                "were until it loads")
        return True
    dropped = manifests.dropped(name, services)
    if dropped and pending.get(name, ()) != now:
        pending[name] = now
        return False
    pending.pop(name, None)
    for svc in services:
        key = (svc.namespace, svc.name)
        before = rt.latest.get(key)
        try:
            rev = rt.apply(svc)
        except ServiceError as exc:
            rt.warn(f"activator: {exc} (not applied)")
            continue
        if rev is not before:
            what = "new service" if before is None else "new revision"
            rt.say(f"activator: {svc.namespace}/{svc.name}: {what} {rev.name}")
            rev.reconcile()
    for namespace, service in dropped:
        pods = rt.delete(namespace, service)
        how = "it has no pods" if pods == 0 else (
            f"its {pods} {'pod is' if pods == 1 else 'pods are'} draining")
        gone = "" if now is not None else " (the file is gone)"
        rt.say(f"activator: service {namespace}/{service} removed from {name}{gone}: {how}")
    manifests.adopt(name, services)
    return True
