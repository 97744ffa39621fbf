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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from activator.autoscaler.buckets import TimedBuckets, WeightedBuckets, _MaxWindow
from activator.autoscaler.config import WEIGHTED_EXPONENTIAL, ScalingConfig

__all__ = ["Decision", "Decider"]


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
