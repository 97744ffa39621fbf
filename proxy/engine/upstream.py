"""Upstream connections: a keep-alive pool per address, and the protocol that reads responses.

A pooled connection that the upstream closed while it sat idle is found out before any byte of
the next request is written to it, and the request goes out on another connection instead. This
is the spurious 502 Knative users meet when the app closes idle connections. A request whose
body is all in is written at the end of the loop's pass (``send_head``), by when the loop has
read whatever the connection said first: a FIN, a reset or bytes then send the request elsewhere
(``_flush_pending``). A request whose body is still to come is written at once, after a
zero-timeout readiness check of the socket (an idle HTTP connection that is readable has been
closed or is broken). A request that may have reached the app is never sent twice.

Bytes an app writes after its answer (a second response, a few milliseconds late) must never
become another client's answer. Any byte on an idle connection retires it, but bytes that come
after the next request was written look like its answer. So the pool follows HAProxy's
``http-reuse safe``: a client connection's first request never takes a connection another client
used, unless it has sat silent for ``settle`` seconds (1 s by default); it gets a connection of
its own. A connection goes back first to the client whose answer it carried. Once a client has
had an answer, its later requests take any idle connection (LIFO), as HAProxy's do: a client
that keeps its connection (an ingress, the activator, a load generator) shares the pool, and
nothing is dialled per request.
"""

from __future__ import annotations

import asyncio
import errno
import random
import select
import socket
import ssl as ssl_module
from functools import partial
from time import monotonic
from typing import Any

from _speedups import fields as F
from _speedups.head import connection_tokens, scan_headers
from proxy.engine import parsers
from proxy.engine import states as S

__all__ = ["UpstreamPool", "UpstreamProtocol"]

_CHUNK_END = b"0\r\n\r\n"


