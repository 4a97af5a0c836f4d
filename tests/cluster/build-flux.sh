#!/usr/bin/env bash
# Build, once, Flux's source-controller and kustomize-controller from source (through the
# Go module proxy, like build.sh builds the control plane) for the GitOps e2e test.
# Each controller is built in a copy of its own module source, so its go.mod (replace
# directives, go.sum) holds as upstream releases it, with one change: its API types live
# in a nested module (./api) that the module zip leaves out, so the replace pointing at
# ./api is dropped and the published api module of the version go.mod requires is used. The Flux CRDs come from the
# same module sources (config/crd/bases) and are copied next to the binaries.
# Re-running is cheap: a complete cache directory is reused.
# Prints the cache directory on its last line of stdout:
#   <dir>/source-controller, <dir>/kustomize-controller, <dir>/crds/*.yaml
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${MODELMONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelmonitor}"
bin_dir="$cache_root/flux/source-$FLUX_SOURCE_CONTROLLER_VERSION-kustomize-$FLUX_KUSTOMIZE_CONTROLLER_VERSION"
work_dir="$cache_root/build"

log() { echo "[build-flux] $*" >&2; }
die() { echo "[build-flux] error: $*" >&2; exit 1; }

all_done() {
  if [[ -x "$bin_dir/source-controller" && -x "$bin_dir/kustomize-controller" && -f "$bin_dir/crds/.complete" ]]; then
    log "Flux controllers present in $bin_dir"
    echo "$bin_dir"
    exit 0
  fi
}
all_done
mkdir -p "$bin_dir/crds" "$work_dir"
exec 9>"$cache_root/.build-flux.lock"
if ! flock -n 9; then
  log "another Flux build is running; waiting for it"
  flock 9
fi
all_done
command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build Flux's controllers from source)"
export CGO_ENABLED=0 GOFLAGS="-trimpath"

build_controller() {  # name version
  local name="$1" version="$2" module="github.com/fluxcd/$1" src
  log "$name: downloading $module@$version through the module proxy"
  src=$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$src" && -d "$src" ]] || die "go mod download $module@$version failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  cp "$src"/config/crd/bases/*.yaml "$bin_dir/crds/"
  if [[ ! -x "$bin_dir/$name" ]]; then
    local wdir="$work_dir/$name-$version"
    rm -rf "$wdir"
    cp -r "$src" "$wdir"
    chmod -R u+w "$wdir"
    (
      cd "$wdir"
      local api="$module/api" want
      go mod edit -dropreplace "$api"
      want=$(go list -m -f '{{.Version}}' "$api")
      go get "$api@$want" >&2 || die "go get $api@$want failed"
      log "$name: compiling (a few minutes on 2 cores the first time)"
      go build -ldflags "-s -w" -o "$bin_dir/$name.tmp" . >&2 || die "building $name failed"
      mv "$bin_dir/$name.tmp" "$bin_dir/$name"
    )
    rm -rf "$wdir"
    log "$name: done"
  fi
}

build_controller source-controller "$FLUX_SOURCE_CONTROLLER_VERSION"
build_controller kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION"
touch "$bin_dir/crds/.complete"
log "Flux controllers ready in $bin_dir"
echo "$bin_dir"
