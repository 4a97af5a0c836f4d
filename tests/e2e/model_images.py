"""A versioned model "image" for e2e tests: ``iris-model:<version>``, one MLServer per pod.

Every version serves a scikit-learn iris model under the same name, ``iris`` (Open
Inference Protocol v2: ``POST /v2/models/iris/infer``), with the version string set to the
version, so a Deployment rollout from ``iris-model:v1`` to a ``v2-*`` image (and a
``kubectl rollout undo``) really changes how the model behind a Service answers:

- ``v1``: the good model;
- ``v2-slow``: the same model, answering after :data:`SLOW_SECONDS`;
- ``v2-erroring``: every :data:`FAIL_EVERY`-th request gets HTTP :data:`FAIL_STATUS`;
- ``v2-shuffled``: trained on shuffled labels (right format, drifted predictions).

:func:`prepare_iris_images` trains each version once (in MLServer's own virtualenv, see
tests/modelserver.py) and returns node-agent images (:class:`LocalImage`) that start
MLServer on the pod's IP with fixed container ports: HTTP :data:`HTTP_PORT`, gRPC
:data:`GRPC_PORT`, metrics :data:`METRICS_PORT` (each pod has its own address, so fixed
ports do not clash). The repository's settings.json pins the ports but not the host: the
image sets ``MLSERVER_HOST=$(POD_IP)`` (MLServer reads ``MLSERVER_*`` environment
variables for settings its settings.json leaves out), and keeps MLServer's working
directories (Prometheus multiprocess files, used only with parallel workers; unpacked
environments) under the pod's own ``$(TMPDIR)`` rather than in the shared repository.
:func:`iris_deployment` gives a Deployment and a Service for one of them.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.cluster.node import LocalImage
from tests.modelserver import ModelSpec, ensure_venv, write_model

IMAGE_REPOSITORY = "iris-model"
MODEL_NAME = "iris"
HTTP_PORT = 8080
GRPC_PORT = 8081
METRICS_PORT = 8082
INFER_PATH = f"/v2/models/{MODEL_NAME}/infer"
READY_PATH = "/v2/health/ready"

# v2-slow answers after SLOW_SECONDS: well above a 300 ms latency threshold, and short
# enough to keep tests fast.
SLOW_SECONDS = 0.6
LATENCY_THRESHOLD_SECONDS = 0.3
FAIL_EVERY = 2
FAIL_STATUS = 503

IRIS_VERSIONS: dict[str, ModelSpec] = {
    "v1": ModelSpec(name=MODEL_NAME, version="v1"),
    "v2-slow": ModelSpec(name=MODEL_NAME, delay_seconds=SLOW_SECONDS, version="v2-slow"),
    "v2-erroring": ModelSpec(
        name=MODEL_NAME, fail_every=FAIL_EVERY, fail_status=FAIL_STATUS, version="v2-erroring"
    ),
    "v2-shuffled": ModelSpec(name=MODEL_NAME, shuffle_labels=True, seed=7, version="v2-shuffled"),
}

Manifest = dict[str, Any]


def image_name(version: str) -> str:
    """``iris-model:<version>``."""
    return f"{IMAGE_REPOSITORY}:{version}"


def _server_settings() -> dict[str, Any]:
    return {
        "debug": False,
        # No "host": the image sets MLSERVER_HOST to the pod IP (values in this file would
        # win over MLSERVER_* environment variables).
        "http_port": HTTP_PORT,
        "grpc_port": GRPC_PORT,
        "metrics_port": METRICS_PORT,
        "metrics_endpoint": "/metrics",
        # Inference in the server process: no worker pool, fewer processes per pod.
        "parallel_workers": 0,
    }


def _prepare_version(venv: Path, spec: ModelSpec, repo: Path) -> float:
    """Write one version's model repository; return the model's training accuracy."""
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    trained = write_model(venv, spec, repo / spec.name)
    (repo / "settings.json").write_text(json.dumps(_server_settings(), indent=2))
    return trained["accuracy"]


def iris_image(venv: Path, repo: Path) -> LocalImage:
    """MLServer serving ``repo`` on the pod's IP (``args`` may name another repository)."""
    return LocalImage(
        entrypoint=[
            "/usr/bin/env",
            "MLSERVER_HOST=$(POD_IP)",
            "MLSERVER_METRICS_DIR=$(TMPDIR)/mlserver-metrics",
            "MLSERVER_ENVIRONMENTS_DIR=$(TMPDIR)/mlserver-envs",
            str(venv / "bin" / "mlserver"),
            "start",
        ],
        cmd=[str(repo)],
        workdir=repo,
    )


def prepare_iris_images(
    workdir: Path, *, venv: Path | None = None, versions: dict[str, ModelSpec] | None = None
) -> dict[str, LocalImage]:
    """Train every version (once, in parallel) under ``workdir/<version>``; return the
    images by name (``iris-model:<version>``), ready for ``NodeAgent.register_image``."""
    venv = ensure_venv(venv)
    versions = IRIS_VERSIONS if versions is None else versions
    workdir.mkdir(parents=True, exist_ok=True)
    repos = {version: workdir / version for version in versions}
    with ThreadPoolExecutor(max_workers=len(versions) or 1) as pool:
        futures = {
            version: pool.submit(_prepare_version, venv, spec, repos[version])
            for version, spec in versions.items()
        }
        for future in futures.values():
            future.result()
    return {image_name(version): iris_image(venv, repos[version]) for version in versions}


def iris_deployment(
    name: str, image: str, *, replicas: int = 1, change_cause: str | None = None
) -> list[Manifest]:
    """A Deployment of ``image`` (label ``app=<name>``) and a Service ``<name>`` on port
    8080 in front of it."""
    labels = {"app": name}
    annotations = {"kubernetes.io/change-cause": change_cause} if change_cause else {}
    deployment: Manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "ports": [
                                {"name": "http", "containerPort": HTTP_PORT},
                                {"name": "grpc", "containerPort": GRPC_PORT},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": READY_PATH, "port": HTTP_PORT},
                                "periodSeconds": 1,
                                "failureThreshold": 3,
                            },
                        }
                    ],
                },
            },
        },
    }
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http"}],
        },
    }
    return [deployment, service]