class UpstreamPool:
    """Keep-alive connections to one upstream address."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        *,
        backend: str | None = None,
        max_idle: int = 1000,
        max_head: int = parsers.MAX_RESPONSE_HEAD,
        settle: float = 1.0,
        ssl: Any = None,
        server_hostname: str | None = None,
        ssl_h2: Any = None,
    ) -> None:
        self.loop = loop
        self._time = monotonic  # the engine's clock (proxy.engine.deadlines)
        self.host = host
        self.port = port
        self.backend = backend or parsers.default_backend()
        self.max_idle = max_idle
        self.max_head = max_head
        self.settle = settle
        # Idle connections in the order they became idle (a dict: any one leaves in O(1)), and
        # for each client connection the idle one that carried its last answer.
        self.idle: dict[UpstreamProtocol, None] = {}
        self.owned: dict[Any, UpstreamProtocol] = {}
        self.closed = False
        self.dial_name = f"{host}:{port}"
        self.h2: Any = None  # the h2c pool to the same address (proxy.engine.h2.h2_pool)
        # TLS to the upstream (an ssl.SSLContext; the name its certificate must carry), as
        # Knative's activator talks to pods with system-internal-tls on.
        self.ssl = ssl
        self.ssl_h2 = ssl_h2  # the same, offering ALPN "h2", for the HTTP/2 pool beside it
        self.server_hostname = server_hostname if ssl is not None else None
        self.dial_backoff = DIAL_BACKOFF
        # Connections whose request head waits for the end of the loop's pass (send_head).
        self.corked: list[UpstreamProtocol] = []
        self._uncork_soon = partial(loop.call_soon, self.uncork)  # PERF: bound once

    def acquire(self, ex: Any) -> None:
        idle = self.idle
        if not idle:
            self._connect(ex)
            return
        held = ex.body_done  # written at the end of the pass (send_head): checked there
        owned = self.owned
        if owned:
            up = owned.pop(ex.conn, None)
            if up is not None:  # this client's own: no other client's bytes can be on it
                del idle[up]
                up.owner = None
                if up.reusable(held):
                    ex.attached(up)
                    return
                up.close()
        if ex.conn.shares:
            # Not this client's first request: the most recently idle connection.
            while idle:
                up = idle.popitem()[0]
                self._disown(up)
                if up.reusable(held):
                    ex.attached(up)
                    return
                up.close()
            self._connect(ex)
            return
        # A client's first request: another client's connection once it has been silent for
        # `settle` seconds, the oldest first (if it has not settled, none has).
        limit = self._time() - self.settle
        while idle:
            up = next(iter(idle))
            if up.idle_since > limit:
                break
            del idle[up]
            self._disown(up)
            if up.reusable(held):
                ex.attached(up)
                return
            up.close()
        self._connect(ex)

    def _connect(self, ex: Any) -> None:
        # A duck-typed protocol: the compiled UpstreamProtocol cannot subclass asyncio.Protocol.
        coro = dial_with_backoff(self.loop, lambda: UpstreamProtocol(self), self.host,
                                 self.port, self.ssl, self.server_hostname, self.dial_backoff)
        task = self.loop.create_task(coro)
        task.add_done_callback(lambda t: self._connected(ex, t))

    def _connected(self, ex: Any, task: asyncio.Task) -> None:
        exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
        if exc is not None:
            if ex.state == S.CONNECTING:
                ex.upstream_failed(self._dial_error(exc))
            return
        _transport, up = task.result()
        if ex.state != S.CONNECTING:
            # The exchange ended while we dialled (client gone, timeout): keep the connection;
            # it never carried a request, so any client may take it at once.
            self.release(up, None)
            return
        ex.attached(up)

    def resend(self, ex: Any, data: bytes) -> None:
        """``data``, the whole of ``ex``'s request held for the end of the pass, never left: its
        connection closed or spoke first. It goes out on another connection (dialled if need
        be); no byte of it reached the app, so this is no retry."""
        ex.upstream = None
        ex.head_out = data
        ex.chunked = False  # ``data`` is framed, chunks and all: ``attached`` adds nothing
        ex.state = S.CONNECTING
        self.acquire(ex)

    def uncork(self) -> None:
        """Writes the heads held back during this pass of the loop (send_head)."""
        corked = self.corked
        self.corked = []
        for up in corked:
            up._flush_pending()

    def _dial_error(self, exc: BaseException) -> str:
        return dial_error(self.dial_name, exc)

    def release(self, up: UpstreamProtocol, owner: Any) -> None:
        """``up`` is idle again; ``owner``: the client connection whose answer it carried
        (None: it carried none)."""
        if up.paused:
            # Stopped for the client whose answer it carried, then that answer ended in the
            # same read: idle, it must read again (a close, the next request's answer).
            up.resume_reading()
        if owner is not None:
            # It has had an answer: its later requests may take any idle connection, even
            # when this one is not kept (else, with the pool full of other clients' idle
            # connections, each of its requests would dial one more and close it).
            owner.shares = True
        if self.closed or len(self.idle) >= self.max_idle or up.broken:
            up.close()
            return
        up.ex = None
        if owner is None:
            up.idle_since = 0.0
        else:
            up.idle_since = self._time()
            up.owner = owner
            self.owned[owner] = up
        self.idle[up] = None

    def _disown(self, up: UpstreamProtocol) -> None:
        owner = up.owner
        if owner is not None:
            up.owner = None
            if self.owned.get(owner) is up:
                del self.owned[owner]

    def forget(self, up: UpstreamProtocol) -> None:
        if self.idle.pop(up, 0) is None:
            self._disown(up)

    def _settled_count(self) -> int:
        """How many idle connections any client may take now (for tests and debugging)."""
        limit = self._time() - self.settle
        return sum(1 for up in self.idle if up.idle_since <= limit)

    def close(self) -> None:
        self.closed = True
        if self.h2 is not None:
            self.h2.close()
        for up in list(self.idle):
            up.close()
        self.idle.clear()
        self.owned.clear()


class UpstreamProtocol:
    """One connection to the upstream; carries one exchange at a time (PERF: compiled, a
    ``_speedups._h1_c.ResponseSink`` (upstream.pxd), called by the compiled parser in C)."""

    __slots__ = (
        "pool",
        "transport",
        "parser",
        "ex",
        "broken",
        "fd",
        "_poll",
        "got_head",
        "close_after",
        "body_sent",
        "tunnel",
        "resp_eof_body",
        "idle_since",
        "owner",
        "_write",
        "_is_closing",
        "_expect",
        "_feed",
        "pending",
        "paused",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = parsers.response_parser(pool.backend, self, pool.max_head)
        # PERF: bound once (a call by name looks the method up: about 300 instructions).
        self._expect = self.parser.expect
        self._feed = self.parser.feed
        self._write: Any = None
        self._is_closing: Any = None
        self.ex: Any = None
        self.broken = False
        self.fd = -1
        self._poll: Any = None  # poll(0) of a poll object holding fd: [] while silent
        self.got_head = False
        self.close_after = False
        self.body_sent = False
        self.tunnel = False
        self.resp_eof_body = False
        self.idle_since = 0.0
        self.owner: Any = None  # while idle: the client connection whose answer it carried
        self.pending: Any = None  # a head waiting for the pool's uncork
        self.paused = False  # reading stopped for a client that cannot take more yet

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._write = transport.write  # type: ignore[attr-defined]
        self._is_closing = transport.is_closing
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fd = sock.fileno()
            if self.pool.ssl is None:
                # Over TLS the socket carries records the loop has yet to read (a TLS 1.3
                # session ticket, say) that are not stray answers: only data_received tells.
                poller = select.poll()
                poller.register(self.fd, select.POLLIN | select.POLLPRI)
                self._poll = poller.poll
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, AttributeError):
                pass

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:
            # Bytes on an idle connection: nothing can be trusted on it any more.
            self.broken = True
            self.close()
            return
        if self.pending is not None:
            # Bytes before the request went out: no answer of its. It goes on another
            # connection at the end of the pass (_flush_pending); this one is done.
            self.broken = True
            self.close()
            return
        if self.tunnel:
            conn = ex.conn
            if conn.wbuf:  # the 101 and anything held before it go first
                conn.flush()
            conn.transport.write(data)
            return
        try:
            self._feed(data)
        except parsers.ParseError as exc:
            self.broken = True
            self.ex = None
            ex.upstream = None
            self.close()
            ex.upstream_failed(exc.reason)
        conn = ex.conn
        if conn.wbuf and not conn.corked:  # a body still streaming
            conn.flush()

    def eof_received(self) -> bool | None:
        self.broken = True  # whatever comes next, this connection carries no other request
        ex = self.ex
        if ex is not None and self.tunnel:
            ex.conn.close()  # either side stopping ends the tunnel (Go's ReverseProxy)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        if self.pending is not None and self.ex is not None:
            self.transport = None
            self._resend()  # it closed before the request held for the end of the pass left
            return
        ex = self.ex
        self.ex = None
        self.transport = None
        if ex is None:
            self.pool.forget(self)
            return
        ex.upstream = None
        if self.tunnel:
            ex.conn.close()
            return
        if self.got_head and self.resp_eof_body:
            ex.response_end([])  # a close-delimited body ends here
            ex.conn.flush()
            return
        if not self.got_head:
            reason = "EOF" if exc is None else _describe(exc, self.pool.dial_name)
        else:
            reason = "unexpected EOF"
        ex.upstream_failed(reason)

    def pause_writing(self) -> None:
        ex = self.ex
        if ex is not None:
            ex.conn.pause(S.PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        ex = self.ex
        if ex is not None:
            ex.conn.resume(S.PAUSE_UPSTREAM)

    # ------------------------------------------------------------------ pool side

    def reusable(self, held: bool = False) -> bool:
        """True if this idle connection is still open and silent. ``held``: the request goes
        out at the end of the loop's pass, and ``_flush_pending`` looks then (no syscall)."""
        if self.broken or self.transport is None:
            return False
        if held:
            return True  # a close seen by then sends it elsewhere (no second is_closing here)
        if self._is_closing():
            return False
        # The readiness check is a syscall: bytes that came while the connection sat idle (an
        # app that answers twice, a FIN, a reset) may not have been read by the loop yet, and
        # must never be taken for the next answer. PERF: poll(0) on a poll object registered
        # once costs 0.4 µs; select.select, 0.85 µs.
        ready = self._poll
        if ready is not None:
            try:
                if ready(0):
                    return False  # EOF, reset, error or stray bytes: it must not carry a request
            except (OSError, ValueError):
                return False
        return True

    def pause_reading(self) -> None:
        """The client cannot take more yet (its transport's buffer, its HTTP/2 window)."""
        self.paused = True
        t = self.transport
        if t is not None:
            t.pause_reading()

    def resume_reading(self) -> None:
        self.paused = False
        t = self.transport
        if t is not None:
            t.resume_reading()

    def close(self) -> None:
        self.broken = True
        t = self.transport
        if t is not None:
            t.close()

    def abandon(self) -> None:
        """The exchange gave up on this connection mid-way: it cannot be reused."""
        self.ex = None
        self.broken = True
        t = self.transport
        if t is not None:
            t.abort()

    # ------------------------------------------------------------------ exchange side

    def send_head(self, data: bytes, ex: Any) -> None:
        self.ex = ex
        self.got_head = False
        self.close_after = False
        self.resp_eof_body = False
        self.body_sent = ex.body_done
        self._expect(ex.method == b"HEAD", ex.upgrade)
        if ex.body_done:
            # PERF: a request with no more body to come is written at the end of the loop's
            # pass, with the others of the pass, as HAProxy sends (the answers to clients go
            # so too: Server.uncork). The app then wakes once for several requests, not once
            # for each, and a wake-up costs the writer system time: with both, the
            # queue-proxy's CPU a request fell from 11.4 to 10.5 µs at CC=0, 13.2 to 11.6 at
            # CC=10 (bench/run.py, nginx behind it).
            pool = self.pool
            corked = pool.corked
            if not corked:
                pool._uncork_soon()
            corked.append(self)
            self.pending = data
            return
        self._write(data)

    def _flush_pending(self) -> None:
        """Writes the held request, if any. By now the loop has read what the connection said
        since it was taken (its reads in this pass come before the end of the pass): if it
        closed, broke or spoke, the request goes out on another connection instead. Dropped if
        its exchange ended meanwhile (a client gone, a timeout)."""
        data = self.pending
        if data is not None:
            if self.ex is None:
                self.pending = None
                return
            if self.broken or self.transport is None or self._is_closing():
                self._resend()
                return
            self.pending = None
            self._write(data)

    def _resend(self) -> None:
        data = self.pending
        ex = self.ex
        self.pending = None
        self.ex = None
        self.broken = True
        self.close()
        self.pool.resend(ex, data)

    def send_body(self, data: bytes, chunked: bool) -> None:
        t = self.transport
        if t is None or not data:
            return
        if self.pending is not None:
            self._flush_pending()
        if chunked:
            t.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            t.write(data)

    def send_body_end(self, chunked: bool, trailers: list) -> None:
        self.body_sent = True
        t = self.transport
        if t is None:
            return
        if chunked:
            if self.pending is not None:
                self._flush_pending()
            if trailers:
                t.write(
                    b"0\r\n" + b"".join([n + b": " + v + b"\r\n" for n, v in trailers]) + b"\r\n"
                )
            else:
                t.write(_CHUNK_END)

    # ------------------------------------------------------------------ parser sink

    def on_response_head(self, status: int, version: bytes, headers: list) -> None:
        ex = self.ex
        if ex is None:
            return
        lnames, values, _ = scan_headers(headers)
        te = values[F.TRANSFER_ENCODING]
        if te is not None and te.strip().lower() != b"chunked":
            # Go's transport knows only chunked; relaying another coding would garble it.
            self._fail(ex, f"unsupported transfer encoding: {te.decode('latin-1')!r}")
            return
        tokens = connection_tokens(values[F.CONNECTION])
        if status >= 200:
            self.got_head = True
            # Go's shouldClose: the tokens of Connection, not substrings of it.
            if version == b"1.0":
                self.close_after = b"keep-alive" not in tokens
            elif b"close" in tokens:
                self.close_after = True
            self.resp_eof_body = (
                values[F.CONTENT_LENGTH] is None
                and values[F.TRANSFER_ENCODING] is None
                and ex.method != b"HEAD"
                and status not in (204, 304)
            )
            if self.resp_eof_body:
                self.close_after = True
        elif status == 101:
            # Go's ReverseProxy: a switch must be to the protocol the client asked for.
            asked = ex.fields[F.UPGRADE] if ex.upgrade else None
            got = values[F.UPGRADE]
            if asked is None or got is None or asked.lower() != got.lower():
                got_s = (got or b"").decode("latin-1")
                asked_s = (asked or b"").decode("latin-1")
                self._fail(ex, f"backend tried to switch protocol {got_s!r} when {asked_s!r} "
                               "was requested")
                return
            self.got_head = True
        ex.response_head(status, headers, lnames, values, tokens)

    def on_response_plain(self, status: int, lines: bytes, has_date: bool) -> None:
        """A plain response head, read by the compiled parser's fast path: HTTP/1.1, status
        200-599 but 204 and 304, one Content-Length, no Transfer-Encoding or Upgrade,
        Connection at most ``keep-alive``. ``lines`` are its header lines with the hop-by-hop
        ones cut out, as they go to the client; ``has_date``: a Date header is among them."""
        ex = self.ex
        if ex is None:
            return
        self.got_head = True
        ex.response_plain(status, lines, has_date)

    def _fail(self, ex: Any, reason: str) -> None:
        self.broken = True
        self.ex = None
        ex.upstream = None
        self.close()
        ex.upstream_failed(reason)

    def on_response_body(self, data: bytes) -> None:
        ex = self.ex
        if ex is not None:
            ex.response_body(data)

    def on_response_end(self, trailers: list) -> None:
        ex = self.ex
        if ex is None or not self.got_head or ex.state == S.TUNNEL:  # see on_response_upgrade
            return
        self.ex = None
        ex.upstream = None
        if self.close_after or not self.body_sent or ex.upgrade:
            self.close()
        else:
            self.pool.release(self, ex.conn)
        ex.response_end(trailers)

    def on_response_upgrade(self, rest: bytes) -> None:
        ex = self.ex
        if ex is None or ex.state != S.TUNNEL:
            self.broken = True
            self.close()
            return
        self.tunnel = True
        if rest:
            ex.conn.write(rest)
        ex.conn.start_tunnel(ex)


