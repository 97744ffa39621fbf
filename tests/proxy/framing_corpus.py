"""The framing fuzzer's corpus: request-smuggling shapes after the public corpora, and findings.

Each case is a function ``(head, inner) -> bytes``: ``head(target, lines)`` writes a request
head with the routing headers of the front under test, ``inner`` is a whole request whose id the
app must never see (it sits inside a body, or behind something the proxy must refuse). Every
case is read so that no correct proxy runs ``inner``: where RFC 9112 leaves a choice (a message
with both Content-Length and Transfer-Encoding), the case is built so that both readings hide
``inner`` or so that Knative's (Go's) refusal is the only safe answer. The fuzzer runs every case
first, then mutates them. A finding of the fuzzer becomes a case here.
"""

from __future__ import annotations

from collections.abc import Callable

Head = Callable[[str, list[bytes]], bytes]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _cases() -> dict[str, Callable[[Head, bytes], bytes]]:
    c: dict[str, Callable[[Head, bytes], bytes]] = {}

    def case(fn: Callable[[Head, bytes], bytes]) -> Callable[[Head, bytes], bytes]:
        c[fn.__name__] = fn
        return fn

    @case
    def cl_then_te(h: Head, inner: bytes) -> bytes:  # CL.TE: refused (Go refuses both)
        body = b"0\r\n\r\n" + inner
        return h("POST", [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"]) + body

    @case
    def te_then_cl(h: Head, inner: bytes) -> bytes:  # TE.CL
        body = _chunk(inner) + b"0\r\n\r\n"
        return h("POST", [b"Transfer-Encoding: chunked", b"Content-Length: 3"]) + body

    @case
    def te_chunked_inside_body(h: Head, inner: bytes) -> bytes:  # the plain case: hidden
        return h("POST", [b"Transfer-Encoding: chunked"]) + _chunk(inner) + b"0\r\n\r\n"

    @case
    def cl_inside_body(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"Content-Length: %d" % len(inner)]) + inner

    @case
    def get_with_a_body(h: Head, inner: bytes) -> bytes:
        return h("GET", [b"Content-Length: %d" % len(inner)]) + inner

    @case
    def two_lengths(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"Content-Length: 0", b"Content-Length: %d" % len(inner)]) + inner

    @case
    def length_list(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"Content-Length: %d, 0" % len(inner)]) + inner

    @case
    def plus_length(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"Content-Length: +%d" % len(inner)]) + inner

    @case
    def hex_length(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"Content-Length: 0x%x" % len(inner)]) + inner

    @case
    def space_before_colon(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding : chunked", b"Content-Length: %d" % len(inner)])
                + inner)

    @case
    def te_xchunked(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"Transfer-Encoding: xchunked"]) + _chunk(inner) + b"0\r\n\r\n"

    @case
    def te_chunked_identity(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: chunked, identity"])
                + _chunk(inner) + b"0\r\n\r\n")

    @case
    def te_vertical_tab(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding:\x0bchunked", b"Content-Length: %d" % len(inner)])
                + inner)

    @case
    def te_obs_fold(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: identity", b" chunked",
                           b"Content-Length: %d" % len(inner)]) + inner)

    @case
    def te_twice(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"])
                + _chunk(inner) + b"0\r\n\r\n")

    @case
    def chunk_size_overflow(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: chunked"]) + b"1" * 17 + b"0\r\n"
                + inner + b"\r\n0\r\n\r\n")

    @case
    def chunk_size_0x(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: chunked"]) + b"0x%x\r\n" % len(inner)
                + inner + b"\r\n0\r\n\r\n")

    @case
    def chunk_extension_bare_cr(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: chunked"]) + b"%x;a=b\rc\r\n" % len(inner)
                + inner + b"\r\n0\r\n\r\n")

    @case
    def chunk_lf_only(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Transfer-Encoding: chunked"]) + b"%x\n" % len(inner) + inner
                + b"\n0\n\n")

    @case
    def chunk_short_data(h: Head, inner: bytes) -> bytes:  # the size says more than is sent
        return (h("POST", [b"Transfer-Encoding: chunked"]) + b"%x\r\n" % (len(inner) + 8)
                + inner + b"\r\n0\r\n\r\n")

    @case
    def upgrade_with_a_body(h: Head, inner: bytes) -> bytes:
        return (h("POST", [b"Connection: Upgrade", b"Upgrade: websocket",
                           b"Content-Length: %d" % len(inner)]) + inner)

    @case
    def refused_upgrade_then_bytes(h: Head, inner: bytes) -> bytes:
        return h("GET", [b"Connection: Upgrade", b"Upgrade: websocket"]) + inner

    @case
    def h2c_upgrade_then_bytes(h: Head, inner: bytes) -> bytes:
        return h("GET", [b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
                         b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]) + inner

    @case
    def http10_close_then_bytes(h: Head, inner: bytes) -> bytes:
        return h("GET", []).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1) + inner

    @case
    def connection_close_then_bytes(h: Head, inner: bytes) -> bytes:
        return h("GET", [b"Connection: close"]) + inner

    @case
    def nul_in_a_header(h: Head, inner: bytes) -> bytes:
        return h("POST", [b"X-A: a\x00b", b"Content-Length: %d" % len(inner)]) + inner

    return c


CASES = _cases()
