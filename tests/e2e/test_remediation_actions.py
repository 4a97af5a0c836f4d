"""The other actions end to end: scale on latency and back, webhook, retraining Job.

Same real parts as test_remediation.py (control plane, pods run by the harness acting as
a node, the operator process). The webhook receiver is a local HTTP server that records
what it was sent - the one stand-in, for Slack.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest

from tests.cluster.node import LocalImage, NodeAgent
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_remediation import (
    action_metric,
    actions_of,
    deployment,
    events,
    monitor,
    roll_out,
    setup,
    status_of,
    wait_runs,
    wait_status,
)
from tests.webhook import WebhookRecorder

pytestmark = pytest.mark.timeout(420)

SECRET_TOKEN = "SECRET-TOKEN-7f3a9"


def replicas(cluster: Any, namespace: str) -> int:
    return int(deployment(cluster, namespace)["spec"]["replicas"])


def test_scale_up_on_latency_then_back_after_stabilization(
    operator_process: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace, iris_images["v2-slow"])  # slow from the start
    actions = {
        "consecutiveBreaches": 1,
        "cooldownSeconds": 0,
        "onSLOBreach": ["scale"],
        "scale": {"maxReplicas": 2, "step": 1, "stabilizationSeconds": 15},
    }
    cluster.apply(monitor("scaled", actions), "-n", namespace)
    status = wait_status(
        cluster,
        namespace,
        "scaled",
        lambda s: any(a["result"] == "succeeded" for a in actions_of(s, "scale")),
        "a scale-up",
    )
    step = actions_of(status, "scale")[0]
    assert (step["from"], step["to"], step["summary"]) == (1, 2, "scale 1->2"), step
    assert replicas(cluster, namespace) == 2
    # still slow at 2 replicas: the next step finds the cap
    status = wait_status(
        cluster,
        namespace,
        "scaled",
        lambda s: any(a["reason"] == "AtMaxReplicas" for a in actions_of(s, "scale")),
        "the cap reached",
    )
    assert replicas(cluster, namespace) == 2

    # a person fixes the model; replicas stay as the operator left them until stable
    roll_out(cluster, namespace, iris_images["v1"], "v1 fix")
    recovered = wait_status(
        cluster,
        namespace,
        "scaled",
        lambda s: (s.get("incident") or {}).get("state") == "Recovered",
        "Recovered",
    )
    assert replicas(cluster, namespace) == 2
    back = wait_status(
        cluster,
        namespace,
        "scaled",
        lambda s: bool(actions_of(s, "scale-back")),
        "the scale-back",
    )
    entry = actions_of(back, "scale-back")[0]
    assert entry["result"] == "succeeded", entry
    waited = dt_seconds(entry["time"]) - dt_seconds(recovered["incident"]["recoveredAt"])
    assert waited >= 15, (entry["time"], recovered["incident"]["recoveredAt"])
    assert replicas(cluster, namespace) == 1
    after = wait_runs(cluster, namespace, "scaled", 2)
    assert len(actions_of(after, "scale-back")) == 1
    assert replicas(cluster, namespace) == 1
    assert action_metric(operator_process, namespace, "scaled", "scale") == {
        "succeeded": 1.0,
        "skipped": 1.0,
    }


def dt_seconds(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def retrain_image(node_agent: NodeAgent) -> str:
    name = "retrain:dev"
    node_agent.register_image(
        name,
        LocalImage(
            entrypoint=[
                sys.executable,
                "-c",
                "import os, time; print('retraining for', os.environ['MODELMONITOR_INCIDENT']);"
                " time.sleep(2)",
            ]
        ),
    )
    return name


def test_webhook_and_retraining_job_once_and_the_url_never_leaks(
    operator_process: OperatorProcess,
    namespace: str,
    iris_images: dict[str, str],
    retrain_image: str,
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace, iris_images["v2-slow"])  # never healthy: no revision to go to
    with WebhookRecorder() as hook:
        url = hook.url_for(f"/hooks/T000/{SECRET_TOKEN}")
        port = hook.port
        cluster.kubectl(
            "create", "secret", "generic", "slack", f"--from-literal=url={url}", "-n", namespace
        )
        actions = {
            "consecutiveBreaches": 1,
            "onSLOBreach": ["rollback", "notify", "retrain"],
            "notify": {"webhookSecretRef": {"name": "slack", "key": "url"}, "format": "slack"},
            "retrain": {
                "jobTemplate": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "train", "image": retrain_image}],
                        }
                    },
                }
            },
        }
        cluster.apply(monitor("hooked", actions), "-n", namespace)
        (request,) = hook.wait_for(1, timeout=90)
        status = wait_status(
            cluster,
            namespace,
            "hooked",
            lambda s: (
                {a["type"] for a in s.get("actionHistory") or []}
                >= {"rollback", "notify", "retrain"}
            ),
            "three results",
        )
        after = wait_runs(cluster, namespace, "hooked", 3)
        assert len(hook.requests) == 1  # once per incident

    body = request.json
    assert body["text"]
    assert any(block.get("type") == "header" for block in body["blocks"])
    assert "hooked" in json.dumps(body)
    notify = actions_of(status, "notify")[0]
    assert notify["result"] == "succeeded", notify
    assert request.header("X-ModelMonitor-Action-Id") == notify["id"]
    assert request.header("Content-Type") == "application/json"

    rollback = actions_of(status, "rollback")[0]
    assert (rollback["result"], rollback["reason"]) == ("skipped", "NoHealthyRevision"), rollback
    assert (
        deployment(cluster, namespace)["metadata"]["annotations"].get(
            "deployment.kubernetes.io/revision"
        )
        == "1"
    )
    remediated = next(c for c in after["conditions"] if c["type"] == "Remediated")
    assert remediated["status"] == "True"
    assert "rollback: " in remediated["message"]
    assert "healthy" in remediated["message"]

    jobs = cluster.get("jobs", "-n", namespace, "-l", "app.kubernetes.io/component=retrain")[
        "items"
    ]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    job = jobs[0]
    retrain = actions_of(status, "retrain")[0]
    assert job["metadata"]["annotations"]["modelmonitor.io/action-id"] == retrain["id"]
    assert job["metadata"]["labels"]["modelmonitor.io/monitor"] == "hooked"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelMonitor"
    time.sleep(1)

    # the webhook URL is a secret: never in status, Events or the operator's log
    everything = json.dumps(status_of(cluster, namespace, "hooked"))
    everything += json.dumps(events(cluster, namespace, "hooked"))
    everything += operator_process.logs()
    assert SECRET_TOKEN not in everything
    assert f":{port}/" not in everything


def retrain_actions(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "consecutiveBreaches": 1,
        "onSLOBreach": ["retrain"],
        "retrain": {"jobTemplate": {"backoffLimit": 0, "template": {"spec": pod_spec}}},
    }


def test_a_retrain_template_asking_for_the_host_is_refused_and_never_becomes_a_job(
    operator_process: OperatorProcess,
    namespace: str,
    iris_images: dict[str, str],
    retrain_image: str,
) -> None:
    """The issue's attack: a tenant's monitor asks the operator for a privileged pod with
    the node's root file system. It is Invalid before anything runs; a monitor with an
    ordinary template next to it still gets its retraining Job."""
    cluster = operator_process.cluster
    setup(cluster, namespace, iris_images["v2-slow"])  # breaching: retrain is wanted
    attack = {
        "restartPolicy": "Never",
        "hostPID": True,
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [
            {
                "name": "train",
                "image": retrain_image,
                "securityContext": {"privileged": True},
                "volumeMounts": [{"name": "host", "mountPath": "/host"}],
            }
        ],
    }
    allowed = {
        "restartPolicy": "Never",
        "containers": [{"name": "train", "image": retrain_image}],
    }
    cluster.apply(monitor("attacker", retrain_actions(attack)), "-n", namespace)
    cluster.apply(monitor("trainer", retrain_actions(allowed)), "-n", namespace)

    refused = wait_status(
        cluster, namespace, "attacker", lambda s: s.get("phase") == "Invalid", "Invalid"
    )
    ready = next(c for c in refused["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "RetrainTemplateRefused"), ready
    pod = "spec.actions.retrain.jobTemplate.template.spec"
    for field in ("hostPID", "volumes[0].hostPath", "containers[0].securityContext.privileged"):
        assert f"{pod}.{field}" in ready["message"], ready["message"]

    # The neighbour breaches and retrains: the operator acts, just not for the attacker.
    wait_status(
        cluster,
        namespace,
        "trainer",
        lambda s: any(a["result"] == "succeeded" for a in actions_of(s, "retrain")),
        "a retraining Job",
    )
    wait_runs(cluster, namespace, "trainer", 2)
    jobs = cluster.get("jobs", "-n", namespace)["items"]
    owners = [j["metadata"]["labels"].get("modelmonitor.io/monitor") for j in jobs]
    assert owners == ["trainer"], [j["metadata"]["name"] for j in jobs]
    pods = cluster.get("pods", "-n", namespace)["items"]
    assert not [p for p in pods if "attacker" in json.dumps(p["metadata"].get("labels") or {})]
    after = status_of(cluster, namespace, "attacker")
    assert after["phase"] == "Invalid"
    assert not after.get("actionHistory")
