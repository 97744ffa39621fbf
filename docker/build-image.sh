#!/usr/bin/env bash
# Builds the sidecar image from the repository's Dockerfile and runs it, with no Docker engine:
# buildah builds (chroot isolation, vfs storage) and podman runs (runc), as root.
#   usage: docker/build-image.sh     (as root; KN_SKIP_IMAGE=1 skips it, but never with CI=true)
#
# The script fails unless the image, run as Knative runs the queue-proxy (its environment, in
# front of a user app on 127.0.0.1):
#   - proxies a request to the app (the app's body, with a token of this run, comes back),
#   - runs as a non-root user (the container's process has uid and gid 65532),
#   - has the compiled engine loaded (the process maps the Cython modules' .so files; and it runs
#     with DATAPLANE_EXPECT_EXTENSIONS=1, so a stale build fails its start-up),
#   - drains on SIGTERM: a request in flight when the signal comes completes, then the process
#     exits 0.
# It prints the image's size, the build's time and the time of each part, then "image ok".
#
# The Dockerfile's base (python:3.11.11-slim-bookworm) cannot be pulled here (no registry but
# Debian's and PyPI is reached), so a stand-in is made with mmdebstrap: Debian bookworm's own
# Python 3.11 with what the official image has that the Dockerfile relies on (pip, venv, the
# headers the Cython build compiles against, `python` on PATH), and imported under the base's
# name. The build itself is the Dockerfile's, unchanged, against that base; only the base's
# interpreter differs (Debian's 3.11.2 in /usr/bin, not 3.11.11 in /usr/local/bin).
#
# State kept between runs (a second run skips what is there):
#   $KN_IMAGE_CACHE (default ${XDG_CACHE_HOME:-/var/cache}/kn-dataplane): the stand-in's tarball,
#     named by a hash of how it is made (suite, packages, excludes).
#   $KN_IMAGE_STATE (default /var/lib/containers/kn-dataplane): the vfs storage of buildah and
#     podman (vfs copies the whole tree for each layer: layers of earlier builds are removed).
set -euo pipefail
cd "$(dirname "$0")/.."

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }  # seconds since $1
fail() { echo "image: FAIL: $*" >&2; exit 1; }

if [ "${KN_SKIP_IMAGE:-}" = 1 ] && [ "${CI:-}" != true ]; then
    echo "image: skipped (KN_SKIP_IMAGE=1)"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "needs root (buildah and podman run rootful here)"

IMAGE=localhost/kn-dataplane/queue-proxy:ci
# The stand-in is Debian's own Python: it stands in for python:<STANDIN_PYTHON>.*-slim-<SUITE>
# only (tests/test_dockerfile.py holds the Dockerfile to that).
SUITE=bookworm
STANDIN_PYTHON=3.11
FROM_IMAGE=$(awk 'toupper($1) == "FROM" {print $2; exit}' Dockerfile)
case "$FROM_IMAGE" in
    python:"$STANDIN_PYTHON".*-slim-"$SUITE") ;;
    *) fail "the Dockerfile's base $FROM_IMAGE is not python:$STANDIN_PYTHON.*-slim-$SUITE," \
        "what the stand-in makes: change SUITE and STANDIN_PYTHON here";;
