"""The KPA decider, sans-IO: Knative's autoscaler.Scale and the KPA reconciler's scale rules.

Time is a fake clock: plain floats passed to ``record`` / ``scale``. No loop, no sleeps.
"""

from __future__ import annotations

import dataclasses

import pytest

from activator.autoscaler import (
    ANNOTATION_KEYS,
    HPA_CLASS,
    KPA_CLASS,
    AnnotationError,
    Decider,
    Decision,
    ScalingConfig,
    TimedBuckets,
    WeightedBuckets,
)
from activator.autoscaler.config import _go_duration_ns

G = "autoscaling.knative.dev/"

# The spec's worked examples say "target 10": a per-pod target of 10 concurrent requests, i.e. the
# target annotation 10 at 100% utilization (at the default 70% the target would be 7 and
# "stable 50, 1 pod" would give ceil(50 / 7) = 8, not 5).
EXAMPLE = ScalingConfig(
    target=10,
    target_utilization_percentage=100,
    stable_window=60,
    max_scale_up_rate=10,
    max_scale_down_rate=10,
)


def feed(decider: Decider, value: float, start: int, end: int) -> None:
    """Record ``value`` once a second for seconds start..end inclusive."""
    for t in range(start, end + 1):
        decider.record(t, value)


# --- configuration: defaults ------------------------------------------------------------------


def test_defaults_are_knatives() -> None:
    cfg = ScalingConfig()
    assert cfg.total_per_pod == 100
    assert cfg.target_utilization_percentage == 70
    assert cfg.target_per_pod == pytest.approx(70)
    assert cfg.stable_window == 60
    assert cfg.panic_window_percentage == 10
    assert cfg.panic_window == 6
    assert cfg.panic_threshold_percentage == 200
    assert cfg.panic_threshold == 2.0
    assert cfg.max_scale_up_rate == 1000
    assert cfg.max_scale_down_rate == 2
    assert cfg.scale_to_zero_grace_period == 30
    assert cfg.scale_to_zero_pod_retention_period == 0
    assert cfg.enable_scale_to_zero is True
    assert cfg.target_burst_capacity == 211
    assert cfg.initial_scale == 1
    assert cfg.min_scale == 0
    assert cfg.max_scale == 0
    assert cfg.activation_scale == 1
    assert cfg.scale_down_delay == 0
    assert cfg.metric == "concurrency"
    assert cfg.metric_aggregation_algorithm == "linear"
    assert cfg.pod_autoscaler_class == KPA_CLASS
    assert cfg.tick_interval == 2
    assert ScalingConfig.from_annotations({}) == cfg


def test_container_concurrency_is_the_per_pod_total_without_a_target_annotation() -> None:
    cfg = ScalingConfig.from_annotations({}, container_concurrency=10)
    assert cfg.total_per_pod == 10
    assert cfg.target_per_pod == pytest.approx(7)


def test_target_annotation_is_capped_by_container_concurrency() -> None:
    assert ScalingConfig.from_annotations({G + "target": "50"}, 10).total_per_pod == 10
    assert ScalingConfig.from_annotations({G + "target": "5"}, 10).total_per_pod == 5
    assert ScalingConfig.from_annotations({G + "target": "50"}).total_per_pod == 50


def test_rps_metric_uses_its_own_default_and_no_cc_cap() -> None:
    cfg = ScalingConfig.from_annotations({G + "metric": "rps"}, container_concurrency=10)
    assert cfg.total_per_pod == 200
    assert cfg.target_per_pod == pytest.approx(140)
    cfg = ScalingConfig.from_annotations({G + "metric": "rps", G + "target": "50"}, 10)
    assert cfg.total_per_pod == 50


def test_target_per_pod_is_at_least_the_minimum() -> None:
    cfg = ScalingConfig.from_annotations(
        {G + "target": "0.01", G + "target-utilization-percentage": "1"}
    )
    assert cfg.target_per_pod == 0.01


@pytest.mark.parametrize(
    ("window", "percentage", "panic_window"),
    [(60, 10, 6), (10, 10, 1), (6, 1, 1), (15, 10, 2), (3600, 100, 3600)],
)
def test_panic_window_is_rounded_to_a_second_and_at_least_one(
    window: int, percentage: float, panic_window: int
) -> None:
    cfg = ScalingConfig(stable_window=window, panic_window_percentage=percentage)
    assert cfg.panic_window == panic_window


def test_overrides_are_cluster_defaults_and_annotations_win() -> None:
    cfg = ScalingConfig.from_annotations(
        {G + "window": "10s"},
        stable_window=30,
        scale_to_zero_grace_period=2.0,
        tick_interval=0.5,
    )
    assert cfg.stable_window == 10
    assert cfg.scale_to_zero_grace_period == 2.0
    assert cfg.tick_interval == 0.5


def test_unknown_override_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        ScalingConfig.from_annotations({}, no_such_knob=1)


