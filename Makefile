# modelmonitor developer entry points. `make test` and `make demo` each work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv testbin testbin-cluster testbin-flux system-deps modelserver-venv kafka-jars dask-operator-venv deps lint typecheck test test-unit test-e2e crd verify-crd cluster-up cluster-down cluster-status demo bench bench-scale image image-smoke clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,report]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv with the package and dev tools

testbin: testbin-cluster testbin-flux ## build (once, cached) the local control plane binaries, helm, and Flux's controllers

testbin-cluster:
	bash tests/cluster/build.sh >/dev/null

testbin-flux:
	bash tests/cluster/build-flux.sh >/dev/null

system-deps:
	bash tests/cluster/system-deps.sh

modelserver-venv: venv
	$(PY) -m tests.modelserver venv

kafka-jars: venv system-deps
	$(PY) -m tests.kafka_broker fetch >/dev/null

dask-operator-venv: venv
	$(PY) -m tests.dask_operator venv >/dev/null

# The parts are independent but for the ordering above, so they run side by side: the
# downloads (apt, pip, Maven) overlap the Go builds instead of following them.
DEPS_PARTS := testbin-cluster testbin-flux system-deps modelserver-venv kafka-jars dask-operator-venv

deps: venv ## everything the tests need
	$(MAKE) --no-print-directory -j$(words $(DEPS_PARTS)) --output-sync=line $(DEPS_PARTS)

lint: venv ## ruff, and the layers contract (.importlinter, docs/architecture.md)
	$(VENV)/bin/ruff check operator tests bench hack
	$(VENV)/bin/ruff format --check operator tests bench hack
	$(VENV)/bin/lint-imports

typecheck: venv ## mypy (strict) on the package
	$(VENV)/bin/mypy

test-unit: venv ## unit tests only (no cluster)
	$(PY) -m pytest tests/unit

test-e2e: deps ## e2e tests against the local control plane
	$(PY) -m pytest tests/e2e

test: deps lint typecheck ## lint, types, unit and e2e tests
	$(PY) -m pytest --durations=30

crd: ## copy crds/ and policy/ into the Helm chart and manifests/
	bash hack/sync-crds.sh

verify-crd: ## fail when the chart or manifests/ drift from crds/ or policy/
	bash hack/sync-crds.sh --verify

cluster-up: venv testbin ## start a local control plane (prints its kubeconfig)
	$(PY) -m tests.cluster up

cluster-down: venv ## stop the local control plane
	$(PY) -m tests.cluster down

cluster-status: venv
	$(PY) -m tests.cluster status

demo: deps ## local control plane, model pods, Prometheus, operator: a bad rollout detected and rolled back, then shut down
	bash hack/demo.sh

bench: venv ## drift benchmarks against Evidently and Alibi Detect (see bench/README.md)
	bash bench/run.sh

bench-scale: deps ## operator scale benchmark: 200 and 1,000 monitors (bench/README.md)
	$(PY) bench/scale.py --monitors 200
	$(PY) bench/scale.py --monitors 1000

image: ## build the operator image with buildah, no Docker engine (hack/image.sh, docs/image.md)
	bash hack/image.sh

image-smoke: ## run the image's entry point and check its labels and ports (after make image)
	bash hack/image-smoke.sh

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache
