"""Processes as pods: the local runtime's scaler.

A pod is the service's container command (with ``PORT`` and the container's env) and a
``python -m proxy`` queue-proxy sidecar in front of it, each on a free port of 127.0.0.1, as
Knative's pod would have them. ``Pod.start`` spawns both at once (the sidecar answers the
activator's probe with 200 ``queue`` once the app passes its readiness probe);
``Pod.stop`` is Knative's scale-down order: the sidecar drains first (SIGTERM: it stops taking
requests and finishes the ones it has), then the app gets SIGTERM, then SIGKILL after a grace.

A pod that fails is restarted in place, as the kubelet restarts a crashed container: same name,
same ports, ``restarts`` counted, ``CrashLoopBackOff`` spacing the restarts (the runtime's
``RevisionRuntime`` supervises; ``halt`` takes the processes down and keeps the ports). The
app's stdout and stderr come through asyncio pipes: each line goes to the console prefixed with
the pod's name (``echo``, one function for all of it), to the pod's log file when there is a log
directory (``<pod>.log``, appended across restarts, the sidecar's output beside the app's), and
the last ``STDERR_TAIL`` lines of stderr stay in ``stderr_tail`` for the failure report.
``python`` and ``python3`` as the command mean the runtime's own interpreter
(``sys.executable``), and a command that is not there is ``CommandNotFound`` before anything is
spawned.

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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["Pod", "PodSpec", "free_port", "reserve_port", "spawn_argv",
           "SIDECAR_DRAIN_QUIET_PERIOD", "CommandNotFound", "CrashLoopBackOff", "FailurePolicy",
           "console", "exit_reason", "listening", "resolve_command"]

REPO = Path(__file__).resolve().parents[2]  # the folder that holds the packages
SIDECAR_DRAIN_QUIET_PERIOD = 0.2  # the pod is out of every route before its sidecar drains
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kn-dataplane"

_PR_SET_PDEATHSIG = 1
STDERR_TAIL = 10  # lines of the app's stderr kept for its failure report
_CHUNK = 65536
_PYTHONS = ("python", "python3")


def console(text: str) -> None:
    """The apps' output on the runtime's console (the default ``echo``): whole lines, each
    already prefixed with its pod's name."""
    sys.stdout.write(text)
    sys.stdout.flush()


@dataclass(frozen=True)
class FailurePolicy:
    """How the runtime treats pods that fail. Kubelet's CrashLoopBackOff: the first restart at
    once, then ``backoff_base`` seconds doubling to ``backoff_cap``, started over once a pod has
    run ``backoff_reset`` seconds. An app that does not listen on ``$PORT`` within
    ``listen_deadline`` seconds of its start has failed (ours: the kubelet has no such check;
    Knative's progress deadline, 600 s, is for a whole rollout)."""

    backoff_base: float = 10.0
    backoff_cap: float = 300.0
    backoff_reset: float = 600.0
    listen_deadline: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.backoff_base <= self.backoff_cap:
            raise ValueError("the back-off needs 0 < base <= cap, got "
                             f"{self.backoff_base:g}, {self.backoff_cap:g}")
        if self.backoff_reset <= 0 or self.listen_deadline <= 0:
            raise ValueError("the back-off reset and the listen deadline must be positive")


class CrashLoopBackOff:
    """One pod's restart delays, sans-IO: 0, base, 2 x base, ... capped; a pod that ran
    ``reset`` seconds before it failed starts the sequence over."""

    __slots__ = ("base", "cap", "reset", "_next")

    def __init__(self, base: float, cap: float, reset: float) -> None:
        self.base = base
        self.cap = cap
        self.reset = reset
        self._next = 0.0

    def failed(self, ran_for: float) -> float:
        """The pod failed after running ``ran_for`` seconds: the delay before its restart."""
        if ran_for >= self.reset:
            self._next = 0.0
        delay = self._next
        self._next = min(self.cap, self.base if delay == 0.0 else delay * 2)
        return delay


class CommandNotFound(OSError):
    pass


