"""The revision throttler, sans-IO: Knative's pkg/activator/net/throttler.go semantics.

Waiters are plain strings; a request runs from ACQUIRED (or from being handed out by
``release``/``update_pods``/``update_activators``) until ``release(pod)``. No loop, no time.
"""

from __future__ import annotations

import random

import pytest

from activator.activator.throttler import (
    ACQUIRED,
    DEFAULT_QUEUE_DEPTH,
    FULL,
    QUEUED,
    REVISION_MAX_CONCURRENCY,
    RevisionThrottler,
    assign_slice,
    infer_index,
)

UNLIMITED = REVISION_MAX_CONCURRENCY


def pods(n: int) -> list[str]:
    # Zero-padded so that sorted address order is numeric order.
    return [f"10.0.0.{i:02d}:8012" for i in range(n)]


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "kwargs",
    [
        {"container_concurrency": -1},
        {"container_concurrency": 1, "queue_depth": 0},
        {"container_concurrency": 1, "activator_count": 0},
        {"container_concurrency": 1, "activator_index": 2, "activator_count": 2},
        {"container_concurrency": 1, "activator_index": -2},
    ],
)
def test_invalid_constructor(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RevisionThrottler(**kwargs)


def test_starts_closed() -> None:
    t = RevisionThrottler(10)
    assert (t.capacity, t.active, t.waiting, t.queue_depth) == (0, 0, 0, DEFAULT_QUEUE_DEPTH)
    assert t.acquire("r1") == (QUEUED, None)


# --------------------------------------------------------------------------- assign_slice


@pytest.mark.parametrize(
    ("n", "count", "index", "want"),
    [
        (0, 1, 0, []),
        (3, 1, 0, [0, 1, 2]),  # one activator takes all
        (3, 3, -1, [0, 1, 2]),  # not in the path yet: all
        (1, 3, 1, [0]),  # a single pod is everybody's
        (1, 2, 1, [0]),
        (2, 3, 1, [1]),  # more activators than pods: index % pods
        (2, 3, 2, [0]),
        (3, 3, 1, [1]),
        (3, 3, 2, [2]),
        (10, 3, 0, [0, 1, 2, 9]),  # 10 = 3 x 3 + 1: activator 0 also takes the remnant
        (10, 3, 1, [3, 4, 5]),
        (10, 3, 2, [6, 7, 8]),
        (5, 2, 0, [0, 1, 4]),
        (5, 2, 1, [2, 3]),
        (20, 3, 1, [6, 7, 8, 9, 10, 11, 19]),
    ],
)
def test_assign_slice(n: int, count: int, index: int, want: list[int]) -> None:
    assert assign_slice(list(range(n)), index, count) == want


@pytest.mark.parametrize(
    ("n", "index", "begin", "end"), [(150, 0, 0, 30), (150, 1, 30, 60), (150, 4, 120, 150)]
)
def test_assign_slice_even_split(n: int, index: int, begin: int, end: int) -> None:
    assert assign_slice(list(range(n)), index, 5) == list(range(begin, end))


@pytest.mark.parametrize("count", [2, 3, 5, 7])
@pytest.mark.parametrize("n", [7, 10, 24, 31])
def test_assign_slice_partitions_the_pods(n: int, count: int) -> None:
    slices = [assign_slice(list(range(n)), i, count) for i in range(count)]
    flat = [p for s in slices for p in s]
    assert sorted(flat) == list(range(n))  # every pod exactly once


# --------------------------------------------------------------------------- capacity


@pytest.mark.parametrize(
    ("cc", "n", "want"), [(10, 0, 0), (10, 1, 10), (10, 2, 20), (1, 7, 7), (3, 10, 30)]
)
def test_capacity_is_cc_times_pods(cc: int, n: int, want: int) -> None:
    t = RevisionThrottler(cc)
    t.update_pods(pods(n))
    assert t.capacity == want


def test_cc0_is_unlimited_once_a_pod_is_healthy() -> None:
    t = RevisionThrottler(0)
    assert t.capacity == 0
    t.update_pods(pods(1))
    assert t.capacity == UNLIMITED
    t.update_pods(pods(10))
    assert t.capacity == UNLIMITED
    t.update_pods([])
    assert t.capacity == 0


@pytest.mark.parametrize(
    ("cc", "n", "count", "index", "want"),
    [
        (10, 2, 2, 0, 10),
        (10, 2, 2, 1, 10),
        (10, 3, 2, 0, 20),
        (10, 3, 2, 1, 10),
        (1, 5, 2, 0, 3),
        (1, 5, 2, 1, 2),
        (10, 3, 3, -1, 30),  # not in the path yet: all pods
        (10, 1, 200, 150, 10),  # one pod: everybody's
    ],
)
def test_capacity_with_subsetting(cc: int, n: int, count: int, index: int, want: int) -> None:
    t = RevisionThrottler(cc, activator_index=index, activator_count=count)
    t.update_pods(pods(n))
    assert t.capacity == want


def test_cc0_with_subsetting_takes_all_pods() -> None:
    t = RevisionThrottler(0, activator_index=1, activator_count=2)
    t.update_pods(pods(3))
    assert t.capacity == UNLIMITED
    assert t.assigned_pods == pods(3)


def test_subsetting_routes_to_own_slice_only() -> None:
    t = RevisionThrottler(1, activator_index=1, activator_count=2)
    t.update_pods(pods(5))
    assert t.assigned_pods == pods(5)[2:4]
    got = [t.acquire(f"r{i}") for i in range(3)]
    assert got == [(ACQUIRED, pods(5)[2]), (ACQUIRED, pods(5)[3]), (QUEUED, None)]


def test_activator_count_change_recomputes_and_grants() -> None:
    t = RevisionThrottler(1, activator_index=0, activator_count=2)
    t.update_pods(pods(4))
    assert t.capacity == 2
    for i in range(4):
        t.acquire(f"r{i}")
    assert (t.active, t.waiting) == (2, 2)
    # The other activator went away: this one now takes all four pods.
    granted = t.update_activators(0, 1)
    assert granted == [("r2", pods(4)[2]), ("r3", pods(4)[3])]
    assert t.capacity == 4


@pytest.mark.parametrize(
    ("cc", "n", "count", "want"),
    [
        (10, 1, 1, 10),
        (10, 10, 1, 100),
        (10, 10, 5, 20),
        (10, 10, 200, 1),  # at least 1
        (10, 0, 200, 0),  # but 0 with no pod
        (0, 0, 1, 0),
        (0, 1, 1, UNLIMITED),
        (0, 1, 200, UNLIMITED),
    ],
)
def test_capacity_through_cluster_address(cc: int, n: int, count: int, want: int) -> None:
    t = RevisionThrottler(cc, activator_index=0, activator_count=count)
    t.update_pods(pods(n), cluster_address="10.96.0.1:80")
    assert t.capacity == want


def test_cluster_address_receives_every_request() -> None:
    t = RevisionThrottler(2, activator_index=0, activator_count=2)
    t.update_pods(pods(3), cluster_address="10.96.0.1:80")  # 2 x 3 / 2 = 3
    assert t.assigned_pods == ["10.96.0.1:80"]
    got = [t.acquire(f"r{i}") for i in range(4)]
    assert got == [(ACQUIRED, "10.96.0.1:80")] * 3 + [(QUEUED, None)]
    assert t.release("10.96.0.1:80") == [("r3", "10.96.0.1:80")]


def test_switch_from_cluster_address_to_pods_mid_traffic() -> None:
    t = RevisionThrottler(1)
    t.update_pods(pods(2), cluster_address="10.96.0.1:80")
    assert t.acquire("r0") == (ACQUIRED, "10.96.0.1:80")
    assert t.acquire("r1") == (ACQUIRED, "10.96.0.1:80")
    t.update_pods(pods(2))
    assert t.acquire("r2") == (QUEUED, None)  # the cluster address requests still count
    assert t.release("10.96.0.1:80") == [("r2", pods(2)[0])]
    assert t.release("10.96.0.1:80") == []
    assert t.pod_in_flight("10.96.0.1:80") == 0
    with pytest.raises(RuntimeError):
        t.release("10.96.0.1:80")


# --------------------------------------------------------------------------- waiting and release


def test_waiters_released_in_arrival_order_when_pods_appear() -> None:
    t = RevisionThrottler(1)
    for i in range(5):
        assert t.acquire(f"r{i}") == (QUEUED, None)
    granted = t.update_pods(pods(3))
    assert granted == [("r0", pods(3)[0]), ("r1", pods(3)[1]), ("r2", pods(3)[2])]
    assert (t.active, t.waiting) == (3, 2)
    assert t.release(pods(3)[1]) == [("r3", pods(3)[1])]
    assert t.release(pods(3)[0]) == [("r4", pods(3)[0])]
    assert t.release(pods(3)[2]) == []
    assert (t.active, t.waiting) == (2, 0)


def test_cc0_releases_every_waiter_at_once() -> None:
    t = RevisionThrottler(0, rng=random.Random(5))
    for i in range(50):
        t.acquire(f"r{i}")
    granted = t.update_pods(pods(2))
    assert [w for w, _ in granted] == [f"r{i}" for i in range(50)]
    assert {p for _, p in granted} == set(pods(2))
    assert t.waiting == 0
    assert t.pod_in_flight(pods(2)[0]) + t.pod_in_flight(pods(2)[1]) == 50


def test_pod_order_is_by_address_not_arrival() -> None:
    t = RevisionThrottler(1)
    t.update_pods(["10.0.0.9:8012", "10.0.0.1:8012", "10.0.0.5:8012"])
    got = [t.acquire(f"r{i}")[1] for i in range(3)]
    assert got == ["10.0.0.1:8012", "10.0.0.5:8012", "10.0.0.9:8012"]  # first available


def test_round_robin_for_cc_above_3() -> None:
    t = RevisionThrottler(4)
    t.update_pods(pods(3))
    got = [t.acquire(f"r{i}")[1] for i in range(6)]
    assert got == pods(3) * 2


def test_release_unknown_pod_raises() -> None:
    t = RevisionThrottler(1)
    t.update_pods(pods(1))
    with pytest.raises(RuntimeError):
        t.release(pods(1)[0])  # nothing running on it
    with pytest.raises(RuntimeError):
        t.release("10.9.9.9:8012")
    assert t.active == 0


# ---------------------------------------------------------------------- bounded queue and cancel


def test_queue_full() -> None:
    t = RevisionThrottler(1, max_waiting=3)
    assert [t.acquire(f"r{i}")[0] for i in range(4)] == [QUEUED, QUEUED, QUEUED, FULL]
    assert t.waiting == 3


def test_running_requests_do_not_take_queue_places() -> None:
    t = RevisionThrottler(1, max_waiting=2)
    t.update_pods(pods(1))
    assert [t.acquire(f"r{i}")[0] for i in range(4)] == [ACQUIRED, QUEUED, QUEUED, FULL]


def test_waiting_is_unbounded_by_default_as_knative() -> None:
    # Knative's revision breaker: breakerQueueDepth (10 000) + MaxInt32 requests in all.
    t = RevisionThrottler(10)
    assert (t.queue_depth, t.max_waiting) == (DEFAULT_QUEUE_DEPTH, 0)
    for i in range(DEFAULT_QUEUE_DEPTH + 5):
        assert t.acquire(i) == (QUEUED, None)
    assert t.waiting == DEFAULT_QUEUE_DEPTH + 5


def test_infer_index_is_knatives() -> None:
    ips = sorted(["10.0.0.9", "10.0.0.10", "10.0.0.2"])  # strings, sorted as Go's sets.List
    assert [infer_index(ips, ip) for ip in ips] == [0, 1, 2]
    assert ips == ["10.0.0.10", "10.0.0.2", "10.0.0.9"]
    assert infer_index(ips, "10.0.0.3") == -1
    assert infer_index([], "10.0.0.3") == -1


def test_cancel_frees_a_place() -> None:
    t = RevisionThrottler(1, max_waiting=2)
    t.acquire("r0")
    t.acquire("r1")
    assert t.acquire("r2") == (FULL, None)
    assert t.cancel("r0") is True
    assert t.cancel("r0") is False
    assert t.cancel("never-seen") is False
    assert t.acquire("r2") == (QUEUED, None)
    # The cancelled waiter is never handed a pod.
    assert t.update_pods(pods(5)) == [("r1", pods(5)[0]), ("r2", pods(5)[1])]


# --------------------------------------------------------------------------- pod removal


def test_removing_a_pod_mid_traffic() -> None:
    t = RevisionThrottler(2)
    a, b = pods(2)
    t.update_pods([a, b])
    for i in range(4):
        t.acquire(f"r{i}")
    assert (t.pod_in_flight(a), t.pod_in_flight(b)) == (2, 2)
    assert t.update_pods([a]) == []
    assert t.capacity == 2  # shrinks at once
    assert t.acquire("w") == (QUEUED, None)  # 4 still run, over the new capacity
    assert t.release(b) == []  # 3 run: still no room
    assert t.pod_in_flight(b) == 1
    assert t.release(b) == []  # 2 run, capacity 2
    assert t.pod_in_flight(b) == 0
    assert t.release(a) == [("w", a)]
    assert (t.active, t.waiting, t.pod_in_flight(a)) == (2, 0, 2)
    with pytest.raises(RuntimeError):
        t.release(b)  # its tracker is gone with its last request


def test_removing_every_pod_queues_new_requests() -> None:
    t = RevisionThrottler(0, rng=random.Random(1))
    t.update_pods(pods(1))
    assert t.acquire("r0") == (ACQUIRED, pods(1)[0])
    t.update_pods([])
    assert t.acquire("r1") == (QUEUED, None)
    assert t.release(pods(1)[0]) == []  # no capacity to hand on
    assert t.update_pods(pods(1)) == [("r1", pods(1)[0])]


def test_pod_back_while_its_old_requests_run_stays_within_cc() -> None:
    t = RevisionThrottler(1)
    a, b = pods(2)
    t.update_pods([a, b])
    t.acquire("r0")
    t.acquire("r1")
    t.update_pods([a])
    t.update_pods([a, b])
    assert t.pod_in_flight(b) == 1  # the count survived
    assert t.acquire("r2") == (QUEUED, None)
    assert t.release(b) == [("r2", b)]
    assert t.pod_in_flight(b) == 1


# --------------------------------------------------------------------------- invariants under churn


@pytest.mark.parametrize("cc", [0, 1, 3, 5])
def test_invariants_under_random_churn(cc: int) -> None:
    rng = random.Random(1000 + cc)
    t = RevisionThrottler(cc, max_waiting=20, rng=random.Random(cc))
    universe = pods(6)
    running: list[str] = []  # one entry per running request: its pod
    waiting: list[str] = []
    next_id = 0

    def run(grants: list[tuple[object, str]]) -> None:
        for w, pod in grants:
            waiting.remove(str(w))
            assert pod in t.assigned_pods
            running.append(pod)

    for _ in range(3000):
        op = rng.random()
        if op < 0.45:
            w = f"r{next_id}"
            next_id += 1
            outcome, pod = t.acquire(w)
            if outcome == ACQUIRED:
                assert pod in t.assigned_pods
                running.append(pod)  # type: ignore[arg-type]
            elif outcome == QUEUED:
                waiting.append(w)
            else:
                assert len(waiting) == 20
        elif op < 0.8 and running:
            pod = running.pop(rng.randrange(len(running)))
            run(t.release(pod))
        elif op < 0.88 and waiting:
            assert t.cancel(waiting.pop(rng.randrange(len(waiting))))
        elif op < 0.97:
            run(t.update_pods(rng.sample(universe, rng.randrange(len(universe) + 1))))
        else:
            count = rng.randint(1, 3)
            run(t.update_activators(rng.randrange(-1, count), count))

        assert t.active == len(running)
        assert t.waiting == len(waiting) <= 20
        assert not (waiting and t.active < t.capacity)  # nobody waits while there is room
        for pod in universe:
            assert t.pod_in_flight(pod) == running.count(pod)
            if cc:
                assert t.pod_in_flight(pod) <= cc
