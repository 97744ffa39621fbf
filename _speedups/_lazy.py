"""Lazy package exports: a package ``__init__`` names what it exports and where it lives, and
nothing is imported until a name is used (PEP 562), so importing a sans-IO core loads no server.

Usage, in a package ``__init__``::

    __getattr__, __dir__ = lazy_exports(__name__, {"Activator": "activator.activator.app"})

Type checkers do not run ``__getattr__``: each such ``__init__`` also imports the same names
under ``if TYPE_CHECKING:``, and a test holds the two lists equal.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a name to its module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # the next lookup does not come here
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
