"""The head scanner's two twins (pure ``_head_py`` and compiled ``_head_c``) and their selector.

Every case runs against both twins. The compiled one is skipped only when it cannot be imported
and ``DATAPLANE_NO_EXTENSIONS`` is set; otherwise a missing build is a failure. The guard tests
check which twin the selector loads.
"""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from _speedups import _head_py
from _speedups import fields as F

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["py", "c"])
def twin(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "py":
        return _head_py
    try:
        return importlib.import_module("_speedups._head_c")
    except ImportError as exc:
        if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
            pytest.skip(f"compiled twin not built and DATAPLANE_NO_EXTENSIONS is set: {exc}")
        pytest.fail(
            f"compiled twin _speedups._head_c not importable ({exc}); build it with "
            "`pip install -e .` or set DATAPLANE_NO_EXTENSIONS=1"
        )


def _compiled_or_none() -> ModuleType | None:
    try:
        return importlib.import_module("_speedups._head_c")
    except ImportError:
        return None


# --------------------------------------------------------------------------- fields


def test_field_names_are_lower_case_and_unique() -> None:
    assert all(n == n.lower() for n in F.NAMES)
    assert len(set(F.NAMES)) == len(F.NAMES) == F.COUNT


def test_field_index_matches_constants() -> None:
    assert F.INDEX[b"host"] == F.HOST
    assert F.INDEX[b"x-forwarded-for"] == F.X_FORWARDED_FOR
    assert F.INDEX[b"content-length"] == F.CONTENT_LENGTH
    assert F.INDEX[b"keep-alive"] == F.KEEP_ALIVE
    assert [F.INDEX[n] for n in F.NAMES] == list(range(F.COUNT))


def test_shared_names_are_one_object_each() -> None:
    """``fields.shared`` gives one object per lower-case name (a slot's name where it has one),
    whatever object it is asked with; an unknown name comes back as given."""
    assert all(key is value for key, value in F.LOWER.items())
    assert F.shared(bytes(bytearray(b"host"))) is F.NAMES[F.HOST]
    assert F.shared(bytes(bytearray(b"accept"))) is F.shared(b"Accept".lower())
    unknown = b"x-not-common"
    assert F.shared(unknown) is unknown


def test_joined_fields() -> None:
    assert F.JOINED == {F.CONNECTION, F.TE, F.TRANSFER_ENCODING, F.UPGRADE, F.TRAILER}
    assert F.X_FORWARDED_FOR not in F.JOINED  # first line only, as Go's Header.Get
    assert F.HOST not in F.JOINED
    assert F.CONTENT_LENGTH not in F.JOINED


# --------------------------------------------------------------------------- scan_headers


def test_scan_empty(twin: ModuleType) -> None:
    lnames, values, flags = twin.scan_headers([])
    assert lnames == []
    assert values == [None] * F.COUNT
    assert flags == 0


def test_scan_lowercases_names_and_keeps_values(twin: ModuleType) -> None:
    headers = [(b"Host", b"Example.COM"), (b"X-Custom", b"MiXeD"), (b"USER-AGENT", b"Curl/8")]
    lnames, values, flags = twin.scan_headers(headers)
    assert lnames == [b"host", b"x-custom", b"user-agent"]
    assert values[F.HOST] == b"Example.COM"
    assert values[F.USER_AGENT] == b"Curl/8"
    assert flags == 0
    # The input is not modified.
    assert headers == [
        (b"Host", b"Example.COM"),
        (b"X-Custom", b"MiXeD"),
        (b"USER-AGENT", b"Curl/8"),
    ]


@pytest.mark.parametrize("name", F.NAMES)
def test_every_known_name_has_its_slot(twin: ModuleType, name: bytes) -> None:
    _, values, _ = twin.scan_headers([(name.upper(), b"v")])
    assert values[F.INDEX[name]] == b"v"
    assert sum(v is not None for v in values) == 1


def test_unknown_headers_only_in_lnames(twin: ModuleType) -> None:
    lnames, values, _ = twin.scan_headers([(b"X-Foo", b"1"), (b"Accept", b"*/*")])
    assert lnames == [b"x-foo", b"accept"]
    assert values == [None] * F.COUNT


def test_first_value_wins_for_single_valued(twin: ModuleType) -> None:
    _, values, _ = twin.scan_headers(
        [(b"Host", b"a"), (b"host", b"b"), (b"User-Agent", b"x"), (b"User-Agent", b"y")]
    )
    assert values[F.HOST] == b"a"
    assert values[F.USER_AGENT] == b"x"


@pytest.mark.parametrize("slot", sorted(F.JOINED))
def test_list_valued_headers_are_joined(twin: ModuleType, slot: int) -> None:
    name = F.NAMES[slot]
    _, values, _ = twin.scan_headers([(name, b"a"), (b"Other", b"o"), (name.title(), b"b, c")])
    assert values[slot] == b"a, b, c"


def test_xff_keeps_its_first_line(twin: ModuleType) -> None:
    # Go's Header.Get: the Forwarded shim reads the first line; the header rules join them all.
    hs = [(b"X-Forwarded-For", b"1"), (b"X-Forwarded-For", b"2"), (b"x-forwarded-for", b"3")]
    assert twin.scan_headers(hs)[1][F.X_FORWARDED_FOR] == b"1"


def test_conflicting_content_length_flagged(twin: ModuleType) -> None:
    _, values, flags = twin.scan_headers([(b"Content-Length", b"1"), (b"Content-Length", b"2")])
    assert flags & F.FLAG_CONFLICTING_LENGTH
    assert values[F.CONTENT_LENGTH] == b"1"


@pytest.mark.parametrize("second", [b"5", b" 5", b"5 "])
def test_identical_content_length_not_flagged(twin: ModuleType, second: bytes) -> None:
    _, values, flags = twin.scan_headers([(b"Content-Length", b"5"), (b"content-length", second)])
    assert flags == 0
    assert values[F.CONTENT_LENGTH] == b"5"


def test_empty_values_are_kept_not_none(twin: ModuleType) -> None:
    _, values, _ = twin.scan_headers([(b"Host", b""), (b"X-Forwarded-For", b"")])
    assert values[F.HOST] == b""
    assert values[F.X_FORWARDED_FOR] == b""


def test_scan_returns_fresh_lists(twin: ModuleType) -> None:
    a = twin.scan_headers([(b"Host", b"a")])
    b = twin.scan_headers([(b"Host", b"b")])
    assert a[1][F.HOST] == b"a"
    assert b[1][F.HOST] == b"b"
    assert a[1] is not b[1]


# --------------------------------------------------------------------------- connection_tokens


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, []),
        (b"", []),
        (b"close", [b"close"]),
        (b"Keep-Alive, Upgrade", [b"keep-alive", b"upgrade"]),
        (b"  X-A ,x-b,,  ,X-C  ", [b"x-a", b"x-b", b"x-c"]),
        (b",", []),
    ],
)
def test_connection_tokens(twin: ModuleType, value: bytes | None, want: list[bytes]) -> None:
    assert twin.connection_tokens(value) == want


