"""The local runtime's console (issue 17): time stamps, every scale decision from the first,
``--quiet``, ``--verbose``, ``--access-log``, what Ctrl-C says, and a second Ctrl-C that kills
at once. Real processes: ``python -m activator run`` and its pods."""

from __future__ import annotations

import io
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import test_e2e_runtime as e2e
from support import wait_for
from test_e2e_runtime import APP, RuntimeProcess, get

from activator.runtime.console import Console

marker = e2e.marker
run_process = e2e.run_process

STAMP = re.compile(r"^\d\d:\d\d:\d\d ")
HEAD = "apiVersion: serving.knative.dev/v1\nkind: Service\n"


def service(name: str, command: list[str], annotations: str = "") -> str:
    meta = f"    metadata:\n      annotations:\n{annotations}" if annotations else ""
    return (HEAD + f"metadata:\n  name: {name}\nspec:\n  template:\n{meta}    spec:\n"
            f"      containers:\n        - command: {command!r}\n")


def test_lines_are_stamped_and_a_message_of_several_lines_once() -> None:
    out, err = io.StringIO(), io.StringIO()
    c = Console(out=out, err=err, clock=lambda: time.mktime((2026, 12, 6, 9, 5, 7, 0, 0, -1)))
    c.say("front door")
    c.warn("pod failed; last output:\n    boom")
    c.detail("not without --verbose")
    c.app("hello-00001-pod-1 | hi\n")
    assert out.getvalue() == "09:05:07 front door\nhello-00001-pod-1 | hi\n"
    assert err.getvalue() == "09:05:07 pod failed; last output:\n    boom\n"
    quiet = Console(quiet=True, out=out, err=err)
    quiet.say("x")
    quiet.app("y\n")
    assert out.getvalue().count("\n") == 2  # nothing more
    quiet.warn("still shown")
    assert err.getvalue().endswith(" still shown\n")


@pytest.mark.timeout(90)
def test_the_console_of_a_run(run_process: Callable[..., RuntimeProcess],
                              tmp_path: Path) -> None:
    yaml = tmp_path / "hello.yaml"
    yaml.write_text(service("hello", APP))
    rp = run_process([str(yaml)], "--access-log")
    port = rp.front_door()
    assert get(port, "hello.default.example.com", "/?from=console").status == 200
    assert get(port, "nobody.default.example.com").status == 404

    def logged() -> bool:
        return (any('hello.default.example.com "GET /?from=console" 200 ' in line
                    for line in rp.out)
                and any('nobody.default.example.com "GET /" 404 ' in line for line in rp.out))

    wait_for(logged, timeout=10)
    # Every line the runtime says is stamped; the first scale decision is said too.
    said = [line for line in rp.raw if "activator:" in line or "ready ->" in line
            or '"GET ' in line]
    assert said and all(STAMP.match(line) for line in said), said
    assert "default/hello-00001: 0 ready -> 1 desired (initial scale)" in rp.out
    assert any(line.startswith("activator: status: python -m activator status --port ")
               for line in rp.out), rp.output()
    # The app's own output, prefixed with its pod (as docker compose), unstamped.
    rp.proc.send_signal(signal.SIGINT)
    assert rp.proc.wait(timeout=30) == 0, rp.output()
    rp.readers[1].join(5)
    assert any(re.fullmatch(r"activator: stopping: 1 pod draining \(their requests finish; "
                            r"at most 5 s\); Ctrl-C again kills them now", line)
               for line in rp.err), rp.output()


@pytest.mark.timeout(90)
def test_quiet_shows_only_problems(run_process: Callable[..., RuntimeProcess],
                                   tmp_path: Path) -> None:
    yaml = tmp_path / "two.yaml"
    yaml.write_text(service("hello", APP) + "---\n"
                    + service("crash", ["python", "-c", "import sys; print('about to fail'); "
                                        "sys.exit(3)"]))
    rp = run_process([str(yaml)], "--quiet", "--crash-backoff", "30")
    wait_for(lambda: any("app exited with code 3" in line for line in rp.err), timeout=30)
    assert not any("ready ->" in line or "front door" in line or " | " in line
                   for line in rp.out), rp.output()


@pytest.mark.timeout(90)
def test_a_second_ctrl_c_kills_every_pod_at_once(run_process: Callable[..., RuntimeProcess],
                                                 tmp_path: Path) -> None:
    # An app that ignores SIGTERM: a drain would wait the whole grace for it.
    stubborn = ["python", "-c", "import os, signal, socket; signal.signal(signal.SIGTERM, "
                "signal.SIG_IGN); s = socket.socket(); s.bind(('127.0.0.1', "
                "int(os.environ['PORT']))); s.listen(); print('up', flush=True); "
                "[s.accept()[0].close() for _ in iter(int, 1)]"]
    yaml = tmp_path / "stubborn.yaml"
    yaml.write_text(service("stubborn", stubborn, "        autoscaling.knative.dev/min-scale: "
                                                  '"1"\n'))
    rp = run_process([str(yaml)])
    rp.front_door()
    wait_for(lambda: any("| up" in line for line in rp.out), timeout=30)
    family = rp.family()
    assert len(family) >= 4, e2e.describe(family)
    rp.proc.send_signal(signal.SIGINT)
    wait_for(lambda: any("stopping:" in line for line in rp.err), timeout=10)
    t0 = time.monotonic()
    rp.proc.send_signal(signal.SIGINT)
    assert rp.proc.wait(timeout=10) == 1, rp.output()
    took = time.monotonic() - t0
    assert took < 4, (took, rp.output())  # not the 5 s grace the app would have had
    wait_for(lambda: not {p for p in family if e2e.exists(p, zombies_count=False)}, timeout=10)
    assert any("killing every pod now" in line for line in rp.err), rp.output()
