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

from proxy.__main__ import new_loop, tune_gc
from proxy.logs import go_duration


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name}: {raw!r} is not a port number") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m activator",
                                description="Knative's activator and scaling stub.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the activator; revisions and pods come from its "
                                     "control API (PUT /revisions/{namespace}/{name}, ...)")
    s.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    s.add_argument("--port", type=int, default=8012, help="request port (8012)")
    s.add_argument("--h2c-port", type=int, default=8013,
                   help="second request port, where Knative's ingress sends h2c (8013); both "
                        "request ports serve HTTP/1.1 and h2c; 0: any free port, -1: none")
    s.add_argument("--admin-port", type=int, default=8014,
                   help="control API port (8014: Knative's activator uses 8013 for h2c; "
                        "-1: none, as in a cluster with --kubernetes)")
    s.add_argument("--pod-name", default=os.environ.get("POD_NAME", "activator"),
                   help="the name stats are reported under ($POD_NAME or 'activator')")
    s.add_argument("--autoscaler-url", default="",
                   help="send stats to Knative's autoscaler over its websocket "
                        "(e.g. ws://autoscaler.knative-serving.svc.cluster.local:8080); "
                        "without it stats are not sent")
    s.add_argument("--cluster-domain", default="cluster.local")
    s.add_argument("--queue-depth", type=int, default=10_000,
                   help="Knative's breakerQueueDepth (10000): with its MaxInt32 revision "
                        "breaker, requests wait for a pod without a practical bound")
    s.add_argument("--max-waiting", type=int, default=0,
                   help="answer 503 once this many requests wait for one revision (ours; "
                        "0: no bound, as Knative)")
    s.add_argument("--mesh-compatibility-mode", choices=("auto", "enabled", "disabled"),
                   default="auto",
                   help="Knative's config-network key: enabled sends requests through each "
                        "revision's clusterIP (PUT .../endpoints' clusterIP); auto addresses pods "
                        "one by one, and falls back to the clusterIP when they cannot be probed "
                        "but it can; disabled: pods only (auto)")
    s.add_argument("--request-log-template",
                   default=os.environ.get("SERVING_REQUEST_LOG_TEMPLATE", ""),
                   help="Knative's logging.request-log-template (Go's text/template over "
                        ".Request, .Response, .Revision): a line per request on stdout "
                        "($SERVING_REQUEST_LOG_TEMPLATE; empty: none)")
    s.add_argument("--pod-ip", default=os.environ.get("POD_IP", ""),
                   help="this activator's address among a revision's activators ($POD_IP): "
                        "with PUT /revisions/{ns}/{name}/activators it gives its share")
    s.add_argument("--drain-timeout", type=float, default=45.0,
                   help="seconds between SIGTERM and closing the listeners (45, Knative's)")
    s.add_argument("--system-internal-tls", action="store_true",
                   help="Knative's system-internal-tls: serve TLS on --tls-port beside plain "
                        "HTTP, and send requests to pods over TLS on --pod-tls-port, verified "
                        "for data-plane.knative.dev (ACTIVATOR_TLS_* variables apply)")
    s.add_argument("--certs-dir", default="/var/lib/knative/certs",
                   help="the routing-serving-certs Secret, mounted: tls.crt, tls.key, ca.crt "
                        "(/var/lib/knative/certs)")
    s.add_argument("--trust-bundle-dir", default=None,
                   help="more CAs to trust for pods (*.pem, *.crt; Knative's trust bundles)")
    s.add_argument("--tls-port", type=int, default=8112, help="TLS request port (8112)")
    s.add_argument("--pod-tls-port", type=int, default=8112,
                   help="the queue-proxies' TLS port (8112, networking.BackendHTTPSPort)")
    s.add_argument("--metrics-port", type=int,
                   default=_env_int("METRICS_PROMETHEUS_PORT", 9090),
                   help="Prometheus metrics port, GET /metrics ($METRICS_PROMETHEUS_PORT or "
                        "9090, Knative's; 0: any free port, -1: none)")
    s.add_argument("--metrics-host", default=os.environ.get("METRICS_PROMETHEUS_HOST"),
                   help="address of the metrics port ($METRICS_PROMETHEUS_HOST or --host)")
    s.add_argument("--observability-config", default=os.environ.get("OBSERVABILITY_CONFIG", ""),
                   help="Knative's config-observability as the queue-proxy's "
                        "OBSERVABILITY_CONFIG JSON: its tracing object turns Knative's "
                        "activator spans on (OTEL_* variables apply; $OBSERVABILITY_CONFIG)")
    s.add_argument("--kubernetes", action="store_true",
                   help="learn revisions, their pods and cluster addresses, and the activators "
                        "in their path from the Kubernetes API, as Knative's activator does "
                        "(in a pod: its service account)")
    s.add_argument("--kubernetes-api", default="",
                   help="the API server's URL instead of the pod's (implies --kubernetes)")
    s.add_argument("--kubernetes-token-file", default=None,
                   help="bearer token file for --kubernetes-api")
    s.add_argument("--kubernetes-ca-file", default=None,
                   help="CA bundle that signed the API server's certificate (--kubernetes-api)")
    s.add_argument("--kubernetes-sync-timeout", type=float, default=60.0,
                   help="seconds to wait for the first lists before giving up (60)")
    r = sub.add_parser("run", help="run Knative Services from YAML on this machine, "
                                   "scaling from zero (processes as pods)")
    from activator.runtime.cli import add_arguments

    add_arguments(r)
    st = sub.add_parser("status", help="what a running `run` is doing: services, URLs, "
                                       "revisions, traffic, pods, concurrency, mode")
    from activator.runtime.status import add_arguments as status_arguments

    status_arguments(st)
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    from activator.activator.app import Activator
    from activator.activator.tracing import tracing_for

    loop = asyncio.get_running_loop()
    try:
        tracing = tracing_for(args.observability_config, os.environ, args.pod_name)
    except ValueError as exc:  # Knative: fatal, the activator does not start
        print(f"activator: {exc}", file=sys.stderr)
        return 1
    metrics: Any = None
    if args.metrics_port >= 0:
        # Knative's activator families in a registry of its own (never the global one).
        from activator.activator.metrics import ActivatorMetrics, activator_resource
        from proxy.metrics import register_process_collectors

        metrics = ActivatorMetrics(resource=activator_resource(args.pod_name))
        register_process_collectors(metrics.registry)
    sink: Any = None
    if args.autoscaler_url:
        from activator.activator.wire import WebsocketStatSink

        sink = WebsocketStatSink(
            args.autoscaler_url,
            on_connect=metrics.on_autoscaler_connect if metrics is not None else None,
            on_disconnect=metrics.on_autoscaler_disconnect if metrics is not None else None,
        )
        sink.start()
    tls: Any = None
    if args.system_internal_tls:
        from activator.activator.tls import ActivatorTLS

        try:
            tls = ActivatorTLS(args.certs_dir, trust_dir=args.trust_bundle_dir,
                               pod_port=args.pod_tls_port)
        except (OSError, ValueError) as exc:  # Knative: fatal, the activator does not start
            print(f"activator: system-internal-tls: {exc}", file=sys.stderr)
            return 2
    act = Activator(loop=loop, pod_name=args.pod_name, stat_sink=sink, tls=tls,
                    cluster_domain=args.cluster_domain, queue_depth=args.queue_depth,
                    max_waiting=args.max_waiting, pod_ip=args.pod_ip,
                    mesh_mode=args.mesh_compatibility_mode,
                    request_log_template=args.request_log_template,
                    drain_timeout=args.drain_timeout, metrics=metrics, tracing=tracing)
    kube: Any = None
    if args.kubernetes or args.kubernetes_api:
        from activator.activator.kube import KubeConfig, KubeSource

        try:
            config = (KubeConfig(args.kubernetes_api, token_file=args.kubernetes_token_file,
                                 ca_file=args.kubernetes_ca_file)
                      if args.kubernetes_api else KubeConfig.in_cluster())
        except (OSError, ValueError) as exc:
            print(f"activator: kubernetes: {exc}", file=sys.stderr)
            return 2
        kube = KubeSource(act, config)
        try:  # as Knative's, the activator serves once its caches are filled
            await kube.start(args.kubernetes_sync_timeout)
        except asyncio.TimeoutError:
            errors = "; ".join(i.last_error for i in kube.informers if i.last_error)
            print(f"activator: kubernetes: no answer from {config.url} within "
                  f"{args.kubernetes_sync_timeout:g} s: {errors or 'no error seen'}",
                  file=sys.stderr)
            await kube.aclose()
            act.close()
            if sink is not None:
                await sink.close()
            return 1
    exit_code = 0
    terms = 0

    def on_term() -> None:
        nonlocal terms, exit_code
        terms += 1
        if terms == 1:
            # Knative's lines, and ours for whoever pressed Ctrl-C and waits.
            log = logging.getLogger("activator")
            log.info("Received SIGTERM")
            log.info("Sleeping %s to allow K8s propagation of non-ready state; then the "
                     "requests in flight finish; a second SIGTERM or Ctrl-C exits at once",
                     go_duration(args.drain_timeout))
            loop.create_task(act.drain())
        else:
            exit_code = 1
            act.close()

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_term)
    # A port that cannot be bound: one line naming it and its flag, exit status 2.
    from proxy.binding import first_in_use

    ports = [(args.port, "--port"), (args.h2c_port, "--h2c-port")]
    if tls is not None:
        ports.append((args.tls_port, "--tls-port"))
    ports.append((args.admin_port, "--admin-port"))
    problem = first_in_use(args.host, ports)
    if problem is None:
        try:
            await act.start(args.host, args.port, args.admin_port,
                            None if args.h2c_port < 0 else args.h2c_port, args.tls_port)
        except OSError as exc:  # taken since it was checked
            problem = f"{exc.strerror or exc}; choose other ports with " + ", ".join(
                flag for _, flag in ports)
    if problem is not None:
        act.close()
        if kube is not None:
            await kube.aclose()
        if sink is not None:
            await sink.close()
        print(f"activator: {problem}", file=sys.stderr)
        return 2
    prometheus: Any = None
    if metrics is not None:
        from proxy.engine import Server
        from proxy.metrics import PrometheusHandler

        prometheus = Server(PrometheusHandler(metrics.registry), loop=loop)
        try:
            srv = await prometheus.listen(args.metrics_host or args.host, args.metrics_port)
            act.ports["metrics"] = srv.sockets[0].getsockname()[1]
        except OSError as exc:
            # Knative's metrics server only prints its error; the activator serves on.
            logging.getLogger("activator").error("metrics server error: %s", exc)
    tune_gc()
    logging.getLogger("activator").info("activator listening on %s", act.ports)
    print(f"activator: listening on {act.ports}", file=sys.stderr, flush=True)
    await act.wait_stopped()
    if kube is not None:
        await kube.aclose()
    if prometheus is not None:
        prometheus.close()
    if sink is not None:
        await sink.close()
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command == "run" else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    if args.command == "run":
        from activator.runtime.cli import run

        return run(args, new_loop)
    if args.command == "status":
        from activator.runtime.status import status

        return status(args)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve(args))
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
