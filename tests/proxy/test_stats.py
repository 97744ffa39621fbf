"""``proxy.stats``: time-weighted request stats (sans-IO, fake clock) and the ``Stat`` wire form.

``RequestStats`` must behave as knative.dev/networking pkg/http/stats (``RequestStats``): every
in/out event moves a time-weighted integral of concurrency forward, ``report(now)`` closes the
window (average = integral / seconds covered, counts = arrivals in the window) and resets it,
while the current concurrency carries over. The table below is Knative's own
``TestRequestStats`` (pkg/http/stats/request_test.go), times in milliseconds.

``encode_stat`` writes Knative's ``metrics.Stat`` (pkg/autoscaler/metrics/stat.proto) by hand; the
bytes are checked against the ``protobuf`` package, with the message class built at run time
from a ``FileDescriptorProto``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import pytest

# ---------------------------------------------------------------------------- the Stat message
from knative_proto import Stat

from proxy.stats import RequestStats, StatReport, encode_stat


def parse(data: bytes) -> Any:
    return Stat.FromString(data)


# ---------------------------------------------------------------------------- RequestStats

MS = 0.001


class Driver:
    """Knative's test harness: ``in_/out/in_p/out_p/report`` take milliseconds since 0."""

    def __init__(self, start: float = 0.0) -> None:
        self.base = start
        self.stats = RequestStats(start)
        self.reports: list[StatReport] = []

    def t(self, ms: float) -> float:
        return self.base + ms * MS

    def in_(self, ms: float) -> None:
        self.stats.request_in(self.t(ms))

    def out(self, ms: float) -> None:
        self.stats.request_out(self.t(ms))

    def in_p(self, ms: float) -> None:
        self.stats.request_in(self.t(ms), proxied=True)

    def out_p(self, ms: float) -> None:
        self.stats.request_out(self.t(ms), proxied=True)

    def report(self, ms: float) -> None:
        self.reports.append(self.stats.report(self.t(ms)))


def R(avg: float = 0.0, count: float = 0.0, pavg: float = 0.0, pcount: float = 0.0) -> tuple:
    return (avg, pavg, count, pcount)


def as_tuple(r: StatReport) -> tuple:
    return (r.average_concurrency, r.average_proxied_concurrency, r.request_count,
            r.proxied_request_count)


KNATIVE_TABLE: list[tuple[str, Callable[[Driver], None], list[tuple]]] = [
    ("no requests", lambda d: d.report(1000), [R(0, 0)]),
    ("1 request, entire time", lambda d: (d.in_(0), d.out(1000), d.report(1000)), [R(1, 1)]),
    ("1 request, half the time", lambda d: (d.in_(0), d.out(3000), d.report(6000)),
     [R(0.5, 1)]),
    ("very short request", lambda d: (d.in_(0), d.out(1), d.report(1000)), [R(1 / 1000, 1)]),
    ("3 requests, fill entire time",
     lambda d: (d.in_(0), d.out(300), d.in_(300), d.out(600), d.in_(600), d.out(1000),
                d.report(1000)),
     [R(1, 3)]),
    ("interleaved requests",
     lambda d: (d.in_(0), d.in_(100), d.out(600), d.out(1000), d.report(1000)), [R(1.5, 2)]),
    ("request across reporting",
     lambda d: (d.in_(0), d.report(1000), d.out(1500), d.report(2000)),
     [R(1, 1), R(0.5, 0)]),
    ("request across multiple reportings",
     lambda d: (d.in_(0), d.report(1000), d.report(2000), d.report(3000), d.out(3500),
                d.report(4000)),
     [R(1, 1), R(1, 0), R(1, 0), R(0.5, 0)]),
    ("1 request, proxied, entire time", lambda d: (d.in_p(0), d.out_p(1000), d.report(1000)),
     [R(1, 1, 1, 1)]),
    ("1 request, proxied, half the time", lambda d: (d.in_p(0), d.out_p(500), d.report(1000)),
     [R(0.5, 1, 0.5, 1)]),
    ("2 requests, proxied and non proxied",
     lambda d: (d.in_p(0), d.in_(0), d.out_p(500), d.out(1000), d.report(1000)),
     [R(1.5, 2, 0.5, 1)]),
    ("ignore 'negative' requests",
     lambda d: (d.in_(500), d.in_(499), d.out(1000), d.out(999), d.report(1000)), [R(1, 2)]),
]


