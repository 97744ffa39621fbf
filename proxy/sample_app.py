"""The bundled sample app: Knative's helloworld (``Hello {TARGET}!``), on ``$PORT``.

A tiny asyncio HTTP/1.1 server with keep-alive, so the queue-proxy can be tried without any
other software: ``python -m proxy.sample_app``. ``?sleep=ms`` makes it slow, for load tests.
"""

from __future__ import annotations

import asyncio
import os
import sys

import h11


class _App(asyncio.Protocol):
    def __init__(self, target: str) -> None:
        self.target = target
        self.conn = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                ev = self.conn.next_event()
            except h11.RemoteProtocolError:
                self.transport.close()  # type: ignore[union-attr]
                return
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return
            if isinstance(ev, h11.Request):
                self._request = ev
            elif isinstance(ev, h11.EndOfMessage):
                delay = _sleep_ms(self._request.target) / 1000.0
                if delay:
                    asyncio.get_running_loop().call_later(delay, self._reply)
                    return
                self._reply()
                return
            elif isinstance(ev, h11.ConnectionClosed):
                return

    def _reply(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        body = f"Hello {self.target}!\n".encode()
        out = self.conn.send(
            h11.Response(
                status_code=200,
                headers=[("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
        )
        out += self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        self.transport.write(out)
        if self.conn.our_state is h11.MUST_CLOSE:
            self.transport.close()
            return
        self.conn.start_next_cycle()
        self._drain()


def _sleep_ms(target: bytes) -> int:
    if b"sleep=" not in target:
        return 0
    try:
        return int(target.split(b"sleep=", 1)[1].split(b"&", 1)[0])
    except ValueError:
        return 0


async def serve(port: int, target: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _App(target), "127.0.0.1", port)
    print(f"sample app listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    target = os.environ.get("TARGET", "World")
    try:
        asyncio.run(serve(port, target))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
