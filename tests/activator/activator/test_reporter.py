"""``activator.activator.stats``: the activator's concurrency reporter, sans-IO, with a fake clock.

Semantics are Knative's pkg/activator/handler/concurrency_reporter.go: a revision's first
request pokes (concurrency 1, count 1, at once); the next report subtracts the poke from both its
count and its average (floored at 0); an entry is dropped in the report where its average is 0
and nothing is in flight. Times below are seconds on a fake monotonic clock.
"""

from __future__ import annotations

import dataclasses

import pytest

from activator.activator.stats import ConcurrencyReporter, RevisionStat

POD = "activator-7d9f-abcde"
REV = ("default", "hello-00001")
REV2 = ("team-b", "world-00003")


def reporter() -> ConcurrencyReporter:
    return ConcurrencyReporter(POD)


def stat(key: tuple[str, str], avg: float, count: float) -> RevisionStat:
    return RevisionStat(key[0], key[1], POD, avg, count)


def by_key(reports: list[RevisionStat]) -> dict[tuple[str, str], tuple[float, float]]:
    return {r.key: (r.average_concurrency, r.request_count) for r in reports}


def warm(cr: ConcurrencyReporter, key: tuple[str, str], t: float) -> None:
    """Creates ``key``'s entry with one request that stays in flight, and consumes its poke
    with a report at ``t`` (so later windows are plain)."""
    cr.request_in(key, t - 1.0)
    cr.report(t)


# ---------------------------------------------------------------------------- the poke


def test_first_request_pokes_at_once() -> None:
    cr = reporter()
    poke = cr.request_in(REV, 10.0)
    assert poke == stat(REV, 1.0, 1.0)
    assert poke is not None and poke.key == REV and poke.pod_name == POD
    assert REV in cr and len(cr) == 1
    assert cr.in_flight(REV) == 1


def test_only_the_first_request_pokes() -> None:
    cr = reporter()
    assert cr.request_in(REV, 10.0) is not None
    assert cr.request_in(REV, 10.1) is None
    cr.request_out(REV, 10.2)
    assert cr.request_in(REV, 10.3) is None
    # A report in between does not re-arm the poke while the entry lives.
    cr.report(11.0)
    assert cr.request_in(REV, 11.5) is None


def test_poke_is_subtracted_from_the_next_report() -> None:
    # Created at 10.0 (poke), window 10.0 .. 11.0 with that one request in flight throughout:
    # average 1, count 1; minus the poke: 0, 0. The following window is plain.
    cr = reporter()
    cr.request_in(REV, 10.0)
    assert cr.report(11.0) == [stat(REV, 0.0, 0.0)]
    assert cr.report(12.0) == [stat(REV, 1.0, 0.0)]


def test_poke_subtraction_keeps_extra_traffic() -> None:
    # Window 10.0 .. 11.0 (the entry's first): the poked request all the time, two more from
    # 10.5 to 11.0 -> 1 + 2 * 0.5 = 2.0 request-seconds / 1 s; count 3. Minus the poke: 1.0, 2.
    cr = reporter()
    cr.request_in(REV, 10.0)
    cr.request_in(REV, 10.5)
    cr.request_in(REV, 10.5)
    assert by_key(cr.report(11.0)) == {REV: pytest.approx((1.0, 2.0))}
    assert cr.in_flight(REV) == 3


def test_poke_subtraction_floors_the_average_at_zero() -> None:
    # The poked request lasts a quarter of its window: average 0.25, minus 1 -> floored at 0;
    # the count 1 - 1 = 0. Nothing is in flight, but the window's own average was not 0: kept.
    cr = reporter()
    cr.request_in(REV, 10.0)
    cr.request_out(REV, 10.25)
    assert cr.report(11.0) == [stat(REV, 0.0, 0.0)]
    assert REV in cr
    # Then an idle window: zero, and dropped.
    assert cr.report(12.0) == [stat(REV, 0.0, 0.0)]
    assert REV not in cr


def test_first_window_starts_at_the_first_request() -> None:
    # Knative's NewRequestStats(event.Time): the first window spans 10.5 .. 11.0, not the last
    # full second, so a request in flight for all of it averages 1 (then minus the poke).
    cr = reporter()
    cr.report(10.0)
    cr.request_in(REV, 10.5)
    cr.request_in(REV, 10.5)
    assert by_key(cr.report(11.0)) == {REV: pytest.approx((1.0, 1.0))}


