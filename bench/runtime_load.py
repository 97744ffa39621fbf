"""Load on the local runtime with locust, from zero: cold start, requests/s, p50, p99, pods.

    python bench/runtime_load.py [--yaml examples/hello.yaml] [--users 20] [--duration 20]

Starts ``python -m activator run`` on a free port with the service starting at zero (initial
scale 0), times the first request (the cold start), then runs locust headless
(``bench/locustfile.py``) and prints one table. Load goes to 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--yaml", default=str(REPO / "examples" / "hello.yaml"))
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--duration", type=int, default=20, help="seconds of load")
    p.add_argument("--path", default="/", help="request path (e.g. /?sleep=200 for slow.yaml)")
    a = p.parse_args()
    docs = [d for d in yaml.safe_load_all(Path(a.yaml).read_text()) if d]
    svc = docs[0]
    ann = svc["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})
    ann["autoscaling.knative.dev/initial-scale"] = "0"
    ns = svc["metadata"].get("namespace", "default")
    host = f"{svc['metadata']['name']}.{ns}.example.com"
    tmp = Path(tempfile.mkdtemp(prefix="runtime-load-"))
    spec = tmp / "service.yaml"
    spec.write_text(yaml.safe_dump(svc))
    # Relative commands and working dirs resolve against the YAML's directory: keep the original's.
    for c in svc["spec"]["template"]["spec"]["containers"]:
        c.setdefault("workingDir", str(Path(a.yaml).resolve().parent))
    spec.write_text(yaml.safe_dump(svc))
    rt = subprocess.Popen(
        [sys.executable, "-m", "activator", "run", str(spec), "--port", "0",
         "--allow-zero-initial-scale"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        port = 0
        deadline = time.monotonic() + 20
        assert rt.stdout is not None
        while not port and time.monotonic() < deadline:
            line = rt.stdout.readline()
            m = re.search(r"front door on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
        if not port:
            print("runtime did not start", file=sys.stderr)
            return 1
        url = f"http://127.0.0.1:{port}{a.path}"
        t0 = time.monotonic()
        req = urllib.request.Request(url, headers={"Host": host})
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        cold = time.monotonic() - t0
        env = dict(os.environ, SERVICE_HOST=host, SERVICE_PATH=a.path)
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "locustfile.py"),
             "--headless", "-u", str(a.users), "-r", str(a.users), "-t", f"{a.duration}s",
             "--host", f"http://127.0.0.1:{port}", "--csv", str(tmp / "locust"),
             "--only-summary", "--loglevel", "WARNING"],
            env=env, cwd=REPO, check=False, timeout=a.duration + 60,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(tmp / "locust_stats.csv") as f:
            rows = {r["Name"]: r for r in csv.DictReader(f)}
        agg = rows["Aggregated"]
        print(f"service {host} ({a.yaml}), {a.users} users, {a.duration} s")
        print(f"cold start (first request, from zero): {cold * 1000:.0f} ms -> {body[:40]!r}")
        print(f"requests {agg['Request Count']}, failures {agg['Failure Count']}, "
              f"{float(agg['Requests/s']):.0f} req/s, p50 {agg['50%']} ms, p99 {agg['99%']} ms")
        return 0
    finally:
        rt.send_signal(signal.SIGINT)
        try:
            out, _ = rt.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            rt.kill()
            out, _ = rt.communicate()
        decisions = [ln for ln in (out or "").splitlines() if "desired" in ln]
        if decisions:
            print("scale decisions:")
            for ln in decisions:
                print("  " + ln)


if __name__ == "__main__":
    sys.exit(main())
