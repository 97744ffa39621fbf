"""Fixtures of the HTTP/2 tests: the h2c test app (``h2_app.H2App``) on the app loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def h2app(app_loop: Any) -> Iterator[Any]:
    from h2_app import H2App

    a = H2App(app_loop)
    yield a
    a.stop()