esac
BASE=docker.io/library/$FROM_IMAGE  # the name a short FROM resolves to in local storage
STATE=${KN_IMAGE_STATE:-/var/lib/containers/kn-dataplane}
CACHE=${KN_IMAGE_CACHE:-${XDG_CACHE_HOME:-/var/cache}/kn-dataplane}
RUN_ID=kn-image-ci-$$
WORK=$(mktemp -d /tmp/"$RUN_ID".XXXXXX)
# What this run starts, ended on any exit: the user app, a client, the container.
container=""
app_pid=""
client_pid=""
cleanup() {
    if [ -n "$client_pid" ]; then kill "$client_pid" 2>/dev/null || true; fi
    if [ -n "$app_pid" ]; then kill "$app_pid" 2>/dev/null || true; fi
    if [ -n "$container" ]; then
        timeout 60 podman rm -f -t 0 "$container" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

T_START=$(now)

# --- 1. the tools ---------------------------------------------------------------------------
# Debian's packages; runc is named since podman would take crun by default. No fuse-overlayfs:
# everything runs as root on the vfs driver (uidmap comes with podman, unused).
T0=$(now)
if ! command -v buildah >/dev/null || ! command -v podman >/dev/null \
    || ! command -v runc >/dev/null || ! command -v mmdebstrap >/dev/null; then
    echo "== image: installing buildah podman runc mmdebstrap"
    export DEBIAN_FRONTEND=noninteractive
    { timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq --no-install-recommends \
        buildah podman runc mmdebstrap; } >"$WORK/apt.log" 2>&1 \
        || { tail -20 "$WORK/apt.log" >&2; fail "apt-get install of the image tools failed"; }
fi
T_APT=$(since "$T0")

# One storage and one configuration for buildah and podman, of this script's own: nothing in
# the machine's default storage is touched, and a run elsewhere in the tree waits for this one.
mkdir -p "$STATE" "$CACHE"
exec 9>"$STATE/lock"
flock -w 1800 9 || fail "another build-image.sh held $STATE/lock for 30 minutes"
cat >"$STATE/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$STATE/storage"
runroot = "/run/kn-dataplane-image"
EOF
# Events to a file (no journald in a CI container); runc with cgroupfs (no systemd either).
cat >"$STATE/containers.conf" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
EOF
export CONTAINERS_STORAGE_CONF=$STATE/storage.conf CONTAINERS_CONF=$STATE/containers.conf
: >"$STATE/events.log"  # this run's only

# Holding the lock, whatever is in this storage is ours: containers of a run that was killed
# before its trap ran (buildah's working ones and podman's) go.
buildah rm --all >/dev/null 2>&1 || true
podman ps --all --quiet --filter name=kn-image-ci- | xargs -r podman rm -f -t 0 >/dev/null 2>&1 \
    || true

# --- 2. the stand-in base -------------------------------------------------------------------
# What the Dockerfile needs of python:3.11.11-slim-bookworm: `python` (python-is-python3),
# `python -m pip` (python3-pip) and `python -m venv` (python3-venv), Python.h for the Cython
# build (python3-dev), apt sources for its `apt-get install gcc libc6-dev`, CA certificates.
# Trimmed as the official image is: no docs, man pages or locales, no static libpython, and no
# EXTERNALLY-MANAGED marker (the official image's Python is not Debian's); /usr merged without
# the usrmerge package (which would bring perl).
PACKAGES=python3,python3-venv,python3-pip,python3-dev,python-is-python3,ca-certificates
MMDEBSTRAP_ARGS=(
    --variant=minbase --mode=root --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --aptopt='APT::Install-Recommends "false"' --include="$PACKAGES"
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt="path-exclude=/usr/lib/python$STANDIN_PYTHON/EXTERNALLY-MANAGED"
    --dpkgopt="path-exclude=/usr/lib/x86_64-linux-gnu/libpython$STANDIN_PYTHON.a"
    --dpkgopt="path-exclude=/usr/lib/python$STANDIN_PYTHON/config-*/*.a"
    "$SUITE"
)
MIRRORS=(
    "deb http://deb.debian.org/debian $SUITE main"
    "deb http://deb.debian.org/debian $SUITE-updates main"
    "deb http://deb.debian.org/debian-security $SUITE-security main"
)
# The official image's configuration, as far as the runtime stage sees it.
IMPORT_CHANGES=(--change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]')
KEY=$(printf '%s\n' "${MMDEBSTRAP_ARGS[@]}" "${MIRRORS[@]}" "${IMPORT_CHANGES[@]}" \
    | sha256sum | cut -c1-16)
TARBALL=$CACHE/standin-$KEY.tar

T0=$(now)
base_how="cached"
have_key=$(podman image inspect --format '{{index .Config.Labels "kn-dataplane.standin"}}' \
    "$BASE" 2>/dev/null || true)
if [ "$have_key" != "$KEY" ]; then
    if [ ! -s "$TARBALL" ]; then
        echo "== image: making the stand-in base with mmdebstrap ($SUITE: $PACKAGES)"
        base_how="built"
        rm -f "$CACHE"/standin-*.tar  # older recipes
        timeout 900 mmdebstrap --quiet --format=tar "${MMDEBSTRAP_ARGS[@]}" "$TARBALL.part" \
            "${MIRRORS[@]}" >"$WORK/mmdebstrap.log" 2>&1 || {
            tail -30 "$WORK/mmdebstrap.log" >&2
            rm -f "$TARBALL.part"
            fail "mmdebstrap failed"
        }
        mv "$TARBALL.part" "$TARBALL"
    else
        base_how="imported from $TARBALL"
    fi
    timeout 300 podman import --quiet "${IMPORT_CHANGES[@]}" \
        --change "LABEL kn-dataplane.standin=$KEY" "$TARBALL" "$BASE" >/dev/null \
        || fail "podman import of the stand-in base failed"
fi
T_BASE=$(since "$T0")

# --- 3. the build ---------------------------------------------------------------------------
# The Dockerfile as it is; --pull=never: the base must be the stand-in, never a registry's.
# Without --layers every build starts from the base: with vfs each cached layer is a full copy
# of the tree (a quarter GB each), and in CI the sources change with each commit anyway.
# The build's RUN steps see the host's CA bundle (read-only, never committed): where the way to
# PyPI passes a TLS-inspecting proxy, only the host's bundle has its CA (Debian's pip, the
# stand-in's, reads the system bundle).
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
ca_mount=()
[ -s "$CA_BUNDLE" ] && ca_mount=(--volume "$CA_BUNDLE:$CA_BUNDLE:ro")
echo "== image: buildah build $IMAGE"
T0=$(now)
timeout 1500 buildah build --isolation chroot --pull=never --layers=false \
    "${ca_mount[@]}" --file Dockerfile --tag "$IMAGE" . >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; fail "buildah build failed"; }
