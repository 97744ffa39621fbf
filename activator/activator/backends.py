"""Which pods of a revision may take requests: the endpoint source's view, confirmed by probes.

Theory of operation (Knative's pkg/activator/net/revision_backends.go, revisionWatcher):

- The endpoint source says which pod addresses are ready and which are not ready yet.
- ``Backends.update(ready, not_ready)`` keeps the pods known to be healthy that are still listed,
  forgets the others, and probes every listed pod that is not known healthy: ``GET /healthz``
  with ``K-Network-Probe: queue`` and ``User-Agent: Knative-Activator-Probe``. A pod is healthy
  on 200 with the body exactly ``queue`` (its queue-proxy says its app is ready). As in Knative
  with its probe optimisation on, a pod still listed not-ready becomes healthy on a good probe:
  the activator learns of a ready app before the endpoint source does.
- A pod that moved from ready to not ready is dropped from the healthy set and probed again.
- Healthy pods are not probed again; the queue-proxy fails its own readiness when it drains,
  and the endpoint source then removes the pod.

The schedule is where we leave Knative: it probes every 200 ms, so a cold start pays up to
200 ms for nothing. Here a new pod is probed at once, then again after ``PROBE_FIRST_INTERVAL``,
growing by half each time to ``PROBE_MAX_INTERVAL`` (20 ms): a pod whose app needs a second to
start is seen within 20 ms of its first good answer, at about 50 cheap probes a second while it
starts (connection refused costs microseconds). Each probe has Knative's 300 ms timeout.

``ProbeSchedule`` is the sans-IO part (fake-clock tests); ``Backends`` runs it on the loop and
calls ``on_change(healthy)`` with the sorted healthy addresses whenever they change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable

import h11

__all__ = [
    "Backends",
    "http_get",
    "ProbeSchedule",
    "probe",
    "probe_status",
    "response_events",
    "split_address",
    "PROBE_TIMEOUT",
    "PROBE_FIRST_INTERVAL",
    "PROBE_MAX_INTERVAL",
]

log = logging.getLogger("activator.activator.backends")

PROBE_TIMEOUT = 0.3  # Knative's probeTimeout
PROBE_FIRST_INTERVAL = 0.002
PROBE_MAX_INTERVAL = 0.02
PROBE_GROWTH = 1.5
PROBE_PATH = b"/healthz"


def split_address(address: str) -> tuple[str, int]:
    """``"10.0.0.1:8012"`` / ``"[::1]:8012"`` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class ProbeSchedule:
    """When to probe one not-yet-healthy pod next, sans-IO."""

    __slots__ = ("first", "maximum", "growth", "interval", "attempts")

    def __init__(self, first: float = PROBE_FIRST_INTERVAL,
                 maximum: float = PROBE_MAX_INTERVAL, growth: float = PROBE_GROWTH) -> None:
        self.first = first
        self.maximum = maximum
        self.growth = growth
        self.interval = 0.0  # the first probe goes at once
        self.attempts = 0

    def failed(self) -> float:
        """A probe failed: the delay before the next one."""
        self.attempts += 1
        self.interval = self.first if self.interval == 0.0 else min(
            self.interval * self.growth, self.maximum)
        return self.interval


_PROBE_HEADERS = (("K-Network-Probe", "queue"), ("User-Agent", "Knative-Activator-Probe"))


async def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> bool:
    """One Knative activator probe of a pod's queue-proxy: True on 200 with body ``queue``."""
    return (await probe_status(host, port, timeout))[0]


async def probe_status(host: str, port: int, timeout: float = PROBE_TIMEOUT,
                       ) -> tuple[bool, bool]:
    """``probe``, and whether a failure could not have been a service mesh's doing (Knative's
    ``notMesh``: an answer other than 502 or 503, ``IsPotentialMeshErrorResponse``; no answer
    at all could be a mesh's)."""
    try:
        status, body = await asyncio.wait_for(
            http_get(host, port, PROBE_PATH, _PROBE_HEADERS, max_body=64), timeout)
    except (OSError, asyncio.TimeoutError, ValueError):
        return False, False
    return status == 200 and body == b"queue", status not in (502, 503)


