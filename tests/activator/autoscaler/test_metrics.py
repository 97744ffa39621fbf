"""The per-second observation for the decider, sans-IO, with a fake clock (plain floats).

``metric: rps`` is decided from request counts minus proxied request counts, as Knative's
collector records them; ``concurrency`` from average concurrency minus the proxied part.
"""

from __future__ import annotations

import pytest

from activator.autoscaler import (
    CONCURRENCY,
    RPS,
    AnnotationError,
    Decider,
    MetricObserver,
    PodSample,
    ScalingConfig,
)

G = "autoscaling.knative.dev/"


def run(config: ScalingConfig, pods: list[PodSample], activator: PodSample | None = None,
        seconds: int = 60) -> int:
    """Observe the same second ``seconds`` times (t = 1000.0 ...), then decide."""
    decider = Decider(config, now=999.0)
    observer = MetricObserver(config.metric)
    now = 1000.0
    for _ in range(seconds):
        if activator is not None:
            observer.activator(activator)
        value = observer.observe(now, pods, has_pods=True)
        assert value is not None
        decider.record(now, value)
        now += 1.0
    return decider.scale(now, ready_pods=len(pods)).desired_pods


# 1 000 requests a second of 10 ms each, over two pods: 500 requests/s and 5 in flight apiece.
BUSY = [PodSample(average_concurrency=5.0, request_count=500.0)] * 2


def test_rps_target_100_at_full_utilization_wants_10_pods() -> None:
    config = ScalingConfig.from_annotations(
        {G + "metric": "rps", G + "target": "100", G + "target-utilization-percentage": "100"})
    assert config.metric == RPS
    assert run(config, BUSY) == 10


def test_rps_target_100_at_knatives_default_utilization_wants_15_pods() -> None:
    # Knative's ResolveMetricTarget applies target utilization (70%) to rps too: 1000 / 70.
    config = ScalingConfig.from_annotations({G + "metric": "rps", G + "target": "100"})
    assert config.target_per_pod == pytest.approx(70.0)
    assert run(config, BUSY) == 15


def test_rps_default_target_is_200() -> None:
    config = ScalingConfig.from_annotations({G + "metric": "rps"})
    assert config.total_per_pod == 200.0
    assert run(config, BUSY) == 8  # ceil(1000 / 140)


def test_the_same_load_by_concurrency_wants_one_pod() -> None:
    # 10 in flight against the default target of 100 x 70%: the metric is what differs.
    config = ScalingConfig.from_annotations({})
    assert config.metric == CONCURRENCY
    assert run(config, BUSY) == 1


def test_proxied_requests_are_counted_once() -> None:
    # The activator proxied 400 of the pods' 1000 requests and reports them itself: the
    # collector subtracts the pods' proxied count, so the total stays 1000, not 1400.
    pods = [PodSample(average_concurrency=5.0, average_proxied_concurrency=2.0,
                      request_count=500.0, proxied_request_count=200.0)] * 2
    activator = PodSample(average_concurrency=4.0, request_count=400.0)
    observer = MetricObserver(RPS)
    observer.activator(activator)
    assert observer.observe(10.0, pods, has_pods=True) == 1000.0
    observer = MetricObserver(CONCURRENCY)
    observer.activator(activator)
    assert observer.observe(10.0, pods, has_pods=True) == 10.0


def test_one_value_per_second() -> None:
    observer = MetricObserver(RPS)
    pod = [PodSample(request_count=7.0)]
    assert observer.observe(5.2, pod, has_pods=True) == 7.0
    assert observer.observe(5.9, pod, has_pods=True) is None  # the same second again
    assert observer.observe(6.0, pod, has_pods=True) == 7.0


def test_the_activators_report_is_consumed_once() -> None:
    observer = MetricObserver(RPS)
    observer.activator(PodSample(request_count=3.0))
    assert observer.observe(1.0, [], has_pods=False) == 3.0
    # Nothing more from the activator, no pods, nothing observed: nothing to record.
    assert observer.observe(2.0, [], has_pods=False) is None


def test_zeros_are_recorded_while_the_revision_has_pods() -> None:
    # A quiet revision must see its average fall, or it never reaches zero.
    observer = MetricObserver(RPS)
    assert observer.observe(1.0, [PodSample()], has_pods=True) == 0.0
    assert observer.observe(2.0, [], has_pods=True) == 0.0


def test_an_activator_report_of_zero_is_recorded() -> None:
    observer = MetricObserver(CONCURRENCY)
    observer.activator(PodSample())
    assert observer.observe(1.0, [], has_pods=False) == 0.0


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="not supported"):
        MetricObserver("cpu")
    with pytest.raises(AnnotationError):
        ScalingConfig.from_annotations({G + "metric": "cpu"})
