"""Logs as Knative's queue-proxy writes them: zap's SERVING_LOGGING_CONFIG over zapdriver's
defaults (JSON lines on stderr, Knative's keys), at SERVING_LOGGING_LEVEL."""

from __future__ import annotations

import json
import logging
import re
import signal

import pytest
from support import App, LoopThread, knative_env, start_queue_proxy

from proxy.logs import JSONFormatter, ZapConfig, zap_config


def test_formatter_writes_one_json_object_with_knative_keys():
    rec = logging.LogRecord("proxy", logging.WARNING, __file__, 7, 'say "%s"', ("hi",), None)
    line = JSONFormatter({"knative.dev/pod": "p"}).format(rec)
    entry = json.loads(line)
    assert entry["severity"] == "WARN"  # zap's level names, capital (zapdriver)
    assert list(entry)[:5] == ["severity", "timestamp", "logger", "caller", "message"]
    assert entry["logger"] == "queueproxy"
    assert entry["message"] == 'say "hi"'
    assert entry["knative.dev/pod"] == "p"
    assert entry["timestamp"].endswith("Z")
    assert "\n" not in line


def _output(level: str, config: str = "") -> tuple[list[str], list[str]]:
    """The process's stdout and stderr lines, from start to a drained exit."""
    lt = LoopThread(uv=False)
    app = App()
    lt.run(app.start())
    env = knative_env(app.port, SERVING_LOGGING_LEVEL=level, QUEUE_DRAIN_QUIET_PERIOD="0.1",
                      SERVING_LOGGING_CONFIG=config)
    proc = start_queue_proxy(env)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        lt.run(app.stop())
        lt.stop()
    return ([ln for ln in out.decode().splitlines() if ln.strip()],
            [ln for ln in err.decode().splitlines() if ln.strip()])


def _stderr_lines(level: str) -> list[str]:
    return _output(level)[1]


def test_process_logs_json_lines_at_info():
    lines = _stderr_lines("info")
    assert lines, "expected the start-up line"
    for ln in lines:
        entry = json.loads(ln)  # every line is one JSON object
        assert entry["knative.dev/key"] == "default/hello-00001"
    assert any("listening" in json.loads(ln)["message"] for ln in lines)


def test_process_is_quiet_at_error_level():
    assert _stderr_lines("error") == []


# knative/serving config/core/configmaps/logging.yaml: zap-logger-config
KNATIVE_CONFIG = json.dumps({
    "level": "info", "development": False, "outputPaths": ["stdout"],
    "errorOutputPaths": ["stderr"], "encoding": "json",
    "encoderConfig": {"timeKey": "timestamp", "levelKey": "severity", "nameKey": "logger",
                      "callerKey": "caller", "messageKey": "message",
                      "stacktraceKey": "stacktrace", "lineEnding": "", "levelEncoder": "",
                      "timeEncoder": "iso8601", "durationEncoder": "", "callerEncoder": ""},
})


def test_knatives_config_logs_to_stdout_with_lower_case_levels_and_iso8601():
    out, err = _output("info", KNATIVE_CONFIG)
    assert err == []
    entry = json.loads(next(ln for ln in out if "listening" in ln))
    assert entry["severity"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["timestamp"])
    assert entry["logger"] == "queueproxy"


def test_a_config_that_does_not_parse_falls_back_with_one_warning():
    _, err = _output("info", "{not json")
    first = json.loads(err[0])
    assert first["logger"] == "fallback-logger" and first["severity"] == "WARN"
    assert "Failed to parse logging config" in first["message"]


def test_level_override_and_console_encoding():
    cfg, error = zap_config(json.dumps({"level": "error", "encoding": "console",
                                        "encoderConfig": {"callerKey": ""}}))
    assert error is None and cfg.level == "error"
    rec = logging.LogRecord("proxy", logging.INFO, __file__, 7, "hello", (), None)
    cols = JSONFormatter({"k": "v"}, cfg).format(rec).split("\t")
    assert cols[0] == "INFO" and cols[2] == "queueproxy" and cols[3] == "hello"
    assert json.loads(cols[4]) == {"k": "v"}
    # SERVING_LOGGING_LEVEL wins over the config's level (Knative's levelOverride)
    out, err = _output("debug", json.dumps({"level": "error"}))
    assert err  # info lines are written: debug from the override, not error from the config


@pytest.mark.parametrize("raw", ['{"level": "loud"}', '{"encoding": "xml"}', "[1]"])
def test_bad_configs_are_errors(raw: str):
    cfg, error = zap_config(raw)
    assert error is not None and cfg == ZapConfig()
