"""A Deployment of the versioned iris model rolls v1 -> v2-slow and back, and each rollout
really changes the model that answers: its version, its latency, and the one ready
endpoint behind the Service."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.model_images import (
    HTTP_PORT,
    INFER_PATH,
    LATENCY_THRESHOLD_SECONDS,
    SLOW_SECONDS,
    iris_deployment,
)
from tests.iris import FEATURES, IRIS

Doc = dict[str, Any]
NAME = "iris"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
CHANGE_CAUSE = "kubernetes.io/change-cause"

# Plain HTTP to pod IPs, never through a proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Answer:
    status: int
    seconds: float
    body: Doc


def iris_row() -> list[float]:
    """The first iris row (a setosa) as the model's four features."""
    first = IRIS.read_text().splitlines()[1].split(",")
    return [float(v) for v in first[: len(FEATURES)]]


def infer(ip: str) -> Answer:
    """One v2 inference request for one iris row, straight to the pod's address."""
    request = {
        "inputs": [
            {"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP64", "data": iris_row()}
        ]
    }
    req = urllib.request.Request(
        f"http://{ip}:{HTTP_PORT}{INFER_PATH}",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.monotonic()
    try:
        with _opener.open(req, timeout=10) as response:
            body = json.loads(response.read())
            return Answer(response.status, time.monotonic() - started, body)
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, time.monotonic() - started, {})


def infer_or_none(ip: str) -> Answer | None:
    try:
        return infer(ip)
    except (urllib.error.URLError, OSError):
        return None


def replica_sets(cluster: KubeCluster, namespace: str) -> dict[str, Doc]:
    """The Deployment's ReplicaSets by image."""
    items = cluster.get("replicasets", "-n", namespace, "-l", f"app={NAME}")["items"]
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in items}


