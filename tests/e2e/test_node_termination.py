"""The harness node's termination messages: what a container writes to its
``terminationMessagePath`` (or, with FallbackToLogsOnError, its log's tail when it failed
silently) is its terminated state's ``message``, as a kubelet reports it."""

from __future__ import annotations

import sys
from typing import Any

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import LocalImage, NodeAgent

Doc = dict[str, Any]


def python_image(node_agent: NodeAgent, name: str, code: str) -> str:
    node_agent.register_image(name, LocalImage(entrypoint=[sys.executable, "-c", code]))
    return name


def test_termination_messages_follow_the_kubelets_rules(
    kube_cluster: KubeCluster, node_agent: NodeAgent, namespace: str
) -> None:
    writes = python_image(
        node_agent,
        f"node-test/term-writes-{namespace}:1",
        "import os; open(os.environ['MSG'], 'w').write('sealed ' + 'x' * 5000)",
    )
    fails = python_image(
        node_agent,
        f"node-test/term-fails-{namespace}:1",
        "print('\\n'.join(f'line {i}' for i in range(100))); raise SystemExit(3)",
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "term"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "default-path",
                    "image": writes,
                    "env": [{"name": "MSG", "value": "/dev/termination-log"}],
                },
                {
                    "name": "own-path",
                    "image": writes,
                    "env": [{"name": "MSG", "value": "/tmp/my-message"}],
                    "terminationMessagePath": "/tmp/my-message",
                },
                {
                    "name": "fallback",
                    "image": fails,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                },
                {"name": "file-only", "image": fails},
            ],
        },
    }
    kube_cluster.apply(pod, "-n", namespace)

    def finished() -> Doc | None:
        got: Doc = kube_cluster.get("pod", "term", "-n", namespace)
        return got if got.get("status", {}).get("phase") in ("Succeeded", "Failed") else None

    try:
        done = wait_for(finished, timeout=60, what="the pod to finish")
    except (AssertionError, TimeoutError) as exc:
        raise AssertionError(f"{exc}\n{node_agent.describe(namespace)}") from exc
    states = {s["name"]: s["state"]["terminated"] for s in done["status"]["containerStatuses"]}
    for name in ("default-path", "own-path"):
        assert states[name]["exitCode"] == 0
        message = states[name]["message"]
        assert message.startswith("sealed x")
        assert len(message.encode()) == 4096  # capped, as the kubelet does
    fallback = states["fallback"]["message"]
    assert fallback.splitlines()[-1] == "line 99"
    assert len(fallback.splitlines()) <= 80
    assert len(fallback.encode()) <= 2048
    assert "message" not in states["file-only"]  # policy File: no log fallback
