#!/usr/bin/env bash
# Smoke-test an image built by `make image` (`make image-smoke`), without a container engine:
# buildah runs its entry point in a chroot. Checks what a cluster relies on: the
# entry point answers `modelmonitor version` with the package's version, as uid 65532;
# the statistics stack imports and works (`modelmonitor check` on the iris reference);
# the OCI labels and exposed ports are complete; the license ships; the build host's
# CA bundle did not end up in the image.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/modelmonitor:dev}
buildah=(buildah --storage-driver "${STORAGE_DRIVER:-vfs}")
run=("${buildah[@]}" run --isolation "${BUILDAH_ISOLATION:-chroot}")
fail() { echo "[image-smoke] FAIL: $*" >&2; exit 1; }
ok() { echo "[image-smoke] ok: $*" >&2; }

version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' operator/modelmonitor/__init__.py)
ctr=$("${buildah[@]}" from --pull=never "$IMAGE")
trap '"${buildah[@]}" rm "$ctr" >/dev/null' EXIT

config=$("${buildah[@]}" inspect --type image "$IMAGE")
read -r -d '' check_config <<'EOF' || true
import json, sys
config = json.load(sys.stdin)["OCIv1"]["config"]
labels = config.get("Labels") or {}
want = {
    "org.opencontainers.image.title": "modelmonitor",
    "org.opencontainers.image.version": sys.argv[1],
    "org.opencontainers.image.licenses": "Apache-2.0",
}
problems = [f"label {k}={labels.get(k)!r}, want {v!r}" for k, v in want.items() if labels.get(k) != v]
for key in ("description", "source", "revision"):
    if not labels.get(f"org.opencontainers.image.{key}") or labels.get(f"org.opencontainers.image.{key}") == "unknown":
        problems.append(f"label org.opencontainers.image.{key} missing")
ports = set(config.get("ExposedPorts") or {})
if ports != {"8080/tcp", "8081/tcp", "8082/tcp"}:
    problems.append(f"exposed ports {sorted(ports)}, want metrics 8080, health 8081, payload 8082")
if config.get("User") != "65532:65532":
    problems.append(f"user {config.get('User')!r}")
if config.get("Entrypoint") != ["modelmonitor"] or config.get("Cmd") != ["run"]:
    problems.append(f"entrypoint {config.get('Entrypoint')} cmd {config.get('Cmd')}")
for p in problems:
    print("[image-smoke]", p, file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
python3 -c "$check_config" "$version" <<<"$config" || fail "image configuration (see above)"
ok "labels, exposed ports 8080 8081 8082, user 65532, entry point"

got=$("${run[@]}" "$ctr" -- modelmonitor version)
[[ $got == "modelmonitor $version" ]] || fail "modelmonitor version said '$got', want 'modelmonitor $version'"
ok "$got"

uid=$("${run[@]}" "$ctr" -- id -u)
[[ $uid == 65532 ]] || fail "runs as uid $uid"
ok "runs as uid 65532"

"${run[@]}" --volume "$PWD/docs/examples/data:/data:ro" "$ctr" -- \
  modelmonitor check --reference /data/iris-reference.csv --current /data/iris-reference.csv \
  --format json >/dev/null || fail "modelmonitor check in the image"
ok "modelmonitor check on the iris reference (numpy, scipy, pyarrow load)"

# mode dask's cluster pods run this image as `dask scheduler` / `dask worker`
"${run[@]}" "$ctr" -- dask scheduler --help >/dev/null || fail "dask scheduler in the image (the dask extra)"
"${run[@]}" "$ctr" -- python -c "import distributed, modelmonitor.adapters.dask_engine" \
  || fail "distributed in the image (the dask extra)"
ok "dask scheduler and worker commands (the dask extra)"

"${run[@]}" "$ctr" -- sh -c 'grep -q "Apache License" /opt/venv/lib/python3*/site-packages/modelmonitor-*.dist-info/licenses/LICENSE' \
  || fail "LICENSE missing from the package's dist-info"
ok "LICENSE in the package's dist-info"

ca=${BUILD_CA_BUNDLE:-${PIP_CERT:-}}
if [[ -n $ca && -f $ca ]]; then
  inside=$("${run[@]}" "$ctr" -- sha256sum /etc/ssl/certs/ca-certificates.crt | cut -d' ' -f1)
  [[ $inside != "$(sha256sum "$ca" | cut -d' ' -f1)" ]] || fail "the build host's CA bundle is in the image"
  ok "the build host's CA bundle stayed out of the image"
fi
echo "[image-smoke] $IMAGE passed" >&2