async def http_get(host: str, port: int, target: bytes,
                   headers: Iterable[tuple[str, str]] = (), max_body: int = 1 << 20,
                   ) -> tuple[int, bytes]:
    """A small one-shot HTTP/1.1 GET (``Connection: close``) for probes and stat scrapes:
    (status, body). ValueError for a malformed or oversized response; bound it with a timeout."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        status = 0
        body = bytearray()
        async for event in response_events(reader, writer, target, [
                ("Host", authority), *headers, ("Connection", "close")]):
            if isinstance(event, h11.Response):
                status = event.status_code
            else:
                body += event.data
                if len(body) > max_body:
                    raise ValueError("response body too large")
        return status, bytes(body)
    finally:
        writer.close()


async def response_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          target: bytes | str, headers: list[tuple[str, str]],
                          read_timeout: float | None = None,
                          ) -> AsyncIterator[h11.Response | h11.Data]:
    """Sends a GET on a fresh connection and yields its answer as it comes: the ``Response``,
    then each piece of the body (``Data``), until the body ends. ValueError when the answer is
    malformed or the connection closes before it ends (with what came so far yielded);
    TimeoutError when a read waits longer than ``read_timeout`` seconds."""
    conn = h11.Connection(h11.CLIENT)
    writer.write(conn.send(h11.Request(method="GET", target=target, headers=headers)))
    conn.send(h11.EndOfMessage())
    while True:
        try:
            event = conn.next_event()
        except h11.ProtocolError as exc:
            raise ValueError(f"malformed response: {exc}") from None
        if event is h11.NEED_DATA:
            if read_timeout is None:
                conn.receive_data(await reader.read(65536))
            else:
                conn.receive_data(await _read_within(reader, read_timeout))
        elif isinstance(event, (h11.Response, h11.Data)):
            yield event
        elif isinstance(event, h11.EndOfMessage):
            return
        elif isinstance(event, h11.ConnectionClosed):
            raise ValueError("connection closed before the response ended")


async def _read_within(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """``reader.read`` bounded by ``timeout`` (TimeoutError). Not ``asyncio.wait_for``: in
    Python 3.11 a cancellation that comes with the read's result is lost there, and a task
    being closed would read on."""
    read = asyncio.ensure_future(reader.read(65536))
    try:
        done, _ = await asyncio.wait((read,), timeout=timeout)
    finally:
        if not read.done():
            read.cancel()
    if not done:
        raise TimeoutError(f"no byte for {timeout:g} s")
    return read.result()


class Backends:
    """One revision's pods: probes what the endpoint source lists, reports the healthy ones."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[list[str]], None],
        *,
        on_failed: Callable[[str, bool], None] | None = None,
        first_interval: float = PROBE_FIRST_INTERVAL,
        max_interval: float = PROBE_MAX_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.on_change = on_change
        self.on_failed = on_failed  # (address, not_mesh) after each failed probe
        self.first_interval = first_interval
        self.max_interval = max_interval
        self.timeout = timeout
        self.ready: frozenset[str] = frozenset()
        self.not_ready: frozenset[str] = frozenset()
        self.healthy: set[str] = set()
        self._probing: dict[str, asyncio.Task[None]] = {}
        self.probes = 0  # probes sent, for tests and status
        self.closed = False

    def update(self, ready: Iterable[str], not_ready: Iterable[str]) -> None:
        """The endpoint source's current view of the revision."""
        ready = frozenset(ready)
        not_ready = frozenset(not_ready)
        listed = ready | not_ready
        before = set(self.healthy)
        # Pods that left the ready set are probed again (Knative's reprobe set).
        for address in self.ready & not_ready:
            self.healthy.discard(address)
        self.healthy &= listed
        self.ready, self.not_ready = ready, not_ready
        for address, task in list(self._probing.items()):
            if address not in listed:
                task.cancel()
                del self._probing[address]
        for address in listed:
            if address not in self.healthy and address not in self._probing:
                self._probing[address] = self.loop.create_task(self._probe_until_healthy(address))
        if self.healthy != before:
            self.on_change(sorted(self.healthy))

    async def _probe_until_healthy(self, address: str) -> None:
        host, port = split_address(address)
        schedule = ProbeSchedule(self.first_interval, self.max_interval)
        try:
            while True:
                self.probes += 1
                ok, not_mesh = await probe_status(host, port, self.timeout)
                if self._probing.get(address) is not asyncio.current_task():
                    # Dropped by ``update`` or ``close`` while the probe was answered: Python
                    # 3.11's wait_for returns a result that came with the cancellation.
                    return
                if ok:
                    break
                if self.on_failed is not None and not self.closed:
                    self.on_failed(address, not_mesh)
                await asyncio.sleep(schedule.failed())
        finally:
            try:
                me = asyncio.current_task()
            except RuntimeError:  # closed by the garbage collector, its loop already gone
                me = None
            if me is not None and self._probing.get(address) is me:
                del self._probing[address]
        if self.closed or address not in (self.ready | self.not_ready):
            return
        self.healthy.add(address)
        self.on_change(sorted(self.healthy))

    @property
    def probing(self) -> list[str]:
        return sorted(self._probing)

    def close(self) -> None:
        self.closed = True
        for task in self._probing.values():
            task.cancel()
        self._probing.clear()
