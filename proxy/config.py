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
import re
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
    prometheus_host: str = ""  # METRICS_PROMETHEUS_HOST; "": the other listeners' host
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
    max_head_size: int = (1 << 20) + 4096  # request heads: Go's (proxy.engine.parsers)
    # Knative always keeps autoscaler stats; off only to measure what they cost.
    stats_enabled: bool = True
    # System-internal TLS (proxy.tls): the pair Knative mounts, how often it is checked for a
    # change (Knative: a minute), and the QUEUE_PROXY_TLS_* settings as given.
    certs_dir: str = "/var/lib/knative/certs"
    certs_check_period: float = 60.0
    tls_settings: dict[str, str] = field(default_factory=dict)

    @property
    def queue_depth(self) -> int:
        """Knative's breaker queue: ten waiters per slot."""
        return 10 * self.container_concurrency

    @property
    def request_metrics_enabled(self) -> bool:
        metrics = self.observability.get("requestMetrics") or {}
        return str(metrics.get("protocol", "")).lower() == "prometheus"


# Go's strconv.ParseBool, which Knative's envconfig uses: these spellings and no others.
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_GO_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)")


def _get(env: Mapping[str, str], name: str, required: bool) -> str | None:
    value = env.get(name)
    if value is None and required:
        raise ConfigError(f"required key {name} missing value")
    return value


def go_int(raw: str) -> int:
    """Go's ``strconv.ParseInt(raw, 0, 64)``, as envconfig reads an int: a sign, then decimal,
    ``0x`` hex, ``0o`` or a leading ``0`` octal, ``0b`` binary, underscores between digits; no
    spaces. ValueError otherwise."""
    if not _GO_INT.fullmatch(raw) or "__" in raw or raw.endswith("_"):
        raise ValueError(raw)
    sign, digits = (raw[0], raw[1:]) if raw[0] in "+-" else ("", raw)
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567_":
        digits = "0o" + digits[1:]  # Go's leading-zero octal
    value = int(sign + digits, 0)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(raw)
    return value


def _int(env: Mapping[str, str], name: str, required: bool = False, default: int = 0) -> int:
    raw = _get(env, name, required)
    if raw is None:
        return default
    try:
        return go_int(raw)
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
    """Unset: false. Set: Go's strconv.ParseBool (an empty value is an error, as in Knative)."""
    raw = env.get(name)
    if raw is None:
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"envconfig.Process: assigning {name}: converting '{raw}' to type bool")


def from_environ(env: Mapping[str, str]) -> Config:
    """Reads a ``Config`` from a Knative queue-proxy environment."""
    cc = _int(env, "CONTAINER_CONCURRENCY", required=True)
    cfg = Config(
        container_concurrency=max(cc, 0),  # Knative: below 1, no breaker (unlimited)
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
        from proxy.tracing import settings_from  # imports no OpenTelemetry

        try:
            settings_from(obs.get("tracing"), env)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        cfg.observability = obs
    # Knative's Prometheus server (knative.dev/pkg metrics/prometheus): requestMetrics'
    # "endpoint" (host:port) if given, then METRICS_PROMETHEUS_HOST and _PORT.
    cfg.prometheus_host = env.get("METRICS_PROMETHEUS_HOST", "")
    endpoint = str((cfg.observability.get("requestMetrics") or {}).get("endpoint") or "")
    if endpoint and cfg.request_metrics_enabled:
        from proxy.metrics import prometheus_address

        try:
            cfg.prometheus_host, cfg.prometheus_port = prometheus_address(
                cfg.prometheus_port, endpoint, env)
        except ValueError as exc:
            raise ConfigError(f"OBSERVABILITY_CONFIG: {exc}") from None
    if env.get("QUEUE_STATS_ENABLED"):
        cfg.stats_enabled = _bool(env, "QUEUE_STATS_ENABLED")
    cfg.certs_dir = env.get("QUEUE_CERTS_DIR") or cfg.certs_dir
    cfg.tls_settings = {k: v for k, v in env.items() if k.startswith("QUEUE_PROXY_TLS_")}
    if cfg.tls_settings:
        from proxy.tls import TLSConfigError, server_context

        try:
            server_context(cfg.tls_settings)
        except (TLSConfigError, ValueError) as exc:  # ssl refuses a setting: ValueError too
            raise ConfigError(f"Failed to read TLS configuration from environment: {exc}") \
                from None
    # Knobs for tests (not Knative's): fractional seconds accepted.
    for name, attr in (
        ("QUEUE_CERTS_CHECK_PERIOD", "certs_check_period"),
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