# knative.dev/pkg/network.DialWithBackOff, which both of Knative's proxies dial with: each try
# gets a timeout, 50 ms then 1.4 times longer (10 % jitter), 15 more tries, 30-60 ms apart;
# only a timeout is tried again (a refusal is final at once). About 20 s in all.
DIAL_BACKOFF = (0.05, 1.4, 15)
_DIAL_SLEEP = 0.03


class DialTimeout(OSError):
    """Every try of ``dial_with_backoff`` timed out (Go's ``ErrTimeoutDialing``)."""


async def dial_with_backoff(loop: asyncio.AbstractEventLoop, factory: Any, host: str,
                            port: int, ssl: Any = None, server_hostname: str | None = None,
                            backoff: tuple[float, float, int] = DIAL_BACKOFF) -> Any:
    """``loop.create_connection`` (and the TLS handshake, with ``ssl``) as DialWithBackOff."""
    duration, factor, steps = backoff
    timeout = duration
    start = loop.time()
    kwargs: dict[str, Any] = {} if ssl is None else {"ssl": ssl,
                                                     "server_hostname": server_hostname}
    while True:
        try:
            return await asyncio.wait_for(
                loop.create_connection(factory, host, port, **kwargs), timeout)
        except TimeoutError:
            if steps < 1:
                break
            timeout = duration * (1 + random.random() * 0.1)  # wait.Backoff.Step
            duration *= factor
            steps -= 1
            await asyncio.sleep(_DIAL_SLEEP * (1 + random.random()))  # wait.Jitter(sleep, 1)
    raise DialTimeout(f"timed out dialing {host}:{port} after {loop.time() - start:.2f}s")


