"""A small gRPC app: an echo service with the four call shapes, and the standard health service.

Messages are raw bytes (no generated code): a request ``b"..."`` is answered with the same bytes,
except a few commands that tests and the example use:

- ``fail:CODE:message``: the call ends with that status code (a ``grpc.StatusCode`` name);
- ``sleep:SECONDS``: answers after that long, unless the call is cancelled first (counted in
  ``Echo.cancelled``);
- ``big:N``: answers N bytes;
- ``active``: answers the number of calls running now (``Echo.peak``: the most at once).

Run it alone with ``python examples/grpc_echo.py`` (it listens on ``$PORT``, 8080 by default, as
a Knative container does); tests start it in-process with ``serve(port)``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "echo.Echo"


class Echo:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.cancelled = 0
        self.metadata: list[tuple[tuple[str, str], ...]] = []

    def _enter(self, context: Any) -> None:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
            self.metadata.append(tuple(context.invocation_metadata()))

    def _leave(self) -> None:
        with self.lock:
            self.active -= 1

    def _answer(self, data: bytes, context: Any) -> bytes:
        if data.startswith(b"fail:"):
            _, code, message = data.decode().split(":", 2)
            context.abort(getattr(grpc.StatusCode, code), message)
        if data.startswith(b"sleep:"):
            deadline = time.monotonic() + float(data[6:])
            while time.monotonic() < deadline:
                if not context.is_active():
                    with self.lock:
                        self.cancelled += 1
                    return b""
                time.sleep(0.01)
            return b"slept"
        if data.startswith(b"big:"):
            return b"x" * int(data[4:])
        if data == b"active":
            with self.lock:
                return str(self.active).encode()
        return data

    def unary(self, request: bytes, context: Any) -> bytes:
        self._enter(context)
        try:
            return self._answer(request, context)
        finally:
            self._leave()

    def server_stream(self, request: bytes, context: Any) -> Iterator[bytes]:
        """``N:text``: N answers ``text-0`` .. ``text-N-1``."""
        self._enter(context)
        try:
            count, _, text = request.partition(b":")
            for i in range(int(count)):
                yield text + b"-%d" % i
        finally:
            self._leave()

    def client_stream(self, requests: Iterator[bytes], context: Any) -> bytes:
        """The requests joined with ``|``."""
        self._enter(context)
        try:
            return b"|".join(requests)
        finally:
            self._leave()

    def bidi(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        """Each request answered as it comes (commands as for Unary)."""
        self._enter(context)
        try:
            for r in requests:
                yield self._answer(r, context)
        finally:
            self._leave()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
                "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            },
        )


def serve(port: int = 0, host: str = "127.0.0.1",
          serving: bool = True) -> tuple[grpc.Server, int, Echo, health.HealthServicer]:
    """Starts the app; returns the server, its port, the echo service and the health servicer
    (``set("", NOT_SERVING)`` makes the readiness probe fail)."""
    echo = Echo()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[("grpc.max_receive_message_length", 64 << 20),
                 ("grpc.max_send_message_length", 64 << 20)],
    )
    server.add_generic_rpc_handlers((echo.handler(),))
    checker = health.HealthServicer()
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    checker.set("", status)
    checker.set(SERVICE, status)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    return server, bound, echo, checker


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    server, bound, _echo, _health = serve(port, host="0.0.0.0")
    print(f"grpc echo listening on :{bound}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
