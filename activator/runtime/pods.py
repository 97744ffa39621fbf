"""Processes as pods: the local runtime's scaler.

A pod is the service's container command (with ``PORT`` and the container's env) and a
``python -m proxy`` queue-proxy sidecar in front of it, each on a free port of 127.0.0.1, as
Knative's pod would have them. ``Pod.start`` spawns both at once (the sidecar answers the
activator's probe with 200 ``queue`` once the app passes its readiness probe);
``Pod.stop`` is Knative's scale-down order: the sidecar drains first (SIGTERM: it stops taking
requests and finishes the ones it has), then the app gets SIGTERM, then SIGKILL after a grace.

Every child runs in its own session (a Ctrl-C in the terminal reaches only the runtime, which
stops them in order) and asks the kernel to kill it should the runtime die first
(``PR_SET_PDEATHSIG``), so no process is left behind either way.

Start-up speed matters (a cold start waits for it): the sidecars are our own code, so they may
write their bytecode cache (``PYTHONPYCACHEPREFIX`` in a per-user cache directory) even when the
environment says ``PYTHONDONTWRITEBYTECODE``: the first sidecar compiles, the next ones load.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Pod", "PodSpec", "free_port", "reserve_port", "spawn_argv",
           "SIDECAR_DRAIN_QUIET_PERIOD"]

REPO = Path(__file__).resolve().parents[2]  # the folder that holds the packages
SIDECAR_DRAIN_QUIET_PERIOD = 0.2  # the pod is out of every route before its sidecar drains
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kn-dataplane"

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Ports handed to live pods. A port from free_port() is free only until someone binds it; the
# kernel may offer it again before the pod that got it binds it (a 20-pod scale-up picks ~120
# ports at once), so a port stays reserved here for the life of its pod.
_RESERVED: set[int] = set()


def reserve_port() -> int:
    """A free port no live pod of this process has been given."""
    for _ in range(1000):
        port = free_port()
        if port not in _RESERVED:
            _RESERVED.add(port)
            return port
    raise OSError("no free port that is not already reserved")  # pragma: no cover


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


_SETPRIV = shutil.which("setpriv")


def spawn_argv(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``argv`` made to die with us: under util-linux ``setpriv --pdeathsig KILL`` when it is
    there (the spawn stays a cheap vfork), else with a ``preexec_fn`` (a full fork: slower)."""
    if _SETPRIV:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv], {}
    return list(argv), {"preexec_fn": _die_with_parent}


class PodSpec:
    """What every pod of one revision runs (from the Service's revision template)."""

    def __init__(
        self,
        *,
        namespace: str,
        service: str,
        configuration: str,
        revision: str,
        command: list[str],
        env: Mapping[str, str],
        container_port: int = 8080,
        container_concurrency: int = 0,
        timeout_seconds: int = 300,
        response_start_timeout_seconds: int = 0,
        idle_timeout_seconds: int = 0,
        readiness: Callable[[int], str] | None = None,
        expand: Callable[[Mapping[str, str]], list[str]] | None = None,
        cwd: str | None = None,
        sidecar_env: Mapping[str, str] | None = None,
    ) -> None:
        if not command:
            raise ValueError("a pod needs a command")
        self.namespace = namespace
        self.service = service
        self.configuration = configuration
        self.revision = revision
        self.command = list(command)
        self.env = dict(env)
        self.container_port = container_port
        self.container_concurrency = container_concurrency
        self.timeout_seconds = timeout_seconds
        self.response_start_timeout_seconds = response_start_timeout_seconds
        self.idle_timeout_seconds = idle_timeout_seconds
        self.readiness = readiness
        self.expand = expand  # command + args with $(VAR) expanded against the pod's env
        self.cwd = cwd
        self.sidecar_env = dict(sidecar_env or {})

    def probe_json(self, app_port: int) -> str:
        """SERVING_READINESS_PROBE for the sidecar: the template's probe (``readiness``, given
        the app's real port) or Knative's default, a TCP connect to the app, aggressive."""
        if self.readiness is not None:
            return self.readiness(app_port)
        return json.dumps({"tcpSocket": {"port": app_port, "host": "127.0.0.1"},
                           "successThreshold": 1})


class Pod:
    """One pod: the app and its queue-proxy sidecar, as processes."""

    def __init__(self, spec: PodSpec, name: str) -> None:
        self.spec = spec
        self.name = name
        self.app_port = reserve_port()
        self.port = reserve_port()  # the queue-proxy's serving port: the pod's address
        self.admin_port = reserve_port()
        self.stats_port = reserve_port()
        self.tls_port = reserve_port()
        self.prometheus_port = reserve_port()
        self.address = f"127.0.0.1:{self.port}"
        self.app: asyncio.subprocess.Process | None = None
        self.sidecar: Any = None  # an asyncio Process, or a zygote.ForkedProcess
        self.started_at = 0.0
        self.stopping = False
        self.log_dir: Path | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self, log_dir: Path | None = None, zygote: Any = None) -> None:
        """Spawns the app and the sidecar (forked from ``zygote``, a
        ``activator.runtime.zygote.Zygote``,
        when given); returns once both processes exist (not ready)."""
        spec = self.spec
        self.started_at = time.monotonic()
        self.log_dir = log_dir
        app_env = dict(os.environ)
        app_env.update(spec.env)
        app_env.update({
            "PORT": str(self.app_port),
            "K_SERVICE": spec.service,
            "K_CONFIGURATION": spec.configuration,
            "K_REVISION": spec.revision,
        })
        argv = spec.expand(app_env) if spec.expand is not None else spec.command
        app = self._spawn(argv, app_env, spec.cwd, "app")
        if zygote is not None and zygote.alive:
            log = str(log_dir / f"{self.name}-queue-proxy.log") if log_dir else None
            sidecar = zygote.spawn(self._sidecar_env(), str(REPO), log)
        else:
            sidecar = self._spawn([sys.executable, "-m", "proxy"], self._sidecar_env(),
                                  str(REPO), "queue-proxy")
        self.app, self.sidecar = await asyncio.gather(app, sidecar)

    def _sidecar_env(self) -> dict[str, str]:
        spec = self.spec
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE / "pycache"))
        env.update({
            "CONTAINER_CONCURRENCY": str(spec.container_concurrency),
            "QUEUE_SERVING_PORT": str(self.port),
            "QUEUE_SERVING_TLS_PORT": str(self.tls_port),
            "QUEUE_ADMIN_PORT": str(self.admin_port),
            "QUEUE_METRICS_PORT": str(self.stats_port),
            "METRICS_PROMETHEUS_PORT": str(self.prometheus_port),
            "USER_PORT": str(self.app_port),
            "REVISION_TIMEOUT_SECONDS": str(spec.timeout_seconds),
            "REVISION_RESPONSE_START_TIMEOUT_SECONDS": str(spec.response_start_timeout_seconds),
            "REVISION_IDLE_TIMEOUT_SECONDS": str(spec.idle_timeout_seconds),
            "SERVING_NAMESPACE": spec.namespace,
            "SERVING_SERVICE": spec.service,
            "SERVING_CONFIGURATION": spec.configuration,
            "SERVING_REVISION": spec.revision,
            "SERVING_POD": self.name,
            "SERVING_POD_IP": "127.0.0.1",
            "SERVING_LOGGING_CONFIG": "",
            "SERVING_LOGGING_LEVEL": "warn",
            "SERVING_READINESS_PROBE": spec.probe_json(self.app_port),
            "QUEUE_DRAIN_QUIET_PERIOD": str(SIDECAR_DRAIN_QUIET_PERIOD),
            # A cold start waits for the sidecar to see the app ready: look every 5 ms, not 50.
            "QUEUE_READINESS_RETRY_INTERVAL": "0.005",
        })
        env.update(spec.sidecar_env)
        return env

    async def _spawn(self, argv: list[str], env: dict[str, str], cwd: str | None,
                     role: str) -> asyncio.subprocess.Process:
        out: Any = asyncio.subprocess.DEVNULL
        if self.log_dir is not None:
            out = open(self.log_dir / f"{self.name}-{role}.log", "ab")  # noqa: SIM115
        argv, kwargs = spawn_argv(argv)
        try:
            return await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, **kwargs,
            )
        finally:
            if out is not asyncio.subprocess.DEVNULL:
                out.close()

    @property
    def alive(self) -> bool:
        return (self.app is not None and self.app.returncode is None
                and self.sidecar is not None and self.sidecar.returncode is None)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Knative's order: the sidecar drains (finishing its requests), then the app stops."""
        self.stopping = True
        try:
            await _terminate(self.sidecar, grace)
            await _terminate(self.app, grace)
        finally:
            self.release_ports()

    def release_ports(self) -> None:
        for port in (self.app_port, self.port, self.admin_port, self.stats_port, self.tls_port,
                     self.prometheus_port):
            _RESERVED.discard(port)

    async def exited(self) -> None:
        """Returns when the app or the sidecar has exited."""
        waits = [asyncio.ensure_future(p.wait()) for p in (self.app, self.sidecar)
                 if p is not None]
        if not waits:
            return
        _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()

    def kill(self) -> None:
        for proc in (self.sidecar, self.app):
            if proc is not None and proc.returncode is None:
                _signal(proc, signal.SIGKILL)
        self.release_ports()


def _signal(proc: Any, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the child leads its own session: its children go too
    except (ProcessLookupError, PermissionError):
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


async def _terminate(proc: Any, grace: float) -> None:
    if proc is None or proc.returncode is not None:
        if proc is not None:
            _signal(proc, signal.SIGKILL)  # a dead leader may leave its group behind
        return
    _signal(proc, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except asyncio.TimeoutError:
        _signal(proc, signal.SIGKILL)
        await proc.wait()
    _signal(proc, signal.SIGKILL)
