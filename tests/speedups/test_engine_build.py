"""The compiled engine modules and their pure twins (the same .py files, interpreted)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _speedups import fields
from _speedups._select import ENGINE_MODULES, engine_compiled

ROOT = Path(__file__).resolve().parents[2]


def _import_all() -> list:
    return [importlib.import_module(name) for name in ENGINE_MODULES]


def test_every_engine_module_has_its_pxd() -> None:
    for name in ENGINE_MODULES:
        base = ROOT / name.replace(".", "/")
        assert base.with_suffix(".py").is_file(), name
        assert base.with_suffix(".pxd").is_file(), f"{name}: no .pxd to type its compiled build"


def test_compiled_engine_loaded_when_expected() -> None:
    modules = _import_all()
    files = {m.__name__: m.__file__ for m in modules}
    if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        assert all(f.endswith(".py") for f in files.values()), files
        assert not engine_compiled()
    elif os.environ.get("DATAPLANE_EXPECT_EXTENSIONS") == "1":
        assert engine_compiled(), f"compiled engine modules expected, loaded: {files}"
    else:
        pytest.skip("neither DATAPLANE_NO_EXTENSIONS nor DATAPLANE_EXPECT_EXTENSIONS=1 set")


def test_no_extensions_loads_source_in_a_fresh_process() -> None:
    """Whatever sits beside the .py files, DATAPLANE_NO_EXTENSIONS=1 runs the .py files."""
    code = (
        "import importlib, sys\n"
        "from _speedups._select import ENGINE_MODULES\n"
        "for n in ENGINE_MODULES: importlib.import_module(n)\n"
        "print('\\n'.join(sys.modules[n].__file__ for n in ENGINE_MODULES))\n"
    )
    env = dict(os.environ, DATAPLANE_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    assert len(out) == len(ENGINE_MODULES)
    assert all(f.endswith(".py") for f in out), out


def test_fields_pxd_matches_fields_py() -> None:
    """The C constants the compiled modules cimport are the slots the scanner fills."""
    text = (ROOT / "_speedups" / "fields.pxd").read_text()
    declared = {m[0]: int(m[1]) for m in re.findall(r"^\s+([A-Z_]+) = (\d+)$", text, re.M)}
    expected = {n: getattr(fields, n) for n in dir(fields)
                if n.isupper() and isinstance(getattr(fields, n), int)}
    assert declared == expected


def test_states_pxd_matches_states_py() -> None:
    """The exchange states and pause reasons: C constants in the compiled server and upstream,
    Python ints in their pure twins; the two must be the same numbers."""
    from proxy.engine import states

    text = (ROOT / "proxy" / "engine" / "states.pxd").read_text()
    declared = {m[0]: int(m[1]) for m in re.findall(r"^\s+([A-Z_]+) = (\d+)$", text, re.M)}
    expected = {n: getattr(states, n) for n in dir(states)
                if n.isupper() and isinstance(getattr(states, n), int)}
    assert declared == expected
