# The queue-proxy sidecar image: a drop-in for Knative's queue-proxy.
#   docker build -t kn-dataplane/queue-proxy .
# Stage 1 builds wheels (the package with its Cython speedups, and its dependencies) with the
# same script CI runs, and installs them into a virtual environment; stage 2 is a slim, non-root
# runtime that copies only that environment (no wheel, compiler or source in any of its layers).
# The base is pinned to one Python release and Debian release (both stages: the environment's
# interpreter links are the base's).

FROM python:3.11.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proxy ./proxy
COPY activator ./activator
COPY _speedups ./_speedups
COPY docker/build-wheels.sh ./docker/build-wheels.sh
RUN ./docker/build-wheels.sh /src /wheels \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links=/wheels kn-dataplane

FROM python:3.11.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1
# Knative runs the queue-proxy as a non-root user; 65532 is the distroless "nonroot" uid.
USER 65532:65532
# serving, serving over TLS (with Knative's certificates mounted), admin, stats, Prometheus
EXPOSE 8012 8112 8022 9090 9091
ENTRYPOINT ["python", "-m", "proxy"]