# --------------------------------------------------------------------------- build_head


HEADERS = [
    (b"Host", b"h"),
    (b"Connection", b"close"),
    (b"X-Keep", b"1"),
    (b"X-Drop", b"2"),
    (b"x-keep", b"3"),
]
LNAMES = [n.lower() for n, _ in HEADERS]


def test_build_head_layout(twin: ModuleType) -> None:
    out = twin.build_head(b"GET / HTTP/1.1\r\n", HEADERS, LNAMES, frozenset(), None, b"")
    assert out == (
        b"GET / HTTP/1.1\r\n"
        b"Host: h\r\nConnection: close\r\nX-Keep: 1\r\nX-Drop: 2\r\nx-keep: 3\r\n"
        b"\r\n"
    )


def test_build_head_drop(twin: ModuleType) -> None:
    out = twin.build_head(
        b"GET / HTTP/1.1\r\n", HEADERS, LNAMES, frozenset({b"connection", b"x-drop"}), None, b""
    )
    assert out == b"GET / HTTP/1.1\r\nHost: h\r\nX-Keep: 1\r\nx-keep: 3\r\n\r\n"


@pytest.mark.parametrize("also_drop", [[b"x-keep"], (b"x-keep",), {b"x-keep"}])
def test_build_head_also_drop(twin: ModuleType, also_drop) -> None:
    out = twin.build_head(
        b"GET / HTTP/1.1\r\n", HEADERS, LNAMES, frozenset({b"connection"}), also_drop, b""
    )
    assert out == b"GET / HTTP/1.1\r\nHost: h\r\nX-Drop: 2\r\n\r\n"


def test_build_head_also_drop_compares_values_not_identity(twin: ModuleType) -> None:
    """Tokens read off the wire are new objects: equal bytes drop, a same-length or prefix
    near miss does not."""
    wire = [b"-".join([b"x", b"keep"]), b"x-dro", b"x-drqp"]
    assert wire[0] == LNAMES[2] and wire[0] is not LNAMES[2]
    out = twin.build_head(b"S\r\n", HEADERS, LNAMES, frozenset(), wire, b"")
    assert out == b"S\r\nHost: h\r\nConnection: close\r\nX-Drop: 2\r\n\r\n"


@pytest.mark.parametrize("also_drop", [None, [], ()])
def test_build_head_empty_also_drop(twin: ModuleType, also_drop) -> None:
    out = twin.build_head(b"S\r\n", HEADERS[:1], LNAMES[:1], frozenset(), also_drop, b"")
    assert out == b"S\r\nHost: h\r\n\r\n"


def test_build_head_drop_uses_lnames_not_names(twin: ModuleType) -> None:
    """Matching is on the lower-cased names given, so mixed-case names drop alike."""
    out = twin.build_head(b"S\r\n", HEADERS, LNAMES, frozenset({b"x-keep"}), None, b"")
    assert b"X-Keep" not in out and b"x-keep" not in out


@pytest.mark.parametrize("n", [3, 300])  # 300: beyond the compiled fast path's 256
def test_build_head_start_and_extra_in_pieces(twin: ModuleType, n: int) -> None:
    headers = [(b"X-%d" % i, b"v") for i in range(n)]
    lnames = [name.lower() for name, _ in headers]
    whole = twin.build_head(b"GET /p HTTP/1.1\r\n", headers, lnames, frozenset(), None,
                            b"A: 1\r\nB: 2\r\n")
    pieces = twin.build_head((b"GET", b" ", b"/p", b" HTTP/1.1\r\n"), headers, lnames,
                             frozenset(), None, (b"A: 1\r\n", b"", b"B: 2\r\n"))
    assert pieces == whole
    nested = twin.build_head(((b"GET",), b" /p", (b" HTTP/1.1", b"\r\n")), headers, lnames,
                             frozenset(), None, ((), (b"A: 1\r\n", b"B: 2\r\n")))
    assert nested == whole
    assert twin.build_head((), [], [], frozenset(), None, ()) == b"\r\n"
    with pytest.raises(TypeError):  # two levels of tuples at most
        twin.build_head((((b"GET / HTTP/1.1\r\n",),),), headers, lnames, frozenset(), None,
                        b"")
    with pytest.raises(TypeError):
        twin.build_head([b"GET / HTTP/1.1\r\n"], headers, lnames, frozenset(), None, b"")
    with pytest.raises(TypeError):
        twin.build_head(b"S\r\n", headers, lnames, frozenset(), None, [b"A: 1\r\n"])


def test_build_head_extra_goes_last(twin: ModuleType) -> None:
    out = twin.build_head(
        b"HTTP/1.1 200 OK\r\n", [(b"A", b"1")], [b"a"], frozenset(), None, b"B: 2\r\nC: 3\r\n"
    )
    assert out == b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"


def test_build_head_no_headers(twin: ModuleType) -> None:
    assert twin.build_head(b"S\r\n", [], [], frozenset(), None, b"") == b"S\r\n\r\n"


def test_build_head_values_written_verbatim(twin: ModuleType) -> None:
    hs = [(b"X-Bin", b"\x80\xff"), (b"X-Empty", b"")]
    out = twin.build_head(b"S\r\n", hs, [b"x-bin", b"x-empty"], frozenset(), None, b"")
    assert out == b"S\r\nX-Bin: \x80\xff\r\nX-Empty: \r\n\r\n"


def test_scan_then_build_round_trip(twin: ModuleType) -> None:
    hs = [(b"Host", b"h"), (b"Connection", b"x-hop"), (b"X-Hop", b"1"), (b"X-End", b"2")]
    lnames, values, _ = twin.scan_headers(hs)
    drops = twin.connection_tokens(values[F.CONNECTION])
    out = twin.build_head(b"GET / HTTP/1.1\r\n", hs, lnames, frozenset({b"connection"}), drops, b"")
    assert out == b"GET / HTTP/1.1\r\nHost: h\r\nX-End: 2\r\n\r\n"


# --------------------------------------------------------------------------- twins agree


CORPUS = [
    [],
    [(b"Host", b"h")],
    [(b"HOST", b"a"), (b"Host", b"b"), (b"Content-Length", b"1"), (b"content-length", b"2")],
    [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), (b"upgrade", b"h2c")],
    [(b"X-Forwarded-For", b"1"), (b"TE", b"trailers"), (b"te", b"gzip"), (b"X", b"y")],
    [(n.title(), b"v%d" % i) for i, n in enumerate(F.NAMES)] * 2,
]


@pytest.mark.parametrize("headers", CORPUS)
def test_twins_agree(headers: list[tuple[bytes, bytes]]) -> None:
    compiled = _compiled_or_none()
    if compiled is None:
        if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
            pytest.skip("compiled twin not built")
        pytest.fail("compiled twin _speedups._head_c not importable")
    py = _head_py.scan_headers(headers)
    c = compiled.scan_headers(headers)
    assert py == c
    lnames, values, _ = py
    drop = frozenset({b"host", b"connection"})
    also = _head_py.connection_tokens(values[F.CONNECTION])
    assert also == compiled.connection_tokens(values[F.CONNECTION])
    args = (b"GET / HTTP/1.1\r\n", headers, lnames, drop, also, b"Extra: 1\r\n")
    assert _head_py.build_head(*args) == compiled.build_head(*args)


def test_twins_export_the_same_api() -> None:
    compiled = _compiled_or_none()
    if compiled is None:
        pytest.skip("compiled twin not built")
    for name in ("scan_headers", "build_head", "connection_tokens", "valid_host", "h2_headers",
                 "h2_frame"):
        assert callable(getattr(compiled, name))
        assert callable(getattr(_head_py, name))


# --------------------------------------------------------------------------- selector guards


def test_selector_exports() -> None:
    from _speedups import head

    assert set(head.__all__) == {
        "scan_headers",
        "build_head",
        "connection_tokens",
        "valid_host",
        "join_bytes",
        "h2_headers",
        "h2_frame",
        "USING_EXTENSIONS",
    }
    twin_name = "_speedups._head_c" if head.USING_EXTENSIONS else "_speedups._head_py"
    assert head.scan_headers.__module__ == twin_name


def test_package_flag_matches_selector() -> None:
    import _speedups
    from _speedups import head

    assert _speedups.USING_EXTENSIONS is head.USING_EXTENSIONS
    if _speedups.NO_EXTENSIONS:
        assert head.USING_EXTENSIONS is False


def test_guard_compiled_twin_loaded_when_expected() -> None:
    """Fails when the build was expected to produce the compiled twin and it did not load."""
    if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        pytest.skip("DATAPLANE_NO_EXTENSIONS is set")
    if os.environ.get("DATAPLANE_EXPECT_EXTENSIONS") != "1":
        pytest.skip("DATAPLANE_EXPECT_EXTENSIONS=1 not set")
    from _speedups import head

    assert head.USING_EXTENSIONS is True, "compiled head scanner expected but not loaded"


