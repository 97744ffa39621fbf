"""The load driver: wrk, run for a bounded time, and its output parsed."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from common import H2LOAD, HOST, WRK, WRK_GRACE, WRK_TIMEOUT, BenchError, Children, taskset

# --------------------------------------------------------------------------------------------
# wrk

_TIME_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def time_to_us(token: str) -> float:
    """wrk's time notation ('612.00us', '1.20ms', '2.00s', '1.00m') in microseconds."""
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)", token.strip())
    if not m:
        raise ValueError(f"not a wrk time: {token!r}")
    return float(m.group(1)) * _TIME_UNITS_US[m.group(2)]


def parse_wrk(text: str) -> dict[str, Any]:
    """Reads wrk's --latency report (and the WRKJSON line of our done() hook, if present).

    The JSON line, when there, gives exact microseconds; the text report is the fallback.
    """
    out: dict[str, Any] = {}
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["duration_s"] = time_to_us(m.group(2)) / 1e6
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if m:
        out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s*{pct}%\s+(\S+)", text, re.M)
        if m:
            out[f"p{pct}_us"] = time_to_us(m.group(1))
    m = re.search(r"^\s*Latency\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        out["mean_us"] = time_to_us(m.group(1))
        out["max_us"] = time_to_us(m.group(3))
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors.update(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors["status"] = int(m.group(1))

    m = re.search(r"^WRKJSON (\{.*\})\s*$", text, re.M)
    if m:
        exact = json.loads(m.group(1))
        out["requests"] = int(exact["requests"])
        out["duration_s"] = exact["duration_us"] / 1e6
        if out["duration_s"] > 0:
            out["rps"] = out["requests"] / out["duration_s"]
        for key in ("mean_us", "max_us", "p50_us", "p75_us", "p90_us", "p99_us", "p999_us"):
            out[key] = float(exact[key])
        for key in errors:
            errors[key] = int(exact[key])
        out["exact"] = True
    if "requests" not in out or "rps" not in out:
        raise BenchError(f"could not parse wrk's output:\n{text}")
    out["errors"] = errors
    out["errors_total"] = sum(errors.values())
    return out


def run_wrk(
    children: Children,
    url: str,
    duration: int,
    connections: int,
    lua: Path,
    headers: tuple[str, ...] = (),
    cpus: set[int] | None = None,
) -> tuple[dict[str, Any], str]:
    assert url.startswith((f"http://{HOST}:", f"https://{HOST}:")), url  # loopback only
    argv = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(lua),
    ]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    proc = children.spawn("wrk", taskset(argv, cpus), capture=True)
    try:
        out, err = proc.communicate(timeout=duration + WRK_GRACE)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise BenchError(f"wrk did not finish within {duration + WRK_GRACE:.0f}s") from None
    children.stop(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        detail = text + err.decode(errors="replace")
        raise BenchError(f"wrk exited with {proc.returncode}:\n{detail}")
    return parse_wrk(text), text


# --------------------------------------------------------------------------------------------
# h2load (--protocol h2c)


def parse_h2load(text: str, latencies_us: list[float]) -> dict[str, Any]:
    """Reads h2load's report; ``latencies_us``: each request's time from its --log-file."""
    out: dict[str, Any] = {}
    m = re.search(r"^finished in ([0-9.]+)(\w+), ([0-9.]+) req/s", text, re.M)
    m2 = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                   r"(\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    if not m or not m2:
        raise BenchError(f"could not parse h2load's output:\n{text}")
    out["duration_s"] = time_to_us(m.group(1) + m.group(2)) / 1e6
    out["requests"] = int(m2.group(4))
    out["rps"] = out["requests"] / out["duration_s"] if out["duration_s"] else 0.0
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    errors = {"failed": int(m2.group(5)), "errored": int(m2.group(6)),
              "timeout": int(m2.group(7)), "status": 0}
    if codes:
        errors["status"] = int(codes.group(3)) + int(codes.group(4))
    lat = sorted(latencies_us)
    if lat:
        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))]

        out.update(p50_us=pct(50), p75_us=pct(75), p90_us=pct(90), p99_us=pct(99),
                   mean_us=sum(lat) / len(lat), max_us=lat[-1])
    out["errors"] = errors
    out["errors_total"] = sum(errors.values())
    return out


def run_h2load(
    children: Children,
    url: str,
    duration: int,
    clients: int,
    streams: int,
    log: Path,
    headers: tuple[str, ...] = (),
    cpus: set[int] | None = None,
) -> tuple[dict[str, Any], str]:
    """h2load over h2c (prior knowledge), one thread, ``clients`` connections of ``streams``
    concurrent streams each, for ``duration`` seconds."""
    assert url.startswith(f"http://{HOST}:"), url  # load goes to loopback only
    argv = [H2LOAD, "-t1", f"-c{clients}", f"-m{streams}", f"-D{duration}",
            f"--log-file={log}"]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    log.unlink(missing_ok=True)
    proc = children.spawn("h2load", taskset(argv, cpus), capture=True)
    try:
        out, err = proc.communicate(timeout=duration + WRK_GRACE)
    except subprocess.TimeoutExpired:
        children.stop(proc)
        raise BenchError(f"h2load did not finish within {duration + WRK_GRACE:.0f}s") from None
    children.stop(proc)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"h2load exited with {proc.returncode}:\n{text}{err.decode()}")
    latencies = []
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1].startswith("2"):
                latencies.append(float(parts[2]))
    return parse_h2load(text, latencies), text
