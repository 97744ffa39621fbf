"""Revision timeouts, sans-IO: ``DeadlineFifo`` driven by a fake clock, and ``expire``.

``DeadlineFifo`` is unit-agnostic (it only adds and compares), so most tests count in integer
milliseconds to keep the arithmetic exact; one test checks float seconds as the loop uses them.
"""

from __future__ import annotations

import pytest

from proxy.engine.timeouts import (
    APPEND,
    IDLE,
    IGNORE,
    RESPOND,
    RESPONSE_START,
    TIMEOUT_BODY,
    TOTAL,
    DeadlineFifo,
    expire,
)


class FakeClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def advance(self, by: int) -> int:
        self.now += by
        return self.now


# --------------------------------------------------------------------------- expire


@pytest.mark.parametrize("kind", [TOTAL, RESPONSE_START, IDLE])
def test_expire_before_any_write_responds(kind: str) -> None:
    assert expire(kind, written=False) == RESPOND


def test_expire_total_after_write_appends() -> None:
    assert expire(TOTAL, written=True) == APPEND


def test_expire_idle_after_write_appends() -> None:
    assert expire(IDLE, written=True) == APPEND


def test_expire_response_start_after_write_is_ignored() -> None:
    assert expire(RESPONSE_START, written=True) == IGNORE


def test_timeout_body_has_no_newline() -> None:
    assert TIMEOUT_BODY == b"request timeout"


# --------------------------------------------------------------------------- DeadlineFifo basics


@pytest.mark.parametrize("delay", [0, -1, 0.0, -0.5])
def test_non_positive_delay_is_refused(delay: float) -> None:
    with pytest.raises(ValueError):
        DeadlineFifo(delay)


def test_add_returns_deadline_and_registers() -> None:
    q = DeadlineFifo(100)
    assert q.add("a", 5) == 105
    assert "a" in q
    assert len(q) == 1
    assert q.next_deadline() == 105


def test_empty_fifo() -> None:
    q = DeadlineFifo(100)
    assert len(q) == 0
    assert q.next_deadline() is None
    assert q.expired(10**9) == []


def test_expired_is_inclusive_and_removes() -> None:
    q = DeadlineFifo(100)
    q.add("a", 0)
    assert q.expired(99) == []
    assert "a" in q
    assert q.expired(100) == ["a"]
    assert "a" not in q
    assert q.expired(1000) == []


def test_expired_returns_oldest_first_and_stops_at_first_not_due() -> None:
    q = DeadlineFifo(100)
    q.add("a", 0)
    q.add("b", 10)
    q.add("c", 20)
    assert q.expired(115) == ["a", "b"]
    assert q.next_deadline() == 120
    assert q.expired(120) == ["c"]
    assert len(q) == 0


def test_touch_moves_item_to_the_back() -> None:
    q = DeadlineFifo(100)
    q.add("a", 0)
    q.add("b", 10)
    q.touch("a", 50)
    assert q.next_deadline() == 110  # b is now first
    assert q.expired(110) == ["b"]
    assert q.expired(149) == []
    assert q.expired(150) == ["a"]


def test_touch_unknown_item_does_not_add_it() -> None:
    q = DeadlineFifo(100)
    q.touch("ghost", 0)
    assert "ghost" not in q
    assert len(q) == 0


def test_touch_after_expiry_does_not_resurrect() -> None:
    q = DeadlineFifo(100)
    q.add("a", 0)
    assert q.expired(100) == ["a"]
    q.touch("a", 100)
    assert "a" not in q


def test_discard() -> None:
    q = DeadlineFifo(100)
    q.add("a", 0)
    q.add("b", 10)
    q.discard("a")
    q.discard("missing")  # no error
    assert "a" not in q
    assert q.next_deadline() == 110
    assert q.expired(1000) == ["b"]


def test_float_seconds() -> None:
    q = DeadlineFifo(0.1)
    q.add("a", 1000.0)
    assert q.expired(1000.05) == []
    assert q.expired(1000.2) == ["a"]


def test_touch_keeps_zero_deadline_entries() -> None:
    """A deadline of 0.0 is falsy; touch must still find and restart it."""
    q = DeadlineFifo(1)
    q.add("a", -1)  # due at 0
    q.touch("a", 5)
    assert "a" in q
    assert q.next_deadline() == 6


def test_add_again_restarts_at_the_back() -> None:
    q = DeadlineFifo(100)
    q.add("a", 0)
    q.add("b", 50)  # due 150
    q.add("a", 100)  # a set again: due 200
    assert q.next_deadline() == 150
    assert q.expired(150) == ["b"]


