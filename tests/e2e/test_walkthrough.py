"""The walkthrough on kind (docs/walkthrough-kind.md), as far as it runs without a container
runtime: its model manifest and its monitor, applied unchanged, end Healthy.

docs/examples/kind/iris-model.yaml runs MLServer's public image twice: an init container
trains the model from the ConfigMap's train.py into an emptyDir, the server container
serves it. Here the node plays ``docker.io/seldonio/mlserver:1.7.1`` with MLServer 1.7.1
from PyPI (the image's version, tests/modelserver.py): the ``python`` and ``mlserver`` of
the container's command are that environment's, as they are on the image's PATH. Then
docs/examples/iris.yaml and its reference ConfigMap are applied as the walkthrough says,
and the real operator must call the model Healthy.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.images import ContainerContext, ImageRunner, Launch
from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import NodeAgent
from tests.e2e.operator_fixtures import OperatorProcess
from tests.modelserver import ensure_venv

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MODEL_MANIFEST = ROOT / "docs" / "examples" / "kind" / "iris-model.yaml"
MONITOR = ROOT / "docs" / "examples" / "iris.yaml"
REFERENCE = ROOT / "docs" / "examples" / "data" / "iris-reference-predictions.csv"
MLSERVER_IMAGE = "docker.io/seldonio/mlserver:1.7.1"
# The request docs/walkthrough-kind.md sends with curl.
REQUEST = {
    "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
}


def mlserver_image(venv: Path) -> ImageRunner:
    """MLServer's image as the environment's commands, bound to the pod's IP."""
    tools = {"python": venv / "bin" / "python", "mlserver": venv / "bin" / "mlserver"}

    def run(ctx: ContainerContext) -> Launch:
        command = [*ctx.command, *ctx.args]
        if not command or command[0] not in tools:
            raise ValueError(f"this image runs only {sorted(tools)}, not {command[:1]}")
        return Launch(
            argv=[str(tools[command[0]]), *command[1:]],
            cwd=ctx.pod_dir,
            env={
                # The image listens on 0.0.0.0; here every port must be on the pod's IP.
                "MLSERVER_HOST": ctx.pod_ip,
                "MLSERVER_METRICS_DIR": str(ctx.pod_dir / "mlserver-metrics"),
                "MLSERVER_ENVIRONMENTS_DIR": str(ctx.pod_dir / "mlserver-envs"),
                # Inference in the server process: fewer processes on a shared machine.
                "MLSERVER_PARALLEL_WORKERS": "0",
            },
        )

    return run


@pytest.fixture
def mlserver(node_agent: NodeAgent) -> Iterator[str]:
    node_agent.register_image(MLSERVER_IMAGE, mlserver_image(ensure_venv()))
    try:
        yield MLSERVER_IMAGE
    finally:
        node_agent.unregister_image(MLSERVER_IMAGE)


def infer(pod_ip: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://{pod_ip}:8080/v2/models/iris/infer",
        data=json.dumps(REQUEST).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def test_the_walkthrough_model_serves_and_its_monitor_is_healthy(
    operator_process: OperatorProcess, namespace: str, mlserver: str, node_agent: NodeAgent
) -> None:
    cluster: KubeCluster = operator_process.cluster
    images = {
        c["image"]
        for doc in yaml.safe_load_all(MODEL_MANIFEST.read_text())
        if doc and doc["kind"] == "Deployment"
        for c in doc["spec"]["template"]["spec"]["initContainers"]
        + doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {mlserver}, "the manifest runs MLServer's public image only"

    cluster.kubectl("apply", "-n", namespace, "-f", str(MODEL_MANIFEST))
    rollout = cluster.kubectl(
        "rollout", "status", "deploy/iris", "-n", namespace, "--timeout=120s", check=False
    )
    assert rollout.returncode == 0, (
        f"{rollout.stdout}{rollout.stderr}\n{node_agent.describe(namespace, 'app=iris')}"
    )
    pod = cluster.get("pods", "-n", namespace, "-l", "app=iris")["items"][0]
    trained = node_agent.pod_log(namespace, pod["metadata"]["name"], "train")
    assert '"accuracy"' in trained, trained

    answer = infer(pod["status"]["podIP"])
    assert answer["model_name"] == "iris"
    assert answer["model_version"] == "v1"
    assert answer["outputs"][0]["name"] == "predict"
    assert answer["outputs"][0]["data"] == [0]  # a setosa

    cluster.kubectl(
        "create",
        "configmap",
        "iris-reference",
        "-n",
        namespace,
        f"--from-file=reference.csv={REFERENCE}",
    )
    cluster.kubectl("apply", "-n", namespace, "-f", str(MONITOR))

    def healthy() -> dict[str, Any] | None:
        status = dict(cluster.get("mm", "iris", "-n", namespace).get("status") or {})
        return status if status.get("phase") == "Healthy" else None

    try:
        status = wait_for(healthy, timeout=120, what="the walkthrough's monitor Healthy")
    except TimeoutError:
        described = cluster.kubectl("describe", "mm", "iris", "-n", namespace).stdout
        pytest.fail(f"{described}\n{operator_process.logs()[-4000:]}")
    # The model's answers on 100 reference rows against the reference's prediction column.
    assert status["drift"]["summary"] == "0/1", status["drift"]
    assert status["sloSummary"] == "1/1", status.get("slos")
    row = cluster.kubectl("get", "mm", "iris", "-n", namespace).stdout
    print(row)  # the row docs/walkthrough-kind.md shows
    print(cluster.kubectl("describe", "mm", "iris", "-n", namespace).stdout)
