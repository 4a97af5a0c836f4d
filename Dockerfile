# syntax=docker/dockerfile:1
# The modelmonitor operator image.
#
#   docker build -t modelmonitor:dev \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) .
#
# Without a Docker engine, `make image` builds the same file with buildah on a Debian
# base assembled from Debian packages (hack/image.sh, docs/image.md).
#
# Two stages: the builder installs the package and its dependencies into a virtualenv
# (binary wheels only: no compiler is needed even there, and a dependency without a
# wheel for the platform fails the build instead of compiling); the final image
# is the slim Python base plus that virtualenv, run as an unprivileged numeric user. It
# writes nothing outside /tmp, so it runs with a read-only root filesystem (mount an
# emptyDir at /tmp, as the Helm chart and manifests/ do).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so that a code change does not re-download them.
COPY pyproject.toml README.md ./
COPY operator/modelmonitor/__init__.py operator/modelmonitor/__init__.py
RUN pip install --only-binary=:all: --upgrade pip setuptools wheel \
 && pip install --only-binary=:all: '.[kafka,dask]' \
 && pip uninstall -y modelmonitor
COPY operator ./operator
# LICENSE lands in the package's dist-info inside the venv, so the image carries it.
COPY LICENSE ./
RUN pip install --no-deps . \
 && pip uninstall -y setuptools wheel \
 && python -m compileall -q -j 0 /opt/venv/lib \
 && modelmonitor version

FROM ${PYTHON_IMAGE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/modelmonitor/modelmonitor
LABEL org.opencontainers.image.title="modelmonitor" \
      org.opencontainers.image.description="Kubernetes operator that monitors ML inference services for drift and SLO breaches" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A named account for the numeric uid: some libraries look the user name up.
RUN groupadd --system --gid 65532 modelmonitor \
 && useradd --system --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin modelmonitor
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp
WORKDIR /tmp
USER 65532:65532
# metrics (METRICS_PORT), health (HEALTH_PORT), payload-log collector (PAYLOAD_PORT)
EXPOSE 8080 8081 8082
ENTRYPOINT ["modelmonitor"]
CMD ["run"]
