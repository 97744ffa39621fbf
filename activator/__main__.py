"""``python -m activator``: ``serve`` (the activator, driven by its control API) and ``run``
(the local runtime: Knative Services from YAML, processes as pods)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from proxy.__main__ import new_loop


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m activator",
                                description="Knative's activator and scaling stub.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the activator; revisions and pods come from its "
                                     "control API (PUT /revisions/{namespace}/{name}, ...)")
    s.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    s.add_argument("--port", type=int, default=8012, help="request port (8012)")
    s.add_argument("--admin-port", type=int, default=8013, help="control API port (8013)")
    s.add_argument("--pod-name", default=os.environ.get("POD_NAME", "activator"),
                   help="the name stats are reported under ($POD_NAME or 'activator')")
    s.add_argument("--autoscaler-url", default="",
                   help="send stats to Knative's autoscaler over its websocket "
                        "(e.g. ws://autoscaler.knative-serving.svc.cluster.local:8080); "
                        "without it stats are not sent")
    s.add_argument("--cluster-domain", default="cluster.local")
    s.add_argument("--queue-depth", type=int, default=10_000,
                   help="requests that may wait per revision (10000)")
    s.add_argument("--drain-timeout", type=float, default=45.0,
                   help="seconds between SIGTERM and closing the listeners (45, Knative's)")
    r = sub.add_parser("run", help="run Knative Services from YAML on this machine, "
                                   "scaling from zero (processes as pods)")
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
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    from activator.app import Activator

    loop = asyncio.get_running_loop()
    sink: Any = None
    if args.autoscaler_url:
        from activator.wire import WebsocketStatSink

        sink = WebsocketStatSink(args.autoscaler_url)
        sink.start()
    act = Activator(loop=loop, pod_name=args.pod_name, stat_sink=sink,
                    cluster_domain=args.cluster_domain, queue_depth=args.queue_depth,
                    drain_timeout=args.drain_timeout)
    exit_code = 0
    terms = 0

    def on_term() -> None:
        nonlocal terms, exit_code
        terms += 1
        if terms == 1:
            loop.create_task(act.drain())
        else:
            exit_code = 1
            act.close()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_term)
    await act.start(args.host, args.port, args.admin_port)
    logging.getLogger("activator").info("activator listening on %s", act.ports)
    print(f"activator: listening on {act.ports}", file=sys.stderr, flush=True)
    await act.wait_stopped()
    if sink is not None:
        await sink.close()
    return exit_code


def load(args: argparse.Namespace) -> tuple[list[Any], dict[str, Any]]:
    """The services of every file, validated (annotations included); raises ServiceError."""
    from pathlib import Path

    from activator.kpa import ScalingConfig
    from activator.service import load_services

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


async def _run(args: argparse.Namespace, services: list[Any], overrides: dict[str, Any]) -> int:
    from pathlib import Path

    from activator.runtime import Runtime

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


async def _watch(args: argparse.Namespace, rt: Any, overrides: dict[str, Any]) -> None:
    """Re-reads a YAML file when it changes: a changed template makes a new revision (Knative's
    Configuration), a changed traffic block re-routes. A file that no longer loads is reported
    and ignored until it is fixed."""
    from pathlib import Path

    from activator.kpa import ScalingConfig
    from activator.service import ServiceError, load_services

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command == "run" else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    if args.command == "run":
        from activator.service import ServiceError

        try:
            services, overrides = load(args)
        except ServiceError as exc:
            print(f"activator: {exc}", file=sys.stderr)
            return 2
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        if args.command == "run":
            return loop.run_until_complete(_run(args, services, overrides))
        return loop.run_until_complete(_serve(args))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
