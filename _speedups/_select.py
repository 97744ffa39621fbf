"""Whether compiled twins may be used, and whether a compiled twin is fresh.

Two kinds of compiled twin exist. The ``_speedups`` units are ``.pyx`` files beside their pure
``_x_py.py`` twins, chosen by a selector module. The engine modules in ``ENGINE_MODULES`` are
compiled from their own ``.py`` source, typed by the ``.pxd`` beside it, so the twin is the very
same file run by the interpreter; ``install_finder()`` makes imports take that ``.py`` even
where the compiled module sits next to it.

A compiled twin never shadows an edited source. The build (setup.py) stamps each module it
compiles with ``source_hash(sources_of(...))``: the sha256 of its ``.py`` (or ``.pyx``) and of
every ``.pxd`` it cimports, its own and transitively, since each changes the compiled result.
The stamps go to the generated ``_speedups/_stamps.py`` of the tree the extensions are built into
(the work tree for ``pip install -e .``, the wheel otherwise). ``install_finder()`` (run by
``_speedups/__init__`` before anything imports the engine) puts a finder first on
``sys.meta_path`` that, when a compiled module is imported, compares its stamp with the sources
beside it. A module is stale when its stamp is missing or differs, or when a compiled module it
cimports is stale or not built: its build needs that one's C types and functions, which a pure
twin has not. A stale module warns once (``RuntimeWarning``) and loads its pure twin: the
``.py`` of an engine module; a ``_speedups`` unit raises ``StaleExtension`` (an ``ImportError``)
and its selector falls back to ``_x_py``. Under ``DATAPLANE_EXPECT_EXTENSIONS=1`` a stale module
is an ``ImportError`` instead. The check runs once per module at import; a request never pays.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import platform
import re
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
    "proxy.engine.h2core",
    "proxy.engine.h2",
    "proxy.breaker",
    "proxy.headers",
    "proxy.queue_proxy",
    "activator.activator.stats",
    "activator.activator.lb",
    "activator.activator.throttler",
    "activator.activator.app",
)


# The _speedups units: a .pyx each, beside its pure twin _x_py.py (chosen by a selector).
UNIT_MODULES = (
    "_speedups._head_c", "_speedups._accounting_c", "_speedups._h1_c", "_speedups._hpack_c"
)

STAMPS_FILE = os.path.join("_speedups", "_stamps.py")  # under the tree the extensions are in

REBUILD = "rebuild: pip install -e . (or python setup.py build_ext --inplace)"


class StaleExtension(ImportError):
    """A compiled module was built from other sources than those beside it."""


def compiled_allowed() -> bool:
    return not os.environ.get("DATAPLANE_NO_EXTENSIONS") and (
        platform.python_implementation() == "CPython"
    )


def expect_extensions() -> bool:
    """DATAPLANE_EXPECT_EXTENSIONS=1: a compiled module that cannot load is an error (CI)."""
    return os.environ.get("DATAPLANE_EXPECT_EXTENSIONS") == "1"


# ``from a.b cimport c, d as e`` (maybe in parentheses), ``cimport a.b as c``, and pure
# Python's ``from cython.cimports.a.b import c``.
_FROM_CIMPORT = re.compile(r"^[ \t]*from[ \t]+([\w.]+)[ \t]+cimport[ \t]+(\([^)]*\)|[^\n#]*)", re.M)
_CIMPORT = re.compile(r"^[ \t]*cimport[ \t]+([^\n#]*)", re.M)
_PURE_CIMPORT = re.compile(
    r"^[ \t]*from[ \t]+cython\.cimports\.([\w.]+)[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)


def _cimported(text: str, pure: bool) -> set[str]:
    """The module names a source cimports (or might: ``from a cimport b`` is a.b or a's b)."""
    pairs = _PURE_CIMPORT.findall(text) if pure else _FROM_CIMPORT.findall(text)
    names = {package for package, _ in pairs}
    for package, items in pairs:
        names.update(f"{package}.{item.split()[0]}" for item in items.strip("()").split(",")
                     if item.split())
    if not pure:
        for items in _CIMPORT.findall(text):
            names.update(item.split()[0] for item in items.split(",") if item.split())
    return names


def _pxd(name: str, root: str) -> str | None:
    path = os.path.join(root, *name.split(".")) + ".pxd"
    return path if os.path.isfile(path) else None


def _closure(name: str, root: str) -> dict[str, str]:
    """Module -> ``.pxd`` under ``root``, for every ``.pxd`` that ``name``'s build reads: its own
    and those it cimports, transitively."""
    base = os.path.join(root, *name.split("."))
    found: dict[str, str] = {}
    own = _pxd(name, root)
    if own is not None:
        found[name] = own
    todo = [base + (".pyx" if name in UNIT_MODULES else ".py"), *found.values()]
    while todo:
        path = todo.pop()
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        for module in _cimported(text, pure=path.endswith(".py")):
            pxd = _pxd(module, root)
            if pxd is not None and module not in found:
                found[module] = pxd
                todo.append(pxd)
    return found


def sources_of(name: str, root: str) -> list[str]:
    """The files a compiled module is built from, under ``root`` (the folder of the packages):
    its ``.py`` (``.pyx`` for a unit) first, then every ``.pxd`` its build reads, sorted."""
    base = os.path.join(root, *name.split("."))
    main = base + (".pyx" if name in UNIT_MODULES else ".py")
    return [main, *sorted(_closure(name, root).values())]


def compiled_dependencies(name: str, root: str) -> list[str]:
    """The compiled modules ``name``'s build cimports, transitively: it loads only beside them."""
    return sorted(m for m in _closure(name, root)
                  if m != name and (m in ENGINE_MODULES or m in UNIT_MODULES))


def source_hash(paths: list[str], root: str) -> str:
    """sha256 over the files' paths (relative to ``root``) and bytes: what a build stamps and an
    import checks."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(os.path.relpath(path, root).replace(os.sep, "/").encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
        digest.update(b"\0")
    return digest.hexdigest()


def read_stamps(path: str) -> dict[str, str]:
    """The ``STAMPS`` of a generated stamps file (parsed, not imported); {} if there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STAMPS":
                value = ast.literal_eval(node.value)
                if isinstance(value, dict):
                    return {str(k): str(v) for k, v in value.items()}
    except (OSError, SyntaxError, ValueError):
        pass
    return {}


def write_stamps(path: str, stamps: dict[str, str]) -> None:
    """Writes a stamps file (setup.py, at build time); atomically, as imports may read it."""
    lines = "".join(f"    {name!r}: {stamps[name]!r},\n" for name in sorted(stamps))
    text = ('"""Generated by setup.py at build time: the sha256 of the sources each compiled '
            "module\nwas built from (_speedups/_select.py: source_hash). Not in git.\"\"\"\n\n"
            f"STAMPS = {{\n{lines}}}\n")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _built(name: str, root: str) -> str | None:
    base = os.path.join(root, *name.split("."))
    return next((base + s for s in EXTENSION_SUFFIXES if os.path.isfile(base + s)), None)


class _Verdicts:
    """Why each compiled module under one tree is stale (None: fresh), each found once."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.stamps = read_stamps(os.path.join(root, STAMPS_FILE))
        self.own: dict[str, str | None] = {}
        self.whole: dict[str, str | None] = {}

    def _own(self, name: str) -> str | None:
        if name not in self.own:
            self.own[name] = self._compare(name)
        return self.own[name]

    def _compare(self, name: str) -> str | None:
        if _built(name, self.root) is None:
            return "it is not built"
        sources = sources_of(name, self.root)
        if not os.path.isfile(sources[0]):
            return None  # an installed build without its sources: nothing to compare
        stamp = self.stamps.get(name)
        if stamp is None:
            return f"it has no build stamp in {STAMPS_FILE}"
        if stamp != source_hash(sources, self.root):
            more = " (or a .pxd its build reads)" if len(sources) > 1 else ""
            return f"{os.path.relpath(sources[0], self.root)}{more} changed since it was built"
        return None

    def why_stale(self, name: str) -> str | None:
        if name not in self.whole:
            why = self._own(name)
            if why is None:
                for dep in compiled_dependencies(name, self.root):
                    if self._own(dep) is not None:
                        why = f"its build cimports {dep}, which is stale or not built"
                        break
            self.whole[name] = why
        return self.whole[name]


def stale_builds(root: str) -> dict[str, str]:
    """Module -> why, for each compiled module built under ``root`` that an import would take
    for stale (tests and diagnostics)."""
    verdicts = _Verdicts(root)
    found = {}
    for name in (*UNIT_MODULES, *ENGINE_MODULES):
        why = verdicts.why_stale(name) if _built(name, root) else None
        if why is not None:
            found[name] = why
    return found


class _StampFinder:
    """First on ``sys.meta_path``: decides where the compiled modules load from (see the module
    docstring). Returns None (the usual finders go on) when there is nothing to decide."""

    def __init__(self) -> None:
        self.trees: dict[str, _Verdicts] = {}
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
        if root not in self.trees:
            self.trees[root] = _Verdicts(root)
        why = self.trees[root].why_stale(name)
        if why is None:
            return spec
        message = f"stale compiled module {name} ({origin}): {why}; {REBUILD}"
        if expect_extensions():
            raise StaleExtension(message, name=name, path=origin)
        if name not in self.warned:
            self.warned.add(name)
            twin = "its .py" if engine else "its pure twin"
            warnings.warn(f"{message}; loading {twin}", RuntimeWarning, stacklevel=2)
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
