#!/usr/bin/env bash
# Builds the wheels the sidecar image installs: this package (with its Cython speedups compiled)
# and its dependencies. Used by the Dockerfile's build stage and by CI, so the image's build
# step is exercised even where no Docker engine runs.
#   usage: docker/build-wheels.sh SRC_DIR OUT_DIR
set -euo pipefail
src=${1:?source dir}
out=${2:?output dir}
mkdir -p "$out"
python -m pip wheel --quiet --wheel-dir "$out" "$src"
# The package wheel must carry the compiled speedups: a pure wheel here means a broken build.
wheel=$(ls "$out"/kn_dataplane-*.whl)
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
so = [n for n in names if n.startswith("_speedups/_") and n.endswith(".so")]
missing = [u for u in ("_head_c", "_accounting_c", "_h1_c") if not any(u in n for n in so)]
# The engine modules compiled from their own .py (their list: _speedups/_select.py).
engine = [n for n in names if n.startswith(("proxy/", "activator/")) and n.endswith(".so")]
if len(engine) < 12:
    missing.append(f"compiled engine modules (found {engine})")
if missing:
    sys.exit(f"{sys.argv[1]}: compiled speedups missing: {missing}")
print("wheel ok:", sys.argv[1], so)
PY
