"""``python -m proxy.demo``: the bundled sample app with a queue-proxy in front of it.

The app (``Hello World!``) listens on 127.0.0.1:8080, the queue-proxy on :8012 (admin :8022),
with containerConcurrency 10. ``curl localhost:8012`` answers through the proxy. Ctrl-C stops
both. Ports can be moved with ``--port`` / ``--app-port``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m proxy.demo")
    ap.add_argument("--port", type=int, default=8012, help="queue-proxy serving port")
    ap.add_argument("--app-port", type=int, default=8080, help="sample app port")
    ap.add_argument("--admin-port", type=int, default=8022)
    ap.add_argument("--concurrency", type=int, default=10, help="containerConcurrency")
    args = ap.parse_args()

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    env = dict(os.environ, PORT=str(args.app_port), TARGET=os.environ.get("TARGET", "World"))
    app = subprocess.Popen([sys.executable, "-m", "proxy.sample_app"], env=env)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", args.app_port), timeout=0.2).close()
            break
        except OSError:
            if app.poll() is not None or time.monotonic() > deadline:
                print("sample app did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
    qp_env = dict(
        os.environ,
        CONTAINER_CONCURRENCY=str(args.concurrency),
        QUEUE_SERVING_PORT=str(args.port),
        QUEUE_SERVING_TLS_PORT="8112",
        USER_PORT=str(args.app_port),
        REVISION_TIMEOUT_SECONDS="300",
        SERVING_NAMESPACE="default",
        SERVING_CONFIGURATION="hello",
        SERVING_REVISION="hello-00001",
        SERVING_POD="hello-00001-deployment",
        SERVING_POD_IP="127.0.0.1",
        SERVING_LOGGING_CONFIG="",
        SERVING_LOGGING_LEVEL="info",
        QUEUE_ADMIN_PORT=str(args.admin_port),
        QUEUE_METRICS_PORT=os.environ.get("QUEUE_METRICS_PORT", "0"),
        QUEUE_DRAIN_QUIET_PERIOD=os.environ.get("QUEUE_DRAIN_QUIET_PERIOD", "1"),
    )
    print(f"queue-proxy on :{args.port} -> sample app on :{args.app_port}; "
          f"try: curl http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
    qp = subprocess.Popen([sys.executable, "-m", "proxy"], env=qp_env)
    try:
        return qp.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group; a SIGTERM to the demo alone is passed on.
        if qp.poll() is None:
            qp.send_signal(signal.SIGTERM)
        try:
            qp.wait(10)
        except subprocess.TimeoutExpired:
            pass
        return 0
    finally:
        for p in (qp, app):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
