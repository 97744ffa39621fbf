"""Readiness of the user container, from ``SERVING_READINESS_PROBE`` (Kubernetes Probe JSON).

Mirrors knative/serving pkg/queue/readiness and pkg/queue/health:

- ``tcpSocket``: a connect within the timeout;
- ``httpGet``: ``GET`` of the path (query kept) with the configured headers and
  ``User-Agent: kube-probe//``, no keep-alive; ready on 200 <= status < 400;
- ``grpc``: not supported yet (needs h2c): reported not ready, with the reason logged;
- ``exec``: not supported by Knative's queue-proxy: not ready.

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
from collections.abc import Awaitable, Callable
from typing import Any

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
                 retry_interval: float = RETRY_INTERVAL) -> None:
        self.spec = spec
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
        except ProbeError as exc:
            # A named port (Kubernetes resolves those, we cannot): never ready, as Knative.
            return "none", _fail(str(exc))
        if spec.get("grpc") is not None:
            return "grpc", _fail("grpc probe not supported yet (h2c)")
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
        if str(action.get("scheme", "HTTP")).upper() == "HTTPS":
            return _fail("HTTPS probe not supported")
        path = "/" + str(action.get("path") or "").lstrip("/")
        host_line = f"Host: {host}:{port}"
        extra = []
        for h in action.get("httpHeaders") or []:
            name, value = str(h.get("name", "")), str(h.get("value", ""))
            lname = name.lower()
            if lname == "host":
                host_line = f"Host: {value}"  # Go writes req.Host once, from the header
            elif lname != "user-agent":  # Go writes the first User-Agent: kube-probe//
                extra.append(f"{name}: {value}")
        lines = [f"GET {path} HTTP/1.1", host_line, "User-Agent: " + KUBE_PROBE_UA.decode()]
        lines += extra
        lines.append("Connection: close")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

        async def check(timeout: float) -> None:
            async def go() -> None:
                r, w = await asyncio.open_connection(host, port)
                try:
                    w.write(request)
                    status_line = await r.readline()
                    parts = status_line.split(None, 2)
                    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                        raise ConnectionError("malformed probe response")
                    status = int(parts[1])
                    if not 200 <= status < 400:
                        raise ConnectionError(
                            f"HTTP probe did not respond Ready, got status code: {status}"
                        )
                finally:
                    w.close()

            await asyncio.wait_for(go(), timeout)

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
            if self.kind in ("grpc", "exec", "none") or loop.time() >= deadline:
                return False
            await asyncio.sleep(max(0.0, self.retry_interval - (loop.time() - started)))


def _fail(reason: str) -> Callable[[float], Awaitable[None]]:
    async def check(timeout: float) -> None:
        raise ValueError(reason)

    return check


class ReadinessProbe:
    """Probes the user container; concurrent ``probe()`` calls share one probe in flight."""

    def __init__(self, probes: list[dict[str, Any]], default_host: str = "127.0.0.1",
                 retry_interval: float = RETRY_INTERVAL) -> None:
        self.probes = [_Single(p, default_host, retry_interval) for p in probes]
        self._inflight: asyncio.Future[bool] | None = None

    @classmethod
    def from_config(cls, raw: str, multi: bool,
                    retry_interval: float = RETRY_INTERVAL) -> ReadinessProbe | None:
        if not raw:
            return None
        return cls(decode_probes(raw, multi), retry_interval=retry_interval)

    def probe(self) -> asyncio.Future[bool]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._probe_all())
        return self._inflight

    async def _probe_all(self) -> bool:
        results = await asyncio.gather(*(p.run() for p in self.probes))
        return all(results)
