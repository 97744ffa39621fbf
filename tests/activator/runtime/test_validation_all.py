"""Every refusal at once, unknown Knative annotations, and one Service across files.

Sans-IO first (``load_services`` and ``Manifests``: every problem of a stream, the warnings with
their did-you-mean), then ``python -m activator run`` as a process: a file with many problems
and a Service defined in two files each give exit status 2, one stderr line per problem in the
one-error format (``activator: FILE:LINE: field: reason``), and nothing started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from support import REPO

from activator.autoscaler import ScalingConfig
from activator.runtime.manifest import ServiceErrors, errors_of, load_services
from activator.runtime.service import ServiceError

HEAD = "apiVersion: serving.knative.dev/v1\nkind: Service\n"

# Six problems in two documents (each line number below is where its field is).
MANY = HEAD + """metadata:
  name: hello
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/max-scale: "lots"
        autoscaling.knative.dev/window: "1s"
    spec:
      containerConcurrency: -1
      volumes: [{name: data}]
      containers:
        - command: [python, -m, proxy.sample_app]
          env:
            - name: PORT
              value: "1"
---
""" + HEAD + """metadata:
  name: Bad_Name
spec:
  template:
    spec:
      containers:
        - image: nginx
"""
MANY_EXPECTED = [
    (9, "spec.template.metadata.annotations[autoscaling.knative.dev/max-scale]", "lots"),
    (10, "spec.template.metadata.annotations[autoscaling.knative.dev/window]", "1s"),
    (12, "spec.template.spec.containerConcurrency", "expected 0 <= -1 <= 1000"),
    (13, "spec.template.spec.volumes", "not supported: the local runtime has no volumes"),
    (17, "spec.template.spec.containers[0].env[0].name",
     '"PORT" is a reserved environment variable'),
    (23, "metadata.name", 'not a DNS 1035 label: "Bad_Name"'),
    (28, "spec.template.spec.containers[0].command", "required: the local runtime runs"),
]
# The first two are the KPA's (each found after the one before is set aside): only with it.
WITHOUT_KPA = MANY_EXPECTED[2:]


def service(name: str, annotations: str = "") -> str:
    meta = f"    metadata:\n      annotations:\n{annotations}" if annotations else ""
    return (HEAD + f"metadata:\n  name: {name}\nspec:\n  template:\n{meta}    spec:\n"
            "      containers:\n        - command: [python, -m, proxy.sample_app]\n")


# --------------------------------------------------------------------------- sans-IO


def test_every_problem_of_a_stream_is_reported_in_the_one_error_format() -> None:
    with pytest.raises(ServiceErrors) as info:
        load_services(MANY, source="many.yaml",
                      check_annotations=ScalingConfig.from_annotations)
    errors = errors_of(info.value)
    assert len(errors) == len(MANY_EXPECTED), "\n".join(map(str, errors))
    for e, (line, field, reason) in zip(errors, MANY_EXPECTED, strict=True):
        assert (e.source, e.line, e.field) == ("many.yaml", line, field), str(e)
        assert reason in e.reason, str(e)
        assert str(e) == f"many.yaml:{line}: {field}: {e.reason}"
    # The exception reads as its refusals, one a line; its own fields are the first one's.
    exc = info.value
    assert str(exc).splitlines() == [str(e) for e in errors]
    assert (exc.field, exc.line) == (MANY_EXPECTED[0][1], MANY_EXPECTED[0][0])
    # Without the KPA's check, the annotations are not refused.
    with pytest.raises(ServiceErrors) as plain:
        load_services(MANY, source="many.yaml")
    assert [(e.line, e.field) for e in errors_of(plain.value)] == [
        (line, field) for line, field, _ in WITHOUT_KPA]
    # A single problem is still a plain ServiceError, as before.
    with pytest.raises(ServiceError) as one:
        load_services(service("ok").replace("command: [python, -m, proxy.sample_app]",
                                            "image: x"), source="one.yaml")
    assert not isinstance(one.value, ServiceErrors)
    assert errors_of(one.value) == [one.value]


def test_a_problem_does_not_hide_the_next_field_of_the_same_object() -> None:
    text = HEAD + """metadata:
  name: hello
  labels: {"a b": x}
  nmespace: oops
spec:
  template:
    spec:
      timeoutSeconds: "300"
      containers:
        - command: [python]
          imagePullPolicy: Always
          readinessProbe: {periodSeconds: 0, failureThreshold: 3}
  traffic:
    - percent: 120
      tag: Upper
