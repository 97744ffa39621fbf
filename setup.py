"""Build hook: compiles the Cython speedups when a compiler and Cython are there.

Extensions are optional: without a compiler (or with DATAPLANE_NO_EXTENSIONS=1 at build time)
the package installs pure Python, and the selector modules in ``_speedups`` fall back to the
pure twins.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


def _load_select():  # type: ignore[no-untyped-def]
    """``_speedups/_select.py``, loaded without importing the package."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_speedups", "_select.py")
    spec = importlib.util.spec_from_file_location("_dataplane_select", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_SELECT = _load_select()
ENGINE_MODULES = _SELECT.ENGINE_MODULES
SPEEDUPS = list(_SELECT.UNIT_MODULES)
ROOT = os.path.dirname(os.path.abspath(__file__))
# Module -> the hash of its sources, taken before Cython reads them: a source edited while the
# build runs then leaves its module stamped stale, never a stale module stamped fresh.
HASHES: dict[str, str] = {}


class OptionalBuildExt(build_ext):
    """A failing extension build warns instead of failing the install. Each module built is
    stamped with the hash of its sources in ``_speedups/_stamps.py`` of the tree it is built into
    (the work tree in place, else build_lib and so the wheel), so that an import can tell a stale
    build from a fresh one (``_speedups/_select.py``)."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:  # PERF: one compiler per core (the engine is 15 modules)
            self.parallel = os.cpu_count() or 1
        self._built: set[str] = set()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the machine
            self.warn(f"speedups not built, using pure Python: {exc}")
        if self.extensions:  # nothing to build (no Cython): the stamps still tell the truth
            self._write_stamps()

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        if self._fresh(ext.name):
            # Built in place from these very sources already (its stamp says so): a second
            # `pip install -e .` (another extra, say) does not compile it again.
            self._built.add(ext.name)
            return
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover - depends on the machine
            self.warn(f"speedup {ext.name} not built, using pure Python: {exc}")
        else:
            self._built.add(ext.name)

    def _fresh(self, name: str) -> bool:
        """True when the work tree holds this module built from these very sources (its stamp
        in the tree's ``_speedups/_stamps.py`` says so): it is used as it is (copied to where
        this build puts it, for an editable or wheel build) rather than compiled again."""
        if os.environ.get("DATAPLANE_REBUILD"):
            return False
        relative = self.get_ext_filename(name)
        built = os.path.join(ROOT, relative)
        stamps = _SELECT.read_stamps(os.path.join(ROOT, _SELECT.STAMPS_FILE))
        if not os.path.isfile(built) or stamps.get(name) != (HASHES.get(name) or _hash(name)):
            return False
        target = self.get_ext_fullpath(name)
        if os.path.abspath(target) != os.path.abspath(built):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(built, target)
        return True

    def _write_stamps(self) -> None:
        """Stamps what this run built; drops what it failed to build (the module there, if any,
        is older); keeps the stamps of modules it was not asked to build."""
        path = os.path.join(os.path.dirname(self.get_ext_fullpath("_speedups._head_c")),
                            "_stamps.py")
        stamps = _SELECT.read_stamps(path)
        for ext in self.extensions:
            stamps.pop(ext.name, None)
            if ext.name in self._built:
                stamps[ext.name] = HASHES.get(ext.name) or _hash(ext.name)
        _SELECT.write_stamps(path, stamps)


class BuildPy(build_py):
    """The work tree's ``_speedups/_stamps.py`` tells of the work tree's builds: it never goes
    into build_lib (and so a wheel or an sdist), where build_ext writes the stamps of its own."""

    def find_package_modules(self, package, package_dir):  # type: ignore[no-untyped-def]
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if (m[0], m[1]) != ("_speedups", "_stamps")]

    def find_data_files(self, package, src_dir):  # type: ignore[no-untyped-def]
        # The C that Cython generates is build output, compiled into the wheel's .so: never
        # shipped (docker/build-wheels.sh fails a wheel that carries any).
        files = super().find_data_files(package, src_dir)
        return [f for f in files if not f.endswith(".c")]


def _hash(name: str) -> str:
    return _SELECT.source_hash(_SELECT.sources_of(name, ROOT), ROOT)


def _regenerate_if_stale(names: list[str]) -> None:
    """Cython regenerates a .c only when it is older than its sources; a module whose in-place
    stamp disagrees with its sources (an edit that kept an old mtime, or made while a build ran)
    gets its .c regenerated too, whatever the clocks say."""
    stamps = _SELECT.read_stamps(os.path.join(ROOT, _SELECT.STAMPS_FILE))
    for name in names:
        c_file = os.path.join(ROOT, *name.split(".")) + ".c"
        if stamps.get(name) != HASHES[name] and os.path.isfile(c_file):
            os.utime(c_file, (0, 0))


def extensions() -> list:
    if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    from setuptools import Extension

    HASHES.update((name, _hash(name)) for name in (*SPEEDUPS, *ENGINE_MODULES))
    _regenerate_if_stale([*SPEEDUPS, *ENGINE_MODULES])
    units = [
        Extension(name, [name.replace(".", "/") + ".pyx"], optional=True) for name in SPEEDUPS
    ]
    # The engine modules compile from their own .py, typed by the .pxd beside it (annotations
    # are for mypy and readers, not Cython); the .py itself is their pure twin.
    engine = [
        Extension(name, [name.replace(".", "/") + ".py"], optional=True) for name in ENGINE_MODULES
    ]
    return cythonize(units, compiler_directives={"language_level": "3"}, quiet=True) + cythonize(
        engine, compiler_directives={"language_level": "3", "annotation_typing": False}, quiet=True
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPy})
