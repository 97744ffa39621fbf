"""Whether compiled twins may be used: CPython, and DATAPLANE_NO_EXTENSIONS unset."""

from __future__ import annotations

import os
import platform


def compiled_allowed() -> bool:
    return not os.environ.get("DATAPLANE_NO_EXTENSIONS") and (
        platform.python_implementation() == "CPython"
    )
