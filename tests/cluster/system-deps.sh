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
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  echo "[deps] installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
