"""bench/soak.py, short: the local runtime under mixed load and faults loses and mixes nothing.

A 20-second soak (a short stable window, grace period and revision timeout, so that a scale to
zero and back, a stall past the timeout, resets and a pod killed all fit), run as the README
says, as a subprocess; the runtime's front door is on a port it picks (``--port 0``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOAK = REPO / "bench" / "soak.py"
LOAD_KINDS = ("keepalive", "pipelined", "upload", "download", "websocket", "slow", "burst")
FAULT_REQUEST_KINDS = ("reset", "stall")
FAULT_KINDS = ("pod_kill", "reset", "stall", "idle")


@pytest.mark.timeout(150)
def test_short_soak_loses_and_mixes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    cmd = [sys.executable, str(SOAK), "--duration", "20", "--seed", "14", "--window", "2",
           "--grace", "1", "--timeout-seconds", "3", "--client-timeout", "15",
           "--json", str(out)]
    try:
        run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"soak still running after 120 s: {exc.stdout}") from None
    said = f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    assert run.returncode == 0, said
    doc = json.loads(out.read_text())
    kinds = doc["requests_by_kind"]
    for kind in LOAD_KINDS + FAULT_REQUEST_KINDS:
        assert kinds.get(kind, 0) > 0, f"no {kind} request\n{said}"
    for kind in FAULT_KINDS:
        assert doc["faults_by_kind"][kind] >= 1, f"no {kind} fault\n{said}"
    assert doc["lost"] == 0 and doc["mixed"] == 0, said
    assert not doc["failures"], said
    assert doc["scale_to_zero_cycles"] >= 1, said
    assert doc["pods_killed"] >= 1, said
    assert doc["runtime"]["left_behind"] == [], said
    assert doc["ok"] is True, said
