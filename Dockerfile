# The queue-proxy sidecar image: a drop-in for Knative's queue-proxy.
#   docker build -t kn-dataplane/queue-proxy .
# Stage 1 builds wheels (the package with its Cython speedups, and its dependencies) with the
# same script CI runs; stage 2 is a slim, non-root runtime with only those wheels installed.

FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY proxy ./proxy
COPY activator ./activator
COPY _speedups ./_speedups
COPY docker/build-wheels.sh ./docker/build-wheels.sh
RUN ./docker/build-wheels.sh /src /wheels

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels kn-dataplane \
 && rm -rf /wheels
# Knative runs the queue-proxy as a non-root user; 65532 is the distroless "nonroot" uid.
USER 65532:65532
EXPOSE 8012 8022 9090 9091
ENTRYPOINT ["python", "-m", "proxy"]
