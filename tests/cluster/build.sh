#!/usr/bin/env bash
# Build, once, the pinned control plane binaries into a cache outside the repository:
#   kube-apiserver, kube-controller-manager, kube-scheduler (k8s.io/kubernetes),
#   kubectl (same module, so client and server versions match),
#   etcd (go.etcd.io/etcd/server/v3) and helm (helm.sh/helm/v3/cmd/helm);
#   and versitygw (github.com/versity/versitygw, Apache-2.0), the S3 server the e2e
#   tests keep reference data in (about 3 minutes on 2 cores, downloads included).
# Re-running is cheap: binaries already in the cache are reused.
# Prints the cache directory (the one with the binaries) on its last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${MODELMONITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelmonitor}"
bin_dir="$cache_root/testbin/$K8S_VERSION"
work_dir="$cache_root/build"

log() { echo "[build] $*" >&2; }
die() { echo "[build] error: $*" >&2; exit 1; }

staging_version="v0.${K8S_VERSION#v1.}"
components_k8s=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

all_done() {  # when every binary is in the cache: print its directory and exit
  need=()
  for c in "${components_k8s[@]}" etcd helm versitygw; do
    [[ -x "$bin_dir/$c" ]] || need+=("$c")
  done
  if [[ ${#need[@]} -eq 0 ]]; then
    log "all binaries present in $bin_dir"
    echo "$bin_dir"
    exit 0
  fi
}
all_done
mkdir -p "$bin_dir" "$work_dir"
# One build at a time (two test sessions may start together); a second one waits,
# then finds the binaries in place.
exec 9>"$cache_root/.build.lock"
if ! flock -n 9; then
  log "another build is running; waiting for it"
  flock 9
fi
all_done
command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build the control plane from source); install Go >= 1.26 and retry"
log "building ${need[*]} into $bin_dir (first build takes a while; later runs reuse the cache)"

export CGO_ENABLED=0 GOFLAGS="-trimpath -mod=mod"

build_module() {  # name dir module version pkgs...
  local name="$1" dir="$2" module="$3" version="$4"; shift 4
  mkdir -p "$dir"
  (
    cd "$dir"
    if [[ ! -f go.mod ]]; then
      go mod init "modelmonitor.local/testbin/$name" >/dev/null 2>&1
    fi
    log "$name: resolving $module@$version through the module proxy"
    go get "$module@$version" >&2 || die "go get $module@$version failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  )
}

# --- Kubernetes control plane -----------------------------------------------------------
k8s_needed=0
for c in "${components_k8s[@]}"; do [[ -x "$bin_dir/$c" ]] || k8s_needed=1; done
if [[ $k8s_needed -eq 1 ]]; then
  kdir="$work_dir/kubernetes-$K8S_VERSION"
  mkdir -p "$kdir"
  (
    cd "$kdir"
    if [[ ! -f go.mod ]]; then
      go mod init modelmonitor.local/testbin/kubernetes >/dev/null 2>&1
      # k8s.io/kubernetes points its staging modules at ./staging; a consumer must
      # pin each one to its published v0.X.Y instead.
      mods=$(curl -fsS "$(go env GOPROXY | cut -d, -f1)/k8s.io/kubernetes/@v/$K8S_VERSION.mod" 2>/dev/null \
             | awk '/=> .\/staging/ {print $1}') || true
      if [[ -z "$mods" ]]; then
        mods="k8s.io/api k8s.io/apiextensions-apiserver k8s.io/apimachinery k8s.io/apiserver k8s.io/cli-runtime k8s.io/client-go k8s.io/cloud-provider k8s.io/cluster-bootstrap k8s.io/code-generator k8s.io/component-base k8s.io/component-helpers k8s.io/controller-manager k8s.io/cri-api k8s.io/cri-client k8s.io/cri-streaming k8s.io/csi-translation-lib k8s.io/dynamic-resource-allocation k8s.io/endpointslice k8s.io/externaljwt k8s.io/kms k8s.io/kube-aggregator k8s.io/kube-controller-manager k8s.io/kube-proxy k8s.io/kube-scheduler k8s.io/kubectl k8s.io/kubelet k8s.io/metrics k8s.io/mount-utils k8s.io/pod-security-admission k8s.io/sample-apiserver k8s.io/sample-cli-plugin k8s.io/sample-controller k8s.io/streaming"
      fi
      for m in $mods; do
        go mod edit -replace "$m=$m@$staging_version"
      done
    fi
    log "kubernetes: resolving k8s.io/kubernetes@$K8S_VERSION (staging modules at $staging_version)"
    go get "k8s.io/kubernetes@$K8S_VERSION" >&2 || die "go get k8s.io/kubernetes@$K8S_VERSION failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
    ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    for c in "${components_k8s[@]}"; do
      [[ -x "$bin_dir/$c" ]] && continue
      log "kubernetes: compiling $c (several minutes on 2 cores)"
      go build -ldflags "$ldflags" -o "$bin_dir/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2 || die "building $c failed"
      mv "$bin_dir/$c.tmp" "$bin_dir/$c"
      log "kubernetes: $c done"
    done
  )
fi

# --- etcd --------------------------------------------------------------------------------
if [[ ! -x "$bin_dir/etcd" ]]; then
  edir="$work_dir/etcd-$ETCD_VERSION"
  build_module etcd "$edir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  (
    cd "$edir"
    log "etcd: compiling"
    go build -ldflags "-s -w" -o "$bin_dir/etcd.tmp" go.etcd.io/etcd/server/v3 >&2 || die "building etcd failed"
    mv "$bin_dir/etcd.tmp" "$bin_dir/etcd"
    log "etcd: done"
  )
fi

# --- helm --------------------------------------------------------------------------------
if [[ ! -x "$bin_dir/helm" ]]; then
  hdir="$work_dir/helm-$HELM_VERSION"
  build_module helm "$hdir" helm.sh/helm/v3 "$HELM_VERSION"
  (
    cd "$hdir"
    log "helm: compiling"
    go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$bin_dir/helm.tmp" helm.sh/helm/v3/cmd/helm >&2 || die "building helm failed"
    mv "$bin_dir/helm.tmp" "$bin_dir/helm"
    log "helm: done"
  )
fi

# --- versitygw (an S3 server on a POSIX directory, for the object storage e2e tests) ------
if [[ ! -x "$bin_dir/versitygw" ]]; then
  vdir="$work_dir/versitygw-$VERSITYGW_VERSION"
  build_module versitygw "$vdir" github.com/versity/versitygw "$VERSITYGW_VERSION"
  (
    cd "$vdir"
    log "versitygw: compiling"
    go build -ldflags "-s -w" -o "$bin_dir/versitygw.tmp" github.com/versity/versitygw/cmd/versitygw >&2 || die "building versitygw failed"
    mv "$bin_dir/versitygw.tmp" "$bin_dir/versitygw"
    log "versitygw: done"
  )
fi

log "all binaries ready in $bin_dir"
echo "$bin_dir"