# --------------------------------------------------------------------------- Knative's examples


def _poll(q: DeadlineFifo, start: int, stop: int, step: int = 1) -> list:
    """Calls ``expired`` at every fake instant in [start, stop) and collects what fell due."""
    fired = []
    for t in range(start, stop, step):
        fired += q.expired(t)
    return fired


def test_idle_writes_99ms_apart_never_expire() -> None:
    """Idle 100 ms, writes of foo, bar, baz, test 99 ms apart: 200 ``foobarbaztest``."""
    clock = FakeClock()
    idle = DeadlineFifo(100)
    req = object()
    idle.add(req, clock.now)  # the request enters the handler at t=0
    body = b""
    written = False
    for chunk in (b"foo", b"bar", b"baz", b"test"):
        if written:
            # 99 ms of silence, checked at every millisecond.
            assert _poll(idle, clock.now, clock.now + 99) == []
            clock.advance(99)
        assert idle.expired(clock.now) == []
        body += chunk
        written = True
        idle.touch(req, clock.now)
        assert idle.next_deadline() == clock.now + 100
    idle.discard(req)  # the response ends
    assert _poll(idle, clock.now, clock.now + 1000) == []
    assert body == b"foobarbaztest"
    assert clock.now == 3 * 99


def test_idle_write_then_101ms_silence_appends_timeout() -> None:
    """``foo`` then 101 ms of silence: 200 ``foorequest timeout``."""
    clock = FakeClock()
    idle = DeadlineFifo(100)
    req = "req"
    idle.add(req, clock.now)
    body = b"foo"
    idle.touch(req, clock.now)
    written = True
    assert _poll(idle, clock.now, clock.now + 100) == []
    clock.advance(101)
    due = idle.expired(clock.now)
    assert due == [req]
    action = expire(IDLE, written)
    assert action == APPEND
    body += TIMEOUT_BODY
    assert body == b"foorequest timeout"
    assert req not in idle


def test_idle_with_no_write_responds_504() -> None:
    clock = FakeClock()
    idle = DeadlineFifo(100)
    idle.add("r", clock.now)
    clock.advance(100)
    assert idle.expired(clock.now) == ["r"]
    assert expire(IDLE, written=False) == RESPOND


def test_total_timeout_before_any_write_responds() -> None:
    clock = FakeClock()
    total = DeadlineFifo(300)
    total.add("r", clock.now)
    assert _poll(total, 0, 300) == []
    clock.advance(300)
    assert total.expired(clock.now) == ["r"]
    assert expire(TOTAL, written=False) == RESPOND


def test_total_timeout_is_not_restarted_by_writes() -> None:
    """Writes restart the idle deadline only; the total one fires on schedule and appends."""
    clock = FakeClock()
    total = DeadlineFifo(300)
    idle = DeadlineFifo(100)
    total.add("r", clock.now)
    idle.add("r", clock.now)
    fired: list[tuple[str, int]] = []
    for _ in range(10):  # a write every 50 ms
        clock.advance(50)
        idle.touch("r", clock.now)
        fired += [("total", clock.now) for _ in total.expired(clock.now)]
        fired += [("idle", clock.now) for _ in idle.expired(clock.now)]
        if fired:
            break
    assert fired == [("total", 300)]
    assert expire(TOTAL, written=True) == APPEND


def test_response_start_fires_before_first_byte() -> None:
    clock = FakeClock()
    start = DeadlineFifo(50)
    start.add("r", clock.now)
    clock.advance(50)
    assert start.expired(clock.now) == ["r"]
    assert expire(RESPONSE_START, written=False) == RESPOND


def test_response_start_is_disarmed_by_first_write() -> None:
    clock = FakeClock()
    start = DeadlineFifo(50)
    start.add("r", clock.now)
    clock.advance(10)
    start.discard("r")  # first byte written; never re-armed
    assert _poll(start, clock.now, 1000) == []


def test_response_start_racing_the_first_write_is_ignored() -> None:
    """If the deadline fires after a write slipped in, nothing is done."""
    assert expire(RESPONSE_START, written=True) == IGNORE


def test_many_requests_expire_in_arrival_order() -> None:
    clock = FakeClock()
    q = DeadlineFifo(100)
    for i in range(5):
        q.add(i, clock.now)
        clock.advance(10)
    q.touch(0, clock.now)  # request 0 wrote at t=50
    assert q.expired(139) == [1, 2, 3]
    assert q.expired(149) == [4]
    assert q.expired(150) == [0]
