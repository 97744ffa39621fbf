"""The local runtime expands ``$(VAR)`` in a container's command and args, as the kubelet does:
against the container's env and the pod's PORT/K_* variables."""

from __future__ import annotations

import asyncio

import pytest
from support import request

from activator.runtime.manifest import load_services
from activator.runtime.runtime import Runtime

SERVICE = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: argy}
spec:
  template:
    spec:
      containers:
        - command: ["sh", "-c"]
          args: ["PORT=$(PORT) TARGET=$(WHO)-$(K_REVISION) exec python -m proxy.sample_app"]
          env: [{name: WHO, value: expanded}]
"""


@pytest.mark.timeout(60)
def test_command_and_args_expand_pod_and_container_variables() -> None:
    async def main() -> tuple[int, bytes]:
        rt = Runtime(load_services(SERVICE), port=0, say=lambda line: None)
        await rt.start()
        try:
            loop = asyncio.get_running_loop()
            r = await loop.run_in_executor(None, lambda: request(
                rt.ports["http"], headers=[("Host", "argy.default.example.com")]))
            return r.status, r.body
        finally:
            await rt.stop()

    assert asyncio.run(main()) == (200, b"Hello expanded-argy-00001!\n")