def roll_out(
    cluster: KubeCluster, node_agent: NodeAgent, namespace: str, what: str, started: float
) -> Doc:
    """Wait for the rollout to complete; print how long it took since ``started`` (the
    monotonic time of the change); return the serving pod (the ready pod of the
    ReplicaSet of the Deployment's current revision)."""
    try:
        cluster.kubectl(
            "rollout", "status", f"deployment/{NAME}", "-n", namespace, "--timeout=60s", timeout=70
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{node_agent.describe(namespace)}") from exc
    took = time.monotonic() - started
    revision = cluster.get("deployment", NAME, "-n", namespace)["metadata"]["annotations"][REVISION]
    (current,) = [
        rs
        for rs in replica_sets(cluster, namespace).values()
        if rs["metadata"]["annotations"].get(REVISION) == revision
    ]
    hash_ = current["metadata"]["labels"]["pod-template-hash"]
    pods = cluster.get("pods", "-n", namespace, "-l", f"pod-template-hash={hash_}")["items"]
    live: list[Doc] = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1, live
    pod = live[0]
    status = pod["status"]
    ready_at = next(c["lastTransitionTime"] for c in status["conditions"] if c["type"] == "Ready")
    started_at = status["containerStatuses"][0]["state"]["running"]["startedAt"]
    print(
        f"\n[rollout] {what}: complete in {took:.1f} s (revision {revision}); "
        f"pod {pod['metadata']['name']} created {pod['metadata']['creationTimestamp']}, "
        f"container started {started_at}, ready {ready_at}"
    )
    return pod


def ready_endpoint_ips(cluster: KubeCluster, namespace: str) -> list[str]:
    slices = cluster.get(
        "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={NAME}"
    )["items"]
    return sorted(
        address
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for address in e["addresses"]
    )


def wait_for_only_endpoint(cluster: KubeCluster, namespace: str, ip: str) -> None:
    wait_for(
        lambda: ready_endpoint_ips(cluster, namespace) == [ip],
        timeout=20,
        what=f"Service {NAME} with the one ready endpoint {ip}",
    )


def test_rollout_to_a_slow_model_and_undo_change_the_serving_model(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str, iris_images: dict[str, str]
) -> None:
    v1, slow = iris_images["v1"], iris_images["v2-slow"]
    endpoints = node_agent.routable

    started = time.monotonic()
    kube_cluster.apply(iris_deployment(NAME, v1, change_cause="deploy v1"), "-n", namespace)
    first = roll_out(kube_cluster, node_agent, namespace, "deploy v1", started)
    dep = kube_cluster.get("deployment", NAME, "-n", namespace)
    conditions = {c["type"]: c["status"] for c in dep["status"]["conditions"]}
    assert conditions["Available"] == "True"
    answer = infer(first["status"]["podIP"])
    assert answer.status == 200, answer
    assert answer.body["model_name"] == "iris"
    assert answer.body["model_version"] == "v1"
    assert answer.body["outputs"][0]["data"] == [0]  # setosa
    assert answer.seconds < LATENCY_THRESHOLD_SECONDS
    if endpoints:
        wait_for_only_endpoint(kube_cluster, namespace, first["status"]["podIP"])

    started = time.monotonic()
    kube_cluster.kubectl("set", "image", f"deployment/{NAME}", f"model={slow}", "-n", namespace)
    kube_cluster.kubectl(
        "annotate",
        f"deployment/{NAME}",
        f"{CHANGE_CAUSE}=roll out v2-slow",
        "--overwrite",
        "-n",
        namespace,
    )
    second = roll_out(kube_cluster, node_agent, namespace, "v1 -> v2-slow (set image)", started)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["spec"]["containers"][0]["image"] == slow
    answer = infer(second["status"]["podIP"])
    assert answer.status == 200, answer
    assert answer.body["model_version"] == "v2-slow"
    assert answer.seconds > LATENCY_THRESHOLD_SECONDS
    assert answer.seconds >= SLOW_SECONDS * 0.9
    if endpoints:
        wait_for_only_endpoint(kube_cluster, namespace, second["status"]["podIP"])

    started = time.monotonic()
    kube_cluster.kubectl("rollout", "undo", f"deployment/{NAME}", "-n", namespace)
    third = roll_out(kube_cluster, node_agent, namespace, "v2-slow -> v1 (undo)", started)
    assert third["spec"]["containers"][0]["image"] == v1
    assert third["metadata"]["uid"] not in (first["metadata"]["uid"], second["metadata"]["uid"])
    answer = infer(third["status"]["podIP"])
    assert answer.status == 200, answer
    assert answer.body["model_version"] == "v1"
    assert answer.seconds < LATENCY_THRESHOLD_SECONDS
    if endpoints:
        wait_for_only_endpoint(kube_cluster, namespace, third["status"]["podIP"])

    # Kubernetes' revision bookkeeping: undo reuses v1's ReplicaSet as revision 3 and
    # records its old revision in the history; the Deployment takes its change-cause back.
    sets = replica_sets(kube_cluster, namespace)
    assert set(sets) == {v1, slow}
    v1_notes, slow_notes = (
        sets[v1]["metadata"]["annotations"],
        sets[slow]["metadata"]["annotations"],
    )
    assert v1_notes[REVISION] == "3"
    assert v1_notes[REVISION_HISTORY] == "1"
    assert v1_notes[CHANGE_CAUSE] == "deploy v1"
    assert slow_notes[REVISION] == "2"
    assert slow_notes[CHANGE_CAUSE] == "roll out v2-slow"
    assert sets[v1]["status"]["replicas"] == 1
    assert sets[slow]["spec"]["replicas"] == 0
    dep = kube_cluster.get("deployment", NAME, "-n", namespace)
    assert dep["metadata"]["annotations"][REVISION] == "3"
    assert dep["metadata"]["annotations"][CHANGE_CAUSE] == "deploy v1"
    history = kube_cluster.kubectl("rollout", "history", f"deployment/{NAME}", "-n", namespace)
    rows = [line.split(None, 1) for line in history.stdout.splitlines()[2:] if line.strip()]
    assert rows == [["2", "roll out v2-slow"], ["3", "deploy v1"]], history.stdout

    # The replaced pods' servers are gone with their pods.
    replaced = {first["status"]["podIP"], second["status"]["podIP"]} - {third["status"]["podIP"]}
    wait_for(
        lambda: all(infer_or_none(ip) is None for ip in replaced),
        timeout=20,
        what="the replaced model servers stopped",
    )
    if not endpoints:
        pytest.skip("loopback pod IPs: the API server refuses them in EndpointSlices")
