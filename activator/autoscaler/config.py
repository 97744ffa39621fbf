"""The KPA's configuration: Knative's autoscaling annotations and config-autoscaler, sans-IO.

Annotations (pkg/apis/autoscaling/register.go, annotation_validation.go):
``ScalingConfig.from_annotations`` parses and validates the revision's annotations with Knative's
ranges and messages (Go's ParseInt / ParseFloat / ParseDuration syntax) and raises the first
failure as ``AnnotationError``. ``**overrides`` stand for the cluster's config-autoscaler (and the
test knobs); annotations win over them.

Where the spec's section 7 and Knative's source differ, this follows the source:

- A key given both in kebab-case and as its camelCase alias is not an error: Knative's
  ``kmap.KeyPriority`` silently uses the kebab-case key, and so do we.
- Activation scale raises every decision with load (dspc > 0), not only the one leaving zero, and
  the annotation must be at least 2 (Knative rejects "1"; the default, 1, means "off").
- "Desired 0 only after the grace period" is the KPA reconciler's rule above: the grace period
  runs from the moment the activator is in the path, which may be long before (fast path), and
  the revision must also have been active for a stable window.
- min/max are applied before the scale-to-zero step, as in Knative (same result: a 0 survives the
  bounds only when min-scale is 0).
- With containerConcurrency > 0 and no target annotation the per-pod total is CC and the target
  is CC x utilization (70%); a target annotation is capped at CC for the concurrency metric.
- Panic ends more than a stable window after the *last tick over the threshold*, which, with
  ticks every 2 s and a 6 s panic window, is a few seconds after the load dropped.
- Metric "rps" is supported: the same decider, fed requests per second (``config.metric`` tells
  the caller what to record), with a default per-pod total of 200.

Deliberate departures: non-finite numbers ("NaN", "Inf") are rejected (Knative's range checks let
NaN through); Go hex floats are not accepted; only the first validation error is reported;
initial-scale must fit in an int32; reachability and max-scale-limit are not modelled (always
reachable, no limit); the weighted algorithm is validated only with an explicit KPA class
annotation, as in Knative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

__all__ = [
    "ANNOTATION_KEYS",
    "CONCURRENCY",
    "HPA_CLASS",
    "KPA_CLASS",
    "RPS",
    "AnnotationError",
    "ScalingConfig",
]

GROUP = "autoscaling.knative.dev"
KPA_CLASS = "kpa.autoscaling.knative.dev"
HPA_CLASS = "hpa.autoscaling.knative.dev"

CLASS_KEY = GROUP + "/class"
MIN_SCALE_KEY = GROUP + "/min-scale"
MAX_SCALE_KEY = GROUP + "/max-scale"
INITIAL_SCALE_KEY = GROUP + "/initial-scale"
ACTIVATION_SCALE_KEY = GROUP + "/activation-scale"
SCALE_DOWN_DELAY_KEY = GROUP + "/scale-down-delay"
METRIC_KEY = GROUP + "/metric"
METRIC_AGGREGATION_ALGORITHM_KEY = GROUP + "/metric-aggregation-algorithm"
TARGET_KEY = GROUP + "/target"
TARGET_UTILIZATION_PERCENTAGE_KEY = GROUP + "/target-utilization-percentage"
TARGET_BURST_CAPACITY_KEY = GROUP + "/target-burst-capacity"
WINDOW_KEY = GROUP + "/window"
PANIC_WINDOW_PERCENTAGE_KEY = GROUP + "/panic-window-percentage"
PANIC_THRESHOLD_PERCENTAGE_KEY = GROUP + "/panic-threshold-percentage"
SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY = GROUP + "/scale-to-zero-pod-retention-period"

# Each annotation with its accepted spellings, in Knative's priority order (register.go).
ANNOTATION_KEYS: Mapping[str, tuple[str, ...]] = {
    CLASS_KEY: (CLASS_KEY,),
    MIN_SCALE_KEY: (MIN_SCALE_KEY, GROUP + "/minScale"),
    MAX_SCALE_KEY: (MAX_SCALE_KEY, GROUP + "/maxScale"),
    INITIAL_SCALE_KEY: (INITIAL_SCALE_KEY, GROUP + "/initialScale"),
    ACTIVATION_SCALE_KEY: (ACTIVATION_SCALE_KEY,),
    SCALE_DOWN_DELAY_KEY: (SCALE_DOWN_DELAY_KEY, GROUP + "/scaleDownDelay"),
    METRIC_KEY: (METRIC_KEY,),
    METRIC_AGGREGATION_ALGORITHM_KEY: (
        METRIC_AGGREGATION_ALGORITHM_KEY,
        GROUP + "/metricAggregationAlgorithm",
    ),
    TARGET_KEY: (TARGET_KEY,),
    TARGET_UTILIZATION_PERCENTAGE_KEY: (
        TARGET_UTILIZATION_PERCENTAGE_KEY,
        GROUP + "/targetUtilizationPercentage",
    ),
    TARGET_BURST_CAPACITY_KEY: (TARGET_BURST_CAPACITY_KEY, GROUP + "/targetBurstCapacity"),
    WINDOW_KEY: (WINDOW_KEY,),
    PANIC_WINDOW_PERCENTAGE_KEY: (PANIC_WINDOW_PERCENTAGE_KEY, GROUP + "/panicWindowPercentage"),
    PANIC_THRESHOLD_PERCENTAGE_KEY: (
        PANIC_THRESHOLD_PERCENTAGE_KEY,
        GROUP + "/panicThresholdPercentage",
    ),
    SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY: (
        SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY,
        GROUP + "/scaleToZeroPodRetentionPeriod",
    ),
}

CONCURRENCY = "concurrency"
RPS = "rps"
LINEAR = "linear"
WEIGHTED_EXPONENTIAL = "weighted-exponential"
_WEIGHTED_EXPONENTIAL_ALT = "weightedExponential"

_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
_TARGET_MIN = 0.01
_SECOND_NS = 10**9
_WINDOW_MIN_NS = 6 * _SECOND_NS
_WINDOW_MAX_NS = 3600 * _SECOND_NS


class AnnotationError(ValueError):
    """An autoscaling annotation is malformed or out of range.

    ``str()`` reads like Knative's webhook message: ``"<reason>: <paths>"``, the paths being the
    annotation key (as spelled in the input) unless told otherwise.
    """

    def __init__(self, annotation: str, reason: str, paths: Sequence[str] | None = None) -> None:
        self.annotation = annotation
        self.reason = reason
        self.paths = tuple(paths) if paths is not None else (annotation,)
        super().__init__(f"{reason}: {', '.join(self.paths)}")


# --- Go's number and duration syntax --------------------------------------------------------

_GO_INT = re.compile(r"[+-]?[0-9]+\Z")
_GO_DECIMAL_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 10**3,
    "\u00b5s": 10**3,  # micro sign
    "\u03bcs": 10**3,  # Greek mu
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 10, ...) syntax, without the range check; None when malformed."""
    return int(text) if _GO_INT.match(text) else None