T_BUILD=$(since "$T0")
grep '^wheel ok' "$WORK/build.log" || true  # docker/build-wheels.sh's word on the wheel
# The previous build's image, now untagged, and anything else dangling.
# Twice: an old stand-in base is dangling only once the old image built on it is gone.
buildah rmi --prune >/dev/null 2>&1 || true
buildah rmi --prune >/dev/null 2>&1 || true

size_mb() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f", $1 / 1e6}'; }
IMAGE_MB=$(size_mb "$IMAGE")
BASE_MB=$(size_mb "$BASE")

# --- 4. run it as Knative would -------------------------------------------------------------
T0=$(now)
# Free ports, all movable (Knative's fixed admin 8022 and metrics 9090/9091 have our
# QUEUE_ADMIN_PORT, QUEUE_METRICS_PORT, METRICS_PROMETHEUS_PORT): runs can go side by side.
read -r APP_PORT SERVING_PORT TLS_PORT ADMIN_PORT METRICS_PORT PROM_PORT < <(python3 - <<'PY'
import socket

socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("0.0.0.0", 0))  # the queue-proxy binds every address: free there
print(*(s.getsockname()[1] for s in socks))
PY
)
TOKEN=$RUN_ID-$RANDOM$RANDOM

# The user app, on the host's loopback: its body carries this run's token; /slow answers after
# two seconds and first leaves a marker, so the drain check knows the request is in flight.
python3 - "$APP_PORT" "$TOKEN" "$WORK/slow-started" <<'PY' &
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, token, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class App(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            open(marker, "w").close()
            time.sleep(2)
        body = f"hello from the user app {token}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", port), App).serve_forever()
PY
app_pid=$!

# Knative's queue-proxy environment; a 1 s drain quiet period instead of Knative's 30 s
# (QUEUE_DRAIN_QUIET_PERIOD, ours), so that the SIGTERM check takes seconds.
# Explicit limits: podman's defaults (2^20 open files and processes) are above what a CI
# container grants, and without CAP_SYS_RESOURCE (a container's root lacks it) runc cannot
# raise a hard limit above its parent's. Open files: 65536 (the sidecar holds two sockets a
# request), or this shell's hard limit if lower. Processes: 4096 for the uid, as the queue-proxy
# is one process (conmon, runc's parent, has pid_max here: 32768, whatever the shell has).
at_most() { if [ "$2" = unlimited ] || [ "$2" -gt "$1" ]; then echo "$1"; else echo "$2"; fi; }
nofile=$(at_most 65536 "$(ulimit -Hn)")
nproc=$(at_most 4096 "$(ulimit -Hu)")
# Knative's default probe of the user container: a TCP connect, aggressive until it succeeds.
PROBE="{\"tcpSocket\":{\"port\":$APP_PORT,\"host\":\"127.0.0.1\"},\"successThreshold\":1}"
container=$RUN_ID
timeout 120 podman run --detach --name "$container" --runtime runc --network host \
    --ulimit nofile="$nofile:$nofile" --ulimit nproc="$nproc:$nproc" --pull=never \
    --env SERVING_NAMESPACE=default --env SERVING_SERVICE=hello \
    --env SERVING_CONFIGURATION=hello --env SERVING_REVISION=hello-00001 \
    --env SERVING_POD=hello-00001-deployment-ci --env SERVING_POD_IP=127.0.0.1 \
    --env QUEUE_SERVING_PORT="$SERVING_PORT" --env QUEUE_SERVING_TLS_PORT="$TLS_PORT" \
    --env USER_PORT="$APP_PORT" --env REVISION_TIMEOUT_SECONDS=300 \
    --env CONTAINER_CONCURRENCY=0 \
    --env SERVING_READINESS_PROBE="$PROBE" \
    --env SERVING_LOGGING_CONFIG= --env SERVING_LOGGING_LEVEL=info \
    --env QUEUE_ADMIN_PORT="$ADMIN_PORT" --env QUEUE_METRICS_PORT="$METRICS_PORT" \
    --env METRICS_PROMETHEUS_PORT="$PROM_PORT" \
    --env QUEUE_DRAIN_QUIET_PERIOD=1 \
    --env DATAPLANE_EXPECT_EXTENSIONS=1 \
    "$IMAGE" >/dev/null || fail "podman run failed"

