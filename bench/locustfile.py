"""Locust users for the local runtime (``python -m activator run``): GET through its front door.

    locust -f bench/locustfile.py --headless -u 20 -r 20 -t 20s --host http://127.0.0.1:8080

``SERVICE_HOST`` is the Host header (default ``hello.default.example.com``) and ``SERVICE_PATH``
the path (default ``/``; ``/?sleep=200`` with examples/slow.yaml). ``bench/runtime_load.py`` runs
the whole thing: runtime, cold start, locust, table.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

HOST_HEADER = os.environ.get("SERVICE_HOST", "hello.default.example.com")
PATH = os.environ.get("SERVICE_PATH", "/")


class ServiceUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        with self.client.get(PATH, headers={"Host": HOST_HEADER}, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
