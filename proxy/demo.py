"""``python -m proxy.demo``: the bundled sample app with a queue-proxy in front of it.

The app (``Hello World!``) listens on 127.0.0.1:8080, the queue-proxy on :8012 (admin :8022),
with containerConcurrency 10. ``curl localhost:8012`` answers through the proxy. Ctrl-C stops
both. Ports can be moved with ``--port`` / ``--app-port`` / ``--admin-port``.

It says it is ready only once each child is alive and listening on its port itself (on Linux,
the listening socket is looked up in ``/proc``: another server that already answers there does
not pass for it); a port in use is one line naming its flag (exit status 2), and a child that
exits or does not listen stops the demo with the reason (exit status 2).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

from proxy.binding import first_in_use

START_DEADLINE = 10.0  # seconds for each child to listen


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

    problem = first_in_use("127.0.0.1", [(args.app_port, "--app-port"), (args.port, "--port"),
                                         (args.admin_port, "--admin-port")])
    if problem is not None:
        print(f"demo: {problem}", file=sys.stderr)
        return 2
    env = dict(os.environ, PORT=str(args.app_port), TARGET=os.environ.get("TARGET", "World"))
    app = subprocess.Popen([sys.executable, "-m", "proxy.sample_app"], env=env)
    try:
        failed = _wait_listening(app, args.app_port, "the sample app", "--app-port")
        if failed:
            print(f"demo: {failed}", file=sys.stderr)
            return 2
        return _serve(args)
    except KeyboardInterrupt:
        return 0
    finally:
        if app.poll() is None:
            app.terminate()
            try:
                app.wait(5)
            except subprocess.TimeoutExpired:
                app.kill()


def _serve(args: argparse.Namespace) -> int:
    """The queue-proxy in front of the app, until it exits or Ctrl-C."""
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
    qp = subprocess.Popen([sys.executable, "-m", "proxy"], env=qp_env)
    try:
        failed = _wait_listening(qp, args.port, "the queue-proxy", "--port")
        if failed:
            print(f"demo: {failed}", file=sys.stderr)
            return 2
        print(f"queue-proxy on :{args.port} -> sample app on :{args.app_port}; "
              f"try: curl http://127.0.0.1:{args.port}/", file=sys.stderr, flush=True)
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
        if qp.poll() is None:
            qp.terminate()
            try:
                qp.wait(5)
            except subprocess.TimeoutExpired:
                qp.kill()


def _wait_listening(child: subprocess.Popen[bytes], port: int, what: str, flag: str) -> str:
    """Waits until ``child`` listens on ``port``; why not ("" once it does)."""
    deadline = time.monotonic() + START_DEADLINE
    while True:
        code = child.poll()
        if code is not None:
            return f"{what} exited with status {code} before listening on port {port}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            if time.monotonic() > deadline:
                return f"{what} did not listen on port {port} within {START_DEADLINE:g} s"
            time.sleep(0.05)
            continue
        owner = _listener_is(child.pid, port)
        if owner is False:
            return (f"port {port} answers, but not from {what} (pid {child.pid}): another "
                    f"server is listening there; choose another with {flag}")
        if child.poll() is None:
            return ""


def _listener_is(pid: int, port: int) -> bool | None:
    """Whether the socket listening on ``port`` belongs to process ``pid`` (from /proc: the
    listening sockets' inodes, and the process's open sockets); None where /proc cannot
    tell."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


if __name__ == "__main__":
    sys.exit(main())
