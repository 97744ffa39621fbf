"""Load-balancing policies, sans-IO: Knative's pkg/activator/net/lb_policy.go choices.

A pick reserves a slot on the tracker it returns; tests release by hand. No loop, no time.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from activator.activator.lb import (
    FirstAvailable,
    LBPolicy,
    PodTracker,
    RandomChoice2,
    RoundRobin,
    policy_for,
)


def trackers(n: int, capacity: int = 0) -> list[PodTracker]:
    return [PodTracker(f"10.0.0.{i}:8012", capacity) for i in range(n)]


class ScriptedRandom(random.Random):
    """Hands out the given randrange results and coin values, in order."""

    def __init__(self, ranges: list[int], coins: list[float] | None = None) -> None:
        super().__init__(0)
        self.ranges = list(ranges)
        self.coins = list(coins or [])

    def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        return self.ranges.pop(0)

    def random(self) -> float:
        return self.coins.pop(0)


# --------------------------------------------------------------------------- pod tracker


def test_tracker_slots() -> None:
    t = PodTracker("a", 2)
    assert t.has_free_slot
    t.reserve()
    t.reserve()
    assert not t.has_free_slot
    with pytest.raises(RuntimeError):
        t.reserve()
    t.release()
    assert t.in_flight == 1 and t.has_free_slot


def test_unlimited_tracker_always_has_a_slot() -> None:
    t = PodTracker("a")
    for _ in range(1000):
        t.reserve()
    assert t.has_free_slot and t.in_flight == 1000


def test_tracker_release_without_reserve_raises() -> None:
    t = PodTracker("a", 1)
    with pytest.raises(RuntimeError):
        t.release()
    assert t.in_flight == 0


# --------------------------------------------------------------------------- policy_for


@pytest.mark.parametrize(
    ("cc", "kind"),
    [
        (0, RandomChoice2),
        (1, FirstAvailable),
        (2, FirstAvailable),
        (3, FirstAvailable),
        (4, RoundRobin),
        (100, RoundRobin),
    ],
)
def test_policy_for_container_concurrency(cc: int, kind: type) -> None:
    assert isinstance(policy_for(cc, random.Random(1)), kind)


def test_policy_for_negative_cc() -> None:
    with pytest.raises(ValueError):
        policy_for(-1)


@pytest.mark.parametrize(
    "policy", [RandomChoice2(random.Random(1)), FirstAvailable(), RoundRobin()]
)
def test_no_targets_is_none(policy: RandomChoice2 | FirstAvailable | RoundRobin) -> None:
    assert policy.pick([]) is None


# --------------------------------------------------------------------------- power of two choices


def test_p2c_single_tracker_takes_everything() -> None:
    ts = trackers(1)
    p = RandomChoice2(random.Random(3))
    assert p.pick(ts) is ts[0]
    assert p.pick(ts) is ts[0]
    assert ts[0].in_flight == 2


def test_p2c_two_trackers_prefers_the_idle_one() -> None:
    ts = trackers(2)
    p = RandomChoice2(random.Random(3))
    first = p.pick(ts)
    second = p.pick(ts)
    assert first is not second  # the loaded one loses
    assert first is not None and second is not None
    second.release()
    assert p.pick(ts) is second  # 0 in flight beats 1


def test_p2c_compares_the_two_sampled_trackers() -> None:
    ts = trackers(4)
    for t, load in zip(ts, [5, 1, 0, 3], strict=True):
        t.in_flight = load
    # Samples 3 then (randrange(3) = 0 -> index 0): loads 3 vs 5 -> index 3, although 2 is idle.
    assert RandomChoice2(ScriptedRandom([3, 0])).pick(ts) is ts[3]
    assert ts[3].in_flight == 4
    # Second draw at or above the first skips over it: (1, 1) samples indices 1 and 2 -> 2 wins.
    assert RandomChoice2(ScriptedRandom([1, 1])).pick(ts) is ts[2]


def test_p2c_tie_is_a_coin_toss() -> None:
    ts = trackers(3)
    assert RandomChoice2(ScriptedRandom([0, 1], [0.1])).pick(ts) is ts[0]
    ts[0].release()
    assert RandomChoice2(ScriptedRandom([0, 1], [0.9])).pick(ts) is ts[2]


def test_p2c_seeded_is_reproducible() -> None:
    def run(seed: int) -> list[str]:
        ts = trackers(5)
        p = RandomChoice2(random.Random(seed))
        out = []
        for _ in range(50):
            t = p.pick(ts)
            assert t is not None
            out.append(t.address)
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_p2c_two_trackers_distribution() -> None:
    ts = trackers(2)
    p = RandomChoice2(random.Random(7))
    counts: Counter[str] = Counter()
    for _ in range(100):
        t = p.pick(ts)
        assert t is not None
        counts[t.address] += 1
        t.release()  # always a tie: the coin decides
    assert counts[ts[0].address] > 0 and counts[ts[1].address] > 0
    assert sum(counts.values()) == 100


def test_p2c_keeps_load_even() -> None:
    ts = trackers(8)
    p = RandomChoice2(random.Random(11))
    for _ in range(800):
        assert p.pick(ts) is not None
    loads = [t.in_flight for t in ts]
    assert sum(loads) == 800
    assert max(loads) - min(loads) <= 4


# --------------------------------------------------------------------------- first available


def test_first_available_fills_in_order() -> None:
    ts = trackers(3, 2)
    p = FirstAvailable()
    picked = [p.pick(ts) for _ in range(6)]
    assert picked == [ts[0], ts[0], ts[1], ts[1], ts[2], ts[2]]
    assert p.pick(ts) is None
    ts[1].release()
    assert p.pick(ts) is ts[1]
    ts[2].release()
    ts[0].release()
    assert p.pick(ts) is ts[0]  # the first free one, not the last freed


# --------------------------------------------------------------------------- round robin


def test_round_robin_rotates() -> None:
    ts = trackers(3, 5)
    p = RoundRobin()
    picked = [p.pick(ts) for _ in range(7)]
    assert picked == [ts[0], ts[1], ts[2], ts[0], ts[1], ts[2], ts[0]]


def test_round_robin_skips_full_pods() -> None:
    ts = trackers(3, 1)
    p = RoundRobin()
    assert p.pick(ts) is ts[0]
    assert p.pick(ts) is ts[1]
    assert p.pick(ts) is ts[2]
    assert p.pick(ts) is None
    ts[2].release()
    assert p.pick(ts) is ts[2]
    ts[1].release()
    ts[0].release()
    assert p.pick(ts) is ts[0]  # the search continues after the last pick, wrapping
    assert p.pick(ts) is ts[1]


def test_round_robin_target_list_shrinks() -> None:
    ts = trackers(3, 2)
    p = RoundRobin()
    assert p.pick(ts) is ts[0]
    assert p.pick(ts) is ts[1]
    assert p.pick(ts[:1]) is ts[0]  # next index 2 is out of range: start over
    assert p.pick(ts) is ts[1]
    assert p.pick(ts) is ts[2]


def test_round_robin_is_fair() -> None:
    ts = trackers(4, 10)
    p = RoundRobin()
    counts: Counter[str] = Counter()
    for _ in range(400):
        t = p.pick(ts)
        assert t is not None
        counts[t.address] += 1
        t.release()
    assert set(counts.values()) == {100}


# ---------------------------------------------------------------------- slots are never exceeded


@pytest.mark.parametrize("cc", [1, 2, 3, 4, 7])
def test_never_more_in_flight_than_capacity(cc: int) -> None:
    rng = random.Random(cc)
    ts = trackers(4, cc)
    p = policy_for(cc, rng)
    running: list[PodTracker] = []
    for _ in range(2000):
        if running and rng.random() < 0.45:
            running.pop(rng.randrange(len(running))).release()
        else:
            t = p.pick(ts)
            if t is None:
                assert all(not x.has_free_slot for x in ts)
            else:
                running.append(t)
        assert all(0 <= x.in_flight <= cc for x in ts)
        assert sum(x.in_flight for x in ts) == len(running)


@pytest.mark.parametrize("cc", [0, 1, 3, 4, 100])
def test_every_policy_is_an_lb_policy(cc: int) -> None:
    """The throttler holds its policy as an ``LBPolicy`` (compiled: ``pick`` is a C call)."""
    assert isinstance(policy_for(cc, random.Random(1)), LBPolicy)
    with pytest.raises(NotImplementedError):
        LBPolicy().pick([PodTracker("10.0.0.1:8012", 1)])
