"""The scale action against a real API server: Deployment replicas, and an HPA's minReplicas.

Pods of these Deployments never schedule (a node selector no node has): only the
objects' fields matter. The HPA needs no metrics server, since the action only raises
its minReplicas; the HPA controller may scale the Deployment to it meanwhile, which is
the point of the policy (the HPA stays in charge).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import config as kube_config

from modelmonitor.actions.scale import execute_scale, execute_scale_back, object_path
from modelmonitor.adapters.kube import KubePaths
from modelmonitor.core.cluster import ACTION_ANNOTATION
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import ActionsSpec, MonitorSpec, ReferenceSpec, ScaleSpec, TargetSpec
from tests.cluster.kube import KubeCluster


@pytest.fixture
def api(kube_cluster: KubeCluster) -> Iterator[KubePaths]:
    client = kube_config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    yield KubePaths(client)
    client.close()


def deployment(name: str, namespace: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"modelmonitor.io/no-such-node": "true"},
                    "containers": [{"name": "model", "image": "iris:v1"}],
                },
            },
        },
    }


def hpa(name: str, namespace: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 3,
        },
    }


def spec_for(name: str, *, max_replicas: int, step: int) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name),
        reference=ReferenceSpec(source="inline"),
        actions=ActionsSpec(scale=ScaleSpec(max_replicas=max_replicas, step=step)),
    )


def request(namespace: str, id: str, restore: dict[str, Any] | None = None) -> ActionRequest:
    return ActionRequest(
        id=id,
        action="scale-back" if restore is not None else "scale",
        namespace=namespace,
        monitor="iris-monitor",
        monitor_uid="uid",
        incident="inc-e2e",
        trigger="slo",
        reason="p99 latency above objective",
        restore=restore,
    )


def field_of(api: KubePaths, kind: str, namespace: str, name: str, field: str) -> Any:
    obj = api.get(object_path(kind, namespace, name))
    assert obj is not None
    return obj["spec"].get(field), obj["metadata"]


def test_deployment_steps_to_the_cap_and_back(
    kube_cluster: KubeCluster, namespace: str, api: KubePaths
) -> None:
    kube_cluster.apply(deployment("iris", namespace, 1))
    spec = spec_for("iris", max_replicas=4, step=2)

    first = execute_scale(api, spec, request(namespace, "inc-e2e-scale-1"))
    assert (first.outcome, first.reason) == (Outcome.SUCCEEDED, "ScaledUp"), first
    assert first.message == "scaled deployment/iris from 1 to 3 replicas"
    replicas, meta = field_of(api, "Deployment", namespace, "iris", "replicas")
    assert replicas == 3
    assert meta["annotations"][ACTION_ANNOTATION] == "inc-e2e-scale-1"
    # The same request again (operator restarted before recording): no second step.
    again = execute_scale(api, spec, request(namespace, "inc-e2e-scale-1"))
    assert again.outcome == Outcome.SUCCEEDED
    assert again.details["restore"] == first.details["restore"]
    # generation, not resourceVersion: the controller's status writes bump the latter.
    replicas, after = field_of(api, "Deployment", namespace, "iris", "replicas")
    assert (replicas, after["generation"]) == (3, meta["generation"])

    second = execute_scale(api, spec, request(namespace, "inc-e2e-scale-2"))
    assert (second.details["from"], second.details["to"]) == (3, 4), second
    capped = execute_scale(api, spec, request(namespace, "inc-e2e-scale-3"))
    assert (capped.outcome, capped.reason) == (Outcome.SKIPPED, "AtMaxReplicas"), capped
    assert field_of(api, "Deployment", namespace, "iris", "replicas")[0] == 4

    restore = {**first.details["restore"], "applied": second.details["restore"]["applied"]}
    back = execute_scale_back(api, spec, request(namespace, "inc-e2e-back-1", restore))
    assert (back.outcome, back.reason) == (Outcome.SUCCEEDED, "ScaledBack"), back
    replicas, meta = field_of(api, "Deployment", namespace, "iris", "replicas")
    assert replicas == 1
    assert meta["annotations"][ACTION_ANNOTATION] == "inc-e2e-back-1"


def test_scale_back_leaves_a_person_s_change_alone(
    kube_cluster: KubeCluster, namespace: str, api: KubePaths
) -> None:
    kube_cluster.apply(deployment("iris", namespace, 1))
    spec = spec_for("iris", max_replicas=4, step=1)
    up = execute_scale(api, spec, request(namespace, "inc-e2e-scale-1"))
    assert up.outcome == Outcome.SUCCEEDED, up
    kube_cluster.kubectl("scale", "deployment/iris", "-n", namespace, "--replicas=5")
    back = execute_scale_back(
        api, spec, request(namespace, "inc-e2e-back-1", dict(up.details["restore"]))
    )
    assert (back.outcome, back.reason) == (Outcome.SKIPPED, "ChangedSince"), back
    assert field_of(api, "Deployment", namespace, "iris", "replicas")[0] == 5


def test_with_an_hpa_the_min_replicas_is_raised_and_restored(
    kube_cluster: KubeCluster, namespace: str, api: KubePaths
) -> None:
    kube_cluster.apply([deployment("iris", namespace, 1), hpa("iris", namespace, "iris")])
    spec = spec_for("iris", max_replicas=10, step=1)

    up = execute_scale(api, spec, request(namespace, "inc-e2e-scale-1"))
    assert (up.outcome, up.reason) == (Outcome.SUCCEEDED, "ScaledUp"), up
    assert up.details["restore"] == {
        "kind": "HorizontalPodAutoscaler",
        "name": "iris",
        "field": "minReplicas",
        "original": 1,
        "applied": 2,
    }
    min_replicas, meta = field_of(api, "HorizontalPodAutoscaler", namespace, "iris", "minReplicas")
    assert min_replicas == 2
    assert meta["annotations"][ACTION_ANNOTATION] == "inc-e2e-scale-1"
    # Deployment replicas were not touched by us (the HPA controller owns them).
    deploy_meta = field_of(api, "Deployment", namespace, "iris", "replicas")[1]
    assert ACTION_ANNOTATION not in (deploy_meta.get("annotations") or {})

    second = execute_scale(api, spec, request(namespace, "inc-e2e-scale-2"))
    assert (second.details["from"], second.details["to"]) == (2, 3), second
    capped = execute_scale(api, spec, request(namespace, "inc-e2e-scale-3"))
    assert (capped.outcome, capped.reason) == (Outcome.SKIPPED, "AtMaxReplicas"), capped
    assert capped.details["cap"] == 3  # the HPA's maxReplicas, below the monitor's 10

    restore = {**up.details["restore"], "applied": second.details["restore"]["applied"]}
    back = execute_scale_back(api, spec, request(namespace, "inc-e2e-back-1", restore))
    assert (back.outcome, back.reason) == (Outcome.SUCCEEDED, "ScaledBack"), back
    assert field_of(api, "HorizontalPodAutoscaler", namespace, "iris", "minReplicas")[0] == 1
