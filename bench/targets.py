"""The bench targets: nginx as the app, HAProxy as the reference, the queue-proxy and the
activator (and HAProxy in the activator's place), each started from a generated config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    BENCH_REVISION,
    HAPROXY,
    HOST,
    NGHTTPD,
    NGINX,
    REPO_ROOT,
    BenchError,
    Children,
    free_port,
    free_ports,
    https_get,
    log_tail,
    wait_ready,
    wait_ready_h2,
)

# --------------------------------------------------------------------------------------------
# The servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;

    server {{
        listen {host}:{port} reuseport;
        root {tmp}/www;
        location = / {{
            default_type text/plain;
            return 200 "Hello World!\\n";
        }}
        location / {{
            default_type application/octet-stream;
        }}
    }}
}}
"""


def start_nginx(
    children: Children, tmp: Path, ready_timeout: float, files: dict[str, int] | None = None
) -> Server:
    """nginx from a generated config; ``files`` maps paths (``/64k.bin``) to sizes in bytes:
    static files written to its www dir (``/1k.bin``, 1 KiB, is always there)."""
    port = free_port()
    www = tmp / "www"
    www.mkdir(exist_ok=True)
    for path, size in {"/1k.bin": 1024, **(files or {})}.items():
        (www / path.lstrip("/")).write_bytes(b"x" * (size - 1) + b"\n")
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=port))
    log = tmp / "nginx.out"
    argv = [NGINX, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)]
    proc = children.spawn("nginx", argv, log=log)
    server = Server("nginx", proc, port, log)
    try:
        server.ready_s = wait_ready("nginx", proc, port, "/", log, ready_timeout)
    except BenchError as exc:
        raise BenchError(f"{exc}\nerror_log:\n{log_tail(tmp / 'nginx-error.log')}") from None
    return server


def start_nghttpd(children: Children, tmp: Path, ready_timeout: float) -> Server:
    """nghttpd (an h2c server, ``--no-tls``) as the app for --protocol h2c: GET / answers
    ``Hello World!\\n`` from its docroot, as nginx does for HTTP/1.1."""
    port = free_port()
    www = tmp / "h2www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("Hello World!\n")
    log = tmp / "nghttpd.out"
    proc = children.spawn("nghttpd", [NGHTTPD, "--no-tls", "-d", str(www), str(port)], log=log)
    server = Server("nghttpd", proc, port, log)
    server.ready_s = wait_ready_h2("nghttpd", proc, port, "/", log, ready_timeout)
    return server


HAPROXY_CONF = """\
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout queue 300s
    timeout http-request 300s
    timeout http-keep-alive 300s

frontend fe
    bind {host}:{port}
    default_backend be

backend be
    server app {host}:{upstream}{maxconn}
"""


def make_pair(tmp: Path) -> Path:
    """A self-signed EC pair for 127.0.0.1 in ``tmp/certs`` (``tls.crt``, ``tls.key``, the
    queue-proxy's names; ``pair.pem``, both, for HAProxy), made with the ``openssl`` command."""
    certs = tmp / "certs"
    certs.mkdir(exist_ok=True)
    crt, key = certs / "tls.crt", certs / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=bench",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    (certs / "pair.pem").write_bytes(crt.read_bytes() + key.read_bytes())
    return certs


def start_haproxy(
    children: Children, tmp: Path, cc: int, upstream: int, ready_timeout: float,
    h2c: bool = False, certs: Path | None = None,
) -> Server:
    """HAProxy as the same queue; ``h2c``: HTTP/2 on both sides (``proto h2``); ``certs``:
    TLS 1.3 on the front (``bind ... ssl crt``), HTTP/1.1 to the app."""
    port = free_port()
    conf = tmp / f"haproxy-cc{cc}.cfg"
    maxconn = f" maxconn {cc}" if cc > 0 else ""
    text = HAPROXY_CONF.format(host=HOST, port=port, upstream=upstream, maxconn=maxconn)
    if certs is not None:
        text = text.replace(f"bind {HOST}:{port}\n", f"bind {HOST}:{port} ssl crt "
                            f"{certs / 'pair.pem'} ssl-min-ver TLSv1.3 alpn http/1.1\n")
    if h2c:
        text = text.replace(f"bind {HOST}:{port}\n", f"bind {HOST}:{port} proto h2\n")
        app = f"server app {HOST}:{upstream}"
        text = text.replace(app, app + " proto h2")
    conf.write_text(text)
    log = tmp / f"haproxy-cc{cc}.out"
    check = subprocess.run(
        [HAPROXY, "-c", "-q", "-f", str(conf)], capture_output=True, text=True, timeout=30
    )
    if check.returncode != 0:
        raise BenchError(f"haproxy rejected its config {conf}:\n{check.stdout}{check.stderr}")
    # -db: stay in the foreground, no master process: the pid we spawn is the one that works.
    proc = children.spawn("haproxy", [HAPROXY, "-db", "-f", str(conf)], log=log)
    server = Server("haproxy", proc, port, log)
    if certs is not None:
        server.ready_s = wait_ready("haproxy", proc, port, "/", log, ready_timeout, https_get)
    else:
        ready = wait_ready_h2 if h2c else wait_ready
        server.ready_s = ready("haproxy", proc, port, "/", log, ready_timeout)
    return server


def proxy_env(
    cc: int, upstream: int, ports: dict[str, int], extra: dict[str, str]
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CONTAINER_CONCURRENCY": str(cc),
            "QUEUE_SERVING_PORT": str(ports["serving"]),
            "QUEUE_SERVING_TLS_PORT": str(ports["tls"]),
            "USER_PORT": str(upstream),
            "REVISION_TIMEOUT_SECONDS": "300",
            "SERVING_NAMESPACE": "bench",
            "SERVING_CONFIGURATION": "bench",
            "SERVING_REVISION": "bench-00001",
            "SERVING_POD": "bench-pod",
            "SERVING_POD_IP": HOST,
            "SERVING_LOGGING_CONFIG": "",
            "SERVING_LOGGING_LEVEL": "info",
            "QUEUE_ADMIN_PORT": str(ports["admin"]),
            "QUEUE_METRICS_PORT": str(ports["metrics"]),
            "METRICS_PROMETHEUS_PORT": str(ports["prometheus"]),
            # Not Knative's: no 30 s drain on SIGTERM between rows.
            "QUEUE_DRAIN_QUIET_PERIOD": "0",
        }
    )
    env.update(extra)
    return env


def start_queue_proxy(
    children: Children,
    tmp: Path,
    cc: int,
    upstream: int,
    variant: str,
    extra_env: dict[str, str],
    cmd: list[str],
    ready_timeout: float,
    h2c: bool = False,
    certs: Path | None = None,
) -> Server:
    """``certs``: the pair in its directory (QUEUE_CERTS_DIR); the row then runs on the TLS
    port."""
    names = ("serving", "tls", "admin", "metrics", "prometheus")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = proxy_env(cc, upstream, ports, extra_env)
    if certs is not None:
        env["QUEUE_CERTS_DIR"] = str(certs)
    log = tmp / f"queue-proxy-{variant}-cc{cc}.out"
    proc = children.spawn("queue-proxy", cmd, log=log, env=env, cwd=REPO_ROOT)
    port = ports["tls"] if certs is not None else ports["serving"]
    server = Server("queue-proxy", proc, port, log, info={"ports": ports})
    name = f"queue-proxy ({' '.join(cmd)})"
    if certs is not None:
        server.ready_s = wait_ready(name, proc, server.port, "/", log, ready_timeout, https_get)
    else:
        ready = wait_ready_h2 if h2c else wait_ready
        server.ready_s = ready(name, proc, server.port, "/", log, ready_timeout)
    return server


def _control(port: int, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
    body = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=body, method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def start_activator(
    children: Children, tmp: Path, cc: int, pod: Server, ready_timeout: float
) -> Server:
    """``python -m activator serve`` with one revision whose one pod is ``pod``."""
    port, admin = free_ports(2)
    log = tmp / f"activator-cc{cc}.out"
    argv = [sys.executable, "-m", "activator", "serve", "--host", HOST, "--port", str(port),
            "--admin-port", str(admin), "--h2c-port", "-1", "--drain-timeout", "0",
            "--metrics-port", "0"]  # Prometheus on (the default), on any free port
    proc = children.spawn("activator", argv, log=log, cwd=REPO_ROOT)
    server = Server("activator", proc, port, log)
    start = time.monotonic()
    ns, name = BENCH_REVISION
    path = f"/revisions/{ns}/{name}"
    deadline = start + ready_timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"activator exited ({proc.returncode}):\n{log_tail(log)}")
        try:
            _control(admin, "PUT", path, {"containerConcurrency": cc, "timeoutSeconds": 300})
            break
        except OSError:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"activator's control API did not answer:\n{log_tail(log)}"
                ) from None
            time.sleep(0.05)
    _control(admin, "PUT", path + "/endpoints", {"ready": [f"{HOST}:{pod.port}"]})
    while not _control(admin, "GET", path)["healthyPods"]:
        if time.monotonic() > deadline:
            raise BenchError(f"activator never saw its pod healthy:\n{log_tail(log)}")
        time.sleep(0.02)
    server.ready_s = time.monotonic() - start
    return server
