"""Hot reload of ``python -m activator run``, as a process: an invalid edit keeps what runs and
prints every problem; a Service removed from its file is deleted (its routes 404 at once, its
pod processes drain and go, one line says so) while the other keeps answering 200; a file
deleted deletes its services. Unknown Knative annotations are warnings: the runtime starts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import test_e2e_runtime as e2e
from support import wait_for
from test_e2e_runtime import APP, MARKER, RuntimeProcess, describe, exists, get, with_env

# The runtime as a process, and the marker that finds what it started (fixtures).
marker = e2e.marker
run_process = e2e.run_process

HEAD = "apiVersion: serving.knative.dev/v1\nkind: Service\n"


def service(name: str, annotations: str = "", spec: str = "") -> str:
    meta = f"    metadata:\n      annotations:\n{annotations}" if annotations else ""
    return (HEAD + f"metadata:\n  name: {name}\nspec:\n  template:\n{meta}    spec:\n{spec}"
            f"      containers:\n        - command: {APP!r}\n          env:\n"
            f"            - name: TARGET\n              value: {name}\n")


def write(path: Path, text: str) -> None:
    """A new text, as an editor saves it (the file's stamp moves even within one tick)."""
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def apps_of(rp: RuntimeProcess, service_name: str) -> set:
    """Live app processes of ``service_name`` started by this runtime (K_SERVICE in their env)."""
    mine = with_env(f"{MARKER}={rp.marker}")
    return {p for p in with_env(f"K_SERVICE={service_name}") & mine
            if exists(p, zombies_count=False)}


def line_after(lines: list[str], start: int, needle: str) -> str | None:
    return next((line for line in lines[start:] if needle in line), None)


@pytest.mark.timeout(120)
def test_reload_removal_invalid_edit_and_deleted_file(
        run_process: Callable[..., RuntimeProcess], tmp_path: Path) -> None:
    main = tmp_path / "services.yaml"
    write(main, service("alpha", '        autoscaling.knative.dev/minscale: "1"\n')
          + "---\n" + service("beta"))
    extra = tmp_path / "extra.yaml"
    write(extra, service("gamma"))
    rp = run_process([str(main), str(extra)], "--reload-interval", "0.1")
    port = rp.front_door()
    host = {name: f"{name}.default.example.com" for name in ("alpha", "beta", "gamma")}

    # A warning, not a refusal: the runtime started with it.
    warning = wait_for(lambda: line_after(rp.err, 0, "unknown annotation"), timeout=5)
    assert warning == (
        f"activator: warning: {main}:9: spec.template.metadata.annotations"
        "[autoscaling.knative.dev/minscale]: unknown annotation: Knative ignores it (did you "
        'mean "autoscaling.knative.dev/minScale"?)'), warning

    for name in ("alpha", "beta"):
        r = get(port, host[name])
        assert (r.status, r.body) == (200, f"Hello {name}!\n".encode()), (r, rp.output())
    beta_apps = wait_for(lambda: apps_of(rp, "beta"), timeout=10)
    family = rp.family()

    # An invalid edit: every problem printed, the running version kept.
    err_at = len(rp.err)
    write(main, service("alpha", spec="      containerConcurrency: -1\n") + "---\n"
          + service("beta", spec="      timeoutSecs: 10\n"))
    summary = wait_for(lambda: line_after(rp.err, err_at, "not reloaded"), timeout=10)
    assert summary == (f"activator: {main} not reloaded (2 problems): its services run as they "
                       "were until it loads"), rp.output()
    problems = [line for line in rp.err[err_at:] if line.startswith(f"activator: {main}:")]
    assert problems == [
        f"activator: {main}:8: spec.template.spec.containerConcurrency: expected 0 <= -1 <= "
        "1000",
        f"activator: {main}:22: spec.template.spec.timeoutSecs: must not set the field(s) (did "
        'you mean "timeoutSeconds"?)',
    ], rp.output()
    for name in ("alpha", "beta"):
        assert get(port, host[name]).status == 200, rp.output()

    # beta removed from its file: one line, its routes 404 at once, its pods drain and go.
    out_at = len(rp.out)
    write(main, service("alpha"))
    removed = wait_for(lambda: line_after(rp.out, out_at, "removed from"), timeout=10)
    t0 = time.monotonic()
    assert removed == (f"activator: service default/beta removed from {main}: its 1 pod is "
                       "draining"), rp.output()
    r = get(port, host["beta"])
    assert r.status == 404 and b"no service is routed for host" in r.body, r
    r = get(port, host["alpha"])
    assert (r.status, r.body) == (200, b"Hello alpha!\n"), (r, rp.output())
    wait_for(lambda: not any(exists(p, zombies_count=False) for p in beta_apps), timeout=20,
             interval=0.02)
    # Its sidecar went too: the runtime's family lost exactly beta's app and sidecar.
    gone = wait_for(lambda: (lambda now: now if len(family - now) == 2 else None)(rp.family()),
                    timeout=20, interval=0.02)
    lost = family - gone
    assert beta_apps <= lost, describe(lost)
    print(f"\n[reload] beta's pod ({describe(lost)}) gone "
          f"{(time.monotonic() - t0) * 1000:.0f} ms after the line")
    assert get(port, host["alpha"]).status == 200

    # beta added back, its template unchanged: a new revision, served again.
    out_at = len(rp.out)
    write(main, service("alpha") + "---\n" + service("beta"))
    back = wait_for(lambda: line_after(rp.out, out_at, "default/beta:"), timeout=10)
    assert back == "activator: default/beta: new service beta-00002", rp.output()
    r = get(port, host["beta"])
    assert (r.status, r.body) == (200, b"Hello beta!\n"), (r, rp.output())

    # A Service another file defines, added to extra: refused as in one file, naming both
    # places; what runs stays (gamma and alpha still answer).
    err_at = len(rp.err)
    write(extra, service("gamma") + "---\n" + service("alpha"))
    twice = wait_for(lambda: line_after(rp.err, err_at, "is defined twice"), timeout=10)
    assert twice.startswith(f"activator: {extra}:") and (
        f"metadata.name: Service default/alpha is defined twice (first at {main}:") in twice, twice
    assert wait_for(lambda: line_after(rp.err, err_at, "not reloaded"), timeout=10) == (
        f"activator: {extra} not reloaded (1 problem): its services run as they were until it "
        "loads"), rp.output()
    for name in ("alpha", "gamma"):
        r = get(port, host[name])
        assert (r.status, r.body) == (200, f"Hello {name}!\n".encode()), (r, rp.output())
    write(extra, service("gamma"))  # fixed again

    # A deleted file deletes its services.
    out_at = len(rp.out)
    extra.unlink()
    removed = wait_for(lambda: line_after(rp.out, out_at, "removed from"), timeout=10)
    assert removed == (f"activator: service default/gamma removed from {extra} (the file is "
                       "gone): its 1 pod is draining"), rp.output()  # initial-scale 1
    assert get(port, host["gamma"]).status == 404
    assert get(port, host["alpha"]).status == 200
    assert rp.proc.poll() is None, rp.output()
