"""Readiness of the user container, from ``SERVING_READINESS_PROBE`` (Kubernetes Probe JSON).

Mirrors knative/serving pkg/queue/readiness and pkg/queue/health:

- ``tcpSocket``: a connect within the timeout;
- ``httpGet``: ``GET`` of the path (query kept) with the configured headers and
  ``User-Agent: kube-probe//``, no keep-alive, as Go's ``http.Client`` sends it: redirects
  followed (up to 10), a ``Host`` entry never written (the Host line is the URL's), ``HTTPS``
  verified against the system's roots (Go's default transport); ready on a final 200-399;
- ``grpc``: ``grpc.health.v1.Health/Check`` over h2c to 127.0.0.1 on the probe's port, with its
  ``service`` (empty by default); ready only on ``SERVING`` (Knative's ``GRPCProbe``);
- ``exec``: not supported by Knative's queue-proxy: not ready.

With ENABLE_HTTP2_AUTO_DETECTION an ``httpGet`` probe first tries the GET over h2c (prior
knowledge) and takes a ready answer there; anything else falls back to HTTP/1.1.

``periodSeconds`` 0 is Knative's aggressive mode: try every 50 ms
(QUEUE_READINESS_RETRY_INTERVAL, not Knative's, changes that: the local runtime uses 5 ms, as a
cold start waits on it), each try bounded by 100 ms, for up to 10 s, until ``successThreshold``
consecutive passes. Otherwise one try bounded by ``timeoutSeconds``. With several probes
(ENABLE_MULTI_CONTAINER_PROBES, a JSON array) all must pass. Concurrent callers share the probe
in flight, as Knative's ``gateValue`` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

__all__ = ["ReadinessProbe", "decode_probes", "ProbeError"]

log = logging.getLogger("proxy.readiness")

AGGRESSIVE_TRY_TIMEOUT = 0.1
AGGRESSIVE_POLL_TIMEOUT = 10.0
RETRY_INTERVAL = 0.05
KUBE_PROBE_UA = b"kube-probe//"


class ProbeError(ValueError):
    """SERVING_READINESS_PROBE cannot be decoded."""


def decode_probes(raw: str, multi: bool) -> list[dict[str, Any]]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ProbeError(f"SERVING_READINESS_PROBE: invalid JSON: {exc}") from None
    probes = value if multi else [value]
    if not isinstance(probes, list) or not all(isinstance(p, dict) for p in probes):
        raise ProbeError("SERVING_READINESS_PROBE: expected a probe object (or a list of them)")
    return probes


def _port(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProbeError(f"probe port {value!r} is not a number") from None


class _Single:
    """One Kubernetes probe and its consecutive-success count."""

    def __init__(self, spec: dict[str, Any], default_host: str,
                 retry_interval: float = RETRY_INTERVAL, http2_auto: bool = False) -> None:
        self.spec = spec
        self.http2_auto = http2_auto
        self.retry_interval = retry_interval
        self.period = int(spec.get("periodSeconds") or 0)
        self.timeout = float(spec.get("timeoutSeconds") or 1)
        self.success_threshold = int(spec.get("successThreshold") or 1)
        self.count = 0
        self.poll_timeout = AGGRESSIVE_POLL_TIMEOUT
        self.default_host = default_host
        self.kind, self.check = self._build(spec)

    def _build(self, spec: dict[str, Any]) -> tuple[str, Callable[[float], Awaitable[None]]]:
        try:
            if spec.get("httpGet") is not None:
                return "httpGet", self._http(spec["httpGet"])
            if spec.get("tcpSocket") is not None:
                return "tcpSocket", self._tcp(spec["tcpSocket"])
            if spec.get("grpc") is not None:
                return "grpc", self._grpc(spec["grpc"])
        except ProbeError as exc:
            # A named port (Kubernetes resolves those, we cannot): never ready, as Knative.
            return "none", _fail(str(exc))
        if spec.get("exec") is not None:
            return "exec", _fail("exec probe not supported")
        return "none", _fail("no probe found")

    def _tcp(self, action: dict[str, Any]) -> Callable[[float], Awaitable[None]]:
        host = action.get("host") or self.default_host
        port = _port(action.get("port"))

        async def check(timeout: float) -> None:
            _r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            w.close()

        return check

    def _http(self, action: dict[str, Any]) -> Callable[[float], Awaitable[None]]:
        host = action.get("host") or self.default_host
        port = _port(action.get("port"))
        scheme = str(action.get("scheme") or "HTTP").lower()
        if scheme not in ("http", "https"):
            return _fail(f"unsupported probe scheme {scheme!r}")
        path = "/" + str(action.get("path") or "").lstrip("/")
        extra = []
        for h in action.get("httpHeaders") or []:
            name, value = str(h.get("name", "")), str(h.get("value", ""))
            # Go's Request.Write: the Host line comes from the URL, a Host in Header is never
            # written; User-Agent is the first one added (kube-probe//).
            if name.lower() not in ("host", "user-agent"):
                extra.append(f"{name}: {value}")
        authority = _join_host_port(host, port)
        h2_headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", path.encode()),
                      (b":authority", authority.encode("latin-1")),
                      (b"user-agent", KUBE_PROBE_UA)]
        h2_headers += [(n.lower().encode("latin-1"), v.encode("latin-1"))
                       for n, _, v in (e.partition(": ") for e in extra)]

        async def check(timeout: float) -> None:
            if self.http2_auto and scheme == "http":
                # ENABLE_HTTP2_AUTO_DETECTION (Knative's detectHTTPProtocolVersion): a GET over
                # h2c first; a ready answer there passes, anything else falls back to HTTP/1.1.
                try:
                    status = await asyncio.wait_for(h2c_get(host, port, h2_headers), timeout)
                    if 200 <= status < 400:
                        return
                except (OSError, asyncio.TimeoutError, ValueError):
                    pass
            await asyncio.wait_for(http_probe(f"{scheme}://{authority}{path}", extra), timeout)

        return check

    def _grpc(self, action: dict[str, Any]) -> Callable[[float], Awaitable[None]]:
        port = _port(action.get("port"))
        service = str(action.get("service") or "")

        async def check(timeout: float) -> None:
            await asyncio.wait_for(grpc_health_check("127.0.0.1", port, service), timeout)

        return check

    async def run(self) -> bool:
        if self.period > 0:
            try:
                await self.check(self.timeout)
                return True
            except (OSError, asyncio.TimeoutError, ValueError) as exc:
                log.info("readiness probe failed: %s", exc)
                return False
        # Aggressive: every 50 ms for up to 10 s, until successThreshold passes in a row.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_timeout
        while True:
            started = loop.time()
            try:
                await self.check(AGGRESSIVE_TRY_TIMEOUT)
                self.count += 1
                if self.count >= self.success_threshold:
                    return True
            except (OSError, asyncio.TimeoutError, ValueError):
                self.count = 0
            if self.kind in ("exec", "none") or loop.time() >= deadline:
                return False
            await asyncio.sleep(max(0.0, self.retry_interval - (loop.time() - started)))


MAX_REDIRECTS = 10  # Go's http.Client follows this many, then fails


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def http_probe(url: str, extra: list[str]) -> None:
    """Knative's HTTPProbe over HTTP/1.1: GET ``url`` as Go's ``http.Client`` does it (its
    redirects followed, up to 10; HTTPS verified against the system's roots, as Go's default
    transport); ready on a final 200-399. Raises otherwise."""
    for _ in range(MAX_REDIRECTS + 1):
        status, location = await _get_once(url, extra)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        if not 200 <= status < 400:
            raise ConnectionError(f"HTTP probe did not respond Ready, got status code: {status}")
        return
    raise ConnectionError(f"stopped after {MAX_REDIRECTS} redirects")


async def _get_once(url: str, extra: list[str]) -> tuple[int, str]:
    """One GET: the status and the Location (empty if none)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"unsupported probe URL {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}",
             "User-Agent: " + KUBE_PROBE_UA.decode(), *extra, "Connection: close"]
    ctx = ssl.create_default_context() if https else None
    r, w = await asyncio.open_connection(parts.hostname, port, ssl=ctx,
                                         server_hostname=parts.hostname if https else None)
    try:
        w.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        status_line = await r.readline()
        fields = status_line.split(None, 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise ConnectionError("malformed probe response")
        location = ""
        while True:
            line = await r.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"location" and not location:
                location = value.strip().decode("latin-1")
        return int(fields[1]), location
    finally:
        w.close()


def _fail(reason: str) -> Callable[[float], Awaitable[None]]:
    async def check(timeout: float) -> None:
        raise ValueError(reason)

    return check


class ReadinessProbe:
    """Probes the user container; concurrent ``probe()`` calls share one probe in flight.
    ``http2_auto`` (ENABLE_HTTP2_AUTO_DETECTION): HTTP probes try h2c first."""

    def __init__(self, probes: list[dict[str, Any]], default_host: str = "127.0.0.1",
                 retry_interval: float = RETRY_INTERVAL, http2_auto: bool = False) -> None:
        self.probes = [_Single(p, default_host, retry_interval, http2_auto) for p in probes]
        self._inflight: asyncio.Future[bool] | None = None

    @classmethod
    def from_config(cls, raw: str, multi: bool, retry_interval: float = RETRY_INTERVAL,
                    http2_auto: bool = False) -> ReadinessProbe | None:
        if not raw:
            return None
        return cls(decode_probes(raw, multi), retry_interval=retry_interval,
                   http2_auto=http2_auto)

    def probe(self) -> asyncio.Future[bool]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._probe_all())
        return self._inflight

    async def _probe_all(self) -> bool:
        results = await asyncio.gather(*(p.run() for p in self.probes))
        return all(results)