def test_report_at_the_pokes_instant() -> None:
    # A zero-length window: average 0, but the request is in flight, so the entry stays.
    cr = reporter()
    cr.request_in(REV, 10.0)
    assert cr.report(10.0) == [stat(REV, 0.0, 0.0)]
    assert REV in cr
    assert cr.report(11.0) == [stat(REV, 1.0, 0.0)]


# ---------------------------------------------------------------------------- averages, counts


def test_two_requests_each_half_the_window_average_one() -> None:
    cr = reporter()
    cr.request_in(REV, 9.0)
    cr.request_out(REV, 9.5)
    cr.report(10.0)  # the poke's window
    cr.request_in(REV, 10.0)
    cr.request_out(REV, 10.5)
    cr.request_in(REV, 10.5)
    cr.request_out(REV, 11.0)
    assert cr.report(11.0) == [stat(REV, 1.0, 2.0)]


def test_two_concurrent_half_window_requests_average_one() -> None:
    cr = reporter()
    warm(cr, REV, 10.0)  # one long request in flight from 9.0 on
    cr.request_out(REV, 10.0)
    cr.request_in(REV, 10.25)
    cr.request_in(REV, 10.25)
    cr.request_out(REV, 10.75)
    cr.request_out(REV, 10.75)
    assert by_key(cr.report(11.0)) == {REV: pytest.approx((1.0, 2.0))}


def test_time_weighted_average_over_overlaps() -> None:
    # In flight throughout: 1; plus A 10.0..10.6 and B 10.4..11.0 -> 1 + 0.6 + 0.6 = 2.2.
    cr = reporter()
    warm(cr, REV, 10.0)
    cr.request_in(REV, 10.0)
    cr.request_in(REV, 10.4)
    cr.request_out(REV, 10.6)
    cr.request_out(REV, 11.0)
    assert by_key(cr.report(11.0)) == {REV: pytest.approx((2.2, 2.0))}
    assert cr.in_flight(REV) == 1


def test_window_is_the_time_since_the_last_report() -> None:
    # Reports need not be exactly 1 s apart: 0.5 s of 1 in flight over a 2 s window -> 0.25 + the
    # long request 1.0.
    cr = reporter()
    warm(cr, REV, 10.0)
    cr.request_in(REV, 11.0)
    cr.request_out(REV, 11.5)
    assert by_key(cr.report(12.0)) == {REV: pytest.approx((1.25, 1.0))}


def test_requests_waiting_across_ticks_carry_over() -> None:
    cr = reporter()
    warm(cr, REV, 10.0)
    cr.request_in(REV, 10.5)
    assert by_key(cr.report(11.0)) == {REV: pytest.approx((1.5, 1.0))}
    assert by_key(cr.report(12.0)) == {REV: pytest.approx((2.0, 0.0))}
    cr.request_out(REV, 12.5)
    cr.request_out(REV, 12.5)
    assert by_key(cr.report(13.0)) == {REV: pytest.approx((1.0, 0.0))}
    assert REV in cr
    assert by_key(cr.report(14.0)) == {REV: (0.0, 0.0)}
    assert REV not in cr


def test_counts_are_floats_and_arrivals_per_window() -> None:
    cr = reporter()
    warm(cr, REV, 10.0)
    for i in range(7):
        cr.request_in(REV, 10.0 + i * 0.1)
        cr.request_out(REV, 10.05 + i * 0.1)
    (r,) = cr.report(11.0)
    assert r.request_count == 7.0 and isinstance(r.request_count, float)
    assert r.average_concurrency == pytest.approx(1.0 + 7 * 0.05)
    (r,) = cr.report(12.0)
    assert r.request_count == 0.0


# ---------------------------------------------------------------------------- dropping entries


def test_idle_entry_reports_zero_once_then_is_dropped() -> None:
    cr = reporter()
    cr.request_in(REV, 10.0)
    cr.request_out(REV, 10.5)
    assert cr.report(11.0) == [stat(REV, 0.0, 0.0)]  # 0.5 - poke -> floored
    assert REV in cr
    assert cr.report(12.0) == [stat(REV, 0.0, 0.0)]  # the zero report
    assert REV not in cr and len(cr) == 0
    assert cr.report(13.0) == []  # nothing to send


def test_dropped_entry_pokes_again() -> None:
    cr = reporter()
    cr.request_in(REV, 10.0)
    cr.request_out(REV, 10.5)
    cr.report(11.0)
    cr.report(12.0)
    assert REV not in cr
    assert cr.request_in(REV, 12.5) == stat(REV, 1.0, 1.0)
    cr.request_out(REV, 13.0)
    # New entry's first window: 12.5 .. 13.5, busy half of it -> 0.5 - 1 -> 0; count 1 - 1.
    assert cr.report(13.5) == [stat(REV, 0.0, 0.0)]


