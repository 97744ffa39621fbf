"""A stand-in OTLP collector for the tracing rows: takes http/protobuf exports and drops them.

The ``trace1`` and ``trace0.1`` variants point the queue-proxy's exporter here, so a row pays
for making, batching, encoding and sending its spans (all in the proxy's process, whose CPU the
row measures) and for nothing a real collector would do. The sink runs in the bench's process,
one thread per connection (the exporter keeps one open), reads each body whole and answers an
empty ``ExportTraceServiceResponse`` (zero bytes of protobuf).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OtlpSink"]


class OtlpSink:
    """``start()`` binds 127.0.0.1 on a free port; ``url`` is the traces endpoint."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the exporter's session reuses it

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                sink.exports += 1
                sink.bytes += length
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self._thread: threading.Thread | None = None

    def start(self) -> OtlpSink:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
