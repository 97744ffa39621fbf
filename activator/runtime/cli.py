"""``python -m activator run``: Knative Service YAML served on this machine until Ctrl-C.

Loads and validates every file (annotations included) before anything starts, runs a
``Runtime``, prints where each service answers, and re-reads a file when it changes (a changed
template makes a new revision, a changed traffic block re-routes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activator.autoscaler import ScalingConfig
from activator.runtime.manifest import load_services
from activator.runtime.runtime import Runtime
from activator.runtime.service import Service, ServiceError

__all__ = ["add_arguments", "load", "run"]


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
    r.add_argument("--log-dir", default=None,
                   help="write each pod's app and queue-proxy output here")


def run(args: argparse.Namespace, new_loop: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """The command: exit status 2 when a file does not load, 0 after Ctrl-C or SIGTERM."""
    try:
        services, overrides = load(args)
    except ServiceError as exc:
        print(f"activator: {exc}", file=sys.stderr)
        return 2
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_run(args, services, overrides))
    finally:
        loop.close()


def load(args: argparse.Namespace) -> tuple[list[Service], dict[str, Any]]:
    """The services of every file, validated (annotations included); raises ServiceError."""
    overrides: dict[str, Any] = {}
    if args.scale_to_zero_grace_period is not None:
        overrides["scale_to_zero_grace_period"] = args.scale_to_zero_grace_period
    if args.stable_window is not None:
        overrides["stable_window"] = args.stable_window
    if args.allow_zero_initial_scale:
        overrides["allow_zero_initial_scale"] = True
    services = []
    for name in args.files:
        for svc in load_services(Path(name)):
            svc.validate_annotations(
                lambda ann, cc: ScalingConfig.from_annotations(ann, cc, **overrides))
            services.append(svc)
    return services, overrides


async def _run(args: argparse.Namespace, services: list[Service], overrides: dict[str, Any]) -> int:
    loop = asyncio.get_running_loop()
    log_dir = Path(args.log_dir) if args.log_dir else None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    rt = Runtime(services, loop=loop, host=args.host, port=args.port, domain=args.domain,
                 scaling_overrides=overrides, log_dir=log_dir)
    done = loop.create_future()

    def on_signal() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, on_signal)
    loop.add_signal_handler(signal.SIGINT, on_signal)
    await rt.start()
    port = rt.ports["http"]
    print(f"activator: front door on http://{args.host}:{port}", flush=True)
    for svc in services:
        host = f"{svc.name}.{svc.namespace}.{args.domain}"
        print(f"  {host}: curl -H 'Host: {host}' http://{args.host}:{port}/", flush=True)
    watcher = loop.create_task(_watch(args, rt, overrides))
    await done
    watcher.cancel()
    print("activator: stopping every pod", flush=True)
    await rt.stop()
    return 0


async def _watch(args: argparse.Namespace, rt: Runtime, overrides: dict[str, Any]) -> None:
    """Re-reads a YAML file when it changes: a changed template makes a new revision (Knative's
    Configuration), a changed traffic block re-routes. A file that no longer loads is reported
    and ignored until it is fixed."""
    def stamp(name: str) -> tuple[float, int] | None:
        try:
            st = os.stat(name)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    seen = {name: stamp(name) for name in args.files}
    while True:
        await asyncio.sleep(1.0)
        for name in args.files:
            now = stamp(name)
            if now is None or now == seen[name]:
                continue
            seen[name] = now
            try:
                for svc in load_services(Path(name)):
                    svc.validate_annotations(
                        lambda ann, cc: ScalingConfig.from_annotations(ann, cc, **overrides))
                    before = rt.latest.get((svc.namespace, svc.name))
                    rev = rt.apply(svc)
                    if rev is not before:
                        print(f"activator: {svc.namespace}/{svc.name}: new revision {rev.name}",
                              flush=True)
                        rev.reconcile()
            except ServiceError as exc:
                print(f"activator: {exc} (the file is ignored until it loads)", flush=True)
