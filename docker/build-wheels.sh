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
python - "$wheel" "$src/_speedups/_select.py" <<'PY'
import importlib.util, sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
so = [n for n in names if n.endswith(".so")]
generated = [n for n in names if n.endswith(".c")]
if generated:
    sys.exit(f"{sys.argv[1]}: generated C in the wheel: {generated}")
missing = [u for u in ("_head_c", "_accounting_c", "_h1_c", "_hpack_c")
           if not any(n.startswith(f"_speedups/{u}.") for n in so)]
# The engine modules compiled from their own .py: the list in _speedups/_select.py.
spec = importlib.util.spec_from_file_location("_select", sys.argv[2])
select = importlib.util.module_from_spec(spec)
spec.loader.exec_module(select)
missing += [m for m in select.ENGINE_MODULES
            if not any(n.startswith(m.replace(".", "/") + ".") for n in so)]
if missing:
    sys.exit(f"{sys.argv[1]}: compiled modules missing: {missing}")
# Without its stamps every compiled module would be taken for stale and the pure twins loaded:
# they must be there and agree with the sources in the wheel (the wheel's own check, unpacked).
if "_speedups/_stamps.py" not in names:
    sys.exit(f"{sys.argv[1]}: no _speedups/_stamps.py (the build stamps)")
import tempfile
with tempfile.TemporaryDirectory() as tree:
    zipfile.ZipFile(sys.argv[1]).extractall(tree)
    spec = importlib.util.spec_from_file_location("_wheel_select", f"{tree}/_speedups/_select.py")
    wheel_select = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wheel_select)
    stale = wheel_select.stale_builds(tree)
if stale:
    sys.exit(f"{sys.argv[1]}: stamps disagree with the sources: {stale}")
print(f"wheel ok: {sys.argv[1]}: {len(so)} compiled modules")
PY
