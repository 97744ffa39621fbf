"""The breaker, sans-IO: Knative's pkg/queue/breaker.go semantics without tasks or time.

Waiters are plain strings; a request "runs" from ACQUIRED (or from being handed a slot by
``release``/``update_capacity``) until its ``release()``.
"""

from __future__ import annotations

import pytest

from proxy.breaker import ACQUIRED, FULL, QUEUED, Breaker

# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("queue_depth", "max_concurrency", "initial_capacity"),
    [
        (0, 1, 1),  # QueueDepth = 0
        (-1, 1, 1),
        (1, -1, None),  # MaxConcurrency negative
        (1, 1, -1),  # InitialCapacity negative
        (1, 5, 6),  # InitialCapacity out of bounds
    ],
)
def test_invalid_constructor(queue_depth: int, max_concurrency: int, initial_capacity) -> None:
    with pytest.raises(ValueError):
        Breaker(queue_depth, max_concurrency, initial_capacity)


def test_constructor_defaults_capacity_to_max_concurrency() -> None:
    b = Breaker(10, 3)
    assert b.capacity == 3
    assert b.queue_depth == 10
    assert b.total_slots == 13
    assert (b.in_flight, b.active, b.waiting) == (0, 0, 0)


def test_constructor_initial_capacity() -> None:
    b = Breaker(10, 5, 2)
    assert b.capacity == 2
    assert b.total_slots == 15  # total slots come from max concurrency, not capacity


def test_zero_max_concurrency_is_valid_and_only_queues() -> None:
    b = Breaker(2, 0)
    assert b.acquire("a") == QUEUED
    assert b.acquire("b") == QUEUED
    assert b.acquire("c") == FULL


# --------------------------------------------------------------------------- acquire


def test_acquire_until_capacity_then_queue_then_full() -> None:
    b = Breaker(queue_depth=2, max_concurrency=2)
    assert b.acquire("r1") == ACQUIRED
    assert b.acquire("r2") == ACQUIRED
    assert b.acquire("w1") == QUEUED
    assert b.acquire("w2") == QUEUED
    assert b.acquire("x") == FULL
    assert b.acquire("y") == FULL
    assert (b.in_flight, b.active, b.waiting) == (4, 2, 2)


def test_full_does_not_count_in_flight() -> None:
    b = Breaker(1, 1)
    b.acquire("a")
    b.acquire("b")
    for _ in range(5):
        assert b.acquire("c") == FULL
    assert b.in_flight == 2


def test_knative_sizes_cc_plus_ten_cc_waiters() -> None:
    """Queue-proxy: CC running, 10*CC waiting, 11*CC in flight, the next one is refused."""
    cc = 3
    b = Breaker(10 * cc, cc, cc)
    outcomes = [b.acquire(i) for i in range(11 * cc)]
    assert outcomes.count(ACQUIRED) == cc
    assert outcomes.count(QUEUED) == 10 * cc
    assert outcomes[:cc] == [ACQUIRED] * cc
    assert b.acquire("one-more") == FULL


def test_reserve_overload_release_then_acquire_again() -> None:
    """breaker_test.go TestBreakerReserveOverload: capacity 1, queue 1."""
    b = Breaker(1, 1, 1)
    assert b.acquire("a") == ACQUIRED
    assert b.acquire("b") == QUEUED
    assert b.acquire("c") == FULL
    assert b.release() == "b"
    assert b.release() is None
    assert b.acquire("d") == ACQUIRED


# --------------------------------------------------------------------------- release


def test_release_without_waiters_returns_none_and_frees_slot() -> None:
    b = Breaker(1, 1)
    assert b.acquire("a") == ACQUIRED
    assert b.release() is None
    assert (b.in_flight, b.active, b.waiting) == (0, 0, 0)
    assert b.acquire("b") == ACQUIRED


def test_release_hands_slot_to_oldest_waiter_fifo() -> None:
    b = Breaker(queue_depth=5, max_concurrency=1)
    assert b.acquire("running") == ACQUIRED
    for w in ("w1", "w2", "w3"):
        assert b.acquire(w) == QUEUED
    assert b.release() == "w1"
    assert b.release() == "w2"
    assert b.release() == "w3"
    assert b.release() is None
    assert (b.in_flight, b.active, b.waiting) == (0, 0, 0)


def test_released_waiter_keeps_its_in_flight_place() -> None:
    b = Breaker(1, 1)
    b.acquire("a")
    b.acquire("b")
    assert b.release() == "b"
    # b now runs: one in flight, one active, nobody waiting.
    assert (b.in_flight, b.active, b.waiting) == (1, 1, 0)
    # The queue place b left is free again.
    assert b.acquire("c") == QUEUED
    assert b.acquire("d") == FULL


def test_release_frees_a_pending_place_for_a_newcomer() -> None:
    b = Breaker(1, 1)
    b.acquire("a")
    b.acquire("b")
    assert b.acquire("c") == FULL
    b.release()  # a done, b runs
    assert b.acquire("c") == QUEUED


