#!/usr/bin/env bash
# Copy the CustomResourceDefinitions from crds/ and the admission policy from policy/
# (the sources of truth) into the places that ship them, byte for byte:
#   crds/    -> charts/modelmonitor/crds/          (Helm installs these before the templates)
#               manifests/crds/                    (plain `kubectl apply` install)
#   policy/  -> charts/modelmonitor/files/policy/  (rendered by templates/admission-policy.yaml)
#               manifests/policy/                  (plain `kubectl apply` install)
#
#   bash hack/sync-crds.sh           copy; remove copies whose source is gone   (make crd)
#   bash hack/sync-crds.sh --verify  change nothing; exit 1 with a diff when a
#                                    copy differs, is missing or is stale      (make verify-crd)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

mode=sync
case "${1:-}" in
  "") ;;
  --verify) mode=verify ;;
  -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--verify]" >&2; exit 2 ;;
esac

shopt -s nullglob
status=0

# sync_set WHAT SOURCE_DIR TARGET_DIR...: the copies of SOURCE_DIR/*.yaml in each target.
sync_set() {
  local what="$1" src="$2"
  shift 2
  local sources=("$src"/*.yaml)
  if [[ ${#sources[@]} -eq 0 ]]; then
    echo "sync-crds: no ${what} found in ${src#"$root"/}/*.yaml" >&2
    exit 1
  fi
  local target rel f name copy
  for target in "$@"; do
    rel="${target#"$root"/}"
    [[ "$mode" == sync ]] && mkdir -p "$target"
    for f in "${sources[@]}"; do
      name="$(basename "$f")"
      if [[ "$mode" == sync ]]; then
        cmp -s "$f" "$target/$name" || { cp "$f" "$target/$name"; echo "sync-crds: wrote $rel/$name"; }
      elif [[ ! -f "$target/$name" ]]; then
        echo "sync-crds: $rel/$name is missing (copy of ${src#"$root"/}/$name)" >&2
        status=1
      elif ! cmp -s "$f" "$target/$name"; then
        echo "sync-crds: $rel/$name differs from ${src#"$root"/}/$name:" >&2
        diff -u "$f" "$target/$name" >&2 || true
        status=1
      fi
    done
    # Copies whose source no longer exists.
    for copy in "$target"/*.yaml; do
      name="$(basename "$copy")"
      [[ -f "$src/$name" ]] && continue
      if [[ "$mode" == sync ]]; then
        rm -f "$copy"
        echo "sync-crds: removed stale $rel/$name"
      else
        echo "sync-crds: $rel/$name is stale (no ${src#"$root"/}/$name)" >&2
        status=1
      fi
    done
  done
}

sync_set CRDs "$root/crds" "$root/charts/modelmonitor/crds" "$root/manifests/crds"
# The policy set is optional only in scratch trees without a policy/ directory.
if [[ -d "$root/policy" ]]; then
  sync_set "admission policies" "$root/policy" \
    "$root/charts/modelmonitor/files/policy" "$root/manifests/policy"
fi

if [[ "$mode" == verify && $status -ne 0 ]]; then
  echo "sync-crds: copies are out of date; run 'make crd' and commit the result" >&2
fi
exit $status
