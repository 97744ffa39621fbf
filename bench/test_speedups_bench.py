"""Micro-benchmarks of every ``_speedups`` unit: its compiled twin against its pure twin.

    python -m pytest bench/test_speedups_bench.py -q -s          # the table of ratios at the end

Each case runs once per twin (pytest-benchmark measures it); the session ends with one line per
case: pure µs, compiled µs, and the ratio. Not part of the test suite (``testpaths`` is
``tests``), and nothing here asserts a time: speed is measured, never tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from _speedups import _accounting_py, _h1_py, _head_py
from _speedups.fields import HOST

try:
    from _speedups import _accounting_c, _h1_c, _head_c
except ImportError:  # pragma: no cover - speedups not built
    pytest.skip("compiled speedups not built", allow_module_level=True)

pytest.importorskip("pytest_benchmark")

REQUEST = (b"GET /api/items?id=7 HTTP/1.1\r\nHost: hello.default.example.com\r\n"
           b"User-Agent: wrk\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 01:00:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\n"
            b"Hello World!\n")
HEADERS = [(b"Host", b"hello.default.example.com"), (b"User-Agent", b"wrk"),
           (b"Accept", b"*/*"), (b"X-Forwarded-For", b"10.0.0.1"),
           (b"K-Proxy-Request", b"activator"), (b"Connection", b"keep-alive")]
HOP = frozenset({b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding",
                 b"upgrade", b"proxy-connection", b"x-forwarded-for"})


class _Sink:
    def head_begin(self) -> None: ...
    def on_head(self, *a: Any) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_end(self, trailers: Any) -> None: ...
    def on_upgrade(self, rest: bytes) -> None: ...
    def on_response_head(self, *a: Any) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_end(self, trailers: Any) -> None: ...
    def on_response_upgrade(self, rest: bytes) -> None: ...


def _request_parse(mod: Any) -> Callable[[], None]:
    parser = mod.HttptoolsRequestParser(_Sink(), 65536)
    return lambda: parser.feed(REQUEST)


def _response_parse(mod: Any) -> Callable[[], None]:
    parser = mod.HttptoolsResponseParser(_Sink(), 65536)

    def run() -> None:
        parser.expect(False, False)
        parser.feed(RESPONSE)

    return run


def _scan(mod: Any) -> Callable[[], None]:
    return lambda: mod.scan_headers(HEADERS)


def _build(mod: Any) -> Callable[[], None]:
    lnames, _values, _ = mod.scan_headers(HEADERS)
    start = b"GET /api/items?id=7 HTTP/1.1\r\n"
    extra = b"X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\n"
    return lambda: mod.build_head(start, HEADERS, lnames, HOP, (), extra)


def _stats(mod: Any) -> Callable[[], None]:
    stats = mod.RequestStats(0.0)
    t = [0.0]

    def run() -> None:
        t[0] += 0.001
        stats.request_in(t[0], False)
        stats.request_out(t[0] + 0.0005, False)

    return run


def _histogram(mod: Any) -> Callable[[], None]:
    h = mod.Histogram((0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
    key = (b"GET", 200, None, None)
    return lambda: h.observe(key, 0.0123)


CASES: dict[str, tuple[Callable[[Any], Callable[[], None]], Any, Any]] = {
    "h1: request head": (_request_parse, _h1_py, _h1_c),
    "h1: response (head + body)": (_response_parse, _h1_py, _h1_c),
    "head: scan_headers": (_scan, _head_py, _head_c),
    "head: build_head": (_build, _head_py, _head_c),
    "accounting: request in + out": (_stats, _accounting_py, _accounting_c),
    "accounting: histogram observe": (_histogram, _accounting_py, _accounting_c),
}

_RESULTS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    yield
    lines = ["", f"{'unit':34} {'pure µs':>9} {'compiled µs':>12} {'pure/compiled':>14}"]
    for name in CASES:
        pure, comp = _RESULTS.get((name, "pure")), _RESULTS.get((name, "compiled"))
        if pure is None or comp is None:
            continue
        lines.append(f"{name:34} {pure:9.3f} {comp:12.3f} {pure / comp:13.1f}x")
    print("\n".join(lines))


@pytest.mark.parametrize("twin", ["pure", "compiled"])
@pytest.mark.parametrize("name", list(CASES))
def test_twin(benchmark: Any, name: str, twin: str) -> None:
    make, pure_mod, compiled_mod = CASES[name]
    fn = make(pure_mod if twin == "pure" else compiled_mod)
    fn()  # warm and check it runs
    benchmark.pedantic(fn, rounds=200, iterations=200, warmup_rounds=5)
    _RESULTS[(name, twin)] = benchmark.stats.stats.min * 1e6


def test_same_answers() -> None:
    """The twins agree on what is measured (the equivalence tests are in tests/speedups)."""
    assert _head_py.scan_headers(HEADERS)[1][HOST] == _head_c.scan_headers(HEADERS)[1][HOST]
