"""SIGTERM (or Ctrl-C) on ``python -m proxy`` and ``python -m activator serve`` says that the
drain started, how long its quiet period is (Knative's own log lines), and that a second signal
quits at once: nobody should think a draining process hung."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from support import ActivatorProcess, knative_env, start_queue_proxy, wait_for


@pytest.mark.timeout(60)
def test_the_queue_proxy_says_it_drains() -> None:
    env = knative_env(1, QUEUE_DRAIN_QUIET_PERIOD="1.5")  # nothing listens on the app port
    proc = start_queue_proxy(env)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    messages = [json.loads(line)["message"] for line in err.decode().splitlines()
                if line.startswith("{")]
    assert "Received TERM signal, attempting to gracefully shutdown servers." in messages
    assert "Sleeping 1.5s to allow K8s propagation of non-ready state" in messages
    assert any("a second SIGTERM or Ctrl-C exits at once" in m for m in messages), messages
    # Knative's queue-proxy, sent the same SIGTERM, logs these too (its order is a Go map's).
    shut = [m for m in messages if m.startswith("Shutting down server: ")]
    assert sorted(shut) == ["Shutting down server: admin", "Shutting down server: main",
                            "Shutting down server: metrics"], messages
    assert messages[-1] == "Shutdown complete, exiting...", messages


@pytest.mark.timeout(60)
def test_a_second_signal_quits_the_queue_proxy_at_once() -> None:
    env = knative_env(1, QUEUE_DRAIN_QUIET_PERIOD="60")
    proc = start_queue_proxy(env)
    proc.send_signal(signal.SIGTERM)
    lines: list[bytes] = []
    assert proc.stderr is not None

    def said() -> bool:
        lines.append(proc.stderr.readline())
        return b"exits at once" in lines[-1]

    wait_for(said, timeout=20)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 1  # long before the 60 s quiet period


@pytest.mark.timeout(60)
def test_the_activator_says_it_drains(tmp_path: Path) -> None:
    act = ActivatorProcess(tmp_path / "act.log", "--drain-timeout", "0.2")
    act.proc.send_signal(signal.SIGTERM)
    assert act.proc.wait(timeout=30) == 0, act.output()
    out = act.output()
    assert "Received SIGTERM" in out, out
    assert "Sleeping 200ms to allow K8s propagation of non-ready state" in out, out
    assert "a second SIGTERM or Ctrl-C exits at once" in out, out
    act.stop()


