"""What the sidecar image's build relies on, checked statically. docker/build-image.sh builds
and runs the image itself (buildah and podman, no Docker engine), too slowly for every test run."""

from __future__ import annotations

import os
import re
import shlex

from support import REPO


def _instructions() -> list[tuple[str, str]]:
    text = open(os.path.join(REPO, "Dockerfile")).read().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_every_copied_file_exists():
    copies = [rest for word, rest in _instructions() if word == "COPY"]
    assert copies
    for rest in copies:
        if rest.startswith("--from="):
            continue
        *sources, _dest = shlex.split(rest)
        for src in sources:
            assert os.path.exists(os.path.join(REPO, src)), f"Dockerfile copies missing {src}"


def test_multi_stage_non_root_entrypoint():
    ins = _instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "build stage and runtime stage"
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and not users[-1].startswith(("root", "0")), "runtime must not run as root"
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert entry == ['["python", "-m", "proxy"]']


def test_build_stage_runs_the_ci_script():
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    assert re.search(r"docker/build-wheels\.sh", runs)
    script = os.path.join(REPO, "docker", "build-wheels.sh")
    assert os.access(script, os.X_OK)
    # CI builds the image itself, whose build stage runs it (docker/build-image.sh)
    assert "docker/build-image.sh" in open(os.path.join(REPO, ".ci", "run")).read()


def test_base_is_pinned_and_no_wheel_reaches_the_runtime_layers():
    ins = _instructions()
    froms = [rest.split()[0] for word, rest in ins if word == "FROM"]
    # python:X.Y.Z-slim-<debian>: one Python release, one Debian release, in both stages
    assert all(re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", f) for f in froms), froms
    assert len(set(froms)) == 1
    runtime = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], copies  # the installed env only
    assert not any("wheel" in rest for word, rest in runtime if word in ("COPY", "RUN"))


def test_dockerignore_keeps_build_output_out_of_the_context():
    lines = open(os.path.join(REPO, ".dockerignore")).read().split()
    for pattern in (".git", "build", "*.egg-info", "**/*.so", "**/*.c", "**/__pycache__"):
        assert pattern in lines, pattern
    assert "!docker/build-wheels.sh" in lines  # what the build stage runs stays in


def test_build_image_stand_in_is_the_base():
    """docker/build-image.sh builds on a stand-in for the base (Debian's own Python, made with
    mmdebstrap): the Dockerfile's base must be the Python minor and Debian release it makes."""
    script = os.path.join(REPO, "docker", "build-image.sh")
    assert os.access(script, os.X_OK)
    text = open(script).read()
    suite = re.search(r"^SUITE=(\w+)$", text, re.M)
    python = re.search(r"^STANDIN_PYTHON=(\d+\.\d+)$", text, re.M)
    assert suite and python, "SUITE= and STANDIN_PYTHON= in docker/build-image.sh"
    pattern = rf"python:{re.escape(python[1])}\.\d+-slim-{suite[1]}"
    froms = [rest.split()[0] for word, rest in _instructions() if word == "FROM"]
    assert all(re.fullmatch(pattern, f) for f in froms), (froms, pattern)