@pytest.mark.parametrize(
    "knobs",
    [
        {"max_scale_down_rate": 1.0},
        {"max_scale_up_rate": 0.5},
        {"min_scale": 3, "max_scale": 2},
        {"target_burst_capacity": -2},
        {"initial_scale": 0},
        {"pod_autoscaler_class": HPA_CLASS},
        {"metric": "cpu"},
        {"metric_aggregation_algorithm": "median"},
        {"stable_window": 1.5},
        {"stable_window": 0},
        {"target_utilization_percentage": 0},
        {"scale_to_zero_grace_period": -1},
        {"tick_interval": 0},
        {"activation_scale": 0},
        {"target": 0},
    ],
)
def test_invalid_config_values_are_refused(knobs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ScalingConfig(**knobs)  # type: ignore[arg-type]


def test_zero_initial_scale_when_the_cluster_allows_it() -> None:
    cfg = ScalingConfig.from_annotations({G + "initial-scale": "0"}, allow_zero_initial_scale=True)
    assert cfg.initial_scale == 0


# --- configuration: every annotation and alias -----------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "attribute", "expected"),
    [
        ("class", KPA_CLASS, "pod_autoscaler_class", KPA_CLASS),
        ("min-scale", "2", "min_scale", 2),
        ("minScale", "2", "min_scale", 2),
        ("max-scale", "5", "max_scale", 5),
        ("maxScale", "5", "max_scale", 5),
        ("max-scale", "+7", "max_scale", 7),
        ("target", "50", "target", 50.0),
        ("target", "0.5", "target", 0.5),
        ("target", "1e2", "target", 100.0),
        ("target-utilization-percentage", "85.5", "target_utilization_percentage", 85.5),
        ("targetUtilizationPercentage", "85.5", "target_utilization_percentage", 85.5),
        ("target-burst-capacity", "300", "target_burst_capacity", 300.0),
        ("target-burst-capacity", "0", "target_burst_capacity", 0.0),
        ("target-burst-capacity", "-1", "target_burst_capacity", -1.0),
        ("targetBurstCapacity", "-1", "target_burst_capacity", -1.0),
        ("window", "2m", "stable_window", 120.0),
        ("window", "1m30s", "stable_window", 90.0),
        ("window", "1.5m", "stable_window", 90.0),
        ("window", "90000ms", "stable_window", 90.0),
        ("window", "6s", "stable_window", 6.0),
        ("window", "1h", "stable_window", 3600.0),
        ("window", "1h0m0s", "stable_window", 3600.0),
        ("panic-window-percentage", "20", "panic_window_percentage", 20.0),
        ("panicWindowPercentage", "20", "panic_window_percentage", 20.0),
        ("panic-threshold-percentage", "150", "panic_threshold_percentage", 150.0),
        ("panicThresholdPercentage", "150", "panic_threshold_percentage", 150.0),
        ("scale-down-delay", "5m", "scale_down_delay", 300.0),
        ("scale-down-delay", "0", "scale_down_delay", 0.0),
        ("scaleDownDelay", "15s", "scale_down_delay", 15.0),
        ("initial-scale", "3", "initial_scale", 3),
        ("initialScale", "3", "initial_scale", 3),
        ("activation-scale", "2", "activation_scale", 2),
        ("metric", "concurrency", "metric", "concurrency"),
        ("metric", "rps", "metric", "rps"),
        (
            "metric-aggregation-algorithm",
            "weighted-exponential",
            "metric_aggregation_algorithm",
            "weighted-exponential",
        ),
        (
            "metric-aggregation-algorithm",
            "weightedExponential",
            "metric_aggregation_algorithm",
            "weighted-exponential",
        ),
        ("metricAggregationAlgorithm", "linear", "metric_aggregation_algorithm", "linear"),
        ("scale-to-zero-pod-retention-period", "1m", "scale_to_zero_pod_retention_period", 60.0),
        ("scaleToZeroPodRetentionPeriod", "0", "scale_to_zero_pod_retention_period", 0.0),
    ],
)
def test_annotation_is_parsed(key: str, value: str, attribute: str, expected: object) -> None:
    cfg = ScalingConfig.from_annotations({G + key: value})
    assert getattr(cfg, attribute) == expected


def test_every_alias_in_knatives_register_go_is_known() -> None:
    aliases = {key for keys in ANNOTATION_KEYS.values() for key in keys[1:]}
    assert aliases == {
        G + "minScale",
        G + "maxScale",
        G + "initialScale",
        G + "scaleDownDelay",
        G + "metricAggregationAlgorithm",
        G + "targetUtilizationPercentage",
        G + "targetBurstCapacity",
        G + "panicWindowPercentage",
        G + "panicThresholdPercentage",
        G + "scaleToZeroPodRetentionPeriod",
    }


def test_key_and_alias_together_the_kebab_case_key_wins_as_in_knative() -> None:
    # Knative's kmap.KeyPriority returns the first spelling present; the alias is then ignored,
    # even when it would not validate.
    cfg = ScalingConfig.from_annotations({G + "min-scale": "1", G + "minScale": "3"})
    assert cfg.min_scale == 1
    cfg = ScalingConfig.from_annotations({G + "max-scale": "4", G + "maxScale": "bogus"})
    assert cfg.max_scale == 4


def test_unrelated_and_unknown_annotations_are_ignored() -> None:
    cfg = ScalingConfig.from_annotations(
        {"serving.knative.dev/creator": "me", G + "minscale": "nonsense", "app": "x"}
    )
    assert cfg == ScalingConfig()


def test_aggregation_algorithm_is_only_validated_with_an_explicit_kpa_class() -> None:
    cfg = ScalingConfig.from_annotations({G + "metric-aggregation-algorithm": "random-selection"})
    assert cfg.metric_aggregation_algorithm == "linear"
    cfg = ScalingConfig.from_annotations(
        {G + "metric-aggregation-algorithm": "", G + "class": KPA_CLASS}
    )
    assert cfg.metric_aggregation_algorithm == "linear"


