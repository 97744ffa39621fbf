"""An OTLP collector stand-in for the tracing tests (the queue-proxy's and the activator's).

The stand-ins decode what they receive with the ``opentelemetry-proto`` messages: ``OtlpHttp`` is
an http/protobuf endpoint (``POST /v1/traces``), ``OtlpGrpc`` a gRPC ``TraceService``. Each span
becomes a plain dict (name, kind, scope and its version, ids, times, error, attributes).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from support import wait_for

pb = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

SERVER, CLIENT, INTERNAL = 2, 3, 1  # OTLP Span.SpanKind
HTTP_SCOPE = "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
OTEL_VARS = ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_ENDPOINT",
             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "POD_NAME")


# ---------------------------------------------------------------------------- collector stand-ins


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


class Collector:
    """Spans received, decoded into plain dicts."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.posts: list[tuple[str, str]] = []  # (path, content type) of each export
        self.resource: dict[str, Any] = {}
        self.lock = threading.Lock()

    def take(self, req: Any) -> None:
        with self.lock:
            for rs in req.resource_spans:
                self.resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append({
                            "name": s.name, "kind": s.kind, "scope": ss.scope.name,
                            "scope_version": ss.scope.version,
                            "trace": s.trace_id.hex(), "span": s.span_id.hex(),
                            "parent": s.parent_span_id.hex(), "tracestate": s.trace_state,
                            "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                            "error": s.status.code == 2, "message": s.status.message,
                            "attrs": {a.key: _value(a.value) for a in s.attributes},
                        })

    def named(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["name"] == name]

    def trace(self, trace_id: str) -> dict[str, dict[str, Any]]:
        """The spans of one trace by name (each name once in the traces these tests make)."""
        with self.lock:
            return {s["name"]: s for s in self.spans if s["trace"] == trace_id}

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.spans) >= count, timeout=timeout)
        with self.lock:
            return list(self.spans)


class OtlpHttp(Collector):
    """An OTLP http/protobuf endpoint."""

    def __init__(self) -> None:
        super().__init__()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                collector.posts.append((self.path, self.headers.get("Content-Type", "")))
                collector.take(pb.ExportTraceServiceRequest.FromString(body))
                out = pb.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class OtlpGrpc(Collector):
    """An OTLP gRPC ``TraceService``."""

    def __init__(self) -> None:
        super().__init__()
        import grpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as rpc

        collector = self

        class Service(rpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's name
                collector.take(request)
                return pb.ExportTraceServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        rpc.add_TraceServiceServicer_to_server(Service(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self.server.stop(0)


# Fixtures, registered in a test module by importing them: ``otlp`` (an http/protobuf collector)
# and ``otel_env``.


@pytest.fixture(name="otlp")
def otlp_fixture() -> Iterator[OtlpHttp]:
    c = OtlpHttp()
    yield c
    c.close()


@pytest.fixture(name="otel_env")
def otel_env_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short batch delay, and none of the runner's OTEL_* settings."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    for var in OTEL_VARS:
        monkeypatch.delenv(var, raising=False)


def traceparent(trace: str = TRACE_ID, parent: str = PARENT_ID, flags: str = "01") -> str:
    return f"00-{trace}-{parent}-{flags}"
