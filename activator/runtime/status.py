"""What the local runtime is doing, for ``python -m activator status``.

The running runtime answers ``GET /.kn/status`` on its front door (for a Host no service is
routed by, such as ``127.0.0.1:8080``: a request for a service never reaches it) with
``snapshot(runtime)`` as JSON: every service, its URLs, its revisions with their traffic
percentages and tags, ready, running and desired pods, the concurrency the KPA observes, and
its mode. ``python -m activator status`` fetches it and prints a table (``render``), or the JSON
(``-o json``); ``--watch`` refreshes it every second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activator.runtime.runtime import RevisionRuntime, Runtime

__all__ = ["STATUS_PATH", "add_arguments", "render", "revision_status", "snapshot", "status"]

STATUS_PATH = b"/.kn/status"


def revision_status(rev: RevisionRuntime) -> dict[str, Any]:
    d = rev.decision
    act = rev.act_rev
    return {
        "name": rev.name,
        "readyPods": len(act.healthy),
        "pods": len(rev.pods),
        "desiredPods": rev.desired,
        "metric": rev.config.metric,
        "stableValue": round(d.stable_concurrency, 2) if d is not None else 0.0,
        "panicValue": round(d.panic_concurrency, 2) if d is not None else 0.0,
        "mode": "panic" if d is not None and d.panicking else "stable",
        "activatorInPath": rev.activator_in_path,
        "waiting": act.throttler.waiting,
        "inFlight": act.throttler.active,
        "failure": getattr(act, "failure", None),
    }


def snapshot(rt: Runtime) -> dict[str, Any]:
    """The runtime's state now, as plain data (the status endpoint's JSON)."""
    port = rt.ports.get("http", rt.port)
    services = []
    for (ns, name), svc in sorted(rt.services.items()):
        base = f"{name}.{ns}.{rt.domain}"
        latest = rt.latest.get((ns, name))
        traffic = []
        for t in svc.traffic:
            rev = latest if t.latest_revision or t.revision_name is None else rt.revisions.get(
                (ns, t.revision_name))
            traffic.append({
                "revision": rev.name if rev is not None else t.revision_name,
                "percent": t.percent or 0,
                "tag": t.tag or None,
                "latestRevision": bool(t.latest_revision or t.revision_name is None),
                "url": f"http://{t.tag}-{base}" if t.tag else None,
            })
        revisions = [revision_status(r) for (rns, _), r in rt.revisions.items()
                     if rns == ns and r.service.name == name]
        services.append({
            "namespace": ns,
            "name": name,
            "url": f"http://{base}",
            "source": svc.source,
            "latestRevision": latest.name if latest is not None else None,
            "traffic": traffic,
            "revisions": revisions,
        })
    return {"frontDoor": f"http://{rt.host}:{port}", "domain": rt.domain,
            "services": services}


def _value(rev: dict[str, Any]) -> str:
    unit = " rps" if rev["metric"] == "rps" else ""
    if rev["mode"] == "panic":
        return f"{rev['panicValue']:g}{unit} (panic)"
    return f"{rev['stableValue']:g}{unit}"


def render(doc: dict[str, Any]) -> str:
    """The snapshot as a table: a row per revision, its service's URL on its first row."""
    header = ("SERVICE", "URL", "REVISION", "TRAFFIC", "TAGS", "READY", "DESIRED",
              "CONCURRENCY", "MODE")
    rows: list[tuple[str, ...]] = []
    for svc in doc["services"]:
        share: dict[str, int] = {}
        tags: dict[str, list[str]] = {}
        for t in svc["traffic"]:
            share[t["revision"]] = share.get(t["revision"], 0) + t["percent"]
            if t["tag"]:
                tags.setdefault(t["revision"], []).append(t["tag"])
        first = True
        for rev in svc["revisions"]:
            name = rev["name"]
            mode = rev["mode"]
            if rev["failure"]:
                mode = "failing"
            elif rev["activatorInPath"]:
                mode += ", activator"
            rows.append((
                f"{svc['namespace']}/{svc['name']}" if first else "",
                svc["url"] if first else "",
                name + (" *" if name == svc["latestRevision"] else ""),
                f"{share[name]}%" if name in share else "-",
                ",".join(tags.get(name, [])) or "-",
                f"{rev['readyPods']}/{rev['pods']}",
                str(rev["desiredPods"]),
                _value(rev),
                mode,
            ))
            first = False
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    lines.append(f"front door {doc['frontDoor']}; * latest revision; READY ready/running pods")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the command


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="where the runtime's front door listens (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="its port (8080, as run's --port)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument("--watch", "-w", action="store_true", help="refresh every --interval")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (1)")
    p.add_argument("--count", type=int, default=0,
                   help="with --watch: stop after this many refreshes (0: until Ctrl-C)")


async def fetch(host: str, port: int, timeout: float = 5.0) -> dict[str, Any]:
    """The runtime's snapshot; OSError when nothing answers, ValueError on a bad answer."""
    from activator.activator.backends import http_get

    status, body = await asyncio.wait_for(
        http_get(host, port, STATUS_PATH, (("Accept", "application/json"),)), timeout)
    if status != 200:
        raise ValueError(f"{status} from {host}:{port}{STATUS_PATH.decode()}: "
                         f"{body[:200].decode('utf-8', 'replace')} (is it our runtime?)")
    doc: dict[str, Any] = json.loads(body)
    return doc


def status(args: argparse.Namespace) -> int:
    """The command: 0, or 1 when no runtime answers."""
    shown = 0
    try:
        while True:
            try:
                doc = asyncio.run(fetch(args.host, args.port))
            except (OSError, asyncio.TimeoutError) as exc:
                why = ("connection refused" if isinstance(exc, ConnectionRefusedError)
                       else exc.strerror if isinstance(exc, OSError) and exc.strerror
                       else "timed out")
                print(f"activator status: no runtime answers on {args.host}:{args.port} "
                      f"({why}); start one with: python -m activator run SERVICE.yaml, or give "
                      "its --port", file=sys.stderr)
                return 1
            except ValueError as exc:
                print(f"activator status: {exc}", file=sys.stderr)
                return 1
            out = json.dumps(doc, indent=2) if args.output == "json" else render(doc)
            if args.watch and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")  # the terminal cleared, as watch(1) does
            if args.watch:
                out = time.strftime("%H:%M:%S ") + (out if args.output == "table" else "\n" + out)
            print(out, flush=True)
            shown += 1
            if not args.watch or (args.count and shown >= args.count):
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