def test_min_activation_and_max_scale_set_together() -> None:
    cfg = ScalingConfig.from_annotations(
        {G + "min-scale": "1", G + "activation-scale": "2", G + "max-scale": "3"}
    )
    assert (cfg.min_scale, cfg.activation_scale, cfg.max_scale) == (1, 2, 3)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        # class
        ({"class": "unsupported.knative.dev"}, "invalid value: unsupported.knative.dev: {}class"),
        (
            {"class": HPA_CLASS},
            "unsupported autoscaler class hpa.autoscaling.knative.dev "
            "(only kpa.autoscaling.knative.dev is supported): {}class",
        ),
        (
            {"class": "example.com/custom"},
            "unsupported autoscaler class example.com/custom "
            "(only kpa.autoscaling.knative.dev is supported): {}class",
        ),
        # min-scale / max-scale
        ({"min-scale": "-1"}, "expected 0 <= -1 <= 2147483647: {}min-scale"),
        ({"max-scale": "2147483648"}, "expected 0 <= 2147483648 <= 2147483647: {}max-scale"),
        ({"max-scale": "-1"}, "expected 0 <= -1 <= 2147483647: {}max-scale"),
        ({"min-scale": "foo"}, "invalid value: foo: {}min-scale"),
        ({"minScale": "1.5"}, "invalid value: 1.5: {}minScale"),
        ({"maxScale": " 3"}, "invalid value:  3: {}maxScale"),
        ({"min-scale": "1_0"}, "invalid value: 1_0: {}min-scale"),
        (
            {"min-scale": "5", "max-scale": "2"},
            "max-scale=2 is less than min-scale=5: {}max-scale, {}min-scale",
        ),
        (
            {"minScale": "5", "maxScale": "2"},
            "max-scale=2 is less than min-scale=5: {}max-scale, {}min-scale",
        ),
        # activation-scale
        (
            {"min-scale": "3", "activation-scale": "2"},
            "min-scale=3 is greater than activation-scale=2: {}activation-scale",
        ),
        (
            {"max-scale": "1", "activation-scale": "2"},
            "max-scale=1 is less than activation-scale=2: {}activation-scale",
        ),
        (
            {"activation-scale": "1"},
            "activation-scale=1 must be greater than 1: {}activation-scale",
        ),
        ({"activation-scale": "x"}, "invalid value: x: {}activation-scale"),
        # percentages and floats
        ({"panic-window-percentage": "-1"}, "expected 1 <= -1 <= 100: {}panic-window-percentage"),
        ({"panic-window-percentage": "202"}, "expected 1 <= 202 <= 100: {}panic-window-percentage"),
        ({"panicWindowPercentage": "fifty"}, "invalid value: fifty: {}panicWindowPercentage"),
        (
            {"panic-threshold-percentage": "109"},
            "expected 110 <= 109 <= 1000: {}panic-threshold-percentage",
        ),
        (
            {"panicThresholdPercentage": "10009"},
            "expected 110 <= 10009 <= 1000: {}panicThresholdPercentage",
        ),
        (
            {"panic-threshold-percentage": "fifty"},
            "invalid value: fifty: {}panic-threshold-percentage",
        ),
        ({"target": "-11"}, "target -11 should be at least 0.01: {}target"),
        ({"target": "0"}, "target 0 should be at least 0.01: {}target"),
        ({"target": "100}"}, "invalid value: 100}: {}target"),
        ({"target": "NaN"}, "invalid value: NaN: {}target"),
        ({"target-burst-capacity": "-11"}, "invalid value: -11: {}target-burst-capacity"),
        ({"targetBurstCapacity": "qarashen"}, "invalid value: qarashen: {}targetBurstCapacity"),
        ({"target-burst-capacity": "Inf"}, "invalid value: Inf: {}target-burst-capacity"),
        (
            {"target-utilization-percentage": "0"},
            "expected 1 <= 0 <= 100: {}target-utilization-percentage",
        ),
        (
            {"targetUtilizationPercentage": "101"},
            "expected 1 <= 101 <= 100: {}targetUtilizationPercentage",
        ),
        (
            {"target-utilization-percentage": "dghyak"},
            "invalid value: dghyak: {}target-utilization-percentage",
        ),
        # window
        (
            {"window": "jerry-was-a-racecar-driver"},
            "invalid value: jerry-was-a-racecar-driver: {}window",
        ),
        ({"window": "1s"}, "expected 6s <= 1s <= 1h0m0s: {}window"),
        ({"window": "0"}, "expected 6s <= 0 <= 1h0m0s: {}window"),
        ({"window": "365h"}, "expected 6s <= 365h <= 1h0m0s: {}window"),
        ({"window": "1m9s82ms"}, "must be specified with at most second precision: {}window"),
        ({"window": "60"}, "invalid value: 60: {}window"),
        ({"window": "1d"}, "invalid value: 1d: {}window"),
        ({"window": "60 s"}, "invalid value: 60 s: {}window"),
        ({"window": ""}, "invalid value: : {}window"),
        # scale-to-zero-pod-retention-period
        (
            {"scale-to-zero-pod-retention-period": "311m"},
            "expected 0s <= 311m <= 1h0m0s: {}scale-to-zero-pod-retention-period",
        ),
        (
            {"scaleToZeroPodRetentionPeriod": "-42s"},
            "expected 0s <= -42s <= 1h0m0s: {}scaleToZeroPodRetentionPeriod",
        ),
        (
            {"scale-to-zero-pod-retention-period": "twenty-two-minutes-and-five-seconds"},
            "invalid value: twenty-two-minutes-and-five-seconds: "
            "{}scale-to-zero-pod-retention-period",
        ),
        # scale-down-delay
        ({"scale-down-delay": "311m"}, "expected 0s <= 311m <= 1h0m0s: {}scale-down-delay"),
        ({"scaleDownDelay": "-42s"}, "expected 0s <= -42s <= 1h0m0s: {}scaleDownDelay"),
        (
            {"scale-down-delay": "1.5s"},
            "must be specified with at most second precision: {}scale-down-delay",
        ),
        (
            {"scale-down-delay": "twenty-two-minutes-and-five-seconds"},
            "invalid value: twenty-two-minutes-and-five-seconds: {}scale-down-delay",
        ),
        # metric and algorithm
        ({"metric": "cpu"}, "invalid value: cpu: {}metric"),
        ({"metric": ""}, "invalid value: : {}metric"),
        (
            {"metric-aggregation-algorithm": "random-selection", "class": KPA_CLASS},
            "invalid value: random-selection: {}metric-aggregation-algorithm",
        ),
        # initial-scale
        ({"initial-scale": "0"}, "invalid value: 0: {}initial-scale=0 not allowed by cluster"),
        ({"initial-scale": "-1"}, "invalid value: -1: {}initial-scale must be greater than 0"),
        ({"initialScale": "-1"}, "invalid value: -1: {}initialScale must be greater than 0"),
        ({"initial-scale": "invalid"}, "invalid value: invalid: {}initial-scale"),
    ],
)
def test_invalid_annotation_names_the_key_and_why(
    annotations: dict[str, str], message: str
) -> None:
    with pytest.raises(AnnotationError) as info:
        ScalingConfig.from_annotations({G + key: value for key, value in annotations.items()})
    assert str(info.value) == message.replace("{}", G)
    assert isinstance(info.value, ValueError)
    assert info.value.annotation.startswith(G)
    assert info.value.annotation in str(info.value)