def test_unpaired_release_raises() -> None:
    b = Breaker(1, 1)
    with pytest.raises(RuntimeError):
        b.release()


def test_unpaired_release_after_all_released_raises() -> None:
    b = Breaker(1, 1)
    b.acquire("a")
    b.release()
    with pytest.raises(RuntimeError):
        b.release()


def test_release_does_not_grant_while_over_reduced_capacity() -> None:
    b = Breaker(5, 3)
    for r in ("r1", "r2", "r3"):
        assert b.acquire(r) == ACQUIRED
    assert b.acquire("w") == QUEUED
    assert b.update_capacity(1) == []
    # Three running against a capacity of one: the first two releases grant nothing.
    assert b.release() is None
    assert b.release() is None
    assert b.active == 1
    assert b.release() == "w"
    assert b.active == 1


# --------------------------------------------------------------------------- cancel


def test_cancel_removes_waiter_and_frees_its_place() -> None:
    b = Breaker(1, 1)
    b.acquire("a")
    assert b.acquire("b") == QUEUED
    assert b.acquire("c") == FULL
    assert b.cancel("b") is True
    assert (b.in_flight, b.active, b.waiting) == (1, 1, 0)
    assert b.acquire("c") == QUEUED


def test_cancelled_waiter_is_skipped_by_release() -> None:
    b = Breaker(5, 1)
    b.acquire("a")
    b.acquire("w1")
    b.acquire("w2")
    b.acquire("w3")
    assert b.cancel("w2") is True
    assert b.release() == "w1"
    assert b.release() == "w3"
    assert b.release() is None


def test_cancel_unknown_or_twice_returns_false_and_changes_nothing() -> None:
    b = Breaker(2, 1)
    b.acquire("a")
    b.acquire("w")
    assert b.cancel("nobody") is False
    assert b.cancel("w") is True
    assert b.cancel("w") is False
    assert (b.in_flight, b.active, b.waiting) == (1, 1, 0)


def test_cancel_of_running_request_is_refused() -> None:
    """A request that holds a slot is ended by release(), not cancel()."""
    b = Breaker(2, 1)
    b.acquire("a")
    assert b.cancel("a") is False
    assert (b.in_flight, b.active) == (1, 1)


def test_cancel_after_grant_returns_false() -> None:
    """A waiter handed a slot by release() is running; a late cancel must not free it twice."""
    b = Breaker(2, 1)
    b.acquire("a")
    b.acquire("w")
    assert b.release() == "w"
    assert b.cancel("w") is False
    assert (b.in_flight, b.active) == (1, 1)


# --------------------------------------------------------------------------- update_capacity


def test_update_capacity_grants_waiters_in_order() -> None:
    b = Breaker(10, 5, 1)
    assert b.acquire("r") == ACQUIRED
    for w in ("w1", "w2", "w3", "w4"):
        assert b.acquire(w) == QUEUED
    assert b.update_capacity(3) == ["w1", "w2"]
    assert b.capacity == 3
    assert (b.in_flight, b.active, b.waiting) == (5, 3, 2)
    assert b.update_capacity(5) == ["w3", "w4"]
    assert b.waiting == 0


def test_update_capacity_from_zero() -> None:
    """breaker_test.go TestBreakerUpdateConcurrency: start at 0, raise, lower."""
    b = Breaker(1, 1, 0)
    assert b.capacity == 0
    assert b.acquire("w") == QUEUED
    assert b.update_capacity(1) == ["w"]
    assert b.capacity == 1
    assert b.update_capacity(0) == []
    assert b.capacity == 0


def test_update_capacity_down_then_acquire_queues() -> None:
    b = Breaker(5, 3)
    b.acquire("a")
    b.update_capacity(1)
    assert b.acquire("b") == QUEUED


def test_update_capacity_same_value_grants_nothing() -> None:
    b = Breaker(5, 1)
    b.acquire("a")
    b.acquire("w")
    assert b.update_capacity(1) == []
    assert b.waiting == 1


def test_update_capacity_negative_raises() -> None:
    b = Breaker(1, 1)
    with pytest.raises(ValueError):
        b.update_capacity(-1)


def test_update_capacity_does_not_change_total_slots() -> None:
    b = Breaker(1, 2, 1)
    b.update_capacity(2)
    assert b.total_slots == 3
    assert [b.acquire(i) for i in range(4)] == [ACQUIRED, ACQUIRED, QUEUED, FULL]


# --------------------------------------------------------------------------- invariants


def test_counters_stay_consistent_through_a_mixed_sequence() -> None:
    b = Breaker(3, 2)
    log = [b.acquire(n) for n in ("a", "b", "c", "d", "e", "f")]
    assert log == [ACQUIRED, ACQUIRED, QUEUED, QUEUED, QUEUED, FULL]
    assert b.cancel("d")
    assert b.release() == "c"
    assert b.acquire("g") == QUEUED
    assert b.release() == "e"
    assert b.release() == "g"
    assert b.release() is None
    assert b.release() is None
    assert (b.in_flight, b.active, b.waiting) == (0, 0, 0)
    assert b.in_flight == b.active + b.waiting
