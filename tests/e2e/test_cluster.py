"""The local control plane is a real one: the apiserver serves, the controller-manager
reconciles Deployments into revisioned ReplicaSets, the scheduler looks at pods, and
two named clusters run side by side."""

from __future__ import annotations

import ipaddress
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.binaries import pinned_versions
from tests.cluster.controlplane import SERVICE_CIDR, ControlPlane
from tests.cluster.kube import KubeCluster, wait_for

REVISION = "deployment.kubernetes.io/revision"


def _deployment(name: str, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "model", "image": image}]},
            },
        },
    }


def _replicasets_by_revision(
    cluster: KubeCluster, namespace: str, deployment: str
) -> dict[str, dict[str, Any]]:
    items = cluster.get("replicasets", "-n", namespace, "-l", f"app={deployment}")["items"]
    owned = [
        rs
        for rs in items
        if any(o["kind"] == "Deployment" for o in rs["metadata"].get("ownerReferences", []))
    ]
    revisions = {rs["metadata"].get("annotations", {}).get(REVISION): rs for rs in owned}
    return {r: rs for r, rs in revisions.items() if r is not None}


def _image_of(rs: dict[str, Any]) -> str:
    return str(rs["spec"]["template"]["spec"]["containers"][0]["image"])


def test_apiserver_is_ready_and_pinned(kube_cluster: KubeCluster) -> None:
    assert kube_cluster.kubectl("get", "--raw=/readyz").stdout.strip() == "ok"
    if kube_cluster.managed:
        version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
        assert version["serverVersion"]["gitVersion"] == pinned_versions()["K8S_VERSION"]


def test_deployment_revisions_and_rollback(kube_cluster: KubeCluster, namespace: str) -> None:
    name = "model"
    kube_cluster.apply(_deployment(name, "modelmonitor.test/model:v1"), "-n", namespace)

    first = wait_for(
        lambda: _replicasets_by_revision(kube_cluster, namespace, name).get("1"),
        what="ReplicaSet with revision 1",
    )
    assert _image_of(first) == "modelmonitor.test/model:v1"
    # The ReplicaSet controller creates the pods (ServiceAccount admission lets them in).
    wait_for(
        lambda: len(kube_cluster.get("pods", "-n", namespace, "-l", f"app={name}")["items"]) >= 2,
        what="pods of revision 1",
    )

    kube_cluster.kubectl(
        "set", "image", f"deployment/{name}", "model=modelmonitor.test/model:v2", "-n", namespace
    )
    second = wait_for(
        lambda: _replicasets_by_revision(kube_cluster, namespace, name).get("2"),
        what="ReplicaSet with revision 2",
    )
    assert _image_of(second) == "modelmonitor.test/model:v2"

    # Rolling back re-uses revision 1's ReplicaSet, which becomes revision 3.
    kube_cluster.kubectl(
        "rollout", "undo", f"deployment/{name}", "--to-revision=1", "-n", namespace
    )
    third = wait_for(
        lambda: _replicasets_by_revision(kube_cluster, namespace, name).get("3"),
        what="revision 3 after rollback",
    )
    assert third["metadata"]["uid"] == first["metadata"]["uid"]
    assert _image_of(third) == "modelmonitor.test/model:v1"


def test_scheduler_sees_pods(kube_cluster: KubeCluster, namespace: str) -> None:
    if not kube_cluster.managed:
        pytest.skip("an external cluster may well schedule the pod")
    # No node carries this label (the harness's node included): the scheduler must
    # look at the pod and say why it cannot place it.
    reason = "Unschedulable"
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe"},
            "spec": {
                "nodeSelector": {"modelmonitor.io/no-such-node": "true"},
                "containers": [{"name": "c", "image": "modelmonitor.test/none:v0"}],
            },
        },
        "-n",
        namespace,
    )

    def scheduled_condition() -> dict[str, Any] | None:
        pod = kube_cluster.get("pod", "probe", "-n", namespace)
        for cond in pod.get("status", {}).get("conditions", []):
            if cond["type"] == "PodScheduled":
                return dict(cond)
        return None

    cond = wait_for(scheduled_condition, what="PodScheduled condition set by the scheduler")
    assert cond["status"] == "False"
    assert cond["reason"] == reason


def test_service_gets_cluster_ip_and_endpointslice(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube_cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "model"},
            "spec": {"selector": {"app": "model"}, "ports": [{"port": 8080}]},
        },
        "-n",
        namespace,
    )
    svc = kube_cluster.get("service", "model", "-n", namespace)
    cluster_ip = ipaddress.ip_address(svc["spec"]["clusterIP"])
    if kube_cluster.managed:
        assert cluster_ip in ipaddress.ip_network(SERVICE_CIDR)
    # The endpointslice controller (controller-manager) mirrors the Service.
    wait_for(
        lambda: kube_cluster.get(
            "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=model"
        )["items"],
        what="EndpointSlice for the Service",
    )


def test_up_is_idempotent(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.managed or kube_cluster.name is None:
        pytest.skip("only for the local control plane")
    plane = ControlPlane(kube_cluster.name)
    before = plane.load_state()
    t0 = time.monotonic()
    again = plane.up()
    assert time.monotonic() - t0 < 10
    assert before is not None
    assert again.pids == before.pids
    assert again.server == kube_cluster.server


def test_two_clusters_side_by_side(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.managed or kube_cluster.name is None:
        pytest.skip("only for the local control plane")
    first = ControlPlane(kube_cluster.name).load_state()
    assert first is not None
    second = ControlPlane(f"{kube_cluster.name}-b")
    try:
        state = second.up(owner_pid=os.getpid(), timeout=180.0)
        assert state.state_dir != first.state_dir
        assert not set(vars(state.ports).values()) & set(vars(first.ports).values())
        other = KubeCluster(
            kubeconfig=Path(state.kubeconfig), server=state.server, bin_dir=kube_cluster.bin_dir
        )
        # Separate etcd: a namespace made in one is absent from the other.
        other.kubectl("create", "namespace", "only-in-b")
        assert kube_cluster.kubectl("get", "namespace", "only-in-b", check=False).returncode != 0
    finally:
        assert second.down()
    assert not second.state_dir.exists()
    assert not second.status().up