def test_annotation_error_carries_key_and_reason() -> None:
    with pytest.raises(AnnotationError) as info:
        ScalingConfig.from_annotations({G + "minScale": "foo"})
    assert info.value.annotation == G + "minScale"
    assert info.value.reason == "invalid value: foo"
    assert info.value.paths == (G + "minScale",)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("-0", 0),
        ("300ms", 300_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        ("1m0.5s", 60_500_000_000),
        (".5s", 500_000_000),
        ("5.s", 5_000_000_000),
        ("+3s", 3_000_000_000),
        ("1us", 1_000),
        ("1\u00b5s", 1_000),
        ("1\u03bcs", 1_000),
        ("7ns", 7),
        ("", None),
        ("s", None),
        (".s", None),
        ("1", None),
        ("1x", None),
        ("1h-2m", None),
        ("1e3s", None),
        ("1000000000000h", None),
    ],
)
def test_go_duration_syntax(text: str, ns: int | None) -> None:
    assert _go_duration_ns(text) == ns


# --- buckets ----------------------------------------------------------------------------------


def test_linear_average_over_a_partial_window() -> None:
    buckets = TimedBuckets(10)
    for t in range(5):
        buckets.record(t, 10.0)
    assert buckets.average(4) == 10.0  # 5 seconds of data, not 10
    for t in range(5, 10):
        buckets.record(t, 20.0)
    assert buckets.average(9) == 15.0
    buckets.record(10, 20.0)  # second 0 leaves the window
    assert buckets.average(10) == 16.0  # seconds 1..10: 4 x 10 + 6 x 20


def test_records_within_a_second_add_up() -> None:
    buckets = TimedBuckets(10)
    buckets.record(3.2, 1.0)
    buckets.record(3.9, 2.0)
    assert buckets.average(3.5) == 3.0


def test_skipped_seconds_between_records_count_as_zero() -> None:
    buckets = TimedBuckets(10)
    buckets.record(0, 10.0)
    buckets.record(5, 10.0)
    assert buckets.average(5) == pytest.approx(20 / 6, abs=1e-6)


def test_missing_recent_seconds_are_left_out_not_zero() -> None:
    buckets = TimedBuckets(10)
    for t in range(10):
        buckets.record(t, 10.0)
    # Five seconds without a record: the average is over the five seconds still in the window.
    assert buckets.average(14) == 10.0
    assert not buckets.is_empty(19)
    assert buckets.average(19) == 0.0  # the last write is a whole window old
    assert buckets.is_empty(20)


def test_a_window_without_writes_starts_afresh() -> None:
    buckets = TimedBuckets(10)
    buckets.record(0, 100.0)
    buckets.record(10, 1.0)
    assert buckets.average(10) == 1.0


def test_late_and_stale_writes() -> None:
    buckets = TimedBuckets(10)
    buckets.record(5, 6.0)
    buckets.record(3, 3.0)  # late but within the window: counted, the window starts at 3
    assert buckets.average(5) == 3.0
    buckets.record(20, 1.0)
    buckets.record(5, 100.0)  # older than the window: dropped
    assert buckets.average(20) == 1.0


def test_empty_buckets() -> None:
    buckets = TimedBuckets(60)
    assert buckets.is_empty(0)
    assert buckets.average(0) == 0.0
    with pytest.raises(ValueError):
        TimedBuckets(0)


def test_weighted_average_favours_recent_seconds() -> None:
    buckets = WeightedBuckets(4)
    # 4 buckets: the coefficient making the weights add up to 99.99% is 1 - 0.0001 ** (1/4) = 0.9.
    assert buckets.smoothing_coefficient == pytest.approx(0.9)
    for t, value in enumerate([10.0, 10.0, 5.0, 5.0]):  # newest last
        buckets.record(t, value)
    assert buckets.average(3) == pytest.approx(5 * 0.9 + 5 * 0.09 + 10 * 0.009 + 10 * 0.0009)
    # One second without a record weighs as a zero.
    assert buckets.average(4) == pytest.approx(5 * 0.09 + 5 * 0.009 + 10 * 0.0009)
    assert WeightedBuckets(60).smoothing_coefficient == 0.2  # the floor


# --- the spec's worked examples (section 7) -----------------------------------------------------


def test_example_stable_50_with_1_pod_gives_5() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 50, -59, 0)
    decision = decider.scale(0, ready_pods=1)
    assert decision.stable_concurrency == 50
    assert decision.desired_pods == 5


def test_example_stable_1000_with_1_pod_is_rate_limited_to_10() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 1000, -59, 0)
    decision = decider.scale(0, ready_pods=1)
    assert decision.stable_concurrency == 1000
    assert decision.desired_pods == 10  # ceil(10 x 1 pod), not 100


def test_example_100_pods_at_stable_1_scale_down_to_10() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 1, -59, 0)
    decision = decider.scale(0, ready_pods=100)
    assert decision.stable_concurrency == 1
    assert decision.desired_pods == 10  # floor(100 pods / 10), not 1
    assert not decision.panicking


def test_example_panic_1000_with_10_pods_holds_100_for_a_stable_window() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 1, -59, -6)
    feed(decider, 1000, -5, 0)  # a burst filling the 6 s panic window
    decision = decider.scale(0, ready_pods=10)
    assert decision.panic_concurrency == 1000
    assert decision.panicking
    assert decision.desired_pods == 100

    feed(decider, 1, 1, 30)  # the load drops to 1
    decision = decider.scale(30, ready_pods=10)
    assert decision.panic_concurrency == 1
    assert decision.panicking
    assert decision.desired_pods == 100

    feed(decider, 1, 31, 61)
    decision = decider.scale(61, ready_pods=10)
    assert not decision.panicking
    assert decision.stable_concurrency == 1
    assert decision.desired_pods == 1


def test_example_with_2s_ticks_panic_ends_a_window_after_the_last_tick_over_threshold() -> None:
    # Ticking every 2 s, the 6 s panic window still holds part of the burst at +2 s and +4 s, so
    # those ticks extend the panic: it ends on the first tick more than 60 s after +4 s.
    decider = Decider(EXAMPLE)
    feed(decider, 1, -59, -6)
    feed(decider, 1000, -5, 0)
    assert decider.scale(0, ready_pods=10).desired_pods == 100
    for t in range(1, 67):
        decider.record(t, 1)
        if t % 2 == 0:
            decision = decider.scale(t, ready_pods=10)
            if t <= 64:
                assert decision.desired_pods == 100, t
                assert decision.panicking
    assert decision.desired_pods == 1
    assert not decision.panicking


# --- panic ------------------------------------------------------------------------------------


def test_panic_starts_at_twice_the_capacity_of_the_ready_pods() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 10, -59, -6)
    feed(decider, 39, -5, 0)  # panic 39 -> 4 pods wanted for 2 ready: 2x, the threshold
    decision = decider.scale(0, ready_pods=2)
    assert decision.panicking
    assert decision.desired_pods == 4

    decider = Decider(EXAMPLE)
    feed(decider, 10, -59, -6)
    feed(decider, 30, -5, 0)  # 3 pods for 2 ready: under the threshold
    decision = decider.scale(0, ready_pods=2)
    assert not decision.panicking
    assert decision.desired_pods == 2  # from the stable average, 13.3 -> 2


def test_in_panic_the_decision_never_goes_down() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 1, -59, -6)
    feed(decider, 500, -5, 0)
    assert decider.scale(0, ready_pods=5).desired_pods == 50
    feed(decider, 200, 1, 6)  # still over the threshold (20 pods for 5), but less
    decision = decider.scale(6, ready_pods=5)
    assert decision.panicking
    assert decision.desired_pods == 50
    feed(decider, 900, 7, 12)  # and up again: goes up
    assert decider.scale(12, ready_pods=5).desired_pods == 50  # rate limit: ceil(10 x 5)
    assert decider.scale(12, ready_pods=20).desired_pods == 90


def test_a_decider_created_with_several_ready_pods_starts_in_panic() -> None:
    decider = Decider(EXAMPLE, now=0.0, ready_pods=5)
    assert decider.panicking
    feed(decider, 1, 1, 30)
    decision = decider.scale(30, ready_pods=5)
    assert decision.panicking
    assert decision.desired_pods == 5  # not scaled down on lost history
    feed(decider, 1, 31, 61)
    decision = decider.scale(61, ready_pods=5)
    assert not decision.panicking
    assert decision.desired_pods == 1

    assert not Decider(EXAMPLE, ready_pods=1).panicking


# --- scale-down delay ---------------------------------------------------------------------------


