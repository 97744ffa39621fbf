"""The activator fed from the Kubernetes API, as Knative's is in a cluster.

Theory of operation. Knative's activator learns everything it routes by from informers: the
Revisions (their containerConcurrency and timeouts, ``pkg/activator/net/throttler.go``), the
Endpoints of each revision's private service (its pods, ``revision_backends.go``), the private
Service (its cluster address, for mesh mode) and the Endpoints of each revision's public service
(the activators in its path, for subsetting). ``KubeSource`` does the same with three
list-then-watch loops (``Informer``) over the API server's HTTP API, and hands what they see to
the activator's Python API (``set_revision``, ``set_endpoints``, ``set_activators``,
``remove_revision``), the same calls the control API makes:

- ``serving.knative.dev/v1`` Revisions, in every namespace;
- ``v1`` Endpoints labelled ``serving.knative.dev/revision`` and
  ``networking.internal.knative.dev/serviceType`` (Private: the revision's pods, the port
  named ``http``, or ``http2`` for an h2c revision; Public: the activators);
- ``v1`` Services labelled ``serviceType=Private`` (``spec.clusterIP`` and the same port).

Objects may come in any order: what is known of a revision is kept, and applied once the
Revision itself is known (Knative's throttler too creates a revision's state from the Revision).

Each informer lists, then watches from the list's resourceVersion (with bookmarks). A watch the
server ends is resumed from the last version seen; one the server no longer can resume (410
Gone) is replaced by a new list, whose differences with the cache are handed on as events.
Errors are retried with a back-off (0.5 s doubling to 30 s), logged once per change of error.

Credentials are the pod's service account (``KubeConfig.in_cluster``: the
``KUBERNETES_SERVICE_HOST``/``_PORT`` variables, the token and CA under
``/var/run/secrets/kubernetes.io/serviceaccount``), or any API address, token file and CA file
(``KubeConfig(url, ...)``, for tests and out-of-cluster use). The token is read again for each
request: bound service account tokens are rotated on disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import h11

from activator.activator.backends import response_events
from activator.activator.control import ControlError

__all__ = ["KubeConfig", "KubeError", "Informer", "KubeSource", "SERVICE_ACCOUNT_DIR"]

log = logging.getLogger("activator.kube")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
REVISION_LABEL = "serving.knative.dev/revision"
SERVICE_TYPE_LABEL = "networking.internal.knative.dev/serviceType"
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
WATCH_SECONDS = 300  # client-go's minimum watch timeout; each watch asks for 1-2 times this
SHORT_WATCH = 1.0  # a watch that ends sooner with no event is an error (client-go's)
LIST_TIMEOUT = 60.0  # seconds without a byte of a list's answer


class KubeError(Exception):
    """An API request that failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeConfig:
    """Where the API server is and how to authenticate to it."""

    def __init__(self, url: str, *, token_file: str | None = None,
                 ca_file: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Kubernetes API address {url!r} is not an http(s) URL")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.authority = parts.netloc
        self.token_file = token_file
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl.create_default_context(cafile=ca_file)

    @classmethod
    def in_cluster(cls, account_dir: str = SERVICE_ACCOUNT_DIR) -> KubeConfig:
        """The pod's own service account, as client-go's ``rest.InClusterConfig``."""
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ValueError("not in a cluster: KUBERNETES_SERVICE_HOST and "
                             "KUBERNETES_SERVICE_PORT must be set")
        if ":" in host:
            host = f"[{host}]"
        return cls(f"https://{host}:{port}", token_file=os.path.join(account_dir, "token"),
                   ca_file=os.path.join(account_dir, "ca.crt"))

    def headers(self) -> list[tuple[str, str]]:
        hs = [("Host", self.authority), ("Accept", "application/json"),
              ("User-Agent", "kn-dataplane-activator")]
        if self.token_file:
            with open(self.token_file) as f:
                hs.append(("Authorization", f"Bearer {f.read().strip()}"))
        return hs

    async def get(self, path: str, params: dict[str, str],
                  read_timeout: float = LIST_TIMEOUT) -> AsyncIterator[bytes]:
        """GET ``path?params``: yields the body in pieces as they arrive (a watch never ends
        on its own); KubeError when the answer is not 200. A read that waits ``read_timeout``
        seconds ends it (as a cut connection)."""
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl,
                server_hostname=self.host if self.ssl else None)
        except (OSError, ssl.SSLError) as exc:
            raise KubeError(f"cannot reach the Kubernetes API at {self.url}: {exc}") from None
        status = 0
        error = bytearray()
        try:
            async for event in response_events(reader, writer, target, self.headers(),
                                               read_timeout=read_timeout):
                if isinstance(event, h11.Response):
                    status = event.status_code
                elif status == 200:
                    yield bytes(event.data)
                elif len(error) < 4096:
                    error += event.data
        except ValueError as exc:
            if status == 200:
                return  # a watch cut short: resumed from the last version seen
            raise KubeError(f"GET {path}: {exc}", status) from None
        except OSError as exc:
            if status == 200:
                return
            raise KubeError(f"GET {path}: {exc}", status) from None
        finally:
            writer.close()
        if status != 200:
            raise KubeError(f"GET {path}: {status} {_message(bytes(error))}", status)

    async def get_json(self, path: str, params: dict[str, str]) -> Any:
        body = bytearray()
        async for piece in self.get(path, params):
            body += piece
        try:
            return json.loads(body)
        except ValueError:
            raise KubeError(f"GET {path}: the answer is not JSON") from None


