"""A compiled twin never shadows an edited source: the build stamps each compiled module with the
hash of its sources (its .py or .pyx and every .pxd its build reads), and an import that finds
them changed warns once and loads the pure twin (an ImportError under
DATAPLANE_EXPECT_EXTENSIONS=1). A module whose build cimports a stale one goes pure with it: its
compiled build needs the other's C types and functions.

The cases with a compiled build run in a copy of the packages (extensions and stamps included)
in a temporary folder, in a fresh interpreter, so the work tree is never edited.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from _speedups._select import (
    ENGINE_MODULES,
    REBUILD,
    UNIT_MODULES,
    compiled_dependencies,
    expect_extensions,
    read_stamps,
    source_hash,
    sources_of,
    stale_builds,
)

ROOT = Path(__file__).resolve().parents[2]
COMPILED = (*UNIT_MODULES, *ENGINE_MODULES)
PACKAGES = ("_speedups", "proxy", "activator")


def _built(root: Path, name: str) -> bool:
    base = root.joinpath(*name.split("."))
    return any(Path(f"{base}{suffix}").is_file() for suffix in EXTENSION_SUFFIXES)


needs_build = pytest.mark.skipif(
    not all(_built(ROOT, n) for n in COMPILED) or bool(os.environ.get("DATAPLANE_NO_EXTENSIONS"))
    or platform.python_implementation() != "CPython",
    reason="needs the compiled build (pip install -e .) and extensions allowed")

# Imports every compiled module (the selectors and the engine) and prints where each came from,
# then the value of the expression in argv[1], if any.
PROBE = r"""
import importlib, json, sys, warnings
warnings.simplefilter("always")
import _speedups
from _speedups import accounting, h1, head
from _speedups._select import ENGINE_MODULES
for name in ENGINE_MODULES:
    importlib.import_module(name)
for name in ENGINE_MODULES:  # a second import of a stale module warns no more
    if sys.modules[name].__file__.endswith(".py"):
        del sys.modules[name]
        importlib.import_module(name)
value = eval(sys.argv[1]) if len(sys.argv) > 1 else None
print(json.dumps({
    "files": {n: sys.modules[n].__file__ for n in ENGINE_MODULES},
    "units": {"head": head.USING_EXTENSIONS, "accounting": accounting.USING_EXTENSIONS,
              "h1": h1.USING_EXTENSIONS},
    "value": value if value is None else repr(value),
}))
"""


def _copy(root: Path, dest: Path, *ignore: str) -> Path:
    for package in PACKAGES:
        shutil.copytree(root / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.tmp", *ignore))
    return dest


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the packages with their compiled build, which must be fresh to begin with."""
    stale = stale_builds(str(ROOT))
    if not stale:
        stale = stale_builds(str(_copy(ROOT, tmp_path)))  # an edit while the copy was made
    if stale:
        message = f"the work tree's build is stale ({', '.join(sorted(stale))}): {REBUILD}"
        if expect_extensions():
            pytest.fail(message)
        pytest.skip(message)
    return tmp_path


def _edit(tree: Path, path: str, text: str = "\n# edited\n") -> None:
    with open(tree / path, "a") as f:
        f.write(text)