def test_scale_down_delay_is_the_maximum_over_the_delay_window() -> None:
    base = dataclasses.replace(EXAMPLE, stable_window=6)
    delayed = Decider(dataclasses.replace(base, scale_down_delay=10))
    plain = Decider(base)
    loads = [50] * 6 + [10] * 20 + [80] * 6 + [0] * 24
    undelayed: list[int] = []
    for t, load in enumerate(loads):
        delayed.record(t, load)
        plain.record(t, load)
        if t % 2 == 1:
            undelayed.append(plain.scale(t, ready_pods=5).desired_pods)
            got = delayed.scale(t, ready_pods=5)
            # 10 s of 2 s ticks: this tick and the four before it.
            assert got.desired_pods == max(undelayed[-5:]), t
    assert undelayed != [max(undelayed[max(0, i - 4) : i + 1]) for i in range(len(undelayed))]


def test_scale_down_delay_does_not_delay_scale_up() -> None:
    cfg = dataclasses.replace(EXAMPLE, stable_window=6, scale_down_delay=30)
    decider = Decider(cfg)
    feed(decider, 10, 0, 5)
    assert decider.scale(5, ready_pods=1).desired_pods == 1
    feed(decider, 60, 6, 11)
    assert decider.scale(11, ready_pods=3).desired_pods == 6


def test_scale_down_delay_holds_then_releases() -> None:
    cfg = dataclasses.replace(EXAMPLE, stable_window=6, scale_down_delay=10)
    decider = Decider(cfg)
    feed(decider, 50, -5, 0)
    assert decider.scale(0, ready_pods=5).desired_pods == 5
    feed(decider, 10, 1, 6)
    decision = decider.scale(6, ready_pods=5)
    assert decision.desired_pods == 5
    assert decision.reason == "scale-down delay"
    feed(decider, 10, 7, 10)
    assert decider.scale(10, ready_pods=5).desired_pods == 1  # index 0 left the 5-tick window


# --- scale to zero --------------------------------------------------------------------------------


def run_until_idle(decider: Decider, load: float, busy_until: int, end: int) -> dict[int, Decision]:
    """1 ready pod; ``load`` until ``busy_until``, then 0; a tick every 2 s from 0 to ``end``."""
    decisions = {}
    for t in range(0, end + 1):
        decider.record(t, load if t < busy_until else 0.0)
        if t % 2 == 0:
            decisions[t] = decider.scale(t, ready_pods=1)
    return decisions


def test_grace_period_counts_from_when_the_activator_goes_into_the_path() -> None:
    # TBC 0: excess burst capacity 0, so the activator is out of the path while serving.
    cfg = dataclasses.replace(EXAMPLE, target_burst_capacity=0)
    decisions = run_until_idle(Decider(cfg), 5, busy_until=60, end=154)
    assert decisions[58].desired_pods == 1
    assert not decisions[58].activator_in_path
    # Stable average reaches 0 once second 59 leaves the 60 s window, at 120.
    assert decisions[118].stable_concurrency > 0
    assert decisions[118].desired_pods == 1
    for t in range(120, 150, 2):
        assert decisions[t].stable_concurrency == 0
        assert decisions[t].desired_pods == 1, t
        assert decisions[t].activator_in_path, t
        assert decisions[t].reason == "scale-to-zero grace period"
    assert decisions[150].desired_pods == 0
    assert decisions[150].reason == "scaled to zero"
    assert decisions[150].activator_in_path
    assert decisions[152].desired_pods == 0


def test_pods_vanishing_during_the_grace_period_do_not_restart_it() -> None:
    cfg = dataclasses.replace(EXAMPLE, target_burst_capacity=0)
    decider = Decider(cfg)
    decisions = run_until_idle(decider, 5, busy_until=60, end=130)
    assert decisions[130].reason == "scale-to-zero grace period"
    for t in range(131, 151):
        decider.record(t, 0.0)
    assert decider.scale(140, ready_pods=0).desired_pods == 1
    decision = decider.scale(150, ready_pods=0)
    assert decision.desired_pods == 0
    assert decision.reason == "scaled to zero"


def test_traffic_during_the_grace_period_cancels_it() -> None:
    cfg = dataclasses.replace(EXAMPLE, target_burst_capacity=0)
    decider = Decider(cfg)
    decisions = run_until_idle(decider, 5, busy_until=60, end=140)
    assert decisions[140].reason == "scale-to-zero grace period"
    assert decider.poke(141)  # the autoscaler wants 0: a poke is urgent
    decision = decider.scale(141, ready_pods=1)
    assert decision.desired_pods == 1
    assert decision.reason == "stable"
    assert not decision.activator_in_path
    # Quiet again: the poke's second must leave the stable window, then a full grace period.
    for t in range(142, 232):
        decider.record(t, 0.0)
        if t % 2 == 0:
            decision = decider.scale(t, ready_pods=1)
            assert decision.desired_pods == 1, t
    decider.record(232, 0.0)
    assert decider.scale(232, ready_pods=1).desired_pods == 0


def test_test_friendly_grace_period() -> None:
    cfg = ScalingConfig.from_annotations(
        {G + "target": "10", G + "target-burst-capacity": "0", G + "window": "6s"},
        scale_to_zero_grace_period=2.0,
    )
    decisions = run_until_idle(Decider(cfg), 5, busy_until=10, end=30)
    assert decisions[14].desired_pods == 1  # second 9 still in the 6 s window at 14
    assert decisions[16].desired_pods == 1  # inactive: the activator goes into the path
    assert decisions[16].activator_in_path
    assert decisions[18].desired_pods == 0


def test_activator_already_in_path_for_the_grace_period_scales_to_zero_at_once() -> None:
    # Default TBC 211 > 10 per pod: the activator has been in the path all along (Knative's fast
    # path: the SKS has been proxying for longer than the grace period).
    decisions = run_until_idle(Decider(EXAMPLE), 5, busy_until=60, end=124)
    assert all(d.activator_in_path for d in decisions.values())
    assert decisions[118].desired_pods == 1
    assert decisions[120].desired_pods == 0
    assert decisions[120].reason == "scaled to zero (activator already in path)"


