"""Fixtures for the activator's end-to-end tests: a pod shared by a module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import App, LoopThread, QueueProxyPod


@pytest.fixture(scope="module")
def pod_app(app_loop: LoopThread) -> Iterator[App]:
    """One App for the module's shared pod; tests tell their requests apart by target."""
    a = App()
    app_loop.run(a.start())
    yield a
    app_loop.run(a.stop())


@pytest.fixture(scope="module")
def pod(pod_app: App) -> Iterator[QueueProxyPod]:
    """A CC=0 queue-proxy process (not tracing) in front of ``pod_app``, shared by the
    module's tests."""
    p = QueueProxyPod(pod_app.port)
    yield p
    p.stop()
