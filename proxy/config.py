"""The queue-proxy's configuration, read from Knative's environment.

Knative's queue-proxy is configured only through its container environment (envconfig). We read
the same variables with the same rules: a required variable that is missing, or a value that does
not parse, is a ``ConfigError`` naming the variable, and ``python -m proxy`` turns that into one
line on stderr and exit status 1.

Ports that Knative hard-codes (admin 8022, stats 9090, Prometheus 9091) can be moved with
``QUEUE_ADMIN_PORT``, ``QUEUE_METRICS_PORT`` and ``METRICS_PROMETHEUS_PORT`` so that test suites run
side by side. Durations are seconds; the Python API takes floats so tests can use sub-second values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Config", "ConfigError", "from_environ"]


class ConfigError(ValueError):
    """A missing or malformed configuration variable."""


@dataclass
class Config:
    """Everything the queue-proxy needs to run. Field defaults are Knative's."""

    container_concurrency: int = 0
    serving_port: int = 8012
    serving_tls_port: int = 8112
    user_port: int = 8080
    user_host: str = "127.0.0.1"
    admin_port: int = 8022
    metrics_port: int = 9090
    prometheus_port: int = 9091
    bind_host: str = "0.0.0.0"

    revision_timeout: float = 300.0
    response_start_timeout: float = 0.0  # 0 = off
    idle_timeout: float = 0.0  # 0 = off

    readiness_probe: str = ""
    enable_http_full_duplex: bool = False
    enable_http2_auto_detection: bool = False
    enable_multi_container_probes: bool = False

    namespace: str = ""
    configuration: str = ""
    revision: str = ""
    pod: str = ""
    pod_ip: str = ""
    service: str = ""
    logging_config: str = ""
    logging_level: str = ""
    observability: dict[str, Any] = field(default_factory=dict)

    # Not in Knative's environment: knobs for tests and embedding.
    drain_quiet_period: float = 30.0
    readiness_retry_interval: float = 0.05  # Knative's aggressive probe: every 50 ms
    hijack_drain_period: float = 60.0
    header_read_timeout: float = 60.0
    max_head_size: int = 64 * 1024
    # Knative always keeps autoscaler stats; off only to measure what they cost.
    stats_enabled: bool = True

    @property
    def queue_depth(self) -> int:
        """Knative's breaker queue: ten waiters per slot."""
        return 10 * self.container_concurrency

    @property
    def request_metrics_enabled(self) -> bool:
        metrics = self.observability.get("requestMetrics") or {}
        return str(metrics.get("protocol", "")).lower() == "prometheus"


_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"", "0", "f", "false", "n", "no", "off"}


def _get(env: Mapping[str, str], name: str, required: bool) -> str | None:
    value = env.get(name)
    if value is None and required:
        raise ConfigError(f"required key {name} missing value")
    return value


def _int(env: Mapping[str, str], name: str, required: bool = False, default: int = 0) -> int:
    raw = _get(env, name, required)
    if raw is None or (raw == "" and not required):
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(
            f"envconfig.Process: assigning {name}: converting '{raw}' to type int"
        ) from None


def _port(env: Mapping[str, str], name: str, required: bool = False, default: int = 0) -> int:
    port = _int(env, name, required, default)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}: port {port} out of range")
    return port


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"envconfig.Process: assigning {name}: converting '{raw}' to type bool")


def from_environ(env: Mapping[str, str]) -> Config:
    """Reads a ``Config`` from a Knative queue-proxy environment."""
    cc = _int(env, "CONTAINER_CONCURRENCY", required=True)
    if cc < 0:
        raise ConfigError("CONTAINER_CONCURRENCY must be 0 or greater")
    cfg = Config(
        container_concurrency=cc,
        serving_port=_port(env, "QUEUE_SERVING_PORT", required=True),
        serving_tls_port=_port(env, "QUEUE_SERVING_TLS_PORT", required=True),
        user_port=_port(env, "USER_PORT", required=True),
        revision_timeout=float(_int(env, "REVISION_TIMEOUT_SECONDS", required=True)),
        response_start_timeout=float(_int(env, "REVISION_RESPONSE_START_TIMEOUT_SECONDS")),
        idle_timeout=float(_int(env, "REVISION_IDLE_TIMEOUT_SECONDS")),
        readiness_probe=env.get("SERVING_READINESS_PROBE", ""),
        enable_http_full_duplex=_bool(env, "ENABLE_HTTP_FULL_DUPLEX"),
        enable_http2_auto_detection=_bool(env, "ENABLE_HTTP2_AUTO_DETECTION"),
        enable_multi_container_probes=_bool(env, "ENABLE_MULTI_CONTAINER_PROBES"),
        logging_config=_get(env, "SERVING_LOGGING_CONFIG", True) or "",
        logging_level=_get(env, "SERVING_LOGGING_LEVEL", True) or "",
        namespace=_get(env, "SERVING_NAMESPACE", True) or "",
        service=env.get("SERVING_SERVICE", ""),
        configuration=_get(env, "SERVING_CONFIGURATION", True) or "",
        revision=_get(env, "SERVING_REVISION", True) or "",
        pod=_get(env, "SERVING_POD", True) or "",
        pod_ip=_get(env, "SERVING_POD_IP", True) or "",
        admin_port=_port(env, "QUEUE_ADMIN_PORT", default=8022),
        metrics_port=_port(env, "QUEUE_METRICS_PORT", default=9090),
        prometheus_port=_port(env, "METRICS_PROMETHEUS_PORT", default=9091),
    )
    if cfg.revision_timeout <= 0:
        raise ConfigError("REVISION_TIMEOUT_SECONDS must be greater than 0")
    if cfg.readiness_probe:
        from proxy.readiness import ProbeError, decode_probes

        try:
            decode_probes(cfg.readiness_probe, cfg.enable_multi_container_probes)
        except ProbeError as exc:
            raise ConfigError(str(exc)) from None
    raw_obs = env.get("OBSERVABILITY_CONFIG", "")
    if raw_obs:
        try:
            obs = json.loads(raw_obs)
        except ValueError as exc:
            raise ConfigError(f"OBSERVABILITY_CONFIG: invalid JSON: {exc}") from None
        if not isinstance(obs, dict):
            raise ConfigError("OBSERVABILITY_CONFIG: must be a JSON object")
        for key in ("requestMetrics", "tracing", "metrics", "runtime"):
            if obs.get(key) is not None and not isinstance(obs[key], dict):
                raise ConfigError(f"OBSERVABILITY_CONFIG: {key} must be a JSON object")
        cfg.observability = obs
    if env.get("QUEUE_STATS_ENABLED"):
        cfg.stats_enabled = _bool(env, "QUEUE_STATS_ENABLED")
    # Knobs for tests (not Knative's): fractional seconds accepted.
    for name, attr in (
        ("QUEUE_DRAIN_QUIET_PERIOD", "drain_quiet_period"),
        ("QUEUE_HEADER_READ_TIMEOUT", "header_read_timeout"),
        ("QUEUE_READINESS_RETRY_INTERVAL", "readiness_retry_interval"),
    ):
        raw = env.get(name)
        if raw:
            try:
                setattr(cfg, attr, float(raw))
            except ValueError:
                raise ConfigError(f"{name}: converting '{raw}' to a number of seconds") from None
    return cfg
