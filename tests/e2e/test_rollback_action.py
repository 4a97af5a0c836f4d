"""The rollback action against a real API server and Deployment controller.

Deployments here have 0 replicas: no pod needs to run, yet the controller creates a
ReplicaSet per template, numbers revisions and completes each rollout, so
``observe_revision`` sees what it would see in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import config as kube_config

from modelmonitor.actions.rollback import execute_rollback, observe_revision, record_healthy
from modelmonitor.adapters.kube import KubePaths
from modelmonitor.core.cluster import ACTION_ANNOTATION, ApiError
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import parse_spec
from tests.cluster.kube import KubeCluster, wait_for

CHANGE_CAUSE = "kubernetes.io/change-cause"


@pytest.fixture
def api(kube_cluster: KubeCluster) -> Iterator[KubePaths]:
    client = kube_config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))
    yield KubePaths(client)
    client.close()


def manifest(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {CHANGE_CAUSE: "v1"},
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "model", "image": "iris:v1"}]},
            },
        },
    }


def paths(namespace: str, name: str) -> tuple[str, str]:
    return (
        f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
        f"/apis/apps/v1/namespaces/{namespace}/replicasets",
    )


def settled(api: KubePaths, namespace: str, name: str, revision: str) -> Any:
    """Deployment and its ReplicaSets once the controller has rolled out ``revision``."""
    deploy_path, rs_path = paths(namespace, name)

    def probe() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        deploy = api.get(deploy_path)
        rss = api.list(rs_path, label_selector=f"app={name}")
        if deploy is None or observe_revision(deploy, rss) is None:
            return None
        if deploy["metadata"]["annotations"].get("deployment.kubernetes.io/revision") != revision:
            return None
        return deploy, rss

    return wait_for(probe, timeout=20, what=f"deployment/{name} at revision {revision}")


def release(cluster: KubeCluster, namespace: str, name: str, version: str) -> None:
    """A new image with its change-cause, in one write (one new revision)."""
    patch = {
        "metadata": {"annotations": {CHANGE_CAUSE: version}},
        "spec": {
            "template": {"spec": {"containers": [{"name": "model", "image": f"iris:{version}"}]}}
        },
    }
    cluster.kubectl("patch", "deployment", name, "-n", namespace, "-p", json.dumps(patch))


def test_rollback_to_the_last_healthy_revision(
    kube_cluster: KubeCluster, namespace: str, api: KubePaths
) -> None:
    names = ("iris", "iris-kubectl")  # ours, and one for `kubectl rollout undo` to compare
    for name in names:
        kube_cluster.apply(manifest(name, namespace))
    healthy: list[dict[str, Any]] = []
    now = datetime.now(UTC).isoformat()
    deploy, rss = settled(api, namespace, "iris", "1")
    seen = observe_revision(deploy, rss)
    assert seen is not None
    healthy = record_healthy(healthy, seen, now)
    for revision, version in (("2", "v2"), ("3", "v3")):
        for name in names:
            release(kube_cluster, namespace, name, version)
        for name in names:  # else the controller may see v3 only: no revision for v2
            deploy, rss = settled(api, namespace, name, revision)
    deploy, rss = settled(api, namespace, "iris", "3")
    seen = observe_revision(deploy, rss)
    assert seen is not None
    healthy = record_healthy(healthy, seen, now)  # 3 looked healthy, then went bad
    assert [h["revision"] for h in healthy] == ["3", "1"]
    hash_v1 = healthy[1]["podTemplateHash"]

    spec = parse_spec(
        {
            "target": {"name": "iris"},
            "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
        }
    )
    request = ActionRequest(
        id="inc-e2e-rollback-1",
        action="rollback",
        namespace=namespace,
        monitor="iris-monitor",
        monitor_uid="uid",
        incident="inc-e2e",
        trigger="slo",
        reason="error budget burning",
        healthy_revisions=tuple(healthy),
    )
    result = execute_rollback(api, spec, request)
    assert result.outcome == Outcome.SUCCEEDED, result
    assert result.details["fromRevision"] == 3
    assert result.details["toRevision"] == 1
    assert result.details["podTemplateHash"] == hash_v1
    kube_cluster.kubectl(
        "rollout", "undo", "deployment/iris-kubectl", "-n", namespace, "--to-revision=1"
    )

    # The controller adopted the old ReplicaSet (same template, same hash) as revision 4.
    deploy, rss = settled(api, namespace, "iris", "4")
    assert len(rss) == 3
    assert observe_revision(deploy, rss) == {
        "revision": "4",
        "podTemplateHash": hash_v1,
        "images": ["iris:v1"],
    }
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "iris:v1"
    annotations = deploy["metadata"]["annotations"]
    assert annotations[CHANGE_CAUSE] == "v1"
    assert annotations[ACTION_ANNOTATION] == request.id
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations

    # Same outcome as kubectl's rollout undo, apart from the monitor's own marks.
    theirs, their_rss = settled(api, namespace, "iris-kubectl", "4")
    assert len(their_rss) == 3
    assert theirs["spec"]["template"]["spec"] == deploy["spec"]["template"]["spec"]

    def comparable(obj: dict[str, Any]) -> dict[str, str]:
        return {
            k: v
            for k, v in obj["metadata"]["annotations"].items()
            if not k.startswith("modelmonitor.io/") and "last-applied" not in k
        }

    assert comparable(deploy) == comparable(theirs)

    # A second run of the same request changes nothing.
    version = deploy["metadata"]["resourceVersion"]
    again = execute_rollback(api, spec, request)
    assert again.outcome == Outcome.SUCCEEDED
    assert "already applied" in again.message
    after = api.get(paths(namespace, "iris")[0])
    assert after is not None
    assert after["metadata"]["resourceVersion"] == version


def test_a_stale_resource_version_is_refused_as_the_retry_expects(
    kube_cluster: KubeCluster, namespace: str, api: KubePaths
) -> None:
    """execute_rollback re-plans on 409/422; this is what the API server answers."""
    kube_cluster.apply(manifest("iris", namespace))
    deploy, _ = settled(api, namespace, "iris", "1")
    stale = str(int(deploy["metadata"]["resourceVersion"]) - 1)
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": stale},
        {"op": "replace", "path": "/spec/replicas", "value": 0},
    ]
    with pytest.raises(ApiError) as caught:
        api.patch(paths(namespace, "iris")[0], ops, patch_type="json")
    assert caught.value.status in (409, 422), caught.value
