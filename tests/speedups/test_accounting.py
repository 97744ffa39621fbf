"""Both twins of the accounting unit give the same results; the compiled one loads when built."""

from __future__ import annotations

import importlib
import os
import random

import pytest

from _speedups import _accounting_py

try:
    from _speedups import _accounting_c
except ImportError:  # pragma: no cover - depends on the build
    _accounting_c = None

TWINS = [pytest.param(_accounting_py, id="py")]
if _accounting_c is not None or not os.environ.get("DATAPLANE_NO_EXTENSIONS"):
    TWINS.append(pytest.param(_accounting_c, id="c"))

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


@pytest.fixture(params=TWINS)
def twin(request):
    if request.param is None:
        pytest.fail("the compiled accounting twin was expected but is not built")
    return request.param


def test_two_half_second_requests_average_one(twin):
    s = twin.RequestStats(0.0)
    s.request_in(0.0)
    s.request_out(0.5)
    s.request_in(0.5)
    s.request_out(1.0)
    r = s.report(1.0)
    assert r.average_concurrency == pytest.approx(1.0)
    assert r.request_count == 2
    assert s.report(2.0).average_concurrency == 0


def test_twins_agree_on_random_event_streams():
    if _accounting_c is None:
        pytest.skip("compiled twin not built")
    rng = random.Random(7)
    a, b = _accounting_py.RequestStats(0.0), _accounting_c.RequestStats(0.0)
    t = 0.0
    inflight = []
    for _ in range(2000):
        t += rng.random() * 0.01
        if inflight and rng.random() < 0.5:
            p = inflight.pop(rng.randrange(len(inflight)))
            a.request_out(t, p)
            b.request_out(t, p)
        else:
            p = rng.random() < 0.3
            inflight.append(p)
            a.request_in(t, p)
            b.request_in(t, p)
        if rng.random() < 0.01:
            assert a.report(t) == pytest.approx(b.report(t))
    assert (a.concurrency, a.proxied_concurrency) == (b.concurrency, b.proxied_concurrency)


def test_histogram_buckets_like_prometheus(twin):
    h = twin.Histogram(BOUNDS)
    for v in (0.001, 0.005, 0.0051, 0.3, 10, 11):
        h.observe("k", v)
    s = h.snapshot()["k"]
    # le=0.005 takes 0.001 and 0.005 (upper bounds are inclusive), +Inf takes 11.
    assert s[0] == 2 and s[1] == 1 and s[6] == 0 and s[7] == 1 and s[13] == 1 and s[14] == 1
    assert s[-1] == pytest.approx(0.001 + 0.005 + 0.0051 + 0.3 + 10 + 11)


def test_histogram_twins_agree(twin):
    """Many label sets, values on and between the bounds: the same snapshot as the pure twin
    (which the compiled one is checked against), and a snapshot is a copy."""
    rng = random.Random(7)
    ref, h = _accounting_py.Histogram(BOUNDS), twin.Histogram(BOUNDS)
    for _ in range(5000):
        key = (b"GET", rng.choice((200, 404, 502)), rng.choice((None, b"tag")))
        v = rng.choice((rng.random() * 12, rng.choice(BOUNDS), 0.0))
        ref.observe(key, v)
        h.observe(key, v)
    snap = h.snapshot()
    want = ref.snapshot()
    assert snap.keys() == want.keys()
    for key, s in want.items():
        assert snap[key][:-1] == s[:-1] and snap[key][-1] == pytest.approx(s[-1])
    snap[key][0] += 1
    assert h.snapshot()[key][0] == want[key][0]


def test_selector_guard():
    sel = importlib.import_module("_speedups.accounting")
    if os.environ.get("DATAPLANE_NO_EXTENSIONS"):
        assert not sel.USING_EXTENSIONS
    elif os.environ.get("DATAPLANE_EXPECT_EXTENSIONS"):
        assert sel.USING_EXTENSIONS, "compiled accounting twin expected but not loaded"


SIZES = (0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)


def test_histogram_group_observes_each_value_in_its_own_histogram(twin):
    g = twin.HistogramGroup((BOUNDS, BOUNDS, SIZES, SIZES))
    g.observe("k", 0.001, -1.0, 0, 13)  # -1: that histogram is not observed
    g.observe("k", 0.3, 0.2, 5, 10001)
    s = g.snapshot()["k"]
    assert len(s) == 4
    assert s[0][0] == 1 and s[0][7] == 1 and sum(s[0][:-1]) == 2
    assert sum(s[1][:-1]) == 1 and s[1][6] == 1 and s[1][-1] == pytest.approx(0.2)
    assert s[2][0] == 1 and s[2][1] == 1 and s[2][-1] == 5  # le=0 takes 0, le=5 takes 5
    assert s[3][3] == 1 and s[3][15] == 1 and s[3][-1] == 10014  # 13 in le=25, +Inf


