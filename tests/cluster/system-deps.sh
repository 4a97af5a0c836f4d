#!/usr/bin/env bash
# Debian packages the tests need. Idempotent: installs only what is missing.
# chromium: tests/unit/test_cli_report.py screenshots the HTML report headless.
# prometheus-alertmanager: tests/e2e/test_incident_notifications.py (a real Alertmanager).
# openjdk-17-jre-headless and maven: the Kafka broker of tests/e2e/test_kafka_source.py
# (its jars fetched once from Maven Central, tests/kafka_broker.py).
# git: tests/gitserver.py serves a repository to Flux (git http-backend), tests/e2e/test_flux_gitops.py.
set -euo pipefail
pkgs=(openssl curl git iproute2 prometheus prometheus-alertmanager chromium openjdk-17-jre-headless maven)
missing=()
# Another apt run on the machine (unattended upgrades, a second checkout's `make deps`)
# holds apt's locks for a while; apt-get update does not honour DPkg::Lock::Timeout, so
# wait and retry for up to 10 minutes instead of failing the whole build.
apt_locked_retry() {
  local deadline=$((SECONDS + 600)) out
  while true; do
    if out=$("$@" 2>&1); then
      [[ -n "$out" ]] && printf '%s\n' "$out"
      return 0
    fi
    if [[ "$out" != *"Could not get lock"* && "$out" != *"Unable to lock"* ]] || ((SECONDS >= deadline)); then
      printf '%s\n' "$out" >&2
      return 1
    fi
    echo "[deps] apt is busy (another apt run holds its lock); retrying in 5 s" >&2
    sleep 5
  done
}
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  echo "[deps] installing ${missing[*]}" >&2
  apt_locked_retry $SUDO apt-get update -qq
  apt_locked_retry $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi
