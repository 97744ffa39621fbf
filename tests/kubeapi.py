"""A stand-in Kubernetes API server for the activator's informers: the list and watch protocol
of the real one, over HTTP/1.1 (TLS optional), on 127.0.0.1 and an ephemeral port.

It keeps objects by collection path (``/api/v1/endpoints``, ``/apis/serving.knative.dev/v1/
revisions``, ...) and a log of events with increasing resourceVersions, as etcd does:

- ``GET path[?labelSelector=...]``: ``{"kind": ..., "metadata": {"resourceVersion": RV},
  "items": [...]}``, the selector taken as the API server does for ``key``, ``key=value``
  and ``key in (a,b)`` terms joined by commas;
- ``GET path?watch=true&resourceVersion=RV[&timeoutSeconds=N]``: a chunked stream of JSON
  events (one per line) newer than RV, then each new one as it happens; an RV older than the
  last ``compact()`` gets the real server's ``ERROR`` event with a 410 Status;
- a bearer token, when one is set: without it, 401 with a Status body.

Tests change the world with ``put``/``delete`` (on the server's loop: ``LoopThread.call``),
end every open watch with ``end_watches`` (as an API server restart does) and count
``lists`` and ``watches`` per path.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
import urllib.parse
from typing import Any

import h11

__all__ = ["KubeAPI"]


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    terms: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(selector):  # commas inside "in (a,b)" do not split terms
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    for term in (t.strip() for t in terms if t.strip()):
        if " in " in term:
            key, values = term.split(" in ", 1)
            allowed = {v.strip() for v in values.strip().strip("()").split(",")}
            if labels.get(key.strip()) not in allowed:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


class KubeAPI:
    def __init__(self, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 ) -> None:
        self.token = token
        self.ssl = ssl_context
        self.version = 100
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []
        self.compacted = 0
        self.lists: dict[str, int] = {}
        self.watches: dict[str, int] = {}
        self.unauthorized = 0
        self.end_watches_at_once = False  # a server (or proxy) that ends every watch at once
        self._wakeups: set[asyncio.Event] = set()  # one per open watch
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl else 'http'}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.end_watches()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    # ------------------------------------------------------------------ the world

    def _record(self, path: str, kind: str, obj: dict[str, Any]) -> None:
        self.version += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        self.log.append((self.version, path, kind, obj))
        for event in self._wakeups:
            event.set()

    def put(self, path: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        table = self.objects.setdefault(path, {})
        kind = "MODIFIED" if key in table else "ADDED"
        table[key] = copy.deepcopy(obj)
        self._record(path, kind, obj)
        table[key]["metadata"]["resourceVersion"] = str(self.version)

    def delete(self, path: str, namespace: str, name: str) -> None:
        obj = self.objects.get(path, {}).pop((namespace, name))
        self._record(path, "DELETED", obj)

    def compact(self) -> None:
        """Forgets the events so far: a watch from an older version gets 410 Gone."""
        self.compacted = self.version
        self.log.clear()

    def end_watches(self) -> None:
        for w in list(self._writers):
            w.close()
        for event in self._wakeups:
            event.set()

    # ------------------------------------------------------------------ HTTP

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    await self._request(conn, event, writer)
                    return  # one request a connection is all the activator asks
                if isinstance(event, h11.ConnectionClosed):
                    return
        except (ConnectionError, h11.ProtocolError, ssl.SSLError):
            return
        finally:
            writer.close()

    async def _request(self, conn: h11.Connection, req: h11.Request,
                       writer: asyncio.StreamWriter) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in req.headers}
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            self.unauthorized += 1
            self._answer(conn, writer, 401, {"kind": "Status", "status": "Failure",
                                              "message": "Unauthorized", "code": 401})
            return
        parts = urllib.parse.urlsplit(req.target.decode())
        query = dict(urllib.parse.parse_qsl(parts.query))
        path = parts.path
        selector = query.get("labelSelector", "")
        if query.get("watch") in ("true", "1"):
            await self._watch(conn, writer, path, selector, int(query.get("resourceVersion") or 0),
                              float(query.get("timeoutSeconds") or 1800))
            return
        self.lists[path] = self.lists.get(path, 0) + 1
        items = [o for o in self.objects.get(path, {}).values()
                 if _selector_matches(selector, o["metadata"].get("labels") or {})]
        self._answer(conn, writer, 200, {"kind": "List", "apiVersion": "v1",
                                         "metadata": {"resourceVersion": str(self.version)},
                                         "items": items})

    def _answer(self, conn: h11.Connection, writer: asyncio.StreamWriter, status: int,
                doc: Any) -> None:
        body = json.dumps(doc).encode()
        writer.write(conn.send(h11.Response(status_code=status, headers=[
            ("Content-Type", "application/json"), ("Content-Length", str(len(body)))])))
        writer.write(conn.send(h11.Data(data=body)))
        writer.write(conn.send(h11.EndOfMessage()))

    async def _watch(self, conn: h11.Connection, writer: asyncio.StreamWriter, path: str,
                     selector: str, since: int, timeout: float) -> None:
        self.watches[path] = self.watches.get(path, 0) + 1
        writer.write(conn.send(h11.Response(status_code=200, headers=[
            ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")])))
        if since < self.compacted:
            gone = {"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired",
                "message": f"too old resource version: {since} ({self.compacted})",
                "code": 410}}
            writer.write(conn.send(h11.Data(data=json.dumps(gone).encode() + b"\n")))
            writer.write(conn.send(h11.EndOfMessage()))
            return
        if self.end_watches_at_once:
            writer.write(conn.send(h11.EndOfMessage()))
            return
        self._writers.add(writer)
        wakeup = asyncio.Event()
        self._wakeups.add(wakeup)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        sent = since
        try:
            while not writer.is_closing():
                for version, p, kind, obj in list(self.log):
                    if version > sent and p == path and _selector_matches(
                            selector, obj["metadata"].get("labels") or {}):
                        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        writer.write(conn.send(h11.Data(data=line)))
                    sent = max(sent, version)
                await writer.drain()
                left = deadline - loop.time()
                if left <= 0:
                    writer.write(conn.send(h11.EndOfMessage()))
                    return
                try:
                    await asyncio.wait_for(wakeup.wait(), left)
                except asyncio.TimeoutError:
                    pass
                wakeup.clear()
        finally:
            self._writers.discard(writer)
            self._wakeups.discard(wakeup)
