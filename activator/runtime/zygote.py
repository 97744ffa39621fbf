"""A warm queue-proxy to fork sidecars from: ``python -m activator.runtime.zygote``.

Why: a cold start waits for its pod's sidecar, and ``python -m proxy`` spends about 150 ms of CPU
importing before it listens, on the same cores the app is starting on. The zygote imports the
queue-proxy once; each sidecar is then a ``fork()`` of it that runs ``proxy.__main__.main()``
with its own environment: the same code and the same environment contract as
``python -m proxy``, in its own process (and session), listening within a few milliseconds.

Protocol, one JSON object per line. On stdin, a spawn request
``{"id": N, "env": {...}, "cwd": DIR, "log": PATH or null}``; on stdout, ``{"id": N, "pid": P}``
once forked and ``{"exit": P, "status": S}`` when a child ends (S as ``Popen.returncode``:
the exit code, or minus the signal). EOF on stdin: every child gets SIGTERM, and the zygote exits
once they are gone (SIGKILL after 10 s). Children die with the zygote (``PR_SET_PDEATHSIG``),
and the zygote with the runtime that started it.

``Zygote`` is the runtime's side: ``spawn(env, cwd, log)`` returns a ``ForkedProcess`` with the
parts of ``asyncio.subprocess.Process`` the pod code uses (``pid``, ``returncode``, ``wait()``,
``send_signal()``).
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import select
import signal
import sys
import time
from typing import Any

__all__ = ["Zygote", "ForkedProcess", "main"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Asks the kernel to send ``sig`` to this process when its parent thread exits."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except OSError:  # pragma: no cover - not Linux
        pass


# --------------------------------------------------------------------------- the zygote process


def _child(request: dict[str, Any], parent: int, keep: tuple[int, ...]) -> None:
    """Runs in the forked child: becomes a queue-proxy. Never returns."""
    code = 1
    try:
        os.setsid()
        die_with_parent()
        if os.getppid() != parent:  # the zygote died before the prctl: do not outlive it
            os._exit(1)
        for fd in keep:  # stdin and stdout are replaced below
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        log = request.get("log") or os.devnull
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(null)
        cwd = request.get("cwd")
        if cwd:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        from proxy.__main__ import main as proxy_main

        code = proxy_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # pragma: no cover - reported in the child's log
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> int:
    """The zygote's loop (``python -m activator.runtime.zygote``)."""
    die_with_parent()
    # The warm part: everything a queue-proxy imports, before any fork.
    import proxy.__main__  # noqa: F401
    import proxy.app  # noqa: F401
    import proxy.config  # noqa: F401

    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    me = os.getpid()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stdin = sys.stdin.fileno()
    stdout = sys.stdout.buffer
    children: set[int] = set()
    pending = b""
    closing_since: float | None = None

    def say(doc: dict[str, Any]) -> None:
        stdout.write(json.dumps(doc).encode() + b"\n")
        stdout.flush()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                return
            if pid == 0:
                return
            children.discard(pid)
            say({"exit": pid, "status": os.waitstatus_to_exitcode(status)})

    while True:
        reap()
        if closing_since is not None:
            if not children:
                return 0
            if time.monotonic() - closing_since > 10.0:
                for pid in list(children):
                    _kill(pid, signal.SIGKILL)
        fds = [wake_r] if closing_since is not None else [stdin, wake_r]
        ready, _, _ = select.select(fds, [], [], 0.5)
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        if stdin in ready:
            data = os.read(stdin, 65536)
            if not data:
                closing_since = time.monotonic()
                for pid in list(children):
                    _kill(pid, signal.SIGTERM)
                continue
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not line.strip():
                    continue
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request, me, (wake_r, wake_w))
                children.add(pid)
                say({"id": request["id"], "pid": pid})


def _kill(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- the runtime's side


class ForkedProcess:
    """A sidecar forked by the zygote, as much of ``asyncio.subprocess.Process`` as pods use."""

    def __init__(self, pid: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._done = loop.create_future()

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    async def wait(self) -> int:
        return await asyncio.shield(self._done)

    def _exited(self, status: int) -> None:
        self.returncode = status
        if not self._done.done():
            self._done.set_result(status)


class Zygote:
    """Starts ``python -m activator.runtime.zygote`` and forks sidecars from it."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self._next = 0
        self._spawning: dict[int, asyncio.Future[int]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from activator.runtime.pods import spawn_argv

        argv, kwargs = spawn_argv([sys.executable, "-m", "activator.runtime.zygote"])
        self.proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=self.env, cwd=self.cwd, start_new_session=True, **kwargs)
        self._reader = self.loop.create_task(self._read())

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def spawn(self, env: dict[str, str], cwd: str | None = None,
                    log: str | None = None) -> ForkedProcess:
        if not self.alive:
            raise RuntimeError("the zygote is not running")
        assert self.proc is not None and self.proc.stdin is not None
        self._next += 1
        fut: asyncio.Future[int] = self.loop.create_future()
        self._spawning[self._next] = fut
        line = json.dumps({"id": self._next, "env": env, "cwd": cwd, "log": log})
        self.proc.stdin.write(line.encode() + b"\n")
        pid = await asyncio.wait_for(fut, 10.0)
        child = ForkedProcess(pid, self.loop)
        self._children[pid] = child
        if pid in self._early_exits:
            child._exited(self._early_exits.pop(pid))
        return child

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                break
            doc = json.loads(line)
            if "pid" in doc:
                fut = self._spawning.pop(doc["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(doc["pid"])
            elif "exit" in doc:
                child = self._children.pop(doc["exit"], None)
                if child is not None:
                    child._exited(doc["status"])
                else:
                    self._early_exits[doc["exit"]] = doc["status"]
        # The zygote is gone: so are its children (PR_SET_PDEATHSIG).
        for child in self._children.values():
            child._exited(-signal.SIGKILL)
        self._children.clear()
        for fut in self._spawning.values():
            if not fut.done():
                fut.set_exception(RuntimeError("the zygote exited"))

    async def close(self, timeout: float = 15.0) -> None:
        """Stops every sidecar (SIGTERM, then SIGKILL) and the zygote."""
        if self.proc is None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await self._reader


if __name__ == "__main__":
    sys.exit(main())