def test_histogram_group_caps_keys_into_the_overflow_key(twin):
    g = twin.HistogramGroup((BOUNDS,), limit=3)
    for key in ("a", "b", "c", "d", "a"):
        g.observe(key, 0.5)
    snap = g.snapshot()
    # limit 3: two keys of their own, then OpenTelemetry's overflow series (None) for the rest
    assert set(snap) == {"a", "b", None}
    assert sum(snap[None][0][:-1]) == 2 and sum(snap["a"][0][:-1]) == 2


def test_histogram_group_twins_agree(twin):
    rng = random.Random(11)
    ref = _accounting_py.HistogramGroup((BOUNDS, BOUNDS, SIZES, SIZES), limit=20)
    g = twin.HistogramGroup((BOUNDS, BOUNDS, SIZES, SIZES), limit=20)
    for _ in range(5000):
        key = (b"GET", rng.choice((200, 404, 502)), rng.randrange(30))
        values = (rng.random() * 12, rng.choice((-1.0, rng.choice(BOUNDS))),
                  float(rng.choice((0, 7, 10, 20000))), float(rng.randrange(12000)))
        ref.observe(key, *values)
        g.observe(key, *values)
    want, snap = ref.snapshot(), g.snapshot()
    assert snap.keys() == want.keys() and len(snap) == 20
    for key, hists in want.items():
        for mine, theirs in zip(snap[key], hists, strict=True):
            assert mine[:-1] == theirs[:-1] and mine[-1] == pytest.approx(theirs[-1])


def _fresh(b: bytes) -> bytes:
    return bytes(bytearray(b))  # equal, never the same object (as each request's Host value)


def test_histogram_group_keys_equal_to_the_last_one_share_its_series(twin):
    """Keys that equal the last one element by element (new bytes objects, ints past the
    small-int cache, equal str) land in its series; any difference makes a new one, as a dict
    keyed on the tuples would."""
    g = twin.HistogramGroup((BOUNDS,))
    big = 10 ** 6
    keys = [
        (b"GET", 200, _fresh(b"example.com"), big + 1, "pod"),
        (b"GET", 200, _fresh(b"example.com"), int(str(big + 1)), "".join(["po", "d"])),
        (b"GET", 200, _fresh(b"example.org"), big + 1, "pod"),  # same length, other bytes
        (b"GET", 200, _fresh(b"example.co"), big + 1, "pod"),  # shorter
        (b"GET", 200, _fresh(b"example.com"), big + 2, "pod"),
        (b"GET", 200, _fresh(b"example.com"), big + 1, b"pod"),  # bytes, not str
        (b"GET", 200, _fresh(b"example.com"), big + 1),  # shorter tuple
        (b"GET", 200, _fresh(b"example.com"), big + 1, "pod"),
        (b"GET", True, _fresh(b"example.com"), big + 1, "pod"),  # True == 1 != 200
        (b"GET", 200, _fresh(b"example.com"), float(big + 1), "pod"),  # a float equal to it
    ]
    for key in keys:
        g.observe(key, 0.5)
    snap = g.snapshot()
    counts = {key: sum(h[0][:-1]) for key, h in snap.items()}
    assert counts == {
        (b"GET", 200, b"example.com", big + 1, "pod"): 4,  # the dict's own key equality
        (b"GET", 200, b"example.org", big + 1, "pod"): 1,
        (b"GET", 200, b"example.co", big + 1, "pod"): 1,
        (b"GET", 200, b"example.com", big + 2, "pod"): 1,
        (b"GET", 200, b"example.com", big + 1, b"pod"): 1,
        (b"GET", 200, b"example.com", big + 1): 1,
        (b"GET", True, b"example.com", big + 1, "pod"): 1,
    }


def test_histogram_group_series_cleared_by_a_caller_is_started_again(twin):
    g = twin.HistogramGroup((BOUNDS,))
    key = (b"GET", 200)
    g.observe(key, 0.5)
    g.series.clear()
    g.observe((b"GET", 200), 0.5)
    assert sum(g.snapshot()[key][0][:-1]) == 1
    g.series = {}
    g.observe(key, 0.5)
    assert sum(g.snapshot()[key][0][:-1]) == 1


@pytest.mark.parametrize("bounds,limit", [((), 10), ((BOUNDS,) * 5, 10), ((BOUNDS,), 1),
                                          ((tuple(range(65)),), 10)])
def test_histogram_group_refuses_bad_shapes(twin, bounds, limit):
    with pytest.raises(ValueError):
        twin.HistogramGroup(bounds, limit=limit)
