"""Build hook: compiles the Cython speedups when a compiler and Cython are there.

Extensions are optional: without a compiler (or with DATAPLANE_NO_EXTENSIONS=1 at build time)
the package installs pure Python, and the selector modules in ``_speedups`` fall back to the
pure twins.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext

SPEEDUPS = ["_speedups._head_c", "_speedups._accounting_c", "_speedups._h1_c"]


class OptionalBuildExt(build_ext):
    """A failing extension build warns instead of failing the install."""

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

    exts = [
        Extension(name, [name.replace(".", "/") + ".pyx"], optional=True) for name in SPEEDUPS
    ]
    return cythonize(exts, compiler_directives={"language_level": "3"}, quiet=True)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
