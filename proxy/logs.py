"""Logging as Knative's queue-proxy does it: JSON lines on stderr (zap's production encoder
with Knative's keys), at ``SERVING_LOGGING_LEVEL``. Configured by ``python -m proxy`` only;
nothing is logged on the hot path except failures."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JSONFormatter", "configure"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR, "dpanic": logging.CRITICAL,
           "panic": logging.CRITICAL, "fatal": logging.CRITICAL}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: severity, timestamp, logger, caller, message + fields."""

    def __init__(self, fields: dict[str, str] | None = None) -> None:
        super().__init__()
        self.fields = fields or {}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "severity": record.levelname,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "logger": "queueproxy" if record.name == "proxy" else record.name,
            "caller": f"{record.module}:{record.lineno}",
            "message": record.getMessage(),
        }
        entry.update(self.fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"))


def configure(level: str, namespace: str = "", revision: str = "", pod: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    fields = {}
    if namespace or revision:
        fields["knative.dev/key"] = f"{namespace}/{revision}"
    if pod:
        fields["knative.dev/pod"] = pod
    handler.setFormatter(JSONFormatter(fields))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get((level or "info").strip().lower(), logging.INFO))