def _fresh_selector(env_update: dict[str, str], drop: tuple[str, ...] = ()) -> str:
    env = dict(os.environ)
    for name in drop:
        env.pop(name, None)
    env.update(env_update)
    code = (
        "import _speedups, _speedups.head as h; "
        "print(h.USING_EXTENSIONS, _speedups.USING_EXTENSIONS, _speedups.NO_EXTENSIONS, "
        "h.scan_headers.__module__)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_guard_no_extensions_env_forces_pure_twin() -> None:
    out = _fresh_selector({"DATAPLANE_NO_EXTENSIONS": "1"})
    assert out == "False False True _speedups._head_py"


def test_guard_selector_prefers_compiled_twin_when_built() -> None:
    if platform.python_implementation() != "CPython":
        pytest.skip("compiled twins are CPython only")
    if _compiled_or_none() is None:
        if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
            pytest.skip("compiled twin not built")
        pytest.fail("compiled twin _speedups._head_c not importable")
    out = _fresh_selector({}, drop=("DATAPLANE_NO_EXTENSIONS",))
    assert out == "True True False _speedups._head_c"


def test_valid_host_twins_agree_on_every_byte() -> None:
    from _speedups import _head_py

    twins = [_head_py.valid_host]
    try:
        from _speedups import _head_c

        twins.append(_head_c.valid_host)
    except ImportError:
        pass
    for b in range(256):
        value = b"host" + bytes([b]) + b":80"
        expected = chr(b).isascii() and (chr(b).isalnum() or chr(b) in "!$%&'()*+,-.:;=[]_~")
        assert [f(value) for f in twins] == [expected] * len(twins), b
    for value in (b"", b"example.com", b"[::1]:8080", b"a b", b"a/b", b"\xff"):
        assert len({f(value) for f in twins}) == 1, value


# --------------------------------------------------------------------------- join_bytes


@pytest.mark.parametrize(
    "parts",
    [[], (), [b""], [b"a"], (b"ab", b"", b"cd", b"\x00\xff"), [b"x" * 70000, b"y"]],
)
def test_join_bytes(twin: ModuleType, parts) -> None:
    assert twin.join_bytes(parts) == b"".join(parts)


def test_join_bytes_takes_what_join_takes(twin: ModuleType) -> None:
    assert twin.join_bytes([b"a", bytearray(b"b"), memoryview(b"c")]) == b"abc"
    assert twin.join_bytes(iter([b"a", b"b"])) == b"ab"
    with pytest.raises(TypeError):
        twin.join_bytes([b"a", "b"])


# ------------------------------------------------------------------ h2_headers: an HTTP/1.1
# request head (what the handlers build) as an HTTP/2 header list

H2_HEADS = [
    b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: x\r\n\r\n",
    b"POST /p?q=1 HTTP/1.1\r\nHost: h:80\r\nContent-Length: 3\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    b"GET /a%20b HTTP/1.1\r\nHOST: Up\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n"
    b"Proxy-Connection: x\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAA\r\nTE: trailers, deflate\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\nte: gzip\r\nK-Proxy-Request: activator\r\n\r\n",  # no Host: none
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Empty:\r\nX-Spaces:   padded \t \r\n  Odd-Name  : v\r\nnocolon\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\nignored: after the head\r\n",
    b"GET /has space HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h",  # no final CRLF
    b"",
]


@pytest.mark.parametrize("head", H2_HEADS, ids=range(len(H2_HEADS)))
def test_h2_headers_twins_agree(twin: ModuleType, head: bytes) -> None:
    assert twin.h2_headers(head) == _head_py.h2_headers(head)


def test_h2_headers_maps_the_head() -> None:
    got = _head_py.h2_headers(H2_HEADS[2])
    assert got == [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"Up"),
                   (b":path", b"/a%20b"), (b"te", b"trailers"), (b"accept", b"*/*")]
    assert _head_py.h2_headers(H2_HEADS[4]) == [
        (b":method", b"CONNECT"), (b":scheme", b"http"), (b":authority", b"h:443")]


def test_h2_headers_random_heads_agree(twin: ModuleType) -> None:
    import random

    rng = random.Random(15)
    alphabet = b"GET /:aZ \t\r\nHost-te:trailers"
    for _ in range(3000):
        head = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert twin.h2_headers(head) == _head_py.h2_headers(head), head


@pytest.mark.parametrize(
    "kind,flags,sid,payload",
    [(0, 1, 1, b""), (1, 4, 3, b"x" * 100), (4, 0, 0, b"\0" * 6), (8, 0, 0x7FFFFFFF, b"abcd"),
     (255, 255, 5, b"y" * 70000)],
)
def test_h2_frame_twins_agree(twin: ModuleType, kind: int, flags: int, sid: int,
                              payload: bytes) -> None:
    got = twin.h2_frame(kind, flags, sid, payload)
    assert got == _head_py.h2_frame(kind, flags, sid, payload)
    assert int.from_bytes(got[:3], "big") == len(payload) and got[9:] == payload
    assert got[3] == kind and got[4] == flags and int.from_bytes(got[5:9], "big") == sid