def _message(body: bytes) -> str:
    """A Kubernetes Status' message, else the body's start."""
    try:
        doc = json.loads(body)
        return str(doc.get("message") or doc.get("reason") or doc)
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class Informer:
    """List, then watch, one kind of object; ``on_event(type, obj)`` for each change
    (``ADDED``, ``MODIFIED``, ``DELETED``), the cache in ``objects``."""

    def __init__(self, config: KubeConfig, path: str, on_event: Callable[[str, dict], None], *,
                 label_selector: str = "") -> None:
        self.config = config
        self.path = path
        self.on_event = on_event
        self.label_selector = label_selector
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = ""
        self.synced = asyncio.Event()
        self.lists = 0  # full lists made (the first, and one per 410 Gone): for tests and logs
        self.last_error = ""

    def _params(self, **more: str) -> dict[str, str]:
        params = {"labelSelector": self.label_selector} if self.label_selector else {}
        params.update(more)
        return params

    async def run(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                if not self.version:
                    await self._list()
                await self._watch()
                backoff = BACKOFF_FIRST
            except (KubeError, OSError) as exc:  # OSError: the token file, say
                if isinstance(exc, KubeError) and exc.status == 410:  # too old: list again
                    self.version = ""
                    continue
                if str(exc) != self.last_error:
                    log.error("%s", exc)
                    self.last_error = str(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception:  # an object we cannot read, a bug downstream: resync, slowly
                log.exception("%s: handling an event failed; listing again", self.path)
                self.version = ""
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _list(self) -> None:
        doc = await self.config.get_json(self.path, self._params())
        items = doc.get("items") or []
        self.lists += 1
        fresh = {_key(o): o for o in items}
        for key in [k for k in self.objects if k not in fresh]:
            self.on_event("DELETED", self.objects.pop(key))
        for key, obj in fresh.items():
            kind = "MODIFIED" if key in self.objects else "ADDED"
            self.objects[key] = obj
            self.on_event(kind, obj)
        self.version = str((doc.get("metadata") or {}).get("resourceVersion", ""))
        self.last_error = ""
        self.synced.set()

    async def _watch(self) -> None:
        seconds = int(WATCH_SECONDS * (1 + random.random()))
        params = self._params(watch="true", resourceVersion=self.version,
                              allowWatchBookmarks="true", timeoutSeconds=str(seconds))
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = 0
        pending = b""
        # A read deadline past the server's own: a connection gone silent (a node that
        # vanished, no FIN) ends the watch instead of stalling it for ever.
        async for piece in self.config.get(self.path, params, read_timeout=seconds + 30):
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    events += 1
                    self._event(line)
        if not events and loop.time() - started < SHORT_WATCH:
            # client-go's "very short watch": a server (or a proxy) that ends every watch at
            # once is backed off from, not asked again in a tight loop.
            raise KubeError(f"watch {self.path}: ended at once with no event")

    def _event(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError):
            raise KubeError(f"watch {self.path}: an event that is not JSON: {line[:200]!r}"
                            ) from None
        if not isinstance(obj, dict):
            raise KubeError(f"watch {self.path}: an event without an object: {line[:200]!r}")
        if kind == "ERROR":
            raise KubeError(f"watch {self.path}: {obj.get('message', obj)}",
                            int(obj.get("code") or 0))
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.version = str(version)
        if kind == "BOOKMARK":
            return
        key = _key(obj)
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        self.on_event(kind, obj)


def _port_name(revision: dict[str, Any]) -> str:
    """Knative's ServicePortName(rev.GetProtocol()): ``http2`` when the serving container's
    first port is named ``h2c``, else ``http``."""
    for container in (revision.get("spec") or {}).get("containers") or []:
        ports = container.get("ports") or []
        if ports:
            return "http2" if ports[0].get("name") == "h2c" else "http"
    return "http"


def endpoints_to_dests(endpoints: dict[str, Any], port_name: str) -> tuple[list[str], list[str]]:
    """``ip:port`` of the ready and not-ready addresses of the subsets that have the port."""
    ready: set[str] = set()
    not_ready: set[str] = set()
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            if port.get("name") == port_name:
                number = port.get("port")
                for addr, into in (("addresses", ready), ("notReadyAddresses", not_ready)):
                    for a in subset.get(addr) or []:
                        ip = a.get("ip", "")
                        into.add(f"[{ip}]:{number}" if ":" in ip else f"{ip}:{number}")
                break
    return sorted(ready), sorted(not_ready)


def endpoint_ips(endpoints: dict[str, Any], port_name: str) -> list[str]:
    """The ready addresses' IPs of the subsets that have the port (the activators)."""
    ips: set[str] = set()
    for subset in endpoints.get("subsets") or []:
        if any(p.get("name") == port_name for p in subset.get("ports") or []):
            ips.update(a.get("ip", "") for a in subset.get("addresses") or [])
    return sorted(ips)


def cluster_address(service: dict[str, Any], port_name: str) -> str | None:
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP")
    if not ip or ip == "None":
        return None
    for port in spec.get("ports") or []:
        if port.get("name") == port_name:
            return f"[{ip}]:{port['port']}" if ":" in ip else f"{ip}:{port['port']}"
    return None


class KubeSource:
    """Feeds an ``Activator`` from the API server (see the module's docstring)."""

    def __init__(self, activator: Any, config: KubeConfig) -> None:
        self.activator = activator
        self.config = config
        self.revisions: dict[tuple[str, str], dict[str, Any]] = {}
        self.private: dict[tuple[str, str], dict[str, Any]] = {}  # endpoints by revision
        self.public: dict[tuple[str, str], dict[str, Any]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self.applied: dict[tuple[str, str], tuple[Any, ...]] = {}
        typed = f"{REVISION_LABEL},{SERVICE_TYPE_LABEL}"
        self.informers = [
            Informer(config, "/apis/serving.knative.dev/v1/revisions", self._revision),
            Informer(config, "/api/v1/endpoints", self._endpoints, label_selector=typed),
            Informer(config, "/api/v1/services", self._service,
                     label_selector=f"{REVISION_LABEL},{SERVICE_TYPE_LABEL}=Private"),
        ]
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, sync_timeout: float = 60.0) -> None:
        """Starts the informers and waits for their first lists (Knative's activator waits for
        its informers' caches before it serves); TimeoutError if they do not come."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(i.run()) for i in self.informers]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in self.informers)),
                               sync_timeout)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        """``close``, and waits for the informers to end."""
        self.close()
        if self._tasks:
            await asyncio.wait(self._tasks)

    # ------------------------------------------------------------------ events

    def _revision(self, kind: str, obj: dict[str, Any]) -> None:
        key = _key(obj)
        ns, name = key
        if kind == "DELETED":
            self.revisions.pop(key, None)
            self.applied.pop(key, None)
            try:
                self.activator.remove_revision(ns, name)
            except KeyError:
                pass
            return
        spec = obj.get("spec") or {}
        labels = (obj.get("metadata") or {}).get("labels") or {}
        try:
            self.activator.set_revision(
                ns, name,
                container_concurrency=spec.get("containerConcurrency") or 0,
                timeout_seconds=spec.get("timeoutSeconds") or 300,
                response_start_timeout_seconds=spec.get("responseStartTimeoutSeconds") or 0,
                idle_timeout_seconds=spec.get("idleTimeoutSeconds") or 0,
                service=labels.get("serving.knative.dev/service", ""),
                configuration=labels.get("serving.knative.dev/configuration", ""))
        except (ControlError, ValueError) as exc:
            log.error("revision %s/%s: %s", ns, name, exc)
            return
        self.revisions[key] = obj
        self._apply(key)

    def _endpoints(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        key = (str(meta.get("namespace", "")), str(labels.get(REVISION_LABEL, "")))
        table = {"Private": self.private, "Public": self.public}.get(
            labels.get(SERVICE_TYPE_LABEL, ""))
        if table is None or not key[1]:
            return
        if kind == "DELETED":
            table.pop(key, None)
        else:
            table[key] = obj
        self._apply(key)

    def _service(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace", "")),
               str((meta.get("labels") or {}).get(REVISION_LABEL, "")))
        if kind == "DELETED":
            self.services.pop(key, None)
        else:
            self.services[key] = obj
        self._apply(key)

    def _apply(self, key: tuple[str, str]) -> None:
        """Hands the revision's pods, cluster address and activators to the activator, if
        the Revision is known and they changed."""
        revision = self.revisions.get(key)
        if revision is None:
            return
        port = _port_name(revision)
        private = self.private.get(key)
        ready, not_ready = endpoints_to_dests(private, port) if private else ([], [])
        service = self.services.get(key)
        cluster = cluster_address(service, port) if service else None
        public = self.public.get(key)
        activators = endpoint_ips(public, port) if public else []
        state = (ready, not_ready, cluster, activators)
        before = self.applied.get(key)
        if state == before:
            return
        self.applied[key] = state
        ns, name = key
        if before is None or before[:3] != state[:3]:
            self.activator.set_endpoints(ns, name, ready=ready, not_ready=not_ready,
                                         cluster_ip=cluster)
        if activators and (before is None or before[3] != activators):
            self.activator.set_activators(ns, name, activators)
