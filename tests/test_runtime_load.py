"""bench/runtime_load.py: the load example of the README, as a user runs it.

The figures (percentiles, the table's rows, the plot's series) are pure functions of the run's
document and are checked on a document made here. The runs are real: the script as a process,
the local runtime under it, locust against 127.0.0.1 (skipped without locust: ``pip install -e
'.[bench]'``). Each run gets a temp dir of its own (``TMPDIR``, which ``tempfile.gettempdir()``
returns in the script and in everything it starts) that must be empty afterwards, and a marker
in its environment that no process may still carry.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import REPO, wait_for

SCRIPT = Path(REPO) / "bench" / "runtime_load.py"


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, Path(REPO) / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rl = _load("runtime_load")
rlplot = _load("runtime_load_plot")
HAVE_LOCUST = importlib.util.find_spec("locust") is not None
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_locust = pytest.mark.skipif(not HAVE_LOCUST, reason="locust: pip install -e '.[bench]'")
TEST_MARKER = "RUNTIME_LOAD_TEST_MARKER"


def _window(t0: float, t1: float, ms: list[float], **errors: int) -> dict[str, Any]:
    return {"t0": t0, "t1": t1, "ms": ms, "errors": errors}


DOC: dict[str, Any] = {
    "meta": {"yaml": "examples/slow.yaml", "host": "slow.default.example.com",
             "path": "/?sleep=200", "users": 4, "duration": 3.0, "extensions": True},
    "cold_start": {"ms": 412.0, "status": 200, "body": "Hello slow!"},
    "windows": [
        _window(1.0, 2.0, [900.0, 700.0]),
        _window(2.0, 3.0, [300.0, 200.0, 250.0, 210.0], **{"status 503": 1}),
        _window(3.0, 3.5, [205.0, 201.0]),  # the last one, cut short when the load stopped
    ],
    "pods": [[0.0, 0], [0.5, 1], [1.5, 1], [2.5, 3], [3.4, 4]],
    "decisions": [[0.0, 0, 1], [2.0, 1, 4]],
}


def test_figures_of_a_run() -> None:
    assert rl.percentile([], 0.5) is None
    assert rl.percentile([5.0, 1.0, 3.0, 2.0], 0.5) == 2.0  # nearest rank: the 2nd of 4
    assert rl.percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert rl.pods_at(DOC, 0.2) == 0 and rl.pods_at(DOC, 2.9) == 3 and rl.pods_at(DOC, -1) is None

    s = rl.summary(DOC)
    assert (s["requests"], s["errors"], s["pods_max"], s["pods_end"]) == (8, 1, 4, 4)
    assert s["errors_by_kind"] == {"status 503": 1}
    assert s["rps"] == pytest.approx(8 / 2.5) and s["p50_ms"] == 210.0 and s["p99_ms"] == 900.0

    r1, r2 = rl.rows(DOC, 1)[:2]
    assert (r1["t"], r1["rps"], r1["p50_ms"], r1["errors"], r1["pods"]) == (2.0, 2.0, 700.0, 0, 1)
    assert (r2["t"], r2["rps"], r2["errors"], r2["pods"]) == (3.0, 4.0, 1, 3)
    two = rl.rows(DOC, 2)
    assert [(r["t"], r["rps"]) for r in two] == [(3.0, 3.0), (3.5, 4.0)]
    assert rl.row_width(3) == 1 and rl.row_width(20) == 2 and rl.row_width(600) == 50

    text = "\n".join(rl.table(DOC))
    assert "cold start (the first request, from zero): 412 ms -> 200 'Hello slow!'" in text
    assert "    all     3.2     210     900       1     4" in text, text
    assert "errors: 1 x status 503" in text
    assert "scale decisions (2; ready -> desired): 0.0 s 0->1, 2.0 s 1->4" in text


def test_plot_series_of_a_run() -> None:
    s = rlplot.series(DOC)
    assert s["rps"] == ([2.0, 3.0, 3.5], [2.0, 4.0, 4.0])
    assert s["errors"] == ([3.0], [1.0])
    assert s["p50"] == ([2.0, 3.0, 3.5], [700.0, 210.0, 201.0])
    assert s["p99"][1] == [900.0, 300.0, 205.0]
    assert s["pods"] == ([0.0, 0.5, 1.5, 2.5, 3.4], [0.0, 1.0, 1.0, 3.0, 4.0])
    assert s["desired"] == ([0.0, 2.0, 3.4], [1.0, 4.0, 4.0])  # held to the last reading
    assert s["cold"] == ([0.412], [412.0])
    assert "slow.default.example.com: GET /?sleep=200, 4 users, 3 s" in rlplot.title(DOC)


def test_pods_are_the_children_that_carry_k_revision() -> None:
    """``pods_of`` counts live children of the given process whose environment holds
    K_REVISION: one child with it and one without, from this test's process."""
    code = "import sys; sys.stdin.read()"
    pod = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                           env=dict(os.environ, K_REVISION="slow-00001"))
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             env={k: v for k, v in os.environ.items() if k != "K_REVISION"})
    try:
        assert rl.pods_of(os.getpid()) == 1
    finally:
        for p in (pod, other):
            assert p.stdin is not None
            p.stdin.close()
            p.wait(10)
    assert rl.pods_of(os.getpid()) == 0