def _run(tree: Path, expr: str | None = None, expect: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATAPLANE_NO_EXTENSIONS", "DATAPLANE_EXPECT_EXTENSIONS", "PYTHONWARNINGS")}
    env["PYTHONPATH"] = str(tree)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if expect:
        env["DATAPLANE_EXPECT_EXTENSIONS"] = "1"
    argv = [sys.executable, "-c", PROBE] + ([expr] if expr else [])
    return subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def _probe(tree: Path, expr: str | None = None) -> tuple[dict, str]:
    out = _run(tree, expr)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for name, file in result["files"].items():
        assert file.startswith(str(tree)), (name, file)  # the copy's, not the work tree's
    return result, out.stderr


def _pure(result: dict) -> set[str]:
    """The engine modules that loaded from their .py."""
    files = result["files"]
    assert all(f.endswith((".py", *EXTENSION_SUFFIXES)) for f in files.values()), files
    return {name for name, file in files.items() if file.endswith(".py")}


# What cimports what (no build needed).

def test_the_sources_of_a_module_are_every_file_its_build_reads() -> None:
    root = str(ROOT)
    rel = [os.path.relpath(p, root) for p in sources_of("proxy.engine.upstream", root)]
    assert rel[0] == "proxy/engine/upstream.py"
    assert {"proxy/engine/upstream.pxd", "proxy/engine/server.pxd", "proxy/engine/states.pxd",
            "proxy/engine/messages.pxd", "_speedups/fields.pxd",
            "_speedups/_head_c.pxd", "_speedups/_h1_c.pxd"} <= set(rel[1:])
    assert "proxy/breaker.pxd" not in rel
    assert [os.path.relpath(p, root) for p in sources_of("_speedups._h1_c", root)] == [
        "_speedups/_h1_c.pyx", "_speedups/_h1_c.pxd"]
    assert [os.path.relpath(p, root) for p in sources_of("_speedups._hpack_c", root)] == [
        "_speedups/_hpack_c.pyx"]  # no .pxd of its own, none cimported
    assert compiled_dependencies("proxy.engine.messages", root) == []
    assert {"proxy.engine.server", "proxy.headers", "proxy.breaker", "_speedups._head_c",
            "_speedups._accounting_c"} <= set(compiled_dependencies("proxy.queue_proxy", root))
    assert "proxy.queue_proxy" not in compiled_dependencies("activator.activator.app", root)


@pytest.mark.parametrize(("edit", "changes"), [
    ("proxy/engine/upstream.py", True),
    ("proxy/engine/server.pxd", True),  # cimported
    ("_speedups/fields.pxd", True),  # cimported, and no module of its own
    ("proxy/engine/server.py", False),  # another module's source
    ("proxy/breaker.pxd", False),  # not read by this build
])
def test_the_hash_covers_the_files_the_build_reads(tmp_path: Path, edit: str,
                                                   changes: bool) -> None:
    root = _copy(ROOT, tmp_path, "*.so", "*.pyd")
    before = source_hash(sources_of("proxy.engine.upstream", str(root)), str(root))
    _edit(root, edit)
    after = source_hash(sources_of("proxy.engine.upstream", str(root)), str(root))
    assert (before != after) is changes


@pytest.mark.skipif(sys.version_info < (3, 10), reason="setup.py needs 3.10")
def test_a_build_that_compiles_nothing_keeps_the_stamps(tmp_path: Path) -> None:
    """No Cython (or DATAPLANE_NO_EXTENSIONS=1 at build time): the compiled modules already there
    are as they were, and so are their stamps."""
    try:
        if int(version("setuptools").split(".")[0]) < 77:
            pytest.skip("setup.py needs setuptools>=77 (pyproject.toml [build-system])")
    except PackageNotFoundError:
        pytest.skip("no setuptools")
    root = _copy(ROOT, tmp_path, "*.so", "*.pyd", "_stamps.py")
    shutil.copy(ROOT / "setup.py", root)
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copy(ROOT / "README.md", root)
    stamps = root / "_speedups" / "_stamps.py"
    stamps.write_text("STAMPS = {'proxy.breaker': 'abc'}\n")
    env = dict(os.environ, DATAPLANE_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=root,
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert read_stamps(str(stamps)) == {"proxy.breaker": "abc"}


# With the compiled build.

@needs_build
def test_the_work_tree_build_is_fresh() -> None:
    stale = stale_builds(str(ROOT))
    if stale and not expect_extensions():
        pytest.skip(f"stale: {stale}; {REBUILD}")
    assert stale == {}


@needs_build
def test_an_unchanged_tree_loads_the_compiled_modules_without_a_warning(tree: Path) -> None:
    result, stderr = _probe(tree)
    assert _pure(result) == set()
    assert result["units"] == {"head": True, "accounting": True, "h1": True}
    assert "Warning" not in stderr, stderr


@needs_build
def test_an_edited_engine_module_warns_once_and_its_py_runs(tree: Path) -> None:
    _edit(tree, "proxy/queue_proxy.py", "\n\ndef edited():\n    return 'the edited .py'\n")
    result, stderr = _probe(tree, "importlib.import_module('proxy.queue_proxy').edited()")
    assert _pure(result) == {"proxy.queue_proxy"}  # nothing cimports it
    assert result["files"]["proxy.queue_proxy"].endswith("queue_proxy.py")
    assert result["value"] == repr("the edited .py")
    assert result["units"] == {"head": True, "accounting": True, "h1": True}
    assert stderr.count("RuntimeWarning") == 1, stderr
    assert "stale compiled module proxy.queue_proxy" in stderr
    assert "pip install -e ." in stderr and "python setup.py build_ext --inplace" in stderr


@needs_build
def test_the_modules_that_cimport_an_edited_one_go_pure_with_it(tree: Path) -> None:
    """server, upstream, h2, headers, queue_proxy and the activator's app cimport messages (some
    through server.pxd): their compiled builds cannot run beside its .py, so they load theirs."""
    _edit(tree, "proxy/engine/messages.py", (
        "\n\n_status_line = status_line\n\n\n"
        "def status_line(status, http10=False):\n"
        "    return b'EDITED ' + _status_line(status, http10)\n"))
    server = "importlib.import_module('proxy.engine.server')"
    result, stderr = _probe(tree, f"{server}.status_line(404)")
    assert result["value"] == repr(b"EDITED HTTP/1.1 404 Not Found\r\n")  # what server.py calls
    assert _pure(result) == {"proxy.engine.messages", "proxy.engine.server",
                             "proxy.engine.upstream", "proxy.engine.h2", "proxy.headers",
                             "proxy.queue_proxy", "activator.activator.app"}
    assert result["units"] == {"head": True, "accounting": True, "h1": True}
    assert stderr.count("RuntimeWarning") == 7, stderr
    assert "stale compiled module proxy.engine.server" in stderr
    assert "cimports proxy.engine.messages" in stderr


@needs_build
def test_an_edited_pxd_makes_the_modules_that_read_it_stale(tree: Path) -> None:
    _edit(tree, "proxy/engine/states.pxd")  # cimported by server, upstream, h2; no module itself
    result, stderr = _probe(tree)
    assert _pure(result) == {"proxy.engine.server", "proxy.engine.upstream", "proxy.engine.h2",
                             "proxy.headers", "proxy.queue_proxy", "activator.activator.app"}
    assert "stale compiled module proxy.engine.server" in stderr


@needs_build
def test_an_edited_unit_falls_back_to_its_pure_twin(tree: Path) -> None:
    _edit(tree, "_speedups/_head_c.pyx")
    result, stderr = _probe(tree, "head.scan_headers.__module__")
    assert result["units"] == {"head": False, "accounting": True, "h1": True}
    assert result["value"] == repr("_speedups._head_py")
    assert stderr.count("stale compiled module _speedups._head_c") == 1, stderr
    assert _pure(result) == {"proxy.engine.server", "proxy.engine.upstream", "proxy.engine.h2core",
                             "proxy.engine.h2", "proxy.headers", "proxy.queue_proxy",
                             "activator.activator.app"}


@needs_build
def test_a_build_without_stamps_is_stale(tree: Path) -> None:
    (tree / "_speedups" / "_stamps.py").unlink()
    result, stderr = _probe(tree)
    assert _pure(result) == set(ENGINE_MODULES)
    assert result["units"] == {"head": False, "accounting": False, "h1": False}
    assert "has no build stamp" in stderr


@needs_build
@pytest.mark.parametrize("edit", [
    "proxy/queue_proxy.py", "proxy/engine/messages.py", "proxy/engine/states.pxd",
    "_speedups/_head_c.pyx",
])
def test_a_stale_module_is_an_import_error_when_extensions_are_expected(tree: Path,
                                                                        edit: str) -> None:
    _edit(tree, edit)
    out = _run(tree, expect=True)
    assert out.returncode != 0
    assert "StaleExtension" in out.stderr, out.stderr
    assert "pip install -e ." in out.stderr
