"""Whether compiled twins may be used, and whether a compiled twin is fresh.

Two kinds of compiled twin exist. The ``_speedups`` units are ``.pyx`` files beside their pure
``_x_py.py`` twins, chosen by a selector module. The engine modules in ``ENGINE_MODULES`` are
compiled from their own ``.py`` source, typed by the ``.pxd`` beside it, so the twin is the very
same file run by the interpreter; ``install_finder()`` makes imports take that ``.py`` even
where the compiled module sits next to it.

A compiled twin never shadows an edited source. The build (setup.py) stamps each module it
compiles with the sha256 of its sources (the ``.py`` or ``.pyx``, and the ``.pxd`` beside it) in
the generated ``_speedups/_stamps.py``, next to the extensions. ``install_finder()`` (run by
``_speedups/__init__`` before anything imports the engine) puts a finder first on
``sys.meta_path`` that, for every compiled module, compares the stamp with the source found
beside it: on a mismatch (or no stamp) it warns once and loads the pure twin (the ``.py`` of an
engine module; a ``_speedups`` unit's selector falls back to its ``_x_py`` twin), and under
``DATAPLANE_EXPECT_EXTENSIONS=1`` it raises ``StaleExtension`` instead. The check runs once per
module at import; a request never pays for it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import platform
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES, ModuleSpec, PathFinder
from typing import Any

# The hot path of the proxy engine and of the two handlers on it (see setup.py).
ENGINE_MODULES = (
    "proxy.engine.messages",
    "proxy.engine.timeouts",
    "proxy.engine.deadlines",
    "proxy.engine.server",
    "proxy.engine.upstream",
    "proxy.breaker",
    "proxy.headers",
    "proxy.queue_proxy",
    "activator.activator.stats",
    "activator.activator.lb",
    "activator.activator.throttler",
    "activator.activator.app",
)


# The _speedups units: a .pyx each, beside its pure twin _x_py.py (chosen by a selector).
UNIT_MODULES = ("_speedups._head_c", "_speedups._accounting_c", "_speedups._h1_c")

_REBUILD = "rebuild it: pip install -e . (or pip wheel . for a wheel)"


class StaleExtension(ImportError):
    """A compiled module was built from other sources than those beside it."""


def compiled_allowed() -> bool:
    return not os.environ.get("DATAPLANE_NO_EXTENSIONS") and (
        platform.python_implementation() == "CPython"
    )


def expect_extensions() -> bool:
    """DATAPLANE_EXPECT_EXTENSIONS=1: a compiled module that cannot load is an error (CI)."""
    return os.environ.get("DATAPLANE_EXPECT_EXTENSIONS") == "1"


def sources_of(name: str, root: str) -> list[str]:
    """The files a compiled module is built from, under ``root`` (the folder of the packages)."""
    base = os.path.join(root, *name.split("."))
    main = base + (".pyx" if name in UNIT_MODULES else ".py")
    return [main] + ([base + ".pxd"] if os.path.isfile(base + ".pxd") else [])


def source_hash(paths: list[str]) -> str:
    """sha256 over the files' names and bytes: what a build stamps and an import checks."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()


def _stamps() -> dict[str, str]:
    """The build's stamps, from ``_stamps.py`` beside this file (generated; not in git)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_stamps.py")
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError):
        return {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STAMPS":
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return {str(k): str(v) for k, v in value.items()}
    return {}


class _StampFinder:
    """First on ``sys.meta_path``: decides where the compiled modules load from (see the module
    docstring). Returns None (the usual finders go on) when there is nothing to decide."""

    def __init__(self) -> None:
        self.stamps: dict[str, str] | None = None
        self.warned: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        engine = name in ENGINE_MODULES
        if not engine and name not in UNIT_MODULES:
            return None
        if not compiled_allowed():
            return _source_spec(name, path) if engine else None
        spec = PathFinder.find_spec(name, path)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(EXTENSION_SUFFIXES)):
            return None  # not built: the usual import (the .py, or an ImportError for a unit)
        root = os.path.dirname(origin)
        for _ in range(name.count(".")):
            root = os.path.dirname(root)
        sources = sources_of(name, root)
        if not all(os.path.isfile(p) for p in sources):
            return spec  # an installed build without its sources: nothing to compare
        if self.stamps is None:
            self.stamps = _stamps()
        stamp = self.stamps.get(name)
        if stamp is not None and stamp == source_hash(sources):
            return spec
        names = ", ".join(os.path.basename(p) for p in sources)
        why = ("has no build stamp" if stamp is None
               else f"was built from other sources than {names}")
        message = f"{origin} {why}; {_REBUILD}"
        if expect_extensions():
            raise StaleExtension(message, name=name, path=origin)
        if name not in self.warned:
            self.warned.add(name)
            fallback = "the .py" if engine else "the pure twin"
            warnings.warn(f"stale compiled module {name}: {message}; loading {fallback}",
                          RuntimeWarning, stacklevel=2)
        if engine:
            return _source_spec(name, path)
        raise StaleExtension(message, name=name, path=origin)


def _source_spec(name: str, path: Any) -> ModuleSpec | None:
    """The ``.py`` source of an engine module, never its compiled build."""
    leaf = name.rpartition(".")[2] + ".py"
    for entry in path or sys.path:
        source = os.path.join(entry, leaf)
        if os.path.isfile(source):
            return importlib.util.spec_from_file_location(name, source)
    return None


def install_finder() -> None:
    """Puts the finder first on ``sys.meta_path`` (idempotent). With extensions off it makes
    the engine modules load from source; with them on it keeps stale builds out."""
    if not any(isinstance(f, _StampFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StampFinder())


def engine_compiled() -> bool:
    """True if every engine module that is loaded came from its compiled build."""
    return all(
        (getattr(sys.modules.get(name), "__file__", "") or "").endswith((".so", ".pyd"))
        for name in ENGINE_MODULES
    )