def test_without_locust_one_line_and_exit_2() -> None:
    """As when locust is not installed (``sys.modules['locust'] = None`` is how Python marks a
    module missing): one line naming the pip command, exit status 2, nothing started."""
    code = ("import runpy, sys; sys.modules['locust'] = None; "
            f"sys.argv = [{str(SCRIPT)!r}, '--duration', '1']; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 2, run
    assert run.stdout == ""
    assert run.stderr == ("runtime_load: locust is not installed: pip install -e '.[bench]' "
                          "--config-settings editable_mode=compat\n")


# --------------------------------------------------------------------------- real runs


class Run:
    """The script as a process, its own TMPDIR and marker; output read as it comes."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.tmpdir = tmp_path / "tmp"
        self.tmpdir.mkdir()
        self.marker = uuid.uuid4().hex
        env = dict(os.environ, TMPDIR=str(self.tmpdir), **{TEST_MARKER: self.marker})
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--yaml", "examples/slow.yaml", *args], cwd=REPO,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(s, sink), daemon=True)
                        for s, sink in ((self.proc.stdout, self.out),
                                        (self.proc.stderr, self.err))]
        for t in self.readers:
            t.start()

    @staticmethod
    def _read(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running after {timeout} s\n{self.said()}") from None
        for t in self.readers:
            t.join(5)
        return code

    def said(self) -> str:
        return f"stdout:\n{''.join(self.out)}\nstderr:\n{''.join(self.err)}"

    def left_behind(self) -> list[int]:
        """Processes still carrying the marker (they may take a moment to be reaped)."""
        want = f"{TEST_MARKER}={self.marker}".encode()

        def carriers() -> list[int]:
            found = []
            for pid, _ in rl._live_pids():
                if want in rl._environ(pid):
                    found.append(pid)
            return found

        try:
            wait_for(lambda: not carriers(), timeout=5, interval=0.05)
        except Exception:
            pass
        left = carriers()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left

    def check_clean(self) -> None:
        assert self.left_behind() == [], self.said()
        assert list(self.tmpdir.iterdir()) == [], self.said()


@needs_locust
@pytest.mark.timeout(90)
def test_a_run_reports_progress_a_table_and_a_png(tmp_path: Path) -> None:
    png = tmp_path / "out" / "load.png"
    run = Run(tmp_path, "--path", "/?sleep=50", "--users", "4", "--duration", "3",
              "--every", "1", "--png", str(png))
    code = run.wait(75)
    out = "".join(run.out)
    assert code == 0, run.said()
    run.check_clean()
    progress = [ln for ln in run.out if ln.startswith("  [") and "req/s" in ln]
    assert len(progress) >= 2, run.said()
    assert "cold start (the first request, from zero): " in out and "-> 200 'Hello slow!'" in out
    header = next(i for i, ln in enumerate(run.out) if ln.split()[:2] == ["t", "(s)"])
    total = next(ln for ln in run.out if ln.split()[:1] == ["all"]).split()
    assert len(run.out[header + 1].split()) == 6, run.said()  # a row under the header
    rps, errors, pods = float(total[1]), int(total[4]), int(total[5])
    assert rps > 4 and errors == 0 and pods >= 1, run.said()
    if HAVE_MATPLOTLIB:
        assert f"png: {png}\n" in run.out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert any("no PNG: matplotlib is not installed" in ln for ln in run.out), run.said()


@needs_locust
@pytest.mark.timeout(90)
def test_ctrl_c_stops_every_process_and_leaves_no_temp_file(tmp_path: Path) -> None:
    run = Run(tmp_path, "--users", "4", "--duration", "60", "--every", "0.5", "--png", "")
    wait_for(lambda: any("req/s" in ln for ln in run.out) or run.proc.poll() is not None,
             timeout=45, interval=0.05)
    assert run.proc.poll() is None, run.said()
    t = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    code = run.wait(45)
    took = time.monotonic() - t
    assert code == 130, run.said()
    assert "runtime_load: interrupted; stopping every process it started\n" in run.err
    assert took < 15, f"stopped in {took:.1f} s\n{run.said()}"
    run.check_clean()


@needs_locust
@pytest.mark.timeout(90)
def test_a_failing_locust_shows_its_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken_locustfile.py"
    broken.write_text("raise RuntimeError('the locustfile broke here')\n")
    run = Run(tmp_path, "--users", "2", "--duration", "2", "--locustfile", str(broken))
    code = run.wait(75)
    assert code == 1, run.said()
    err = "".join(run.err)
    assert "runtime_load: locust failed (exit 1):" in err, run.said()
    assert "RuntimeError: the locustfile broke here" in err, run.said()
    run.check_clean()