state() { podman inspect --format '{{.State.Status}}' "$container" 2>/dev/null || echo gone; }
show_logs() { echo "--- container logs:" >&2; podman logs "$container" 2>&1 | tail -30 >&2; }

# (a) A request through the sidecar reaches the app: retried until it answers (the proxy is
# starting, then probing the app), for 60 s at most, and failing at once if the process exits.
deadline=$(( $(date +%s) + 60 ))
body=""
until body=$(curl -sS --max-time 5 "http://127.0.0.1:$SERVING_PORT/" 2>/dev/null) \
    && [ "$body" = "hello from the user app $TOKEN" ]; do
    if [ "$(state)" != running ]; then
        show_logs; fail "the container stopped before serving (state: $(state))"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        show_logs; fail "no answer from the app through the sidecar in 60 s (last body: '$body')"
    fi
    sleep 0.1
done
echo "image: a request through the sidecar reached the app"

# (b) Not root: the container's process, seen from the host (no user namespace here).
pid=$(podman inspect --format '{{.State.Pid}}' "$container")
cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
case "$cmd" in
    *"-m proxy"*) ;;
    *) fail "the container's process is '$cmd', not python -m proxy";;
esac
ids=$(awk '/^Uid:|^Gid:/ {print $1, $2, $3, $4, $5}' "/proc/$pid/status")
if [ "$ids" != $'Uid: 65532 65532 65532 65532\nGid: 65532 65532 65532 65532' ]; then
    fail "the queue-proxy does not run as 65532:65532: $ids"
fi
echo "image: the queue-proxy runs as uid 65532, gid 65532 (not root)"

# (c) The compiled engine is what the serving process runs: the .so of the hot modules are
# mapped in it (an engine module not built would load its .py without a word).
missing=""
for module in _speedups/_head_c _speedups/_h1_c _speedups/_accounting_c \
    proxy/engine/server proxy/engine/upstream proxy/engine/messages proxy/breaker \
    proxy/headers proxy/queue_proxy; do
    grep -q "/site-packages/$module\.cpython-[^/]*\.so\$" "/proc/$pid/maps" \
        || missing="$missing $module"
done
[ -z "$missing" ] || fail "compiled modules not loaded in the queue-proxy:$missing"
loaded=$(grep -oE '/site-packages/(proxy|_speedups|activator)/[^ ]*\.so$' "/proc/$pid/maps" \
    | sort -u | wc -l)
echo "image: the compiled engine is loaded ($loaded of the package's compiled modules mapped)"

# (d) SIGTERM drains: a request in flight when the signal comes completes, then exit 0.
curl -sS --max-time 30 -o "$WORK/slow.body" -w '%{http_code}' \
    "http://127.0.0.1:$SERVING_PORT/slow" >"$WORK/slow.code" 2>"$WORK/slow.err" &
client_pid=$!
deadline=$(( $(date +%s) + 20 ))
until [ -e "$WORK/slow-started" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "the slow request never reached the app"
    sleep 0.05
done
T_TERM=$(now)
timeout 30 podman kill --signal TERM "$container" >/dev/null
code=$(timeout 90 podman wait "$container" 2>/dev/null) \
    || { show_logs; fail "the container did not exit within 90 s of SIGTERM"; }
T_DRAIN=$(since "$T_TERM")
wait "$client_pid" || true
client_pid=""
[ "$code" = 0 ] || { show_logs; fail "the queue-proxy exited $code after SIGTERM, not 0"; }
if [ "$(cat "$WORK/slow.code")" != 200 ] \
    || [ "$(cat "$WORK/slow.body")" != "hello from the user app $TOKEN" ]; then
    fail "the request in flight at SIGTERM did not complete: $(cat "$WORK/slow.code" \
        "$WORK/slow.err" 2>/dev/null)"
fi
echo "image: SIGTERM drained (the request in flight completed) and the queue-proxy exited 0" \
    "in ${T_DRAIN} s (quiet period 1 s)"
T_RUN=$(since "$T0")

echo "image size: ${IMAGE_MB} MB (the stand-in base ${BASE_MB} MB, the sidecar's layers" \
    "$((IMAGE_MB - BASE_MB)) MB)"
echo "build time: ${T_BUILD} s"
echo "stand-in base time: ${T_BASE} s (${base_how})"
echo "tools install: ${T_APT} s; run checks: ${T_RUN} s; all: $(since "$T_START") s"
echo "image ok"
