"""Job mode against a namespace user who may write ConfigMaps (or create Jobs) but not
touch the model's Deployment: the report the operator acts on is the one the run pod
wrote, vouched for by the pod's termination message in the kubelet-written pod status,
and the run it adopts is the one it recorded by uid (docs/security.md)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.kube import KubeCluster, wait_for
from tests.cluster.node import LocalImage, NodeAgent
from tests.e2e.conftest_node import modelmonitor_image
from tests.e2e.monitors import wait_job_run
from tests.e2e.operator_fixtures import (
    JOB_SERVICE_ACCOUNT,
    OperatorProcess,
    free_port,
    start_and_wait,
    watching,
)
from tests.e2e.test_job_mode import ready_for_job_runs
from tests.e2e.test_runs import condition, monitor
from tests.modelserver import ModelServer

FORGER = "mallory"


def configmap_writer(namespace: str) -> list[dict[str, Any]]:
    """User ``mallory``: ConfigMaps in the namespace, nothing else (no Deployments)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-writer"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "list", "create", "update", "patch", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "configmap-writer"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "configmap-writer",
            },
            "subjects": [{"kind": "User", "name": FORGER, "apiGroup": "rbac.authorization.k8s.io"}],
        },
    ]


def gated_image(gate: Path) -> LocalImage:
    """The operator's image, whose run pod, once it has stored and sealed its report,
    waits for ``gate`` before exiting: the forger's window made deterministic."""
    real = modelmonitor_image()
    script = f'"$0" "$@" || exit $?; while [ ! -e {gate} ]; do sleep 0.1; done'
    return LocalImage(entrypoint=["/bin/sh", "-c", script, *real.entrypoint], env=real.env)


