#!/usr/bin/env bash
# Build the operator image from the Dockerfile without a Docker engine (`make image`).
#
# buildah (daemonless, a Debian package) builds the repository's Dockerfile as it is.
# The Dockerfile's base, python:3.11-slim, comes from a registry; where none can be
# reached, the base is assembled from Debian packages instead: mmdebstrap makes a
# minimal bookworm root filesystem with python3 (3.11), python3-venv and
# ca-certificates, and buildah commits it as a local image (built once, then reused).
#
# Settings (environment):
#   IMAGE            name of the result               (localhost/modelmonitor:dev)
#   PYTHON_IMAGE     a base to use instead of assembling one, e.g. python:3.11-slim
#   IMAGE_ARCHIVE    also write the image there (docker-archive, for `kind load image-archive`
#                    or `docker load`)
#   REBUILD_BASE=1   assemble the Debian base again (new security updates)
#   STORAGE_DRIVER   buildah's storage driver      (vfs: works inside containers too)
#   BUILDAH_ISOLATION  how RUN steps are isolated  (chroot: needs no user namespaces)
#   BUILD_CA_BUNDLE  a CA bundle that pip must trust during RUN steps (a proxy that
#                    intercepts TLS); mounted over the base's bundle for RUN only, never
#                    written into the image. Default: $PIP_CERT when it names a file.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/modelmonitor:dev}
DEBIAN_BASE=localhost/modelmonitor-base:bookworm-python3.11
DRIVER=${STORAGE_DRIVER:-vfs}
ISOLATION=${BUILDAH_ISOLATION:-chroot}
buildah=(buildah --storage-driver "$DRIVER")
log() { echo "[image] $*" >&2; }

need=()
command -v buildah >/dev/null || need+=(buildah)
if [[ -z ${PYTHON_IMAGE:-} ]] && ! command -v mmdebstrap >/dev/null; then need+=(mmdebstrap); fi
if [[ ${#need[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  log "installing ${need[*]} (Debian packages)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [[ -z ${PYTHON_IMAGE:-} ]]; then
  PYTHON_IMAGE=$DEBIAN_BASE
  if [[ ${REBUILD_BASE:-0} == 1 ]] || ! "${buildah[@]}" inspect --type image "$DEBIAN_BASE" >/dev/null 2>&1; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    log "assembling $DEBIAN_BASE from Debian packages (mmdebstrap, about 3 minutes)"
    mmdebstrap --quiet --variant=minbase \
      --include=python3,python3-venv,python-is-python3,ca-certificates \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
      bookworm "$work/rootfs.tar"
    ctr=$("${buildah[@]}" from scratch)
    "${buildah[@]}" add "$ctr" "$work/rootfs.tar" / >/dev/null
    "${buildah[@]}" config --cmd '["python3"]' --env LANG=C.UTF-8 \
      --label org.opencontainers.image.description="Debian bookworm minbase with python3 (3.11)" "$ctr"
    "${buildah[@]}" commit --quiet --rm "$ctr" "$DEBIAN_BASE" >/dev/null
  fi
fi

version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' operator/modelmonitor/__init__.py)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $revision != unknown ]] && [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  revision="$revision-dirty"
fi

mounts=()
ca=${BUILD_CA_BUNDLE:-${PIP_CERT:-}}
if [[ -n $ca && -f $ca ]]; then
  log "RUN steps trust $ca (mounted, not copied into the image)"
  mounts=(--volume "$(realpath "$ca"):/etc/ssl/certs/ca-certificates.crt:ro")
fi

pull=()
[[ $PYTHON_IMAGE == "$DEBIAN_BASE" ]] && pull=(--pull=never)
log "building $IMAGE ($version, $revision) on $PYTHON_IMAGE"
"${buildah[@]}" bud --isolation "$ISOLATION" --layers=false "${pull[@]}" "${mounts[@]}" \
  --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  --tag "$IMAGE" --file Dockerfile .

if [[ -n ${IMAGE_ARCHIVE:-} ]]; then
  rm -f "$IMAGE_ARCHIVE"
  "${buildah[@]}" push --quiet "$IMAGE" "docker-archive:$IMAGE_ARCHIVE:${IMAGE#localhost/}"
  log "wrote $IMAGE_ARCHIVE"
fi
log "built $IMAGE"
