"""Knative's KPA scaling decider, sans-IO: per-second metric buckets in, desired pod count out.

Theory of operation
-------------------

One ``Decider`` per revision. The caller feeds it the revision's observed concurrency (pod stats
minus the share the activator proxied, plus the activator's own stats; the caller computes the sum)
with ``record(now, value)``, and asks for a decision with ``scale(now, ready_pods)`` every
``config.tick_interval`` seconds (Knative: 2 s), and at once after ``poke(now)`` returns True. Time
is a monotonic float in seconds, passed in; nothing here sleeps, reads a clock or does IO.

A decision is made in two stages, as in Knative:

1. The autoscaler (pkg/autoscaler/scaling/autoscaler.go, ``Scale``). With R = max(1, ready pods)
   and ``target_per_pod`` = per-pod target x utilization (Knative's TargetValue):

   - stable / panic = the average of the per-second buckets over the stable window / the panic
     window (``panic_window_percentage`` of the stable window, rounded to a second, at least 1 s);
   - dspc = ceil(stable / target_per_pod), dppc = ceil(panic / target_per_pod), each clamped to
     [floor(R / max-scale-down-rate), ceil(max-scale-up-rate x R)];
   - activation scale: if it is > 1, a count with dspc (dppc) > 0 is raised to at least it;
   - panic starts when the *unclamped* dppc / R >= panic threshold, every tick over the threshold
     moves the panic time to now, and panic ends on the first tick under the threshold that comes
     more than a stable window after the last tick over it. While panicking the result is
     max(stable count, panic count) and never goes below the highest count of this panic;
   - scale-down delay: the result is the maximum of the results over the last ``scale_down_delay``
     seconds (in ``tick_interval`` buckets);
   - excess burst capacity = floor(ready x per-pod total - TBC - panic) with the actual ready count
     and the per-pod *total* (not the target); TBC 0 gives 0 and TBC -1 gives -1.

2. The KPA reconciler (pkg/reconciler/autoscaling/kpa/scaler.go, ``scale`` and
   ``handleScaleToZero``): bounds and scale to zero.

   - bounds: applyBounds(min, max, desired), min checked first (so min wins over max); until the
     revision has been initialized (ready pods >= max(min-scale, initial-scale) once), min is
     max(min-scale, initial-scale);
   - a 0 is applied only when scale to zero is enabled and the revision has been ready (active) for
     at least a stable window (before that it is held at 1), and then only once the activator is in
     the path: the revision turns inactive (the activator goes into the path) and 0 is applied when
     it has been inactive for max(grace period, pod retention period), or, after the retention
     period, when the activator has been in the path for the grace period already (Knative's fast
     path: with the default TBC of 211 and few pods the activator is in the path anyway, so the
     last pod goes as soon as the rest allows). Meanwhile the decision holds 1 pod. A revision
     that never became ready is held until ``activation_timeout`` (Knative: progress deadline
     600 s + 30 s) and then goes to 0.

``Decision.activator_in_path`` is the serverless service's mode: the activator must stay in the
request path while the decision is 0, while excess burst capacity is negative, while there are no
ready pods, and while waiting out the grace period. The caller must honour it: the grace period
counts from the moment it turned True.

No data: when nothing was recorded within the stable window, Knative's Scale returns an invalid
result and the decider's status keeps its last value. ``scale`` does the same: the last autoscaler
result stands (before any, the initial scale), stable and panic read 0.0, the reason says
"no data", and the bounds and scale-to-zero stage still run. The buckets treat seconds without a
record as *missing*, not as zero (Knative's partial windows), so the caller must record every
second while the revision has pods or the activator has stats for it, zeros included, as
Knative's scraper does; otherwise a quiet revision never reaches zero.

Buckets (pkg/autoscaler/aggregation/bucketing.go): 1 s buckets in a ring the size of the window.
Records within one second add up (Knative sums the scraper's and the activator's stats per
bucket), a gap between records zeroes the skipped buckets, a gap of a whole window starts afresh.
The default algorithm is the *linear* average over the buckets since the first write (a partial
window while the window has not filled up, or when recent seconds are missing); the
exponentially weighted average exists in Knative only behind the
``autoscaling.knative.dev/metric-aggregation-algorithm: weighted-exponential`` annotation, and so
here. Each window has its own ring (as in Knative), so ``TimedBuckets.average(now)`` takes no
window argument.

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
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

__all__ = [
    "KPA_CLASS",
    "HPA_CLASS",
    "ANNOTATION_KEYS",
    "AnnotationError",
    "ScalingConfig",
    "TimedBuckets",
    "WeightedBuckets",
    "Decision",
    "Decider",
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


def _round6(x: float) -> float:
    # Knative's roundToNDigits(6, x).
    return math.copysign(math.floor(abs(x) * 1e6 + 0.5), x) / 1e6


# --- windows ------------------------------------------------------------------------------------


class TimedBuckets:
    """A window of 1 s buckets with Knative's linear average (TimedFloat64Buckets).

    ``record(now, value)`` adds ``value`` to the bucket of second floor(now). ``average(now)``
    divides the sum of the buckets within the window by the number of seconds between the first
    and the last write (at most the window): a partial window while it fills up and when recent
    seconds have no record; 0 once the last write is a whole window old.
    """

    __slots__ = ("_window", "_buckets", "_first", "_last")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 s")
        self._window = window
        self._buckets = [0.0] * window
        self._first: int | None = None
        self._last: int | None = None

    @property
    def window(self) -> int:
        return self._window

    def is_empty(self, now: float) -> bool:
        """No write for more than a window (Knative's IsEmpty): the decider has no data."""
        return self._last is None or math.floor(now) - self._last > self._window

    def record(self, now: float, value: float) -> None:
        t = math.floor(now)
        n = self._window
        if self._last is None or t - self._last >= n:
            # First write, or a whole window without one: start afresh.
            self._buckets = [0.0] * n
            self._first = self._last = t
        elif t > self._last:
            # Zero the seconds skipped since the last write, and this one.
            for second in range(self._last + 1, t + 1):
                self._buckets[second % n] = 0.0
            self._last = t
        elif t <= self._last - n:
            return  # older than the window: dropped
        assert self._first is not None
        if t < self._first:
            self._first = t
        self._buckets[t % n] += value

    def _span(self) -> int:
        assert self._first is not None and self._last is not None
        return self._last - self._first + 1

    def average(self, now: float) -> float:
        if self._last is None:
            return 0.0
        t = math.floor(now)
        n = self._window
        gap = t - self._last
        if gap <= 0:
            total = math.fsum(self._buckets)
            return _round6(total / min(self._span(), n))
        if gap < n:
            # PERF: summing the live buckets each time (n <= 3600, every 2 s) instead of keeping a
            # running total as Knative does: no float drift that could keep a quiet revision > 0.
            total = math.fsum(self._buckets[s % n] for s in range(t - n + 1, self._last + 1))
            return _round6(total / min(self._span(), n - gap))
        return 0.0


class WeightedBuckets(TimedBuckets):
    """Knative's WeightedFloat64Buckets: exponentially decaying weights, newest heaviest.

    The smoothing coefficient is chosen so the weights over the window add up to 99.99%, and is at
    least 0.2. Seconds without a record since the last write count as zeros.
    """

    __slots__ = ("_smoothing",)

    def __init__(self, window: int) -> None:
        super().__init__(window)
        self._smoothing = max(1 - (1 - 0.9999) ** (1 / window), 0.2)

    @property
    def smoothing_coefficient(self) -> float:
        return self._smoothing

    def average(self, now: float) -> float:
        if self.is_empty(now):
            return 0.0
        assert self._last is not None
        t = math.floor(now)
        n = self._window
        multiplier = self._smoothing
        count = n
        if t > self._last:
            skipped = t - self._last
            multiplier *= (1 - self._smoothing) ** skipped
            count -= skipped
        result = 0.0
        for i in range(count):
            result += self._buckets[(self._last - i) % n] * multiplier
            multiplier *= 1 - self._smoothing
        return result


class _MaxWindow:
    """The maximum over the last ``size`` indexes (Knative's max.TimeWindow, descending minima)."""

    __slots__ = ("_size", "_entries")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: deque[tuple[int, int]] = deque()

    def record(self, index: int, value: int) -> None:
        entries = self._entries
        while entries and value >= entries[-1][1]:
            entries.pop()  # smaller and older: can never be the maximum again
        while entries and index - entries[0][0] >= self._size:
            entries.popleft()
        if entries and entries[-1][0] == index:
            value = max(value, entries.pop()[1])
        entries.append((index, value))

    def current(self) -> int:
        return self._entries[0][1]


# --- the decider --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """One scaling decision. ``reason`` is for logs; its wording is not an API."""

    desired_pods: int
    excess_burst_capacity: int
    stable_concurrency: float
    panic_concurrency: float
    panicking: bool
    activator_in_path: bool
    reason: str = ""


class Decider:
    """The KPA for one revision: Knative's autoscaler.Scale plus the KPA reconciler's bounds and
    scale-to-zero rules. See the module docstring.

    ``ready_pods`` > 1 at creation starts in panic mode at ``now``, as Knative's autoscaler does
    after a restart, so history lost with a restart does not scale a busy revision down.
    """

    def __init__(self, config: ScalingConfig, *, now: float = 0.0, ready_pods: int = 0) -> None:
        self._config = config
        buckets = (
            WeightedBuckets
            if config.metric_aggregation_algorithm == WEIGHTED_EXPONENTIAL
            else TimedBuckets
        )
        self._stable = buckets(int(config.stable_window))
        self._panic = buckets(config.panic_window)
        self._delay: _MaxWindow | None = None
        if config.scale_down_delay > 0:
            self._delay = _MaxWindow(math.ceil(config.scale_down_delay / config.tick_interval))
        # Autoscaler state.
        self._panic_time: float | None = now if ready_pods > 1 else None
        self._max_panic_pods = ready_pods
        self._status_desired: int | None = None  # Knative's DesiredScale, None for -1
        self._status_ebc = config.initial_excess_burst_capacity
        # KPA reconciler state.
        self._applied: int | None = None  # the last decision's desired_pods
        self._initialized = False  # ready pods reached max(min-scale, initial-scale) once
        self._activating_since: float | None = None
        self._active_since: float | None = None
        self._inactive_since: float | None = None
        self._proxy_since: float | None = None
        self._last_decision: Decision | None = None

    @property
    def config(self) -> ScalingConfig:
        return self._config

    @property
    def panicking(self) -> bool:
        return self._panic_time is not None

    @property
    def last_decision(self) -> Decision | None:
        return self._last_decision

    def record(self, now: float, value: float) -> None:
        """Add an observation (concurrency, or requests per second for metric "rps") at ``now``.

        Values recorded within the same second add up.
        """
        if not math.isfinite(value):
            raise ValueError(f"observation must be finite, got {value!r}")
        self._stable.record(now, value)
        self._panic.record(now, value)

    def poke(self, now: float, concurrency: float = 1.0) -> bool:
        """The activator's stat for a request it holds; True when the caller should ``scale`` now.

        As Knative's MultiScaler.Poke: the stat is recorded, and a revision at zero (by the last
        decision, or by the autoscaler's last result) with non-zero concurrency is scaled at once
        instead of at the next tick.
        """
        self.record(now, concurrency)
        current = self._applied if self._applied is not None else self._initial_pods()
        return concurrency != 0 and (current == 0 or self._status_desired == 0)

    def scale(self, now: float, ready_pods: int) -> Decision:
        """Decide how many pods the revision should have now."""
        if ready_pods < 0:
            raise ValueError("ready_pods cannot be negative")
        cfg = self._config
        if ready_pods >= max(cfg.min_scale, cfg.initial_scale):
            self._initialized = True
        if ready_pods == 0:
            self._active_since = None
        elif self._active_since is None:
            self._active_since = now

        if self._stable.is_empty(now):
            stable = panic = 0.0
            reason = "no data"
        else:
            stable = self._stable.average(now)
            panic = self._panic.average(now)
            reason = self._autoscale(now, ready_pods, stable, panic)

        desired, reason, waiting = self._reconcile(now, reason)

        if desired > 0:
            if self._applied == 0 or self._activating_since is None:
                self._activating_since = now
        else:
            self._activating_since = None
            self._active_since = None
        if ready_pods > 0:
            self._activating_since = None  # active now; the activation timeout no longer applies
        in_path = desired == 0 or ready_pods == 0 or self._status_ebc < 0 or waiting
        if not in_path:
            self._proxy_since = None
        elif self._proxy_since is None:
            self._proxy_since = now
        self._applied = desired
        decision = Decision(
            desired_pods=desired,
            excess_burst_capacity=self._status_ebc,
            stable_concurrency=stable,
            panic_concurrency=panic,
            panicking=self._panic_time is not None,
            activator_in_path=in_path,
            reason=reason,
        )
        self._last_decision = decision
        return decision

    def _autoscale(self, now: float, ready_pods: int, stable: float, panic: float) -> str:
        """Knative's autoscaler.Scale; updates the status (desired, excess burst capacity)."""
        cfg = self._config
        ready = max(1, ready_pods)
        max_up = math.ceil(cfg.max_scale_up_rate * ready)
        max_down = math.floor(ready / cfg.max_scale_down_rate)
        target = cfg.target_per_pod
        dspc = math.ceil(stable / target)
        dppc = math.ceil(panic / target)
        stable_pods = min(max(dspc, max_down), max_up)
        panic_pods = min(max(dppc, max_down), max_up)
        if cfg.activation_scale > 1:
            if dspc > 0:
                stable_pods = max(stable_pods, cfg.activation_scale)
            if dppc > 0:
                panic_pods = max(panic_pods, cfg.activation_scale)

        over_threshold = dppc / ready >= cfg.panic_threshold
        if over_threshold:
            self._panic_time = now  # start, or extend
        elif self._panic_time is not None and self._panic_time + cfg.stable_window < now:
            self._panic_time = None
            self._max_panic_pods = 0

        desired = stable_pods
        reason = "stable"
        if self._panic_time is not None:
            reason = "panic"
            desired = max(desired, panic_pods)
            self._max_panic_pods = max(self._max_panic_pods, desired)
            desired = self._max_panic_pods

        if self._delay is not None:
            self._delay.record(math.floor(now / cfg.tick_interval), desired)
            delayed = self._delay.current()
            if delayed != desired:
                desired = delayed
                reason = "scale-down delay"

        tbc = cfg.target_burst_capacity
        if tbc == 0:
            ebc = 0
        elif tbc > 0:
            ebc = math.floor(ready_pods * cfg.total_per_pod - tbc - panic)
        else:
            ebc = -1
        self._status_desired = desired
        self._status_ebc = ebc
        return reason

    def _initial_pods(self) -> int:
        # Before the autoscaler has an opinion Knative's scaler bounds "-1" with min raised to the
        # initial scale: that is the initial scale (or min-scale), even above max-scale.
        return max(self._config.min_scale, self._config.initial_scale)

    def _reconcile(self, now: float, reason: str) -> tuple[int, str, bool]:
        """The KPA reconciler's scale: bounds, then scale to zero. -> (desired, reason, waiting)."""
        cfg = self._config
        current = self._applied if self._applied is not None else self._initial_pods()
        if self._status_desired is None:
            return current, reason, False  # the autoscaler has no opinion yet: hold

        min_scale = cfg.min_scale
        if not self._initialized:
            min_scale = max(min_scale, cfg.initial_scale)
        desired = _apply_bounds(min_scale, cfg.max_scale, self._status_desired)
        if desired < self._status_desired:
            reason = "max-scale"
        elif desired > self._status_desired:
            reason = "min-scale" if min_scale == cfg.min_scale else "initial-scale"
        if desired != 0:
            self._inactive_since = None  # wanted again: active (or activating) once more
            return desired, reason, False
        if current == 0:
            return 0, reason, False

        # handleScaleToZero: the autoscaler wants 0 and some pods run.
        if not cfg.enable_scale_to_zero:
            return 1, "scale to zero disabled", False
        if self._inactive_since is None:
            if self._active_since is None:
                # Activating: not ready (yet). Hold until the activation times out.
                since = self._activating_since if self._activating_since is not None else now
                if now - since > cfg.activation_timeout:
                    return 0, "activation timed out", False
                return current, "activating", False
            if now - self._active_since < cfg.stable_window:
                return 1, "active for less than the stable window", False
            self._inactive_since = now  # inactive: the activator goes into the path
        inactive_for = now - self._inactive_since
        retention = cfg.scale_to_zero_pod_retention_period
        grace = cfg.scale_to_zero_grace_period
        if inactive_for >= max(grace, retention):
            return 0, "scaled to zero", False
        if retention > 0 and inactive_for < retention:
            return 1, "scale-to-zero pod retention", True
        if self._proxy_since is not None and now - self._proxy_since >= grace:
            return 0, "scaled to zero (activator already in path)", False
        return 1, "scale-to-zero grace period", True


def _apply_bounds(min_scale: int, max_scale: int, x: int) -> int:
    # Knative's applyBounds: min is checked first, so it wins over max.
    if x < min_scale:
        return min_scale
    if max_scale != 0 and x > max_scale:
        return max_scale
    return x
