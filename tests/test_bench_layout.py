"""bench/common.py's --layout split: which CPUs each side gets, and pinning a real process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import common  # noqa: E402

needs_two = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")


def test_free_layout_pins_nothing() -> None:
    assert common.layout_cpus("free") is None
    assert common.taskset(["wrk", "-t1"], None) == ["wrk", "-t1"]


@needs_two
def test_split_layout_cuts_the_cpus_in_two_halves() -> None:
    front, back = common.layout_cpus("split")  # type: ignore[misc]
    mine = os.sched_getaffinity(0)
    assert front and back and not front & back and front | back == mine
    assert max(front) < min(back) and len(front) == len(mine) // 2
    assert common.taskset(["wrk"], {1, 0}) == ["taskset", "-c", "0,1", "wrk"]


def test_split_layout_refuses_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    with pytest.raises(common.BenchError, match="2 CPUs"):
        common.layout_cpus("split")


_TREE = """\
import subprocess, sys, threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
if sys.argv[1:] != ["child"]:
    subprocess.Popen([sys.executable, __file__, "child"])
    print("up", flush=True)
time.sleep(30)
"""


@needs_two
def test_pin_tree_moves_every_thread_of_a_process_and_its_children(tmp_path: Path) -> None:
    # A parent with a child, each with a second thread: all four threads end on one CPU.
    script = tmp_path / "tree.py"
    script.write_text(_TREE)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)

    def threads() -> list[int]:
        out = []
        for p in common.descendants(proc.pid):
            try:
                out += [int(t) for t in os.listdir(f"/proc/{p}/task")]
            except OSError:
                pass
        return out

    try:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        deadline = time.monotonic() + 10
        while len(threads()) < 4:  # the child and its thread are on their way
            assert time.monotonic() < deadline, threads()
            time.sleep(0.01)
        target = {max(os.sched_getaffinity(0))}
        common.pin_tree(proc.pid, target)
        assert all(os.sched_getaffinity(t) == target for t in threads())
    finally:
        for p in reversed(common.descendants(proc.pid)):
            try:
                os.kill(p, 9)
            except OSError:
                pass
        proc.wait(10)
