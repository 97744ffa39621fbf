"""The floor of this architecture: a bare uvloop + httptools keep-alive relay, no features.

No header rewriting, no breaker, no timeouts, no stats; raw bytes both ways, one pooled upstream
connection per in-flight request. Not a product: a reference row for the bench, to separate what
the event loop and parser cost from what our features and structure cost.

    python bench/bare_relay.py LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import httptools
import uvloop


class _Upstream(asyncio.Protocol):
    def __init__(self, pool: list[_Upstream]) -> None:
        self.pool = pool
        self.client: _Downstream | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.buf: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf.append(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        data, self.buf = b"".join(self.buf), []
        self.pool.append(self)
        if client is not None:
            client.transport.write(data)


class _Downstream(asyncio.Protocol):
    def __init__(self, pool: list[_Upstream], upstream: tuple[str, int]) -> None:
        self.pool = pool
        self.upstream = upstream
        self.parser = httptools.HttpRequestParser(self)
        self.raw = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.raw = data
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.pool:
            up = self.pool.pop()
            up.client = self
            up.transport.write(self.raw)
        else:
            asyncio.ensure_future(self._connect(self.raw))

    async def _connect(self, raw: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, up = await loop.create_connection(lambda: _Upstream(self.pool), *self.upstream)
        up.client = self
        up.transport.write(raw)


async def _main(port: int, upstream_port: int) -> None:
    pool: list[_Upstream] = []
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(
        lambda: _Downstream(pool, ("127.0.0.1", upstream_port)), "127.0.0.1", port
    )
    await srv.serve_forever()


if __name__ == "__main__":
    uvloop.run(_main(int(sys.argv[1]), int(sys.argv[2])))
