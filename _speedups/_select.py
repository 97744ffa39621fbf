"""Whether compiled twins may be used: CPython, and DATAPLANE_NO_EXTENSIONS unset.

Two kinds of compiled twin exist. The ``_speedups`` units are ``.pyx`` files beside their pure
``_x_py.py`` twins, chosen by a selector module. The engine modules in ``ENGINE_MODULES`` are
compiled from their own ``.py`` source, typed by the ``.pxd`` beside it, so the twin is the very
same file run by the interpreter; ``use_pure_engine()`` makes imports take that ``.py`` even
where the compiled module sits next to it.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from importlib.machinery import ModuleSpec
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


def compiled_allowed() -> bool:
    return not os.environ.get("DATAPLANE_NO_EXTENSIONS") and (
        platform.python_implementation() == "CPython"
    )


class _PureSourceFinder:
    """Finds the ``.py`` source of the engine modules, never their compiled build."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name not in ENGINE_MODULES:
            return None
        leaf = name.rpartition(".")[2] + ".py"
        for entry in path or sys.path:
            source = os.path.join(entry, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(name, source)
        return None


def use_pure_engine() -> None:
    """With extensions off, makes the engine modules load from source (idempotent)."""
    if compiled_allowed():
        return
    if not any(isinstance(f, _PureSourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _PureSourceFinder())


def engine_compiled() -> bool:
    """True if every engine module that is loaded came from its compiled build."""
    return all(
        (getattr(sys.modules.get(name), "__file__", "") or "").endswith((".so", ".pyd"))
        for name in ENGINE_MODULES
    )
