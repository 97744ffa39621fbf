"""``python -m proxy``: the queue-proxy sidecar, configured by Knative's environment."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys

from proxy.binding import BindError
from proxy.config import ConfigError, from_environ
from proxy.logs import go_duration


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (and extensions are allowed), else asyncio's."""
    if not os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


# The young generation's threshold for the collector, once serving. A request in flight holds a
# few dozen tracked objects (its exchange, header lists and tuples); with the default (700),
# 500 concurrent HTTP/2 streams set off a collection every few dozen requests, each walking
# every young object, for garbage that reference counting frees anyway. Not in the library:
# an embedding process keeps its own collector settings.
GC_THRESHOLD = 10_000


def tune_gc() -> None:
    """For a serving process, after start-up: what start-up made is frozen (never walked
    again by a collection), and the young generation collects at ``GC_THRESHOLD``."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


async def _serve() -> int:
    from proxy.app import QueueProxy

    cfg = from_environ(os.environ)
    loop = asyncio.get_running_loop()
    qp = QueueProxy(cfg, loop=loop)
    exit_code = 0
    terms = 0

    def on_term() -> None:
        nonlocal terms, exit_code
        terms += 1
        if terms == 1:
            # Knative's lines, and ours for whoever pressed Ctrl-C and waits.
            log = logging.getLogger("proxy")
            log.info("Received TERM signal, attempting to gracefully shutdown servers.")
            log.info("Sleeping %s to allow K8s propagation of non-ready state",
                     go_duration(cfg.drain_quiet_period))
            log.info("Draining: the requests in flight finish; a second SIGTERM or Ctrl-C "
                     "exits at once")
            loop.create_task(qp.drain())
        else:
            exit_code = 1
            qp.close()

    # Signals first, listeners second: a SIGTERM that comes as soon as the port accepts drains.
    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_term)
    try:
        await qp.start()
    except BindError as exc:  # one line naming the port and its variable, no traceback
        qp.close()
        print(f"queue-proxy: {exc}", file=sys.stderr)
        return 2
    tune_gc()
    logging.getLogger("proxy").info("queue-proxy listening on %s", qp.ports)
    await qp.wait_stopped()
    return exit_code


def main() -> int:
    try:
        cfg = from_environ(os.environ)
    except ConfigError as exc:
        print(f"queue-proxy: {exc}", file=sys.stderr)
        return 1
    from proxy.logs import configure

    configure(cfg.logging_level, cfg.namespace, cfg.revision, cfg.pod, cfg.logging_config)
    loop = new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_serve())
    finally:
        loop.close()


if __name__ == "__main__":
    sys.exit(main())
