"""The README's Python snippets and examples/embed.py run as written, and the example type-checks
under ``mypy --strict`` against the installed package."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def _run(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                          timeout=timeout)


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int) -> None:
    out = _run([sys.executable, "-c", SNIPPETS[index]])
    assert out.returncode == 0, f"snippet {index}:\n{SNIPPETS[index]}\n{out.stderr}"


@pytest.mark.timeout(120)
def test_embed_example_runs() -> None:
    out = _run([sys.executable, "examples/embed.py"])
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("200 OK") == 2, out.stdout


@pytest.mark.timeout(180)
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_embed_example_passes_mypy_strict(tmp_path: Path) -> None:
    # From outside the repository, as a user's script is checked: the installed package must be
    # found and typed.
    out = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                          str(ROOT / "examples" / "embed.py")], cwd=tmp_path, capture_output=True,
                         text=True, timeout=170)
    assert out.returncode == 0, out.stdout + out.stderr
