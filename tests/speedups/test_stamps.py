"""A compiled twin never shadows an edited source: the build stamps each compiled module with the
hash of its sources, and an import that finds them changed warns once and loads the pure twin
(an error under DATAPLANE_EXPECT_EXTENSIONS=1).

Each case runs in a copy of the packages (compiled builds and stamps included) in a temporary
folder, in a fresh interpreter, so the real tree is never edited.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from _speedups._select import ENGINE_MODULES, UNIT_MODULES, source_hash, sources_of

ROOT = Path(__file__).resolve().parents[2]
BUILT = (ROOT / "_speedups" / "_stamps.py").is_file() and any(
    (ROOT / "proxy" / "engine").glob("server.*.so"))

pytestmark = pytest.mark.skipif(
    not BUILT or bool(os.environ.get("DATAPLANE_NO_EXTENSIONS")),
    reason="needs the compiled build (pip install -e .) and extensions allowed")

PROBE = """
import sys, warnings
warnings.simplefilter("always")
import _speedups
import proxy.engine.messages as messages
from _speedups import head
print(messages.__file__)
print(head.USING_EXTENSIONS)
print(hasattr(messages, "EDITED"))
"""


def _copy_tree(tmp_path: Path) -> Path:
    for package in ("_speedups", "proxy", "activator"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    return tmp_path


def _run(tree: Path, expect: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATAPLANE_NO_EXTENSIONS", "DATAPLANE_EXPECT_EXTENSIONS")}
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if expect:
        env["DATAPLANE_EXPECT_EXTENSIONS"] = "1"
    return subprocess.run([sys.executable, "-c", PROBE], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_build_stamped_every_compiled_module() -> None:
    from _speedups._select import _stamps

    stamps = _stamps()
    for name in (*ENGINE_MODULES, *UNIT_MODULES):
        assert stamps.get(name) == source_hash(sources_of(name, str(ROOT))), name


def test_an_unchanged_tree_loads_the_compiled_modules_without_a_warning(tmp_path: Path) -> None:
    out = _run(_copy_tree(tmp_path))
    assert out.returncode == 0, out.stderr
    file, using, edited = out.stdout.split()
    assert file.endswith(".so") and using == "True" and edited == "False"
    assert "stale" not in out.stderr


def test_an_edited_engine_module_warns_and_loads_its_py(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    with open(tree / "proxy" / "engine" / "messages.py", "a") as f:
        f.write("\nEDITED = True\n")
    out = _run(tree)
    assert out.returncode == 0, out.stderr
    file, using, edited = out.stdout.split()
    assert file.endswith("messages.py")
    assert edited == "True"  # the behaviour is the edited source's
    assert using == "True"  # the other compiled modules still load
    assert out.stderr.count("stale compiled module proxy.engine.messages") == 1, out.stderr
    assert "rebuild" in out.stderr


def test_an_edited_pxd_makes_its_module_stale_too(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    with open(tree / "proxy" / "engine" / "messages.pxd", "a") as f:
        f.write("\n# edited\n")
    out = _run(tree)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0].endswith("messages.py")


def test_an_edited_unit_falls_back_to_its_pure_twin(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    with open(tree / "_speedups" / "_head_c.pyx", "a") as f:
        f.write("\n# edited\n")
    out = _run(tree)
    assert out.returncode == 0, out.stderr
    file, using, _ = out.stdout.split()
    assert using == "False"
    assert file.endswith(".so")
    assert "stale compiled module _speedups._head_c" in out.stderr


def test_a_build_without_stamps_is_stale(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    (tree / "_speedups" / "_stamps.py").unlink()
    out = _run(tree)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == [str(tree / "proxy" / "engine" / "messages.py"), "False"]
    assert "has no build stamp" in out.stderr


@pytest.mark.parametrize("edit", ["proxy/engine/messages.py", "_speedups/_head_c.pyx"])
def test_a_stale_module_is_an_error_when_extensions_are_expected(tmp_path: Path,
                                                                 edit: str) -> None:
    tree = _copy_tree(tmp_path)
    with open(tree / edit, "a") as f:
        f.write("\n# edited\n")
    out = _run(tree, expect=True)
    assert out.returncode != 0
    assert "StaleExtension" in out.stderr and "rebuild" in out.stderr, out.stderr
