"""gRPC end to end over h2c: real grpcio clients, through a queue-proxy (and an activator in front
of it) to a real grpcio server (examples/grpc_echo.py), in both parser modes."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from h2_app import Front, start_front
from support import LoopThread, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
import grpc_echo  # noqa: E402

KINDS = ["queue-proxy", "activator"]


class GrpcFront:
    def __init__(self, front: Front, echo: grpc_echo.Echo) -> None:
        self.front = front
        self.port = front.port
        self.echo = echo
        self.metadata = front.metadata
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{front.port}",
            options=[("grpc.max_receive_message_length", 64 << 20),
                     ("grpc.max_send_message_length", 64 << 20)],
        )

    def unary(self, data: bytes, timeout: float = 10.0) -> bytes:
        call = self.channel.unary_unary("/echo.Echo/Unary")
        return call(data, timeout=timeout, metadata=self.metadata)

    def close(self) -> None:
        self.channel.close()
        self.front.close()


@pytest.fixture
def grpc_app() -> Iterator[tuple[int, grpc_echo.Echo]]:
    server, port, echo, _health = grpc_echo.serve()
    yield port, echo
    server.stop(0)


@pytest.fixture
def make_grpc_front(proxy_loop: LoopThread, grpc_app: Any, backend: str) -> Iterator[Any]:
    """``make_grpc_front(kind, cc=0, timeout=30)``: a queue-proxy in front of the gRPC app, and
    for ``activator`` an activator in front of that queue-proxy."""
    port, echo = grpc_app
    made: list[GrpcFront] = []

    def make(kind: str, cc: int = 0, timeout: float = 30.0) -> GrpcFront:
        f = GrpcFront(start_front(kind, proxy_loop, port, backend, cc, timeout), echo)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


@pytest.fixture(params=KINDS)
def front(request: pytest.FixtureRequest, make_grpc_front: Any) -> GrpcFront:
    return make_grpc_front(request.param)


def test_unary(front: GrpcFront) -> None:
    assert front.unary(b"hello") == b"hello"
    assert front.unary(b"") == b""


def test_server_stream(front: GrpcFront) -> None:
    call = front.channel.unary_stream("/echo.Echo/ServerStream")
    got = list(call(b"5:tick", timeout=10, metadata=front.metadata))
    assert got == [b"tick-%d" % i for i in range(5)]


def test_client_stream(front: GrpcFront) -> None:
    call = front.channel.stream_unary("/echo.Echo/ClientStream")
    assert call(iter([b"a", b"b", b"c"]), timeout=10, metadata=front.metadata) == b"a|b|c"


def test_bidi_stream(front: GrpcFront) -> None:
    call = front.channel.stream_stream("/echo.Echo/Bidi")
    got = list(call(iter([b"one", b"two", b"big:10"]), timeout=10, metadata=front.metadata))
    assert got == [b"one", b"two", b"x" * 10]


def test_error_status_and_message(front: GrpcFront) -> None:
    with pytest.raises(grpc.RpcError) as info:
        front.unary(b"fail:NOT_FOUND:no such thing")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no such thing"


def test_8_mib_messages_both_ways(front: GrpcFront) -> None:
    big = bytes(range(256)) * (8 << 12)  # 8 MiB
    assert front.unary(big) == big
    assert len(front.unary(b"big:%d" % (8 << 20))) == 8 << 20


def test_deadline_reaches_the_app_as_a_cancel(front: GrpcFront) -> None:
    with pytest.raises(grpc.RpcError) as info:
        front.unary(b"sleep:5", timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: front.echo.cancelled >= 1, timeout=5)


def test_health_check_passes_through(front: GrpcFront) -> None:
    stub = health_pb2_grpc.HealthStub(front.channel)
    resp = stub.Check(health_pb2.HealthCheckRequest(service="echo.Echo"), timeout=10,
                      metadata=front.metadata)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("kind", KINDS)
def test_cc1_never_lets_two_streams_in_at_once(make_grpc_front: Any, kind: str) -> None:
    f = make_grpc_front(kind, cc=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            assert f.unary(b"sleep:0.1") == b"slept"
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
    assert f.echo.peak == 1
    assert f.echo.calls == 6
    assert time.monotonic() - start >= 0.5  # six calls of 0.1 s, one at a time