def test_pod_retention_period_keeps_the_last_pod() -> None:
    cfg = dataclasses.replace(EXAMPLE, scale_to_zero_pod_retention_period=45)
    decisions = run_until_idle(Decider(cfg), 5, busy_until=60, end=170)
    assert decisions[120].desired_pods == 1
    assert decisions[120].reason == "scale-to-zero pod retention"
    assert decisions[164].desired_pods == 1
    assert decisions[166].desired_pods == 0  # inactive since 120, 46 s >= 45 s
    assert decisions[166].reason == "scaled to zero"


def test_a_revision_must_be_active_for_a_stable_window_before_zero() -> None:
    # A pod that became ready with no traffic at all: the autoscaler says 0 at once, the KPA
    # keeps 1 pod for a stable window of activity first.
    decisions = run_until_idle(Decider(EXAMPLE), 0, busy_until=0, end=62)
    assert decisions[0].desired_pods == 1
    assert decisions[58].desired_pods == 1
    assert decisions[58].reason == "active for less than the stable window"
    assert decisions[60].desired_pods == 0


def test_scale_to_zero_disabled_keeps_one_pod() -> None:
    cfg = dataclasses.replace(EXAMPLE, enable_scale_to_zero=False)
    decisions = run_until_idle(Decider(cfg), 5, busy_until=60, end=300)
    assert {d.desired_pods for t, d in decisions.items() if t >= 120} == {1}


def test_a_revision_that_never_becomes_ready_goes_to_zero_after_the_activation_timeout() -> None:
    cfg = dataclasses.replace(
        EXAMPLE, initial_scale=0, allow_zero_initial_scale=True, activation_timeout=100
    )
    decider = Decider(cfg)
    assert decider.poke(0.0)
    assert decider.scale(0, ready_pods=0).desired_pods == 1
    decisions = {}
    for t in range(1, 105):
        decider.record(t, 0.0)
        if t % 2 == 0:
            decisions[t] = decider.scale(t, ready_pods=0)
    assert {decisions[t].desired_pods for t in range(2, 101, 2)} == {1}
    assert decisions[62].reason == "activating"  # the autoscaler says 0 from here on
    assert decisions[102].desired_pods == 0
    assert decisions[102].reason == "activation timed out"
    assert decisions[104].desired_pods == 0


# --- poke ---------------------------------------------------------------------------------------


def scaled_to_zero(cfg: ScalingConfig = EXAMPLE) -> tuple[Decider, int]:
    decider = Decider(cfg)
    decisions = run_until_idle(decider, 5, busy_until=60, end=122)
    assert decisions[122].desired_pods == 0
    return decider, 122


def test_a_single_poke_at_zero_scales_up() -> None:
    decider, now = scaled_to_zero()
    # No pods, no records for a while: the stable window has gone quiet.
    assert decider.poke(now + 100)
    decision = decider.scale(now + 100, ready_pods=0)
    assert decision.desired_pods >= 1
    assert decision.activator_in_path


def test_a_poke_at_zero_right_after_scaling_down_scales_up() -> None:
    decider, now = scaled_to_zero()
    assert decider.poke(now + 1)
    assert decider.scale(now + 1, ready_pods=0).desired_pods == 1


def test_a_poke_at_zero_honours_activation_scale() -> None:
    decider, now = scaled_to_zero(dataclasses.replace(EXAMPLE, activation_scale=3))
    assert decider.poke(now + 5)
    assert decider.scale(now + 5, ready_pods=0).desired_pods == 3


def test_poke_is_only_urgent_at_zero_and_with_load() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 5, 0, 10)
    decider.scale(10, ready_pods=1)
    assert not decider.poke(11)
    decider, now = scaled_to_zero()
    assert not decider.poke(now + 1, concurrency=0.0)


def test_poke_with_zero_initial_scale() -> None:
    cfg = dataclasses.replace(EXAMPLE, initial_scale=0, allow_zero_initial_scale=True)
    decider = Decider(cfg)
    assert decider.scale(0, ready_pods=0).desired_pods == 0
    assert decider.poke(1.5)
    assert decider.scale(1.5, ready_pods=0).desired_pods == 1


# --- min, max, initial and activation scale ---------------------------------------------------


def test_min_scale_is_a_floor() -> None:
    decider = Decider(dataclasses.replace(EXAMPLE, min_scale=2))
    decisions = run_until_idle(decider, 0, busy_until=0, end=300)
    assert {d.desired_pods for d in decisions.values()} == {2}
    assert decisions[300].reason == "min-scale"


def test_max_scale_is_a_ceiling() -> None:
    decider = Decider(dataclasses.replace(EXAMPLE, max_scale=3))
    feed(decider, 100, -59, 0)
    decision = decider.scale(0, ready_pods=5)
    assert decision.desired_pods == 3
    assert decision.reason == "max-scale"


def test_initial_scale_holds_until_the_revision_has_reached_it() -> None:
    decider = Decider(dataclasses.replace(EXAMPLE, initial_scale=3))
    first = decider.scale(0, ready_pods=0)
    assert first.desired_pods == 3
    assert first.reason == "no data"
    decider.record(1, 0.0)
    decision = decider.scale(2, ready_pods=1)
    assert decision.desired_pods == 3
    assert decision.reason == "initial-scale"
    decider.record(3, 0.0)
    # Three pods ready: initialized; from now on the autoscaler decides (and, with no load, the
    # KPA keeps one pod for a stable window before zero).
    decision = decider.scale(4, ready_pods=3)
    assert decision.desired_pods == 1
    assert decision.reason == "active for less than the stable window"


