"""Build hook: compiles the Cython speedups when a compiler and Cython are there.

Extensions are optional: without a compiler (or with DATAPLANE_NO_EXTENSIONS=1 at build time)
the package installs pure Python, and the selector modules in ``_speedups`` fall back to the
pure twins.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _engine_modules() -> tuple:
    """``_speedups._select.ENGINE_MODULES``, read without importing the package."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_speedups", "_select.py")
    spec = importlib.util.spec_from_file_location("_dataplane_select", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.ENGINE_MODULES


ENGINE_MODULES = _engine_modules()
SPEEDUPS = ["_speedups._head_c", "_speedups._accounting_c", "_speedups._h1_c"]


class OptionalBuildExt(build_ext):
    """A failing extension build warns instead of failing the install."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:  # PERF: one compiler per core (the engine is 15 modules)
            self.parallel = os.cpu_count() or 1

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the machine
            self.warn(f"speedups not built, using pure Python: {exc}")

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover - depends on the machine
            self.warn(f"speedup {ext.name} not built, using pure Python: {exc}")


def extensions() -> list:
    if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    from setuptools import Extension

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


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