"""
    with pytest.raises(ServiceErrors) as info:
        load_services(text, source="t.yaml")
    fields = [(e.line, e.field) for e in errors_of(info.value)]
    assert fields == [
        (5, "metadata.labels[a b]"),
        (6, "metadata.nmespace"),
        (10, "spec.template.spec.timeoutSeconds"),
        (14, "spec.template.spec.containers[0].readinessProbe.failureThreshold"),
        (16, "spec.traffic[0].percent"),
        (17, "spec.traffic[0].tag"),
    ], "\n".join(map(str, errors_of(info.value)))
    assert 'did you mean "namespace"?' in errors_of(info.value)[1].reason


@pytest.mark.parametrize(("key", "hint"), [
    ("autoscaling.knative.dev/minscale", 'did you mean "autoscaling.knative.dev/minScale"?'),
    ("autoscaling.knative.dev/max-scal", 'did you mean "autoscaling.knative.dev/max-scale"?'),
    ("autoscaling.knative.dev/Target", 'did you mean "autoscaling.knative.dev/target"?'),
    ("serving.knative.dev/rollout-duratoin",
     'did you mean "serving.knative.dev/rollout-duration"?'),
    ("features.knative.dev/http-full-duplx",
     'did you mean "features.knative.dev/http-full-duplex"?'),
    ("networking.knative.dev/ingress-clas",
     'did you mean "networking.knative.dev/ingress-class"?'),
    ("networking.knative.dev/visibility",
     "it is a label: put it under spec.template.metadata.labels"),
    ("autoscaling.knative.dev/zzz", None),
])
def test_an_unknown_knative_annotation_is_a_warning_with_a_did_you_mean(
        key: str, hint: str | None) -> None:
    warnings: list[ServiceError] = []
    text = service("hello", f'        {key}: "1"\n        example.com/anything: "1"\n'
                            '        autoscaling.knative.dev/min-scale: "1"\n'
                            '        autoscaling.knative.dev/minScale: "1"\n'
                            '        serving.knative.dev/progress-deadline: "1m"\n'
                            '        features.knative.dev/queueproxy-podinfo: enabled\n')
    (svc,) = load_services(text, source="w.yaml", warn=warnings.append)
    assert key in svc.template.annotations  # kept: Knative ignores it, so does the runtime
    assert len(warnings) == 1, [str(w) for w in warnings]
    w = warnings[0]
    assert (w.line, w.field) == (9, f"spec.template.metadata.annotations[{key}]"), str(w)
    assert w.reason.startswith("unknown annotation: Knative ignores it"), str(w)
    if hint is None:
        assert "did you mean" not in w.reason, str(w)
    else:
        assert hint in w.reason, str(w)


# --------------------------------------------------------------------------- as a process


def run(tmp_path: Path, *files: Path) -> tuple[subprocess.CompletedProcess[bytes], str]:
    marker = uuid.uuid4().hex
    log_dir = tmp_path / "logs"
    proc = subprocess.run(
        [sys.executable, "-m", "activator", "run", *map(str, files), "--port", "0",
         "--log-dir", str(log_dir)],
        cwd=REPO, env={**os.environ, "KN_VALIDATION_MARKER": marker}, stdin=subprocess.DEVNULL,
        capture_output=True, timeout=30)
    # Nothing started: no front door, no log directory, no process from this run.
    assert b"front door" not in proc.stdout, proc.stdout
    assert not log_dir.exists()
    want = f"KN_VALIDATION_MARKER={marker}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert want not in f.read().split(b"\0"), f"process {pid} left behind"
        except OSError:
            continue
    return proc, proc.stderr.decode()


def ours(err: str, path: Path) -> list[str]:
    """The stderr lines about ``path`` (other lines, such as a stale build's notice, aside)."""
    return [line for line in err.splitlines() if str(path) in line]


@pytest.mark.timeout(60)
def test_run_reports_every_problem_of_every_file_then_exits_2(tmp_path: Path) -> None:
    many = tmp_path / "many.yaml"
    many.write_text(MANY)
    fine = tmp_path / "fine.yaml"
    fine.write_text(service("fine") + "  traffic:\n    - percent: 90\n")
    proc, err = run(tmp_path, many, fine)
    print(f"\n[all errors] exit {proc.returncode}:\n{err}")
    assert proc.returncode == 2, err
    assert "Traceback" not in err, err
    lines = ours(err, many)
    assert len(lines) == len(MANY_EXPECTED), err
    for line, (n, field, reason) in zip(lines, MANY_EXPECTED, strict=True):
        assert line.startswith(f"activator: {many}:{n}: {field}: "), line
        assert reason in line, (reason, line)
    # The second file's own problem is reported too, in the same run.
    (sum_line,) = ours(err, fine)
    assert sum_line == (f"activator: {fine}:10: spec.traffic: Traffic targets sum to 90, "
                        "want 100"), sum_line


@pytest.mark.timeout(60)
def test_a_service_in_two_files_is_refused_naming_both(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text(service("other") + "---\n" + service(
        "hello", '        autoscaling.knative.dev/minscale: "1"\n'))
    second = tmp_path / "second.yaml"
    second.write_text("# the same service again\n" + service("hello"))
    proc, err = run(tmp_path, first, second)
    print(f"\n[two files] exit {proc.returncode}:\n{err}")
    assert proc.returncode == 2, err
    (line,) = ours(err, second)
    assert line == (f"activator: {second}:5: metadata.name: Service default/hello is defined "
                    f"twice (first at {first}:11)"), line
    # The unknown annotation in the first file was a warning on the way.
    (warning,) = [line for line in ours(err, first) if "warning" in line]
    assert warning == (
        f"activator: warning: {first}:19: spec.template.metadata.annotations"
        "[autoscaling.knative.dev/minscale]: unknown annotation: Knative ignores it (did you "
        'mean "autoscaling.knative.dev/minScale"?)'), warning
