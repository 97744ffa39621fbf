"""The request head sent upstream (Go's httputil.ReverseProxy plus Knative's handlers), sans-IO.

``request_head`` reads an exchange; the one here is a real ``Exchange`` on a ``ServerProtocol``
with no socket, built from a header list the way ``ServerProtocol.on_head`` builds it (the
compiled ``request_head`` takes nothing else).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from _speedups.head import USING_EXTENSIONS as USING_HEAD_C
from _speedups.head import scan_headers
from proxy.engine.messages import HOP_BY_HOP
from proxy.engine.server import Exchange, Server, ServerProtocol
from proxy.headers import drop_set, request_head, split_absolute

Headers = list[tuple[bytes, bytes]]

DROP = drop_set(b"knative-serving-revision", b"knative-serving-namespace")
PEER = "10.1.2.3"
# No loop runs here: the engine only reads the clock of the one it is given (and binds its
# call_soon, for the answers it writes at the end of a pass: none here).
SERVER = Server(None, loop=SimpleNamespace(time=time.monotonic,  # type: ignore[arg-type]
                                           call_soon=lambda *args: None))


def exchange(headers: Headers, *, target: bytes = b"/", method: bytes = b"GET",
             chunked: bool = False, upgrade: bool = False, peer: str = PEER) -> Exchange:
    conn = ServerProtocol(SERVER)
    conn.set_peer(peer, 40000)
    lnames, fields, _flags = scan_headers(headers)
    ex = Exchange(conn, method, target, False, headers, lnames, fields)
    ex.chunked = chunked
    ex.upgrade = upgrade
    return ex


def head(headers: Headers, **kw) -> bytes:
    opts = {k: kw.pop(k) for k in ("host", "extra", "also_drop", "default_host") if k in kw}
    return request_head(exchange(headers, **kw), DROP, **opts)


def parse(raw: bytes) -> tuple[bytes, Headers]:
    """Splits a head into its start line and header pairs; checks the framing on the way."""
    assert raw.endswith(b"\r\n\r\n")
    lines = raw[:-4].split(b"\r\n")
    pairs = []
    for line in lines[1:]:
        name, sep, value = line.partition(b": ")
        assert sep, line
        pairs.append((name, value))
    return lines[0], pairs


def values(raw: bytes, name: bytes) -> list[bytes]:
    return [v for n, v in parse(raw)[1] if n.lower() == name.lower()]


def names(raw: bytes) -> list[bytes]:
    return [n for n, _ in parse(raw)[1]]


# --------------------------------------------------------------------------- drop_set


def test_drop_set_contents() -> None:
    d = drop_set(b"a", b"b")
    assert HOP_BY_HOP <= d
    assert {b"x-forwarded-for", b"a", b"b"} <= d
    assert isinstance(d, frozenset)


def test_drop_set_holds_the_names_the_scanner_hands_out() -> None:
    """Each name in a drop set is the very object ``scan_headers`` gives as a header's
    lower-case name (compiled), so that a dropped header is found by identity."""
    from _speedups import fields as F

    d = drop_set(bytes(bytearray(b"knative-serving-revision")), b"k-proxy-request", b"x-unknown")
    by_value = {n: n for n in d}
    assert by_value[b"knative-serving-revision"] is F.NAMES[F.KNATIVE_SERVING_REVISION]
    assert by_value[b"keep-alive"] is F.shared(b"keep-alive")
    assert by_value[b"x-forwarded-for"] is F.NAMES[F.X_FORWARDED_FOR]
    assert b"x-unknown" in d
    lnames = scan_headers([(b"Knative-Serving-Revision", b"r"), (b"Keep-Alive", b"5"),
                           (b"X-Forwarded-For", b"a")])[0]
    if USING_HEAD_C:  # the pure twin lower-cases each name anew
        assert [by_value[n] is n for n in lnames] == [True, True, True]


def test_hop_by_hop_list() -> None:
    assert {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"transfer-encoding",
        b"upgrade",
    } <= HOP_BY_HOP


# --------------------------------------------------------------------------- split_absolute


@pytest.mark.parametrize(
    ("target", "want"),
    [
        (b"/a/b?c=d", (b"/a/b?c=d", None)),
        (b"/", (b"/", None)),
        (b"*", (b"*", None)),
        (b"example.com:443", (b"example.com:443", None)),
        (b"http://example.com/a/b?c=d", (b"/a/b?c=d", b"example.com")),
        (b"https://example.com:8443/x", (b"/x", b"example.com:8443")),
        (b"http://example.com", (b"/", b"example.com")),
        (b"http://example.com?q=1", (b"/?q=1", b"example.com")),
        (b"http://[::1]:8080/p", (b"/p", b"[::1]:8080")),
    ],
)
def test_split_absolute(target: bytes, want: tuple[bytes, bytes | None]) -> None:
    assert split_absolute(target) == want


# --------------------------------------------------------------------------- start line


def test_start_line_is_http11_with_method_and_target() -> None:
    raw = head([(b"Host", b"h")], method=b"POST", target=b"/p?q=1")
    assert parse(raw)[0] == b"POST /p?q=1 HTTP/1.1"


def test_absolute_form_becomes_origin_form_and_sets_host() -> None:
    raw = head([(b"Host", b"ignored")], target=b"http://example.com:8080/a?b=c")
    start, pairs = parse(raw)
    assert start == b"GET /a?b=c HTTP/1.1"
    assert values(raw, b"host") == [b"example.com:8080"]


def test_absolute_form_without_path() -> None:
    raw = head([(b"Host", b"h")], target=b"http://example.com")
    assert parse(raw)[0] == b"GET / HTTP/1.1"
    assert values(raw, b"host") == [b"example.com"]


def test_absolute_form_with_explicit_host_override_keeps_override() -> None:
    raw = head([(b"Host", b"h")], target=b"http://example.com/x", host=b"original")
    assert parse(raw)[0] == b"GET /x HTTP/1.1"
    assert values(raw, b"host") == [b"original"]


def test_asterisk_target_passes_through() -> None:
    raw = head([(b"Host", b"h")], method=b"OPTIONS", target=b"*")
    assert parse(raw)[0] == b"OPTIONS * HTTP/1.1"
    assert values(raw, b"host") == [b"h"]


def test_absolute_form_userinfo_not_in_host() -> None:
    raw = head([(b"Host", b"h")], target=b"http://user:pw@example.com/x")
    assert values(raw, b"host") == [b"example.com"]


# --------------------------------------------------------------------------- Host


def test_host_is_kept() -> None:
    raw = head([(b"Host", b"svc.ns.example.com")], default_host=b"127.0.0.1:8080")
    assert values(raw, b"host") == [b"svc.ns.example.com"]


def test_host_keeps_its_original_case_and_position() -> None:
    raw = head([(b"A", b"1"), (b"hOsT", b"h"), (b"B", b"2")])
    assert names(raw)[:3] == [b"A", b"hOsT", b"B"]


def test_host_override_replaces_host() -> None:
    raw = head(
        [(b"Host", b"activator"), (b"K-Original-Host", b"orig.example.com")],
        host=b"orig.example.com",
        also_drop=(b"k-original-host",),
    )
    assert values(raw, b"host") == [b"orig.example.com"]
    assert values(raw, b"k-original-host") == []


def test_host_filled_from_default_when_absent() -> None:
    raw = head([(b"Accept", b"*/*")], default_host=b"127.0.0.1:8080")
    assert values(raw, b"host") == [b"127.0.0.1:8080"]


def test_empty_host_filled_from_default() -> None:
    raw = head([(b"Host", b"")], default_host=b"127.0.0.1:8080")
    assert values(raw, b"host") == [b"127.0.0.1:8080"]


def test_connection_naming_host_keeps_host() -> None:
    raw = head([(b"Host", b"h"), (b"Connection", b"Host")], default_host=b"127.0.0.1:8080")
    assert values(raw, b"host") == [b"h"]


# --------------------------------------------------------------------------- X-Forwarded-For


def test_xff_added_with_peer_when_absent() -> None:
    raw = head([(b"Host", b"h")])
    assert values(raw, b"x-forwarded-for") == [PEER.encode()]


def test_xff_appended() -> None:
    raw = head([(b"Host", b"h"), (b"X-Forwarded-For", b"a, b")])
    assert values(raw, b"x-forwarded-for") == [b"a, b, " + PEER.encode()]


def test_repeated_xff_joined() -> None:
    raw = head([(b"X-Forwarded-For", b"a"), (b"Host", b"h"), (b"x-forwarded-for", b"b, c")])
    assert values(raw, b"x-forwarded-for") == [b"a, b, c, " + PEER.encode()]


def test_xff_ipv6_peer() -> None:
    ex = exchange([(b"Host", b"h"), (b"X-Forwarded-For", b"a")], peer="::1")
    raw = request_head(ex, DROP)
    assert values(raw, b"x-forwarded-for") == [b"a, ::1"]


# --------------------------------------------------------------------------- hop-by-hop


@pytest.mark.parametrize(
    "name",
    [
        b"Connection",
        b"Keep-Alive",
        b"Proxy-Connection",
        b"Proxy-Authenticate",
        b"Proxy-Authorization",
        b"TE",
        b"Transfer-Encoding",
        b"Upgrade",
    ],
)
def test_hop_by_hop_header_removed(name: bytes) -> None:
    raw = head([(b"Host", b"h"), (name, b"gzip"), (b"X-Keep", b"1")])
    assert values(raw, name) == []
    assert values(raw, b"x-keep") == [b"1"]


def test_connection_and_the_headers_it_names_removed() -> None:
    raw = head(
        [
            (b"Host", b"h"),
            (b"Connection", b"keep-alive, X-Secret , x-other"),
            (b"X-Secret", b"s"),
            (b"X-Other", b"o"),
            (b"X-Kept", b"k"),
            (b"Keep-Alive", b"timeout=5"),
        ]
    )
    assert names(raw) == [b"Host", b"X-Kept", b"X-Forwarded-For"]


def test_repeated_connection_headers_all_count() -> None:
    raw = head(
        [
            (b"Host", b"h"),
            (b"Connection", b"x-a"),
            (b"Connection", b"X-B"),
            (b"X-A", b"1"),
            (b"X-B", b"2"),
        ]
    )
    assert values(raw, b"x-a") == []
    assert values(raw, b"x-b") == []


def test_te_trailers_readded() -> None:
    raw = head([(b"Host", b"h"), (b"TE", b"trailers")])
    assert values(raw, b"te") == [b"trailers"]


def test_te_with_trailers_among_others_becomes_trailers() -> None:
    raw = head([(b"Host", b"h"), (b"TE", b"gzip, Trailers")])
    assert values(raw, b"te") == [b"trailers"]


def test_te_without_trailers_dropped() -> None:
    raw = head([(b"Host", b"h"), (b"TE", b"gzip, deflate")])
    assert values(raw, b"te") == []


def test_te_trailers_readded_even_when_connection_names_te() -> None:
    """Go looks at the incoming TE, not at the stripped outgoing headers."""
    raw = head([(b"Host", b"h"), (b"Connection", b"TE"), (b"TE", b"trailers")])
    assert values(raw, b"te") == [b"trailers"]


def test_te_trailers_is_a_token_match() -> None:
    raw = head([(b"Host", b"h"), (b"TE", b"x-trailers-ext")])
    assert values(raw, b"te") == []


def test_transfer_encoding_readded_only_when_chunked() -> None:
    hs = [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]
    assert values(head(hs, method=b"POST", chunked=True), b"transfer-encoding") == [b"chunked"]
    assert values(head([(b"Host", b"h")], method=b"POST"), b"transfer-encoding") == []


def test_chunked_flag_alone_writes_transfer_encoding_once() -> None:
    raw = head(
        [(b"Host", b"h"), (b"transfer-encoding", b"gzip, chunked")], method=b"POST", chunked=True
    )
    assert values(raw, b"transfer-encoding") == [b"chunked"]


def test_content_length_kept() -> None:
    raw = head([(b"Host", b"h"), (b"Content-Length", b"5")], method=b"POST")
    assert values(raw, b"content-length") == [b"5"]


def test_connection_cannot_strip_content_length() -> None:
    raw = head(
        [(b"Host", b"h"), (b"Connection", b"Content-Length"), (b"Content-Length", b"5")],
        method=b"POST",
    )
    assert values(raw, b"content-length") == [b"5"]


def test_upgrade_request_keeps_connection_upgrade_and_upgrade() -> None:
    raw = head(
        [
            (b"Host", b"h"),
            (b"Connection", b"keep-alive, Upgrade"),
            (b"Upgrade", b"websocket"),
            (b"Sec-WebSocket-Key", b"k"),
        ],
        upgrade=True,
    )
    assert values(raw, b"connection") == [b"Upgrade"]
    assert values(raw, b"upgrade") == [b"websocket"]
    assert values(raw, b"sec-websocket-key") == [b"k"]


def test_upgrade_header_without_upgrade_request_dropped() -> None:
    raw = head([(b"Host", b"h"), (b"Upgrade", b"websocket")])
    assert values(raw, b"upgrade") == []
    assert values(raw, b"connection") == []


# --------------------------------------------------------------------------- other headers


def test_knative_serving_headers_removed() -> None:
    raw = head(
        [
            (b"Host", b"h"),
            (b"Knative-Serving-Revision", b"rev"),
            (b"knative-serving-namespace", b"ns"),
            (b"Knative-Serving-Tag", b"t"),
        ]
    )
    assert values(raw, b"knative-serving-revision") == []
    assert values(raw, b"knative-serving-namespace") == []
    assert values(raw, b"knative-serving-tag") == [b"t"]


def test_no_user_agent_added() -> None:
    raw = head([(b"Host", b"h")])
    assert values(raw, b"user-agent") == []


def test_user_agent_kept() -> None:
    raw = head([(b"Host", b"h"), (b"User-Agent", b"curl/8")])
    assert values(raw, b"user-agent") == [b"curl/8"]


def test_other_headers_kept_in_order_with_original_case() -> None:
    hs = [
        (b"Host", b"h"),
        (b"x-lower", b"1"),
        (b"X-UPPER", b"2"),
        (b"Accept", b"*/*"),
        (b"x-lower", b"3"),
        (b"Cookie", b"a=b"),
        (b"Content-Type", b"text/plain; charset=UTF-8"),
    ]
    raw = head(hs)
    _, pairs = parse(raw)
    assert pairs[: len(hs)] == hs


def test_extra_lines_appended_before_blank_line() -> None:
    raw = head([(b"Host", b"h"), (b"A", b"1")], extra=b"Forwarded: for=a\r\n")
    assert raw.endswith(b"Forwarded: for=a\r\n\r\n")
    assert values(raw, b"a") == [b"1"]


def test_also_drop() -> None:
    raw = head(
        [(b"Host", b"h"), (b"X-Drop-Me", b"1"), (b"X-Keep", b"2")], also_drop=(b"x-drop-me",)
    )
    assert values(raw, b"x-drop-me") == []
    assert values(raw, b"x-keep") == [b"2"]


def test_exact_head_for_a_typical_request() -> None:
    raw = head(
        [
            (b"Host", b"hello.default.example.com"),
            (b"User-Agent", b"curl/8.0"),
            (b"Accept", b"*/*"),
            (b"Connection", b"keep-alive"),
            (b"X-Forwarded-For", b"192.0.2.1"),
            (b"Knative-Serving-Revision", b"hello-00001"),
        ],
        default_host=b"127.0.0.1:8080",
    )
    assert raw == (
        b"GET / HTTP/1.1\r\n"
        b"Host: hello.default.example.com\r\n"
        b"User-Agent: curl/8.0\r\n"
        b"Accept: */*\r\n"
        b"X-Forwarded-For: 192.0.2.1, 10.1.2.3\r\n"
        b"\r\n"
    )