def test_entry_with_requests_in_flight_is_kept_whatever_the_average() -> None:
    # An idle window, then a request arriving at the tick's very instant: the window's average
    # is 0, but the request is in flight, so the entry must stay to account for it.
    cr = reporter()
    warm(cr, REV, 10.0)
    cr.request_out(REV, 10.0)
    assert cr.request_in(REV, 11.0) is None
    assert cr.report(11.0) == [stat(REV, 0.0, 1.0)]
    assert REV in cr and cr.in_flight(REV) == 1
    assert cr.report(12.0) == [stat(REV, 1.0, 0.0)]


def test_instant_requests_report_their_count_then_drop() -> None:
    # Knative tests the average alone: requests in and out at the same instant add no
    # request-seconds, so the window reports its count and the entry goes.
    cr = reporter()
    warm(cr, REV, 10.0)
    cr.request_out(REV, 10.0)
    cr.request_in(REV, 10.5)
    cr.request_out(REV, 10.5)
    assert cr.report(11.0) == [stat(REV, 0.0, 1.0)]
    assert REV not in cr


# ---------------------------------------------------------------------------- many revisions


def test_multiple_revisions_are_independent() -> None:
    cr = reporter()
    assert cr.request_in(REV, 10.0) == stat(REV, 1.0, 1.0)
    assert cr.request_in(REV2, 10.5) == stat(REV2, 1.0, 1.0)
    cr.request_in(REV2, 10.5)
    cr.request_out(REV, 11.0)
    got = cr.report(11.0)
    # First-seen order. REV: 1.0 - 1 = 0, count 0. REV2 (window 10.5..11): 2.0 - 1, 2 - 1.
    assert [r.key for r in got] == [REV, REV2]
    assert by_key(got) == {REV: (0.0, 0.0), REV2: pytest.approx((1.0, 1.0))}
    got = cr.report(12.0)
    assert by_key(got) == {REV: (0.0, 0.0), REV2: pytest.approx((2.0, 0.0))}
    assert REV not in cr and REV2 in cr
    assert [r.key for r in cr.report(13.0)] == [REV2]


def test_same_name_in_two_namespaces_are_two_revisions() -> None:
    cr = reporter()
    a, b = ("ns-a", "hello-00001"), ("ns-b", "hello-00001")
    assert cr.request_in(a, 1.0) is not None
    assert cr.request_in(b, 1.0) is not None
    assert len(cr) == 2
    assert {(r.namespace, r.name) for r in cr.report(2.0)} == {a, b}


def test_many_revisions() -> None:
    cr = reporter()
    keys = [(f"ns-{i % 7}", f"rev-{i:05d}") for i in range(1000)]
    pokes = [cr.request_in(k, 1.0) for k in keys]
    assert all(p is not None and p.average_concurrency == 1.0 for p in pokes)
    for k in keys[::2]:
        cr.request_out(k, 1.5)
    got = cr.report(2.0)
    assert [r.key for r in got] == keys
    assert all(r.request_count == 0.0 and r.average_concurrency == 0.0 for r in got)
    got = cr.report(3.0)
    assert len(cr) == 500
    assert by_key(got)[keys[1]] == (1.0, 0.0)
    assert by_key(got)[keys[0]] == (0.0, 0.0)


# ---------------------------------------------------------------------------- odd events


def test_request_out_without_request_in_is_ignored() -> None:
    cr = reporter()
    cr.request_out(REV, 10.0)  # unknown revision: no entry, no poke owed
    assert REV not in cr and cr.report(11.0) == []
    cr.request_in(REV, 11.0)
    cr.request_out(REV, 11.5)
    cr.request_out(REV, 11.6)  # one out too many: concurrency does not go negative
    assert cr.in_flight(REV) == 0
    assert cr.report(12.0) == [stat(REV, 0.0, 0.0)]
    # An unmatched out must not eat into a later request's concurrency either.
    cr.request_in(REV, 12.0)
    assert by_key(cr.report(13.0)) == {REV: (1.0, 1.0)}


def test_in_flight_of_unknown_revision_is_zero() -> None:
    assert reporter().in_flight(REV) == 0


def test_revision_stat_is_frozen_and_carries_knatives_fields() -> None:
    r = stat(REV, 1.5, 3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.request_count = 4.0  # type: ignore[misc]
    assert [f.name for f in dataclasses.fields(RevisionStat)] == [
        "namespace", "name", "pod_name", "average_concurrency", "request_count"]
    assert r.key == REV