@pytest.mark.parametrize("start", [0.0, 12345.678], ids=["epoch", "loop-time"])
@pytest.mark.parametrize("name,events,want", KNATIVE_TABLE, ids=[t[0] for t in KNATIVE_TABLE])
def test_knative_request_stats_table(name: str, events: Callable[[Driver], None],
                                     want: list[tuple], start: float) -> None:
    d = Driver(start)
    events(d)
    got = [as_tuple(r) for r in d.reports]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, rel=1e-9, abs=1e-9), (name, got, want)


def test_two_requests_of_500ms_in_one_window_average_one() -> None:
    """The issue's example: two concurrent requests of 500 ms in a 1 s window -> 1.0."""
    d = Driver(100.0)
    d.in_(100)
    d.in_(100)
    d.out(600)
    d.out(600)
    d.report(1000)
    r = d.reports[0]
    assert r.average_concurrency == pytest.approx(1.0)
    assert r.request_count == 2
    assert r.average_proxied_concurrency == 0
    assert r.proxied_request_count == 0


def test_two_sequential_requests_of_500ms_average_one() -> None:
    d = Driver()
    d.in_(0)
    d.out(500)
    d.in_(500)
    d.out(1000)
    d.report(1000)
    assert as_tuple(d.reports[0]) == pytest.approx(R(1.0, 2))


def test_overlapping_requests() -> None:
    # A: 0..600, B: 400..1000 -> 0.6 + 0.6 = 1.2 request-seconds in one second.
    d = Driver()
    d.in_(0)
    d.in_(400)
    d.out(600)
    d.out(1000)
    d.report(1000)
    assert as_tuple(d.reports[0]) == pytest.approx(R(1.2, 2))


def test_partial_window() -> None:
    # One request from 250 to 750 ms: 0.5 request-seconds over a 1 s window.
    d = Driver()
    d.in_(250)
    d.out(750)
    d.report(1000)
    assert as_tuple(d.reports[0]) == pytest.approx(R(0.5, 1))


def test_window_length_is_the_time_since_the_last_report() -> None:
    # Windows need not be 1 s: 1 s of one request over a 2 s window -> 0.5; then a 0.5 s
    # window with two requests the whole time -> 2.0.
    d = Driver()
    d.in_(0)
    d.out(1000)
    d.report(2000)
    d.in_(2000)
    d.in_(2000)
    d.report(2500)
    assert as_tuple(d.reports[0]) == pytest.approx(R(0.5, 1))
    assert as_tuple(d.reports[1]) == pytest.approx(R(2.0, 2))


def test_request_starting_mid_window_carries_over() -> None:
    # In at 500 ms, out at 1500 ms: half of each window, counted in the first only.
    d = Driver()
    d.in_(500)
    d.report(1000)
    d.out(1500)
    d.report(2000)
    d.report(3000)
    assert as_tuple(d.reports[0]) == pytest.approx(R(0.5, 1))
    assert as_tuple(d.reports[1]) == pytest.approx(R(0.5, 0))
    assert as_tuple(d.reports[2]) == pytest.approx(R(0.0, 0))


def test_concurrency_carries_over_windows() -> None:
    d = Driver()
    d.in_(0)
    d.in_p(0)
    d.in_(200)
    d.report(1000)
    assert d.stats.concurrency == 3
    assert d.stats.proxied_concurrency == 1
    d.report(2000)
    d.report(3000)
    assert as_tuple(d.reports[0]) == pytest.approx(R(2.8, 3, 1.0, 1))
    assert as_tuple(d.reports[1]) == pytest.approx(R(3.0, 0, 1.0, 0))
    assert as_tuple(d.reports[2]) == pytest.approx(R(3.0, 0, 1.0, 0))
    d.out(3000)
    d.out(3000)
    d.out_p(3000)
    assert d.stats.concurrency == 0
    assert d.stats.proxied_concurrency == 0
    d.report(4000)
    assert as_tuple(d.reports[3]) == pytest.approx(R(0, 0))