# --------------------------------------------------------------------------------------------
# The gRPC health check, over h2c with the h2 library (no gRPC runtime needed)

_HEALTH_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
_GRPC_CODES = {1: "Canceled", 2: "Unknown", 4: "DeadlineExceeded", 5: "NotFound",
               12: "Unimplemented", 13: "Internal", 14: "Unavailable"}


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint in the health response")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def health_request(service: str) -> bytes:
    """``grpc.health.v1.HealthCheckRequest{service}`` in protobuf wire format."""
    raw = service.encode()
    if not raw:
        return b""
    out = bytearray(b"\x0a")
    n = len(raw)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + raw


def health_status(message: bytes) -> int:
    """The ``status`` (field 1) of a ``HealthCheckResponse``; 0 (UNKNOWN) when absent."""
    i = 0
    status = 0
    while i < len(message):
        key, i = _varint(message, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(message, i)
            if field == 1:
                status = value
        elif wire == 2:
            n, i = _varint(message, i)
            i += n
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError("malformed health response")
    return status


async def h2c_exchange(host: str, port: int, headers: list[tuple[bytes, bytes]],
                       body: bytes | None = None) -> tuple[dict[bytes, bytes], bytes]:
    """One request over h2c (prior knowledge), read whole: the response's head and trailers
    (one dict) and its body. ``ValueError`` if the peer does not speak HTTP/2, ``OSError`` if
    the stream or the connection is refused or closed."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import (
        ConnectionTerminated,
        DataReceived,
        ResponseReceived,
        StreamEnded,
        StreamReset,
        TrailersReceived,
    )
    from h2.exceptions import H2Error

    reader, writer = await asyncio.open_connection(host, port)
    try:
        conn = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, headers, end_stream=body is None)
        if body is not None:
            conn.send_data(1, body, end_stream=True)
        writer.write(conn.data_to_send())
        head: dict[bytes, bytes] = {}
        got = b""
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed before a whole HTTP/2 answer")
            try:
                events = conn.receive_data(data)
            except H2Error as exc:
                raise ValueError(f"not HTTP/2: {exc}") from None
            for ev in events:
                if isinstance(ev, (ResponseReceived, TrailersReceived)):
                    head.update(ev.headers)
                elif isinstance(ev, DataReceived):
                    got += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, StreamEnded):
                    return head, got
                elif isinstance(ev, (StreamReset, ConnectionTerminated)):
                    raise ConnectionError("the HTTP/2 request was refused")
            writer.write(conn.data_to_send())
    finally:
        writer.close()


async def h2c_get(host: str, port: int, headers: list[tuple[bytes, bytes]]) -> int:
    """One request over h2c (prior knowledge); returns its status."""
    head, _body = await h2c_exchange(host, port, headers)
    return int(head.get(b":status", b"0"))


async def grpc_health_check(host: str, port: int, service: str) -> None:
    """One ``grpc.health.v1.Health/Check``; returns if the answer is SERVING, else raises
    ``ValueError`` (or ``OSError``) with Knative's wording."""
    msg = health_request(service)
    try:
        head, body = await h2c_exchange(host, port, [
            (b":method", b"POST"), (b":scheme", b"http"),
            (b":path", b"/grpc.health.v1.Health/Check"),
            (b":authority", f"{host}:{port}".encode()),
            (b"content-type", b"application/grpc"), (b"te", b"trailers"),
            (b"user-agent", KUBE_PROBE_UA),
        ], b"\0" + len(msg).to_bytes(4, "big") + msg)
    except (ValueError, ConnectionError) as exc:
        raise type(exc)(f"health rpc probe failed: {exc}") from None
    if head.get(b":status") != b"200":
        raise ValueError(f"health rpc probe failed: HTTP status {head.get(b':status')!r}")
    code = int(head.get(b"grpc-status", b"2"))
    if code == 12:
        raise ValueError("this server does not implement the grpc health protocol "
                         "(grpc.health.v1.Health)")
    if code != 0:
        why = head.get(b"grpc-message", b"").decode("utf-8", "replace")
        raise ValueError(f"health rpc probe failed: rpc error: code = "
                         f"{_GRPC_CODES.get(code, code)} desc = {why}")
    if len(body) < 5:
        raise ValueError("health rpc probe failed: no response message")
    size = int.from_bytes(body[1:5], "big")
    status = health_status(body[5:5 + size])
    if status != 1:
        name = _HEALTH_NAMES.get(status, status)
        raise ValueError(f'service unhealthy (responded with "{name}")')
