"""Logging as Knative's queue-proxy does it (``knative.dev/pkg/logging.NewLogger``): zap's
configuration from ``SERVING_LOGGING_CONFIG`` unmarshalled over zapdriver's production defaults
(JSON lines on stderr; ``severity``, ``timestamp``, ``logger``, ``caller``, ``message``; capital
levels, RFC 3339 times with nanoseconds), at ``SERVING_LOGGING_LEVEL`` when that is a level.

What is honoured of the zap configuration: ``level``, ``outputPaths`` (``stdout``, ``stderr``
or files), ``encoding`` (``json`` or ``console``), and ``encoderConfig``'s keys (``timeKey``,
``levelKey``, ``nameKey``, ``callerKey``, ``messageKey``, ``stacktraceKey``; an empty key leaves
the field out), ``levelEncoder`` (``capital``, else lower case) and ``timeEncoder`` (``iso8601``,
``rfc3339``, ``rfc3339nano``, ``millis``, ``nanos``, else epoch seconds). Knative's own
``config-logging`` sends logs to stdout with lower-case levels and ISO 8601 times. A
configuration that does not parse: the defaults, under the logger name ``fallback-logger``, and
one warning, as Knative does. Configured by ``python -m proxy`` only; nothing is logged on the
hot path except failures.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["JSONFormatter", "ZapConfig", "configure", "go_duration", "zap_config"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR, "dpanic": logging.CRITICAL,
           "panic": logging.CRITICAL, "fatal": logging.CRITICAL}
_ZAP_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
              logging.ERROR: "error", logging.CRITICAL: "fatal"}


@dataclass
class ZapConfig:
    """The parts of a zap configuration we honour; the defaults are zapdriver's production
    configuration (Knative's ``stackdriverConfig``)."""

    level: str = "info"
    output_paths: tuple[str, ...] = ("stderr",)
    encoding: str = "json"
    time_key: str = "timestamp"
    level_key: str = "severity"
    name_key: str = "logger"
    caller_key: str = "caller"
    message_key: str = "message"
    stacktrace_key: str = "stacktrace"
    level_encoder: str = "capital"
    time_encoder: str = "rfc3339nano"


_ENCODER_KEYS = {"timeKey": "time_key", "levelKey": "level_key", "nameKey": "name_key",
                 "callerKey": "caller_key", "messageKey": "message_key",
                 "stacktraceKey": "stacktrace_key", "levelEncoder": "level_encoder",
                 "timeEncoder": "time_encoder"}


def zap_config(raw: str) -> tuple[ZapConfig, str | None]:
    """``raw`` (zap's JSON) over the defaults; and the parse error, if any (then: defaults)."""
    cfg = ZapConfig()
    if not raw:
        return cfg, None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if "level" in doc:
            if str(doc["level"]).lower() not in _LEVELS:
                raise ValueError(f"unrecognized level: {doc['level']!r}")
            cfg.level = str(doc["level"]).lower()
        if "outputPaths" in doc:
            cfg.output_paths = tuple(str(p) for p in doc["outputPaths"] or ())
        if "encoding" in doc:
            if doc["encoding"] not in ("json", "console"):
                raise ValueError(f"no encoder registered for name {doc['encoding']!r}")
            cfg.encoding = doc["encoding"]
        enc = doc.get("encoderConfig") or {}
        if not isinstance(enc, dict):
            raise ValueError("encoderConfig is not an object")
        for key, attr in _ENCODER_KEYS.items():
            if key in enc:
                setattr(cfg, attr, str(enc[key] or ""))
    except (ValueError, TypeError) as exc:
        return ZapConfig(), str(exc)
    return cfg, None


def _time(created: float, encoder: str) -> Any:
    enc = encoder.lower()
    if enc in ("iso8601",):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + \
            f".{int(created % 1 * 1000):03d}Z"
    if enc in ("rfc3339nano",):
        frac = f"{created % 1:.9f}"[2:].rstrip("0")
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + \
            (f".{frac}" if frac else "") + "Z"
    if enc == "rfc3339":
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    if enc == "millis":
        return created * 1000.0
    if enc == "nanos":
        return int(created * 1e9)
    return created  # zap's epoch seconds


class JSONFormatter(logging.Formatter):
    """One entry per line, in zap's field order: level, time, logger, caller, message, then the
    logger's fields (JSON; ``console``: tab-separated, the fields as JSON)."""

    def __init__(self, fields: dict[str, str] | None = None, cfg: ZapConfig | None = None,
                 name: str = "queueproxy") -> None:
        super().__init__()
        self.fields = fields or {}
        self.cfg = cfg or ZapConfig()
        self.name = name

    def format(self, record: logging.LogRecord) -> str:
        cfg = self.cfg
        level = _ZAP_NAMES.get(record.levelno, record.levelname.lower())
        if cfg.level_encoder.lower().startswith("capital"):
            level = level.upper()
        parts: list[tuple[str, Any]] = [
            (cfg.level_key, level),
            (cfg.time_key, _time(record.created, cfg.time_encoder)),
            (cfg.name_key, self.name if record.name == "proxy" else record.name),
            (cfg.caller_key, f"{record.module}:{record.lineno}"),
            (cfg.message_key, record.getMessage()),
        ]
        extra = dict(self.fields)
        if record.exc_info:
            extra["error"] = self.formatException(record.exc_info)
        if cfg.encoding == "console":
            cols = [str(v) for k, v in parts if k]
            if extra:
                cols.append(json.dumps(extra, separators=(",", ":")))
            return "\t".join(cols)
        entry = {k: v for k, v in parts if k}
        entry.update(extra)
        return json.dumps(entry, separators=(",", ":"))


def _stream(path: str) -> TextIO:
    if path == "stdout":
        return sys.stdout
    if path == "stderr":
        return sys.stderr
    return open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the process's log


def configure(level: str, namespace: str = "", revision: str = "", pod: str = "",
              config: str = "") -> None:
    """The root logger as Knative's queue-proxy logs: ``config`` is SERVING_LOGGING_CONFIG,
    ``level`` SERVING_LOGGING_LEVEL (it wins when it names a level)."""
    cfg, error = zap_config(config)
    fields = {}
    if namespace or revision:
        fields["knative.dev/key"] = f"{namespace}/{revision}"
    if pod:
        fields["knative.dev/pod"] = pod
    formatter = JSONFormatter(fields, cfg, "fallback-logger" if error else "queueproxy")
    handlers: list[logging.Handler] = []
    for path in cfg.output_paths or ("stderr",):
        handler = logging.StreamHandler(_stream(path))
        handler.setFormatter(formatter)
        handlers.append(handler)
    root = logging.getLogger()
    root.handlers[:] = handlers
    override = (level or "").strip().lower()
    root.setLevel(_LEVELS.get(override) or _LEVELS[cfg.level])
    if error:
        logging.getLogger("proxy").warning(
            "Failed to parse logging config - using default zap production config: %s", error)


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String`` prints it (``30s``, ``1m30s``, ``200ms``,
    ``1.5s``, ``0s``), for the log lines Knative's processes print with ``%v``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size or unit == "ns":
                whole, frac = divmod(ns, size)
                digits = len(str(size)) - 1
                tail = f"{frac:0{digits}d}".rstrip("0") if digits else ""
                return f"{sign}{whole}{'.' + tail if tail else ''}{unit}"
    whole_s, frac = divmod(ns, 1_000_000_000)
    tail = f"{frac:09d}".rstrip("0")
    h, rest = divmod(whole_s, 3600)
    m, s = divmod(rest, 60)
    out = f"{s}{'.' + tail if tail else ''}s"
    if h or m:
        out = f"{m}m" + out
    if h:
        out = f"{h}h" + out
    return sign + out
