"""Embedding the data plane: a queue-proxy in front of an app, and an activator in front of the
queue-proxy, in one asyncio program. Everything listens on 127.0.0.1 with ports picked by the
system, and the script ends by itself.

    python examples/embed.py
    mypy --strict examples/embed.py      # the API is typed
"""

from __future__ import annotations

import asyncio

from activator import Activator, RevisionStat
from proxy import Config, QueueProxy


async def hello_app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The user's container: one keep-alive HTTP/1.1 answer per request head."""
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello World!\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the queue-proxy closed its connection
    writer.close()


async def get(port: int, host: str) -> bytes:
    """One GET through 127.0.0.1:port; the whole response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    return answer


async def main() -> None:
    app = await asyncio.start_server(hello_app, "127.0.0.1", 0)
    app_port: int = app.sockets[0].getsockname()[1]

    # The sidecar: containerConcurrency 10 in front of the app; every port 0 picks a free one.
    qp = QueueProxy(Config(container_concurrency=10, bind_host="127.0.0.1", serving_port=0,
                           admin_port=0, metrics_port=0, user_port=app_port,
                           revision_timeout=30, drain_quiet_period=0))
    await qp.start()
    print("queue-proxy:", (await get(qp.ports["main"], "hello.example.com")).splitlines()[0])

    # The activator: one revision whose only pod is that queue-proxy.
    stats: list[RevisionStat] = []
    act = Activator(stat_sink=stats.extend, drain_timeout=0)
    await act.start("127.0.0.1", port=0, admin_port=None, h2c_port=None)
    act.set_revision("default", "hello-00001", container_concurrency=10, timeout_seconds=30)
    act.set_endpoints("default", "hello-00001", ready=[f"127.0.0.1:{qp.ports['main']}"])
    host = "hello-00001.default.svc.cluster.local"
    answer = await get(act.ports["main"], host)
    print("activator:", answer.splitlines()[0], answer.rsplit(b"\r\n", 1)[-1])
    print("revision:", act.revision_status("default", "hello-00001")["healthyPods"])

    act.remove_revision("default", "hello-00001")
    await act.drain()
    await qp.drain()
    app.close()


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 30))
