"""Logs are JSON lines on stderr with Knative's keys, at SERVING_LOGGING_LEVEL."""

from __future__ import annotations

import json
import logging
import signal

from support import App, LoopThread, knative_env, start_queue_proxy

from proxy.logs import JSONFormatter


def test_formatter_writes_one_json_object_with_knative_keys():
    rec = logging.LogRecord("proxy", logging.WARNING, __file__, 7, 'say "%s"', ("hi",), None)
    line = JSONFormatter({"knative.dev/pod": "p"}).format(rec)
    entry = json.loads(line)
    assert entry["severity"] == "WARNING"
    assert entry["logger"] == "queueproxy"
    assert entry["message"] == 'say "hi"'
    assert entry["knative.dev/pod"] == "p"
    assert entry["timestamp"].endswith("Z")
    assert "\n" not in line


def _stderr_lines(level: str) -> list[str]:
    lt = LoopThread(uv=False)
    app = App()
    lt.run(app.start())
    env = knative_env(app.port, SERVING_LOGGING_LEVEL=level, QUEUE_DRAIN_QUIET_PERIOD="0.1")
    proc = start_queue_proxy(env)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        lt.run(app.stop())
        lt.stop()
    return [ln for ln in err.decode().splitlines() if ln.strip()]


def test_process_logs_json_lines_at_info():
    lines = _stderr_lines("info")
    assert lines, "expected the start-up line"
    for ln in lines:
        entry = json.loads(ln)  # every line is one JSON object
        assert entry["knative.dev/key"] == "default/hello-00001"
    assert any("listening" in json.loads(ln)["message"] for ln in lines)


def test_process_is_quiet_at_error_level():
    assert _stderr_lines("error") == []
