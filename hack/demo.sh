#!/usr/bin/env bash
# The no-cluster demo (make demo): a bad rollout detected and rolled back; see hack/demo.py.
# Needs nothing but this repository; make demo has already installed the Python packages,
# the control plane binaries, Prometheus (Debian package) and MLServer's virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python hack/demo.py