def _go_float(text: str) -> float | None:
    """strconv.ParseFloat's decimal syntax; None when malformed or not finite."""
    if not _GO_DECIMAL_FLOAT.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _go_duration_ns(text: str) -> int | None:
    """time.ParseDuration: "300ms", "-1.5h", "2h45m", "0"; integer nanoseconds, None if invalid."""
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = Fraction(0)
    while s:
        match = re.match(r"([0-9]*)(\.([0-9]*))?", s)
        assert match is not None  # the pattern matches the empty string
        whole, _, fraction = match.groups()
        if not whole and not fraction:
            return None  # no digits: "s", ".s"
        s = s[match.end() :]
        unit_end = 0
        while unit_end < len(s) and s[unit_end] not in ".0123456789":
            unit_end += 1
        unit = _DURATION_UNITS_NS.get(s[:unit_end])
        if unit is None:
            return None  # missing or unknown unit
        s = s[unit_end:]
        component = Fraction(int(whole or "0"))
        if fraction:
            component += Fraction(int(fraction), 10 ** len(fraction))
        total += component * unit
        if total > _INT64_MAX:
            return None
    ns = math.floor(total)
    return -ns if negative else ns


def _get(annotations: Mapping[str, str], canonical: str) -> tuple[str, str] | None:
    """Knative's kmap.KeyPriority.Get: the first spelling present wins, the rest are ignored."""
    for key in ANNOTATION_KEYS[canonical]:
        if key in annotations:
            return key, annotations[key]
    return None


def _int_ge0(annotations: Mapping[str, str], canonical: str) -> int:
    found = _get(annotations, canonical)
    if found is None:
        return 0
    key, text = found
    value = _go_int(text)
    if value is None:
        raise AnnotationError(key, f"invalid value: {text}")
    if value < 0 or value > _INT32_MAX:
        raise AnnotationError(key, f"expected 0 <= {text} <= {_INT32_MAX}")
    return value


def _float_in(
    annotations: Mapping[str, str], canonical: str, low: float, high: float
) -> float | None:
    found = _get(annotations, canonical)
    if found is None:
        return None
    key, text = found
    value = _go_float(text)
    if value is None:
        raise AnnotationError(key, f"invalid value: {text}")
    if value < low or value > high:
        # Go's %v of a float64 bound: 1, 110, 1000.
        raise AnnotationError(key, f"expected {low:g} <= {text} <= {high:g}")
    return value


def _duration(annotations: Mapping[str, str], canonical: str) -> tuple[str, str, int] | None:
    found = _get(annotations, canonical)
    if found is None:
        return None
    key, text = found
    ns = _go_duration_ns(text)
    if ns is None:
        raise AnnotationError(key, f"invalid value: {text}")
    return key, text, ns


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScalingConfig:
    """Every knob of the KPA for one revision, with Knative's defaults.

    Durations are float seconds. Percentages are as in the annotations (70.0 means 70%).
    ``target`` is the ``autoscaling.knative.dev/target`` annotation (the per-pod total); None
    means containerConcurrency when it is > 0, else the cluster default for the metric.
    """

    target: float | None = None
    container_concurrency: int = 0
    container_concurrency_target_default: float = 100.0
    requests_per_second_target_default: float = 200.0
    target_utilization_percentage: float = 70.0
    stable_window: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    enable_scale_to_zero: bool = True
    scale_to_zero_grace_period: float = 30.0
    scale_to_zero_pod_retention_period: float = 0.0
    target_burst_capacity: float = 211.0
    initial_scale: int = 1
    allow_zero_initial_scale: bool = False
    min_scale: int = 0
    max_scale: int = 0
    activation_scale: int = 1
    scale_down_delay: float = 0.0
    metric: str = CONCURRENCY
    metric_aggregation_algorithm: str = LINEAR
    pod_autoscaler_class: str = KPA_CLASS
    tick_interval: float = 2.0
    activation_timeout: float = 630.0

    def __post_init__(self) -> None:
        # Knative's config-autoscaler checks, relaxed where tests need small values (windows of
        # any whole number of seconds, any non-negative grace period).
        problems = []
        if self.pod_autoscaler_class != KPA_CLASS:
            problems.append(
                f"pod-autoscaler-class {self.pod_autoscaler_class!r} is not supported: "
                f"only {KPA_CLASS} is"
            )
        if self.metric not in (CONCURRENCY, RPS):
            problems.append(f"metric {self.metric!r} is not supported by the KPA")
        if self.metric_aggregation_algorithm not in (LINEAR, WEIGHTED_EXPONENTIAL):
            problems.append(
                f"unknown metric aggregation algorithm {self.metric_aggregation_algorithm!r}"
            )
        if self.target is not None and not self.target >= _TARGET_MIN:
            problems.append(f"target {self.target} should be at least {_TARGET_MIN}")
        if self.container_concurrency < 0:
            problems.append(f"container-concurrency = {self.container_concurrency}, must be >= 0")
        if not (
            self.container_concurrency_target_default * self.target_utilization >= _TARGET_MIN
            and self.requests_per_second_target_default >= _TARGET_MIN
        ):
            problems.append("default targets must be at least 0.01")
        if not 0 < self.target_utilization_percentage <= 100:
            problems.append("target-utilization-percentage must be in (0, 100]")
        if not (self.stable_window >= 1 and float(self.stable_window).is_integer()):
            problems.append(f"stable-window = {self.stable_window}, must be whole seconds >= 1")
        if not 1 <= self.panic_window_percentage <= 100:
            problems.append("panic-window-percentage must be in [1, 100]")
        if not self.panic_threshold_percentage > 0:
            problems.append("panic-threshold-percentage must be positive")
        if not self.max_scale_up_rate > 1:
            problems.append(
                f"max-scale-up-rate = {self.max_scale_up_rate}, must be greater than 1.0"
            )
        if not self.max_scale_down_rate > 1:
            problems.append(
                f"max-scale-down-rate = {self.max_scale_down_rate}, must be greater than 1.0"
            )
        if not self.scale_to_zero_grace_period >= 0:
            problems.append("scale-to-zero-grace-period cannot be negative")
        if not self.scale_to_zero_pod_retention_period >= 0:
            problems.append("scale-to-zero-pod-retention-period cannot be negative")
        if not (self.target_burst_capacity >= 0 or self.target_burst_capacity == -1):
            problems.append(
                "target-burst-capacity must be either non-negative or -1 (for unlimited), "
                f"was: {self.target_burst_capacity}"
            )
        if self.initial_scale < 0 or (
            self.initial_scale == 0 and not self.allow_zero_initial_scale
        ):
            problems.append(
                f"initial-scale = {self.initial_scale}, must be at least 0 "
                "(or at least 1 when allow-zero-initial-scale is false)"
            )
        if self.min_scale < 0 or self.max_scale < 0:
            problems.append("min-scale and max-scale must be at least 0")
        elif self.max_scale > 0 and self.min_scale > self.max_scale:
            problems.append(
                f"min-scale ({self.min_scale}) must be less than max-scale ({self.max_scale})"
            )
        if self.activation_scale < 1:
            problems.append(f"activation-scale = {self.activation_scale}, must be at least 1")
        if not self.scale_down_delay >= 0:
            problems.append("scale-down-delay cannot be negative")
        if not self.tick_interval > 0:
            problems.append("tick-interval must be positive")
        if not self.activation_timeout > 0:
            problems.append("activation-timeout must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    # Knative's ResolveMetricTarget (pkg/reconciler/autoscaling/resources/target.go).
    @property
    def total_per_pod(self) -> float:
        """The most a pod can take (Knative's TotalValue): target annotation, CC or default."""
        if self.metric == RPS:
            return (
                self.target if self.target is not None else self.requests_per_second_target_default
            )
        cc = self.container_concurrency
        if self.target is not None:
            return min(self.target, float(cc)) if cc > 0 else self.target
        return float(cc) if cc > 0 else self.container_concurrency_target_default

    @property
    def target_per_pod(self) -> float:
        """What the autoscaler aims for per pod (Knative's TargetValue): total x utilization."""
        return max(_TARGET_MIN, self.total_per_pod * self.target_utilization)

    @property
    def target_utilization(self) -> float:
        return self.target_utilization_percentage / 100.0

    @property
    def panic_threshold(self) -> float:
        return self.panic_threshold_percentage / 100.0

    @property
    def panic_window(self) -> int:
        """Seconds: the stable window's percentage, rounded to a second, at least 1 s."""
        return max(1, _round_half_away(self.stable_window * self.panic_window_percentage / 100.0))

    @property
    def initial_excess_burst_capacity(self) -> int:
        """What Knative reports before the first decision (multiscaler.createScaler)."""
        tbc = self.target_burst_capacity
        if tbc in (0, -1):
            return int(tbc)
        return int(self.initial_scale * self.total_per_pod - tbc)  # Go truncates toward zero

    @classmethod
    def from_annotations(
        cls,
        annotations: Mapping[str, str],
        container_concurrency: int = 0,
        **overrides: Any,
    ) -> ScalingConfig:
        """The revision's config: defaults, then ``overrides`` (cluster config), then annotations.

        Raises ``AnnotationError`` (a ValueError) for the first annotation Knative's webhook would
        refuse, with its message, and for an autoscaler class other than the KPA.
        """
        base = cls(container_concurrency=container_concurrency, **overrides)
        return replace(base, **_parse_annotations(annotations, base))


def _parse_annotations(annotations: Mapping[str, str], base: ScalingConfig) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    explicit_class = _get(annotations, CLASS_KEY)

    # Class (validateClass, plus our refusal of every class but the KPA).
    if explicit_class is not None:
        key, text = explicit_class
        if text != KPA_CLASS:
            if text.endswith(".knative.dev") and text != HPA_CLASS:
                raise AnnotationError(key, f"invalid value: {text}")
            raise AnnotationError(
                key, f"unsupported autoscaler class {text} (only {KPA_CLASS} is supported)"
            )

    # min-scale, max-scale, activation-scale (validateMinMaxScale).
    min_scale = _int_ge0(annotations, MIN_SCALE_KEY)
    max_scale = _int_ge0(annotations, MAX_SCALE_KEY)
    if max_scale != 0 and max_scale < min_scale:
        raise AnnotationError(
            MAX_SCALE_KEY,
            f"max-scale={max_scale} is less than min-scale={min_scale}",
            paths=(MAX_SCALE_KEY, MIN_SCALE_KEY),
        )
    if _get(annotations, MIN_SCALE_KEY) is not None:
        fields["min_scale"] = min_scale
    if _get(annotations, MAX_SCALE_KEY) is not None:
        fields["max_scale"] = max_scale
    found = _get(annotations, ACTIVATION_SCALE_KEY)
    if found is not None:
        key, text = found
        activation = _go_int(text)
        if activation is None or abs(activation) > _INT32_MAX:
            raise AnnotationError(key, f"invalid value: {text}")
        if min_scale > activation:
            raise AnnotationError(
                key, f"min-scale={min_scale} is greater than activation-scale={activation}"
            )
        if max_scale != 0 and max_scale < activation:
            raise AnnotationError(
                key, f"max-scale={max_scale} is less than activation-scale={activation}"
            )
        if activation < 2:
            raise AnnotationError(key, f"activation-scale={activation} must be greater than 1")
        fields["activation_scale"] = activation

    # Floats (validateFloats).
    value = _float_in(annotations, PANIC_WINDOW_PERCENTAGE_KEY, 1.0, 100.0)
    if value is not None:
        fields["panic_window_percentage"] = value
    value = _float_in(annotations, PANIC_THRESHOLD_PERCENTAGE_KEY, 110.0, 1000.0)
    if value is not None:
        fields["panic_threshold_percentage"] = value
    found = _get(annotations, TARGET_KEY)
    if found is not None:
        key, text = found
        target = _go_float(text)
        if target is None:
            raise AnnotationError(key, f"invalid value: {text}")
        if target < _TARGET_MIN:
            raise AnnotationError(key, f"target {text} should be at least {_TARGET_MIN:g}")
        fields["target"] = target
    value = _float_in(annotations, TARGET_UTILIZATION_PERCENTAGE_KEY, 1.0, 100.0)
    if value is not None:
        fields["target_utilization_percentage"] = value
    found = _get(annotations, TARGET_BURST_CAPACITY_KEY)
    if found is not None:
        key, text = found
        tbc = _go_float(text)
        if tbc is None or (tbc < 0 and tbc != -1):
            raise AnnotationError(key, f"invalid value: {text}")
        fields["target_burst_capacity"] = tbc

    # Durations (validateWindow, validateLastPodRetention, validateScaleDownDelay).
    window = _duration(annotations, WINDOW_KEY)
    if window is not None:
        key, text, ns = window
        if ns < _WINDOW_MIN_NS or ns > _WINDOW_MAX_NS:
            raise AnnotationError(key, f"expected 6s <= {text} <= 1h0m0s")
        if ns % _SECOND_NS:
            raise AnnotationError(key, "must be specified with at most second precision")
        fields["stable_window"] = ns / _SECOND_NS
    retention = _duration(annotations, SCALE_TO_ZERO_POD_RETENTION_PERIOD_KEY)
    if retention is not None:
        key, text, ns = retention
        if ns < 0 or ns > _WINDOW_MAX_NS:
            raise AnnotationError(key, f"expected 0s <= {text} <= 1h0m0s")
        fields["scale_to_zero_pod_retention_period"] = ns / _SECOND_NS
    delay = _duration(annotations, SCALE_DOWN_DELAY_KEY)
    if delay is not None:
        key, text, ns = delay
        if ns < 0 or ns > _WINDOW_MAX_NS:
            raise AnnotationError(key, f"expected 0s <= {text} <= 1h0m0s")
        if ns % _SECOND_NS:
            raise AnnotationError(key, "must be specified with at most second precision")
        fields["scale_down_delay"] = ns / _SECOND_NS

    # Metric (validateMetric, class KPA).
    found = _get(annotations, METRIC_KEY)
    if found is not None:
        _, text = found
        if text not in (CONCURRENCY, RPS):
            raise AnnotationError(METRIC_KEY, f"invalid value: {text}")
        fields["metric"] = text

    # Aggregation algorithm (validateAlgorithm: only checked with an explicit KPA class; an
    # unknown value is otherwise the linear average, as in Knative's collector).
    found = _get(annotations, METRIC_AGGREGATION_ALGORITHM_KEY)
    if found is not None and found[1] != "":
        key, text = found
        if text in (WEIGHTED_EXPONENTIAL, _WEIGHTED_EXPONENTIAL_ALT):
            fields["metric_aggregation_algorithm"] = WEIGHTED_EXPONENTIAL
        elif text == LINEAR or explicit_class is None:
            fields["metric_aggregation_algorithm"] = LINEAR
        else:
            raise AnnotationError(key, f"invalid value: {text}")

    # Initial scale (validateInitialScale).
    found = _get(annotations, INITIAL_SCALE_KEY)
    if found is not None:
        key, text = found
        initial = _go_int(text)
        if initial is None or abs(initial) > _INT32_MAX:
            raise AnnotationError(key, f"invalid value: {text}")
        if initial < 0:
            raise AnnotationError(
                key, f"invalid value: {text}", paths=(key + " must be greater than 0",)
            )
        if initial == 0 and not base.allow_zero_initial_scale:
            raise AnnotationError(
                key, f"invalid value: {text}", paths=(key + "=0 not allowed by cluster",)
            )
        fields["initial_scale"] = initial
    return fields


def _round_half_away(x: float) -> int:
    """Go's math.Round / Duration.Round: halves away from zero (Python's round is to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))