def dial_error(name: str, exc: BaseException) -> str:
    """Go's text for a failed dial to ``name`` (``host:port``)."""
    if isinstance(exc, DialTimeout):
        return str(exc)
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return "tls: failed to verify certificate: " + _x509_words(exc)
    if isinstance(exc, ConnectionRefusedError):
        why = "connect: connection refused"
    elif isinstance(exc, OSError) and exc.errno is not None:
        why = "connect: " + (exc.strerror or str(exc)).lower()
    else:
        why = str(exc) or type(exc).__name__
    return f"dial tcp {name}: {why}"


def _x509_words(exc: ssl_module.SSLCertVerificationError) -> str:
    """Go's crypto/x509 words for OpenSSL's most common verification failures."""
    why = exc.verify_message or ""
    if "issuer" in why or "self-signed" in why or "self signed" in why:
        return "x509: certificate signed by unknown authority"
    if "expired" in why:
        return "x509: certificate has expired or is not yet valid"
    return f"x509: {why or exc.reason or exc}"


def _describe(exc: BaseException, addr: str) -> str:
    if isinstance(exc, ConnectionResetError):
        return f"read tcp {addr}: read: connection reset by peer"
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
        return f"write tcp {addr}: write: broken pipe"
    return str(exc) or type(exc).__name__
