"""The gRPC readiness probe (Knative's ``GRPCProbe``): ``grpc.health.v1.Health/Check`` over
h2c against a real grpcio server; ready only on SERVING, for the probe's service name."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest
from grpc_health.v1 import health_pb2
from support import free_port, request

from proxy.readiness import ReadinessProbe, health_request, health_status

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import grpc_echo  # noqa: E402

STANDARD = {"periodSeconds": 1, "timeoutSeconds": 2}
HEALTH = [("User-Agent", "kube-probe/1.30"), ("K-Network-Probe", "queue")]


@pytest.fixture
def grpc_app() -> Any:
    server, port, echo, checker = grpc_echo.serve()
    yield port, checker
    server.stop(0)


def probe(spec: dict) -> bool:
    async def main() -> bool:
        return await ReadinessProbe([spec]).probe()

    return asyncio.run(main())


def test_wire_format_matches_protobuf() -> None:
    for service in ("", "echo.Echo", "x" * 300):
        want = health_pb2.HealthCheckRequest(service=service).SerializeToString()
        assert health_request(service) == want
    for status in (0, 1, 2, 3):
        msg = health_pb2.HealthCheckResponse(status=status).SerializeToString()
        assert health_status(msg) == status


@pytest.mark.parametrize("service", [None, "", "echo.Echo"])
def test_serving_is_ready(grpc_app: Any, service: str | None) -> None:
    port, _ = grpc_app
    action: dict[str, Any] = {"port": port}
    if service is not None:
        action["service"] = service
    assert probe({"grpc": action, **STANDARD}) is True


def test_unknown_service_is_not_ready(grpc_app: Any) -> None:
    port, _ = grpc_app
    assert probe({"grpc": {"port": port, "service": "no.Such"}, **STANDARD}) is False


def test_not_serving_is_not_ready(grpc_app: Any) -> None:
    port, checker = grpc_app
    checker.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe({"grpc": {"port": port}, **STANDARD}) is False
    checker.set("", health_pb2.HealthCheckResponse.SERVING)
    assert probe({"grpc": {"port": port}, **STANDARD}) is True


def test_closed_port_is_not_ready() -> None:
    assert probe({"grpc": {"port": free_port()}, **STANDARD}) is False


def test_an_http1_server_is_not_ready(app: Any) -> None:
    # An app that does not speak HTTP/2 answers the preface with garbage or closes.
    assert probe({"grpc": {"port": app.port}, **STANDARD}) is False


def test_aggressive_probe_passes(grpc_app: Any) -> None:
    port, _ = grpc_app
    assert probe({"grpc": {"port": port}, "periodSeconds": 0}) is True


def test_queue_proxy_health_follows_the_grpc_probe(make_proxy: Any, grpc_app: Any) -> None:
    port, checker = grpc_app
    proxy = make_proxy(user_port=port,
                       readiness_probe=json.dumps({"grpc": {"port": port}, **STANDARD}))
    r = request(proxy.port, "GET", "/", HEALTH)
    assert r.status == 200, r
    checker.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    r = request(proxy.port, "GET", "/", HEALTH)
    assert r.status == 503, r


# ---------------------------------------------------------------------------- HTTP/2 detection


def http_probe(port: int, auto: bool, path: str = "/ready") -> bool:
    spec = {"httpGet": {"port": port, "path": path}, **STANDARD}

    async def main() -> bool:
        return await ReadinessProbe([spec], http2_auto=auto).probe()

    return asyncio.run(main())


def test_auto_detection_probes_an_h2c_app_over_http2(h2app: Any) -> None:
    assert http_probe(h2app.port, auto=True) is True
    seen = h2app.requests[-1]
    assert seen.get("path") == "/ready"  # an HTTP/2 stream (HTTP/1.1 ones carry no path here)
    assert dict(seen["headers"])["user-agent"].startswith("kube-probe/")


def test_auto_detection_falls_back_to_http11(app: Any) -> None:
    assert http_probe(app.port, auto=True, path="/echo") is True
    assert app.requests[-1].path == "/echo" and app.requests[-1].version == "HTTP/1.1"


def test_without_auto_detection_the_probe_is_http11(h2app: Any) -> None:
    assert http_probe(h2app.port, auto=False) is True
    assert h2app.requests[-1] == {"method": "GET", "http2": False}


def test_queue_proxy_passes_the_flag(make_proxy: Any, h2app: Any) -> None:
    spec = {"httpGet": {"port": h2app.port, "path": "/ready"}, **STANDARD}
    proxy = make_proxy(user_port=h2app.port, readiness_probe=json.dumps(spec),
                       enable_http2_auto_detection=True)
    r = request(proxy.port, "GET", "/", HEALTH)
    assert r.status == 200, r
    assert h2app.requests[-1].get("path") == "/ready"