def resolve_command(argv: list[str], env: Mapping[str, str], cwd: str | None) -> list[str]:
    """``argv`` as it will be run: ``python``/``python3`` first means ``sys.executable`` (the
    runtime's own interpreter, which has this package and the app's dependencies when the
    runtime runs from a virtual environment that is not activated); ``CommandNotFound`` when the
    command is not on the app's ``PATH`` (or, with a slash, not there from ``cwd``)."""
    first = argv[0]
    if first in _PYTHONS and sys.executable:
        return [sys.executable, *argv[1:]]
    if "/" in first:
        found = os.path.exists(os.path.join(cwd or ".", first))
    else:
        found = shutil.which(first, path=env.get("PATH", os.defpath)) is not None
    if not found:
        raise CommandNotFound(f"command not found: {first!r}")
    return argv


def exit_reason(returncode: int) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"


async def listening(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port`` (a refusal costs microseconds)."""
    loop = asyncio.get_running_loop()
    with socket.socket() as s:
        s.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(s, (host, port)), 1.0)
        except (OSError, asyncio.TimeoutError):
            return False
    return True


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
    """One pod: the app and its queue-proxy sidecar, as processes.

    ``start`` spawns both; ``halt`` takes them down and keeps the pod (its name, its ports) for a
    restart; ``stop`` is for good. ``echo`` takes the app's output lines, prefixed."""

    def __init__(self, spec: PodSpec, name: str, echo: Callable[[str], None] | None = None,
                 log_dir: Path | None = None) -> None:
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
        self.log_dir = log_dir
        self.echo = echo
        self.restarts = 0
        self.failure: str | None = None  # why it last failed, until it is seen ready again
        self.failed_at = 0.0
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self._prefix = f"{name} | "
        self._log: IO[bytes] | None = None
        self._relays: list[asyncio.Task[None]] = []
        self._spawning: asyncio.Future[None] | None = None
        self.stop_requested = asyncio.Event()  # set by ``stop`` (a back-off sleep waits on it)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, log_dir: Path | None = None, zygote: Any = None) -> None:
        """Spawns the app and the sidecar (forked from ``zygote``, a
        ``activator.runtime.zygote.Zygote``, when given); returns once both processes exist (not
        ready). ``CommandNotFound`` (nothing spawned) or another ``OSError`` when they cannot
        start; ``halt`` then takes down whatever did."""
        spec = self.spec
        loop = asyncio.get_running_loop()
        self._spawning = spawning = loop.create_future()
        try:
            self.started_at = time.monotonic()
            if log_dir is not None:
                self.log_dir = log_dir
            self.stderr_tail.clear()
            app_env = dict(os.environ)
            app_env.update(spec.env)
            app_env.update({
                "PORT": str(self.app_port),
                "K_SERVICE": spec.service,
                "K_CONFIGURATION": spec.configuration,
                "K_REVISION": spec.revision,
            })
            argv = spec.expand(app_env) if spec.expand is not None else spec.command
            argv = resolve_command(argv, app_env, spec.cwd)
            log_path = None
            if self.log_dir is not None:
                log_path = self.log_dir / f"{self.name}.log"
                if self._log is None:
                    self._log = open(log_path, "ab", buffering=0)  # noqa: SIM115
            app = self._spawn_app(argv, app_env, spec.cwd)
            sidecar: Any
            if zygote is not None and zygote.alive:
                sidecar = zygote.spawn(self._sidecar_env(), str(REPO),
                                       str(log_path) if log_path else None)
            else:
                sidecar = self._spawn_sidecar(self._sidecar_env(), log_path)
            # Both at once (a cold start waits for the slower); one failing does not lose the
            # other (``halt`` finds it).
            got: tuple[Any, Any] = await asyncio.gather(app, sidecar, return_exceptions=True)
            got_app, got_sidecar = got
            if not isinstance(got_app, BaseException):
                self.app = got_app
                assert got_app.stdout is not None and got_app.stderr is not None
                self._relays = [loop.create_task(self._relay(got_app.stdout, False)),
                                loop.create_task(self._relay(got_app.stderr, True))]
            if not isinstance(got_sidecar, BaseException):
                self.sidecar = got_sidecar
            for one in got:
                if isinstance(one, BaseException):
                    raise one
        finally:
            spawning.set_result(None)
            self._spawning = None

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

    async def _spawn_app(self, argv: list[str], env: dict[str, str],
                         cwd: str | None) -> asyncio.subprocess.Process:
        argv, kwargs = spawn_argv(argv)
        return await asyncio.create_subprocess_exec(
            *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, **kwargs)

    async def _spawn_sidecar(self, env: dict[str, str],
                             log_path: Path | None) -> asyncio.subprocess.Process:
        argv, kwargs = spawn_argv([sys.executable, "-m", "proxy"])
        out: Any = asyncio.subprocess.DEVNULL
        if log_path is not None:
            out = open(log_path, "ab")  # noqa: SIM115
        try:
            return await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=str(REPO), stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True, **kwargs,
            )
        finally:
            if out is not asyncio.subprocess.DEVNULL:
                out.close()

    # ------------------------------------------------------------------ the app's output

    async def _relay(self, stream: asyncio.StreamReader, stderr: bool) -> None:
        """Whole lines from one of the app's pipes to the console, the log file and (stderr)
        the tail, a chunk at a time. PERF: one read, one decode and one console write per chunk
        of up to 64 KiB, however many lines it holds: a chatty app costs the runtime's loop (the
        front door's) little."""
        partial = b""
        while True:
            try:
                data = await stream.read(_CHUNK)
            except Exception:  # pragma: no cover - the pipe broke: nothing more to read
                data = b""
            if not data:
                if partial:
                    self._lines(partial + b"\n", stderr)
                return
            data = partial + data
            cut = data.rfind(b"\n") + 1
            if cut:
                partial = data[cut:]
                self._lines(data[:cut], stderr)
            elif len(data) >= _CHUNK:  # a line longer than a chunk goes out in pieces
                partial = b""
                self._lines(data + b"\n", stderr)
            else:
                partial = data

    def _lines(self, chunk: bytes, stderr: bool) -> None:
        if self._log is not None:
            try:
                self._log.write(chunk)
            except OSError:  # pragma: no cover - a full disk must not stop the pod
                pass
        lines = chunk.decode("utf-8", "replace").splitlines()
        if stderr:
            self.stderr_tail.extend(lines[-STDERR_TAIL:])
        if self.echo is not None:
            prefix = self._prefix
            try:
                self.echo("".join([f"{prefix}{line}\n" for line in lines]))
            except (OSError, ValueError):  # a closed console: the pipe must still be read
                pass

    async def output_done(self, timeout: float) -> None:
        """Waits (at most ``timeout``) for the app's pipes to reach their end, so that its last
        lines are in ``stderr_tail`` (a child the app left behind may hold them open)."""
        relays = [t for t in self._relays if not t.done()]
        if relays:
            await asyncio.wait(relays, timeout=timeout)

    # ------------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        return (self.app is not None and self.app.returncode is None
                and self.sidecar is not None and self.sidecar.returncode is None)

    async def halt(self, grace: float = STOP_GRACE, drain: bool = True) -> None:
        """Takes the pod's processes down (the sidecar first, as ``stop``) and keeps the pod:
        its name, its ports and its log file, for a restart. ``drain=False``: the sidecar is
        killed at once (a failed pod has nothing worth draining: its app is gone, or never
        listened)."""
        if self._spawning is not None:
            await asyncio.shield(self._spawning)
        await _terminate(self.sidecar, grace if drain else 0.0)
        await _terminate(self.app, grace)
        await self.output_done(1.0)
        for relay in self._relays:
            relay.cancel()
        self._relays = []
        # Gone and reaped: never signalled again (their pids may be someone else's by now).
        self.app = self.sidecar = None

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Knative's order: the sidecar drains (finishing its requests), then the app stops."""
        self.stopping = True
        self.stop_requested.set()
        try:
            await self.halt(grace)
        finally:
            self.release_ports()
            self._close_log()

    def release_ports(self) -> None:
        for port in (self.app_port, self.port, self.admin_port, self.stats_port, self.tls_port,
                     self.prometheus_port):
            _RESERVED.discard(port)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

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
        self._close_log()


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