def drifted(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` made to say every feature drifted."""
    forged = json.loads(json.dumps(report))
    drift = forged["drift"]
    drift.update({"status": "ok", "drifted": True, "share": 1.0})
    drift["drifted_features"] = drift.get("total_features", 0)
    for feature in drift.get("features") or []:
        feature["drifted"] = True
    return forged


def scaling_monitor(name: str, url: str) -> dict[str, Any]:
    """A job-mode monitor that would scale the model's Deployment on drift."""
    doc = monitor(name, url, "iris")
    doc["spec"]["schedule"] = {
        "interval": "5m",
        "mode": "job",
        "job": {"activeDeadlineSeconds": 90},
    }
    doc["spec"]["actions"] = {
        "consecutiveBreaches": 1,
        "cooldownSeconds": 0,
        "onDrift": ["scale"],
        "scale": {"maxReplicas": 3, "step": 1},
    }
    return doc


def replicas(cluster: KubeCluster, namespace: str) -> int:
    return int(cluster.get("deployment", "iris-model", "-n", namespace)["spec"]["replicas"])


def test_a_report_replaced_by_a_configmap_writer_is_rejected_and_never_acted_on(
    crds: KubeCluster,
    namespace: str,
    node_agent: NodeAgent,
    model_server: ModelServer,
    tmp_path: Path,
) -> None:
    cluster = crds
    image = f"modelmonitor-gated-{namespace}:dev"
    gate = tmp_path / "gate"
    node_agent.register_image(image, gated_image(gate))
    ready_for_job_runs(cluster, namespace, node_agent)
    cluster.apply(configmap_writer(namespace), "-n", namespace)
    metrics_port = free_port()
    op: OperatorProcess = watching(
        cluster,
        tmp_path / "operator.log",
        namespace,
        metrics_port=metrics_port,
        env={"JOB_IMAGE": image, "JOB_SERVICE_ACCOUNT": JOB_SERVICE_ACCOUNT},
    )
    try:
        start_and_wait(op)
        cluster.apply(scaling_monitor("sealed", model_server.url), "-n", namespace)

        def stored() -> dict[str, Any] | None:
            cms = cluster.get("configmaps", "-n", namespace, "-l", "modelmonitor.io/monitor=sealed")
            return cms["items"][0] if cms["items"] else None

        genuine = wait_for(stored, timeout=90, interval=0.2, what="the run pod's report")
        report = json.loads(genuine["data"]["report.json"])
        forged = json.dumps(drifted(report))
        patch = json.dumps({"data": {"report.json": forged}})
        name = genuine["metadata"]["name"]
        # mallory may not touch the Deployment, only ConfigMaps
        denied = cluster.kubectl(
            "scale", "deployment/iris-model", "--replicas=3", "-n", namespace,
            f"--as={FORGER}", check=False,
        )  # fmt: skip
        assert denied.returncode != 0
        cluster.kubectl(
            "patch", "configmap", name, "-n", namespace, "--type=merge", "-p", patch,
            f"--as={FORGER}",
        )  # fmt: skip
        gate.touch()  # the pod exits now; the operator reads the forged ConfigMap

        def unverified() -> dict[str, Any] | None:
            st = cluster.get("mm", "sealed", "-n", namespace).get("status") or {}
            return st if condition(st, "Degraded").get("reason") == "ReportUnverified" else None

        status = wait_for(unverified, timeout=90, interval=0.5, what="the run ReportUnverified")
        assert "does not match what the run pod wrote" in condition(status, "Degraded")["message"]
        assert status["phase"] == "Degraded"
        assert condition(status, "DriftDetected").get("status") != "True"
        assert not status.get("actionHistory")
        assert replicas(cluster, namespace) == 1
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as response:
            metrics = response.read().decode()
        line = f'modelmonitor_reports_unverified_total{{monitor="sealed",namespace="{namespace}"}}'
        assert f"{line} 1.0" in metrics
    finally:
        gate.touch()
        op.stop()


def test_a_job_carrying_the_run_label_is_not_adopted(
    operator_process: OperatorProcess,
    namespace: str,
    node_agent: NodeAgent,
    model_server: ModelServer,
) -> None:
    """Someone who may create Jobs and ConfigMaps plants a finished "run" of the monitor
    with a drifted report: the operator runs its own Job and never reads the planted one."""
    cluster = operator_process.cluster
    ready_for_job_runs(cluster, namespace, node_agent)
    exits = f"job-test/exits-{namespace}:1"
    node_agent.register_image(exits, LocalImage(entrypoint=["/bin/sh", "-c", "exit 0"]))
    planted = "planted-run-forged"
    labels = {"modelmonitor.io/monitor": "planted", "modelmonitor.io/run-id": "forged"}
    cluster.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": planted, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "run", "image": exits}],
                    },
                },
            },
        },
        "-n",
        namespace,
    )
    job = wait_for(
        lambda: (lambda j: j if (j.get("status") or {}).get("succeeded") else None)(
            cluster.get("job", planted, "-n", namespace)
        ),
        timeout=60,
        what="the planted Job finished",
    )
    drifted_report = {
        "started": "2026-01-01T00:00:00+00:00",
        "duration_seconds": 0.1,
        "mode": "job",
        "samples": 99,
        "drift": {"status": "ok", "drifted": True, "share": 1.0},
    }
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{planted}-report", "labels": labels},
            "data": {"report.json": json.dumps(drifted_report)},
        },
        "-n",
        namespace,
    )
    cluster.apply(scaling_monitor("planted", model_server.url), "-n", namespace)
    status = wait_job_run(cluster, namespace, "planted", "a job-mode run reported back")
    assert status["phase"] == "Healthy", status
    assert status["lastRun"]["samples"] != 99
    assert status["activeRun"]["kind"] == "Job"
    assert status["activeRun"]["uid"] != job["metadata"]["uid"]
    assert not status.get("actionHistory")
    assert replicas(cluster, namespace) == 1
    assert cluster.get("job", planted, "-n", namespace)["metadata"]["uid"] == job["metadata"]["uid"]
    assert "not the run recorded in status.activeRun" in operator_process.logs()
