"""The import graph: arrows go one way, and importing a core loads no server.

Layers, lowest first: ``_speedups`` <- ``proxy.engine`` <- the queue-proxy's shared policy and
product (``proxy``) <- the activator (``activator.activator``); the autoscaler
(``activator.autoscaler``) stands alone; the local runtime (``activator.runtime``) and the entry
points (``proxy.__main__``, ``proxy.demo``, ``activator.__main__``) are on top. The graph is read
from the source (every ``import`` and ``cimport``, inside functions and ``TYPE_CHECKING`` blocks
too), so an arrow that runs back fails here before it fails anywhere else.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("_speedups", "proxy", "activator")
ENTRY_POINTS = {"proxy.__main__", "proxy.demo", "proxy.sample_app", "activator.__main__"}

# Each room, and the rooms it may import (itself always included). First match wins.
ROOMS: list[tuple[str, set[str]]] = [
    ("_speedups", set()),
    ("proxy.engine", {"_speedups"}),
    ("activator.autoscaler", {"_speedups"}),
    ("activator.activator", {"_speedups", "proxy.engine", "proxy"}),
    ("activator.runtime", {"_speedups", "proxy.engine", "proxy", "activator.activator",
                           "activator.autoscaler", "entry"}),
    ("proxy", {"_speedups", "proxy.engine"}),
    ("activator", {"_speedups", "activator.activator", "activator.autoscaler",
                   "activator.runtime", "proxy", "entry"}),  # the package's lazy __init__
]


def room_of(module: str) -> str:
    if module in ENTRY_POINTS:
        return "entry"
    for room, _ in ROOMS:
        if module == room or module.startswith(room + "."):
            return room
    raise AssertionError(f"{module} is in no room")


def allowed(importer: str, imported: str) -> bool:
    src, dst = room_of(importer), room_of(imported)
    if src == "entry":
        return True
    if src == dst:
        return True
    return dst in dict(ROOMS)[src]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_CIMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+cimport|cimport\s+([\w.]+))", re.M)


def imports_of(path: Path) -> set[str]:
    text = path.read_text()
    found: set[str] = set()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                # ``from proxy.engine import states``: the module itself is the target.
                found.update(f"{node.module}.{a.name}" for a in node.names)
    else:
        for m in _CIMPORT.finditer(text):
            found.add(m.group(1) or m.group(2))
    ours = {name for name in found if name.split(".")[0] in PACKAGES}
    return {name for name in ours if _is_module(name)}


def _is_module(name: str) -> bool:
    base = REPO.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists() or \
        base.with_suffix(".pyx").exists() or base.with_suffix(".pxd").exists()


def graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*")):
            if path.suffix in (".py", ".pyx", ".pxd", ".pyi") and "build" not in path.parts:
                out.setdefault(module_name(path), set()).update(imports_of(path))
    return out


def test_every_arrow_points_down() -> None:
    back = sorted(
        f"{importer} -> {imported} ({room_of(importer)} may not import {room_of(imported)})"
        for importer, targets in graph().items()
        for imported in targets
        if not allowed(importer, imported)
    )
    assert back == []


def test_nothing_but_the_entry_point_imports_the_runtime() -> None:
    outside = sorted(
        f"{importer} -> {imported}"
        for importer, targets in graph().items()
        for imported in targets
        if room_of(imported) == "activator.runtime"
        and room_of(importer) not in ("activator.runtime", "entry")
        and importer != "activator"
    )
    assert outside == []


def test_the_graph_is_read() -> None:
    # The test above would pass on an empty graph: make sure it saw the known arrows.
    g = graph()
    assert "proxy.engine.timeouts" in g["proxy.engine.deadlines"]
    assert "_speedups.errors" in g["_speedups._h1_py"]
    assert "activator.activator.throttler" in g["activator.activator.app"]
    assert "proxy.engine.server" in g["proxy.headers"]  # a cimport, from the .pxd
    assert not allowed("proxy.engine.server", "proxy.headers")
    assert not allowed("activator.autoscaler.decider", "activator.activator.stats")
    assert not allowed("_speedups.head", "proxy.engine.server")


def _loaded_after(statement: str) -> list[str]:
    code = (f"import sys; {statement}; print('\\n'.join(sorted(m for m in sys.modules "
            f"if m.split('.')[0] in {PACKAGES!r})))")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("statement", [
    "import activator.activator.throttler",
    "import activator.activator.lb",
    "import activator.autoscaler.decider",
    "from activator.autoscaler import Decider, MetricObserver",
    "import proxy.breaker",
    "import proxy.stats",
    "from proxy import Breaker",
])
def test_importing_a_core_loads_no_server(statement: str) -> None:
    loaded = _loaded_after(statement)
    servers = [m for m in loaded if m.startswith(("proxy.engine.server", "proxy.app",
                                                  "activator.activator.app",
                                                  "activator.runtime"))]
    assert servers == [], f"{statement} loaded {servers}"


def test_the_autoscaler_loads_nothing_of_the_activator_or_proxy() -> None:
    loaded = _loaded_after("import activator.autoscaler.decider")
    assert [m for m in loaded if m.startswith(("proxy", "activator.activator",
                                               "activator.runtime"))] == []


def test_lazy_exports_resolve() -> None:
    # Every name a package exports lazily resolves, and matches its TYPE_CHECKING import.
    import importlib

    for package in ("proxy", "proxy.engine", "activator", "activator.activator",
                    "activator.autoscaler", "activator.runtime"):
        mod = importlib.import_module(package)
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{package}.{name}"
        source = (REPO.joinpath(*package.split(".")) / "__init__.py").read_text()
        tree = ast.parse(source)
        typed: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
                for sub in ast.walk(node):
                    if isinstance(sub, ast.ImportFrom):
                        typed.update(a.asname or a.name for a in sub.names)
        assert typed == set(mod.__all__), package