def test_initial_scale_above_max_scale_wins_until_initialized_as_in_knative() -> None:
    decider = Decider(dataclasses.replace(EXAMPLE, initial_scale=5, max_scale=3))
    assert decider.scale(0, ready_pods=0).desired_pods == 5


def test_activation_scale_raises_every_decision_with_load() -> None:
    decider = Decider(dataclasses.replace(EXAMPLE, activation_scale=3))
    feed(decider, 5, -59, 0)
    assert decider.scale(0, ready_pods=3).desired_pods == 3  # 1 pod would do
    feed(decider, 0, 1, 200)
    assert decider.scale(200, ready_pods=3).desired_pods == 0  # no load: zero is still allowed


# --- excess burst capacity --------------------------------------------------------------------


def test_excess_burst_capacity_uses_ready_pods_total_capacity_and_panic_load() -> None:
    decider = Decider(ScalingConfig())  # 100 per pod, TBC 211
    feed(decider, 50, -59, 0)
    decision = decider.scale(0, ready_pods=2)
    assert decision.excess_burst_capacity == 200 - 211 - 50
    assert decision.activator_in_path


def test_excess_burst_capacity_is_floored() -> None:
    decider = Decider(ScalingConfig(target_burst_capacity=100))
    feed(decider, 50.5, -59, 0)
    decision = decider.scale(0, ready_pods=3)
    assert decision.excess_burst_capacity == 149  # floor(300 - 100 - 50.5)
    assert not decision.activator_in_path


@pytest.mark.parametrize("tbc", [0, -1])
def test_excess_burst_capacity_for_tbc_0_and_minus_1(tbc: float) -> None:
    decider = Decider(ScalingConfig(target_burst_capacity=tbc))
    feed(decider, 500, -59, 0)
    decision = decider.scale(0, ready_pods=2)
    assert decision.excess_burst_capacity == tbc
    assert decision.activator_in_path is (tbc == -1)


@pytest.mark.parametrize(
    ("knobs", "ebc"),
    [
        ({}, 100 - 211),
        ({"container_concurrency": 10}, 10 - 211),
        ({"initial_scale": 3, "target_burst_capacity": 50}, 250),
        ({"target_burst_capacity": 0}, 0),
        ({"target_burst_capacity": -1}, -1),
    ],
)
def test_excess_burst_capacity_before_any_data(knobs: dict[str, float], ebc: int) -> None:
    cfg = ScalingConfig(**knobs)  # type: ignore[arg-type]
    assert cfg.initial_excess_burst_capacity == ebc
    decision = Decider(cfg).scale(0, ready_pods=0)
    assert decision.excess_burst_capacity == ebc
    assert decision.activator_in_path  # no ready pods


def test_activator_stays_in_path_without_ready_pods_even_with_tbc_0() -> None:
    decider = Decider(ScalingConfig(target_burst_capacity=0))
    feed(decider, 5, -59, 0)
    assert decider.scale(0, ready_pods=0).activator_in_path
    assert not decider.scale(0, ready_pods=1).activator_in_path


# --- no data, other metrics, misc ----------------------------------------------------------------


def test_no_data_keeps_the_last_decision() -> None:
    decider = Decider(EXAMPLE)
    feed(decider, 40, -59, 0)
    assert decider.scale(0, ready_pods=4).desired_pods == 4
    # The caller stops recording: a whole window later there is no data; the decision stands.
    decision = decider.scale(100, ready_pods=4)
    assert decision.reason == "no data"
    assert decision.desired_pods == 4
    assert decision.stable_concurrency == 0.0


def test_a_fresh_decider_without_data_gives_the_initial_scale() -> None:
    decision = Decider(ScalingConfig()).scale(0, ready_pods=0)
    assert decision.desired_pods == 1
    assert decision.reason == "no data"
    assert not decision.panicking


def test_rps_metric_scales_on_recorded_requests_per_second() -> None:
    decider = Decider(ScalingConfig.from_annotations({G + "metric": "rps"}))
    feed(decider, 700, -59, 0)  # 140 rps per pod
    assert decider.scale(0, ready_pods=5).desired_pods == 5


def test_weighted_algorithm_is_used_when_annotated() -> None:
    cfg = ScalingConfig.from_annotations(
        {G + "metric-aggregation-algorithm": "weighted-exponential", G + "target": "10"}
    )
    decider = Decider(cfg)
    feed(decider, 7, -59, 0)
    decision = decider.scale(0, ready_pods=1)
    assert decision.stable_concurrency == pytest.approx(7, rel=1e-4)
    assert decision.desired_pods == 1


def test_record_refuses_non_finite_values_and_scale_negative_pods() -> None:
    decider = Decider(EXAMPLE)
    with pytest.raises(ValueError):
        decider.record(0, float("nan"))
    with pytest.raises(ValueError):
        decider.scale(0, ready_pods=-1)


def test_decision_is_frozen_and_last_decision_is_kept() -> None:
    decider = Decider(EXAMPLE)
    decision = decider.scale(0, ready_pods=0)
    assert decider.last_decision is decision
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.desired_pods = 3  # type: ignore[misc]
