"""The KServe canary rollback against a real API server.

The InferenceService CRD is installed without the KServe controller (see
tests/e2e/conftest_kserve.py), so the test writes the status KServe's ksvc reconciler
would during a canary: the latest revision with canaryTrafficPercent (tag ``latest``),
the last rolled-out revision with the rest (tag ``prev``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from kubernetes import config as kube_config

from modelmonitor.actions.kserve import execute_canary_rollback, isvc_path
from modelmonitor.adapters.kube import KubePaths
from modelmonitor.core.cluster import ACTION_ANNOTATION
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import MonitorSpec, ReferenceSpec, TargetSpec
from tests.cluster.kube import KubeCluster


@pytest.fixture
def api(inferenceservice_crd: KubeCluster) -> Iterator[KubePaths]:
    client = kube_config.new_client_from_config(config_file=str(inferenceservice_crd.kubeconfig))
    yield KubePaths(client)
    client.close()


def create_isvc(
    api: KubePaths, namespace: str, name: str, *, canary_percent: int | None
) -> dict[str, Any]:
    """An InferenceService; with ``canary_percent``, the status of a canary at that share."""
    predictor: dict[str, Any] = {
        "model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://models/iris/v2"}
    }
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = canary_percent
    api.create(
        f"/apis/serving.kserve.io/v1beta1/namespaces/{namespace}/inferenceservices",
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"predictor": predictor},
        },
    )
    latest = {"tag": "latest", "latestRevision": True, "revisionName": f"{name}-predictor-00002"}
    if canary_percent is None:
        traffic = [{**latest, "percent": 100}]
        revisions = {"latestRolledoutRevision": f"{name}-predictor-00002"}
    else:
        traffic = [
            {**latest, "percent": canary_percent},
            {
                "tag": "prev",
                "latestRevision": False,
                "revisionName": f"{name}-predictor-00001",
                "percent": 100 - canary_percent,
            },
        ]
        revisions = {"latestRolledoutRevision": f"{name}-predictor-00001"}
    status = {
        "components": {
            "predictor": {
                "latestCreatedRevision": f"{name}-predictor-00002",
                "latestReadyRevision": f"{name}-predictor-00002",
                **revisions,
                "traffic": traffic,
            }
        }
    }
    # Status is a subresource: only a write to /status sets it (as the controller does).
    return api.patch(isvc_path(namespace, name) + "/status", {"status": status})


def rollback_request(namespace: str) -> ActionRequest:
    return ActionRequest(
        id="inc-e2e-rollback-1",
        action="rollback",
        namespace=namespace,
        monitor="iris-monitor",
        monitor_uid="uid",
        incident="inc-e2e",
        trigger="drift",
        reason="prediction drift on the canary",
    )


def spec_for(name: str) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name, kind="InferenceService"), reference=ReferenceSpec(source="inline")
    )


def test_canary_rolled_back_once(namespace: str, api: KubePaths) -> None:
    created = create_isvc(api, namespace, "iris", canary_percent=20)
    assert created["status"]["components"]["predictor"]["traffic"][0]["percent"] == 20
    request = rollback_request(namespace)

    dry = execute_canary_rollback(api, spec_for("iris"), replace(request, dry_run=True))
    assert dry.outcome == Outcome.DRY_RUN, dry
    assert dry.message.startswith("would send inferenceservice/iris canary traffic from 20%")
    unchanged = api.get(isvc_path(namespace, "iris"))
    assert unchanged is not None
    assert unchanged["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    result = execute_canary_rollback(api, spec_for("iris"), request)
    assert (result.outcome, result.reason) == (Outcome.SUCCEEDED, "CanaryRolledBack"), result
    assert result.details == {
        "inferenceService": "iris",
        "fromPercent": 20,
        "toPercent": 0,
        "canaryRevision": "iris-predictor-00002",
        "stableRevision": "iris-predictor-00001",
    }
    isvc = api.get(isvc_path(namespace, "iris"))
    assert isvc is not None
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "gs://models/iris/v2"
    assert isvc["metadata"]["annotations"][ACTION_ANNOTATION] == request.id

    again = execute_canary_rollback(api, spec_for("iris"), request)
    assert again.outcome == Outcome.SUCCEEDED
    assert "already applied" in again.message
    after = api.get(isvc_path(namespace, "iris"))
    assert after is not None
    assert after["metadata"]["resourceVersion"] == isvc["metadata"]["resourceVersion"]


def test_without_canary_nothing_to_roll_back(namespace: str, api: KubePaths) -> None:
    created = create_isvc(api, namespace, "plain", canary_percent=None)
    result = execute_canary_rollback(api, spec_for("plain"), rollback_request(namespace))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "NoCanary"), result
    assert result.message == "inferenceservice/plain serves one revision; nothing to roll back"
    after = api.get(isvc_path(namespace, "plain"))
    assert after is not None
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    missing = execute_canary_rollback(api, spec_for("absent"), rollback_request(namespace))
    assert (missing.outcome, missing.reason) == (Outcome.SKIPPED, "TargetNotFound")