def test_report_resets_the_window() -> None:
    d = Driver()
    for i in range(5):
        d.in_(i * 100)
        d.out(i * 100 + 50)
    d.in_p(600)
    d.out_p(700)
    d.report(1000)
    first = d.reports[0]
    assert first.request_count == 6
    assert first.proxied_request_count == 1
    assert first.average_concurrency == pytest.approx(0.35)
    assert first.average_proxied_concurrency == pytest.approx(0.1)
    d.report(2000)
    assert as_tuple(d.reports[1]) == (0.0, 0.0, 0.0, 0.0)


def test_report_with_no_time_elapsed_is_zero() -> None:
    # No seconds covered: no division by zero, averages 0; counts still reported.
    s = RequestStats(5.0)
    s.request_in(5.0)
    r = s.report(5.0)
    assert r.average_concurrency == 0.0
    assert r.request_count == 1.0
    # A report at the same instant again: an empty window.
    assert as_tuple(s.report(5.0)) == (0.0, 0.0, 0.0, 0.0)


def test_proxied_counted_in_both_totals_and_proxied() -> None:
    d = Driver()
    d.in_p(0)
    d.in_p(0)
    d.in_(0)
    d.out(500)
    d.out_p(1000)
    d.out_p(1000)
    d.report(1000)
    r = d.reports[0]
    assert r.request_count == 3
    assert r.proxied_request_count == 2
    assert r.average_concurrency == pytest.approx(2.5)
    assert r.average_proxied_concurrency == pytest.approx(2.0)


def test_counts_are_floats() -> None:
    d = Driver()
    d.in_(0)
    d.report(1000)
    r = d.reports[0]
    assert isinstance(r.request_count, float)
    assert isinstance(r.proxied_request_count, float)


# ---------------------------------------------------------------------------- encode_stat


def fields_of(msg: Any) -> dict:
    return {f.name: getattr(msg, f.name) for f in Stat.DESCRIPTOR.fields}


def expected_message(pod: str, report: StatReport | None, uptime: float) -> Any:
    if report is None:
        return Stat(pod_name=pod)
    return Stat(
        pod_name=pod,
        average_concurrent_requests=report.average_concurrency,
        average_proxied_concurrent_requests=report.average_proxied_concurrency,
        request_count=report.request_count,
        proxied_request_count=report.proxied_request_count,
        process_uptime=uptime,
    )


ENCODE_CASES = [
    ("pod only", "hello-00001-deployment-abc", None, 0.0),
    ("all fields", "pod-a", StatReport(1.0, 0.5, 2.0, 1.0), 12.25),
    ("zeros omitted", "pod-b", StatReport(0.0, 0.0, 0.0, 0.0), 0.0),
    ("only uptime", "pod-c", StatReport(0.0, 0.0, 0.0, 0.0), 3.5),
    ("some zero", "pod-d", StatReport(0.001, 0.0, 1.0, 0.0), 1e-9),
    ("fractions", "pod-e", StatReport(1 / 3, 2 / 7, 3.0, 1.0), 86400.123456789),
    ("large", "pod-f", StatReport(1e6, 5e5, 1e9, 1e8), 1e12),
    ("empty pod name", "", StatReport(2.0, 0.0, 2.0, 0.0), 1.0),
    ("long pod name (2-byte length)", "p" * 300, StatReport(1.5, 0.0, 3.0, 0.0), 2.0),
    ("very long pod name (3-byte length)", "q" * 20000, StatReport(1.5, 0.0, 3.0, 0.0), 2.0),
    ("unicode pod name", "pöd-名前", StatReport(1.0, 1.0, 1.0, 1.0), 1.0),
    ("127-byte name", "x" * 127, None, 0.0),
    ("128-byte name", "x" * 128, None, 0.0),
]


@pytest.mark.parametrize("name,pod,report,uptime", ENCODE_CASES, ids=[c[0] for c in ENCODE_CASES])
def test_encode_stat_matches_protobuf(name: str, pod: str, report: StatReport | None,
                                      uptime: float) -> None:
    data = encode_stat(pod, report, uptime)
    msg = parse(data)
    want = expected_message(pod, report, uptime)
    assert fields_of(msg) == fields_of(want)
    assert msg.timestamp == 0
    # Byte for byte what the protobuf runtime (and gogo's proto3 Marshal) writes.
    assert data == want.SerializeToString(deterministic=True)


def test_encode_stat_before_first_report_is_pod_name_only() -> None:
    data = encode_stat("hello-00001-deployment-abc")
    assert data == b"\x0a\x1ahello-00001-deployment-abc"
    msg = parse(data)
    assert msg.pod_name == "hello-00001-deployment-abc"
    assert msg.ListFields()[0][0].name == "pod_name"
    assert len(msg.ListFields()) == 1


def test_encode_stat_zero_fields_are_omitted() -> None:
    data = encode_stat("p", StatReport(0.0, 0.0, 2.0, 0.0), 0.0)
    msg = parse(data)
    assert [f.name for f, _ in msg.ListFields()] == ["pod_name", "request_count"]
    assert data == b"\x0a\x01p" + b"\x21" + struct.pack("<d", 2.0)


def test_encode_stat_field_tags_and_wire_types() -> None:
    data = encode_stat("p", StatReport(1.0, 2.0, 3.0, 4.0), 5.0)
    # pod_name: field 1, wire type 2; doubles: fields 2..6, wire type 1 (fixed64, little endian).
    want = b"\x0a\x01p"
    for field_no, v in zip(range(2, 7), (1.0, 2.0, 3.0, 4.0, 5.0), strict=True):
        want += bytes(((field_no << 3) | 1,)) + struct.pack("<d", v)
    assert data == want
    msg = parse(data)
    assert (msg.average_concurrent_requests, msg.average_proxied_concurrent_requests,
            msg.request_count, msg.proxied_request_count, msg.process_uptime) == (
        1.0, 2.0, 3.0, 4.0, 5.0)


def test_encode_stat_round_trips_a_real_report() -> None:
    d = Driver(1000.0)
    d.in_(0)
    d.in_p(100)
    d.out(500)
    d.out_p(900)
    d.report(1000)
    report = d.reports[0]
    data = encode_stat("pod-x", report, 42.5)
    msg = parse(data)
    assert msg.pod_name == "pod-x"
    assert msg.average_concurrent_requests == report.average_concurrency
    assert msg.average_proxied_concurrent_requests == report.average_proxied_concurrency
    assert msg.request_count == 2.0
    assert msg.proxied_request_count == 1.0
    assert msg.process_uptime == 42.5
    assert not math.isnan(msg.average_concurrent_requests)


# ---------------------------------------------------------------------------- decode_stat


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"pod_name": "p"},
        {"pod_name": "hello-00001-deployment-7f9c-x2k4q", "average_concurrent_requests": 3.25,
         "average_proxied_concurrent_requests": 1.5, "request_count": 12.0,
         "proxied_request_count": 5.0, "process_uptime": 812.5, "timestamp": 1_700_000_000},
        {"pod_name": "ünïcode", "request_count": 1e9},
    ],
)
def test_decode_stat_reads_what_protobuf_writes(fields: dict) -> None:
    from proxy.stats import decode_stat

    got = decode_stat(Stat(**fields).SerializeToString())
    assert got["pod_name"] == fields.get("pod_name", "")
    assert got["average_concurrency"] == fields.get("average_concurrent_requests", 0.0)
    assert got["average_proxied_concurrency"] == fields.get(
        "average_proxied_concurrent_requests", 0.0)
    assert got["request_count"] == fields.get("request_count", 0.0)
    assert got["proxied_request_count"] == fields.get("proxied_request_count", 0.0)
    assert got["process_uptime"] == fields.get("process_uptime", 0.0)


@pytest.mark.parametrize("data", [b"\x11\x00\x00", b"\x0a\x05ab", b"\x80", b"\x0b"])
def test_decode_stat_refuses_a_malformed_message(data: bytes) -> None:
    from proxy.stats import decode_stat

    with pytest.raises(ValueError):
        decode_stat(data)
