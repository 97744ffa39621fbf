""".ci/readme-walkthrough's reading of README.md: the steps it finds are the ones expected.

The walkthrough itself (a fresh clone, a fresh venv, every command; 2-3 minutes) is CI's to
run; this checks, in a second, that a README edit still gives the script commands it can run:
each ```sh block's servers, clients and Ctrl-C, the rewrites applied once each. A change to a
command in the README's sh blocks is a change to this list too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from support import REPO

SCRIPT = Path(REPO) / ".ci" / "readme-walkthrough"
INSTALL = "pip install -e . --config-settings editable_mode=compat"
QP_ENV = ("CONTAINER_CONCURRENCY=10 QUEUE_SERVING_PORT=8012 QUEUE_SERVING_TLS_PORT=8112 "
          "USER_PORT=8080 REVISION_TIMEOUT_SECONDS=300 SERVING_NAMESPACE=default "
          "SERVING_CONFIGURATION=hello SERVING_REVISION=hello-00001 SERVING_POD=hello-pod "
          "SERVING_POD_IP=127.0.0.1 SERVING_LOGGING_CONFIG= SERVING_LOGGING_LEVEL=info "
          "python -m proxy")
REV = "localhost:8014/revisions/default/hello-00001"
HELLO = "Hello World!"

EXPECTED = [
    # Run it: the hello world from zero
    ("serve", f"{INSTALL} && python -m activator run examples/hello.yaml", ""),
    ("client", "curl -H 'Host: hello.default.example.com' http://127.0.0.1:8080/     "
               "# -> Hello World!", HELLO),
    ("stop", "", ""),
    # the load example, short (rewrite 2)
    ("run", "pip install -e '.[bench]' --config-settings editable_mode=compat && "
            "python bench/runtime_load.py --yaml examples/slow.yaml --path '/?sleep=200' "
            "--duration 3 --users 4", ""),
    # the queue-proxy demo
    ("serve", f"{INSTALL} && python -m proxy.demo", ""),
    ("client", "curl http://127.0.0.1:8012/          # -> Hello World!", HELLO),
    ("stop", "", ""),
    # the queue-proxy as Knative runs it, and its app
    ("serve", QP_ENV, ""),
    ("serve", "PORT=8080 python -m proxy.sample_app", ""),
    ("client", "curl http://127.0.0.1:8012/          # -> Hello World!", HELLO),
    ("stop", "", ""),
    # the activator as a process, a pod, its control API
    ("serve", "python -m activator serve --port 8012 --h2c-port 8013 --admin-port 8014   "
              "# --autoscaler-url ws://... reports stats", ""),
    ("serve", "python -m proxy.demo --port 9012 --app-port 9080 --admin-port 9022", ""),
    ("client", f"curl -X PUT {REV} -d "
               "'{\"containerConcurrency\": 1, \"timeoutSeconds\": 300}'", ""),
    ("client", f"curl -X PUT {REV}/endpoints -d "
               "'{\"ready\": [], \"notReady\": [\"127.0.0.1:9012\"]}'", ""),
    ("client", f"curl {REV}      # capacity, waiting, inFlight, healthyPods", ""),
    ("client", "curl -H 'Host: hello-00001.default.svc.cluster.local' localhost:8012/     "
               "# -> Hello World!", HELLO),
    ("stop", "", ""),
    # HTTP/2 and gRPC (before Run it in the README; it needs the install)
    ("serve", "pip install grpcio-health-checking && python -m activator run "
              "examples/grpc.yaml examples/hello.yaml --allow-zero-initial-scale", ""),
    ("client", "python examples/grpc_call.py 127.0.0.1:8080 grpc-echo.default.example.com "
               "hello   # -> hello", "hello"),
    ("client", "curl --http2-prior-knowledge -H 'Host: hello.default.example.com' "
               "http://127.0.0.1:8080/   # -> Hello World!", HELLO),
    ("stop", "", ""),
    # Test: collected only (rewrite 1)
    ("run", "pip install -e '.[test]' --config-settings editable_mode=compat && "
            "python -m pytest --collect-only -q", ""),
]


def _list(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), "--list", *args], capture_output=True,
                          text=True, timeout=30)


def _steps(out: str) -> list[tuple[str, ...]]:
    return [tuple((line.split("\t") + ["", ""])[:3]) for line in out.splitlines()]


def test_the_steps_read_from_the_readme_are_the_expected_ones() -> None:
    run = _list()
    assert run.returncode == 0, run.stderr
    got = _steps(run.stdout)
    for i, (want, have) in enumerate(zip(EXPECTED, got, strict=False)):
        assert have == want, f"step {i + 1}"
    assert len(got) == len(EXPECTED), got[len(EXPECTED):] or EXPECTED[len(got):]


def test_a_readme_without_a_rewritten_command_fails_naming_it(tmp_path: Path) -> None:
    readme = (Path(REPO) / "README.md").read_text()
    assert readme.count("&& python -m pytest\n") == 1
    edited = tmp_path / "README.md"
    edited.write_text(readme.replace("&& python -m pytest\n", "&& pytest\n"))
    run = _list(str(edited))
    assert run.returncode == 1 and run.stdout == "", run
    assert "README.md changed: not one command each for the test command" in run.stderr


def test_every_install_runs_as_written() -> None:
    run = subprocess.run(["bash", str(SCRIPT), "--list"], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stderr
    assert "DATAPLANE_NO_EXTENSIONS" not in run.stdout
    assert sum("pip install -e" in line for line in run.stdout.splitlines()) == 4
