"""Remediation end to end: a bad rollout detected and undone by the operator.

Everything is real: the control plane (the deployment controller makes the ReplicaSets
and revisions), the harness acting as a node (each pod is an MLServer process on its own
address, so a rollback really changes which model answers), and the operator process.
Model versions (tests/e2e/model_images.py): ``v1`` answers in ~10 ms, ``v2-slow`` in
0.6 s, against a 300 ms p95 latency SLO.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.exit_before_action import EXIT_STATUS
from tests.e2e.model_images import iris_deployment
from tests.e2e.operator_fixtures import OperatorProcess, free_port
from tests.iris import FEATURES, reference_csv

INTERVAL_SECONDS = 10
WAIT = 120.0

# Each test watches several 10 s monitoring runs: detection, action, recovery, quiet runs.
pytestmark = pytest.mark.timeout(420)


def setup(cluster: KubeCluster, namespace: str, image: str) -> None:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "iris-reference"},
            "data": {"reference.csv": reference_csv()},
        },
        *iris_deployment("iris", image, change_cause="v1"),
    ]
    cluster.apply(docs, "-n", namespace)
    cluster.kubectl("rollout", "status", "deployment/iris", "-n", namespace, "--timeout=90s")


def monitor(name: str, actions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {
            "kind": "Deployment",
            "name": "iris",
            "endpoint": {
                "service": {"name": "iris", "port": 8080},
                "protocol": "v2",
                "model": "iris",
            },
        },
        "schedule": {"interval": f"{INTERVAL_SECONDS}s"},
        "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
        "features": [{"name": f, "type": "numerical"} for f in FEATURES],
        "data": {"probe": {"samples": 20, "batchSize": 5, "timeoutSeconds": 5}},
        "drift": {"enabled": False},
        # A 30 s SLO window and burn-rate windows scaled by 1/720 (1h -> 5s): the slow
        # requests of a bad version age out within a few runs after it is gone.
        "slos": [
            {
                "name": "p95-latency",
                "latency": {"percentile": 95, "thresholdMs": 300},
                "window": "30s",
                "burnRate": {"windowScale": 0.001388889},
            }
        ],
        "actions": actions,
    }
    spec.update(extra)
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": name},
        "spec": spec,
    }


def status_of(cluster: KubeCluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(cluster.get("mm", name, "-n", namespace).get("status") or {})


def wait_status(
    cluster: KubeCluster,
    namespace: str,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = WAIT,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = status_of(cluster, namespace, name)
        return status if predicate(status) else None

    try:
        return wait_for(probe, timeout=timeout, interval=0.25, what=f"{name}: {what}")
    except TimeoutError as exc:
        status = status_of(cluster, namespace, name)
        raise TimeoutError(f"{exc}; status: {json.dumps(status)[:4000]}") from None


def deployment(cluster: KubeCluster, namespace: str) -> dict[str, Any]:
    return dict(cluster.get("deployment", "iris", "-n", namespace))


def image_of(cluster: KubeCluster, namespace: str) -> str:
    return str(deployment(cluster, namespace)["spec"]["template"]["spec"]["containers"][0]["image"])


def roll_out(cluster: KubeCluster, namespace: str, image: str, cause: str) -> None:
    cluster.kubectl("set", "image", "deployment/iris", f"model={image}", "-n", namespace)
    cluster.kubectl(
        "annotate",
        "deployment/iris",
        f"kubernetes.io/change-cause={cause}",
        "--overwrite",
        "-n",
        namespace,
    )


def actions_of(status: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in status.get("actionHistory") or [] if a.get("type") == kind]


def events(cluster: KubeCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    found = cluster.get(
        "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}"
    )
    return list(found["items"])


def metrics_port(op: OperatorProcess) -> int:
    args = list(op.args)
    return int(args[args.index("--metrics-port") + 1])


def action_metric(
    op: OperatorProcess, namespace: str, monitor: str, action: str
) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port(op)}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found: dict[str, float] = {}
    pattern = re.compile(r"^modelmonitor_actions_total\{([^}]*)\} (\S+)$", re.M)
    for labels, value in pattern.findall(text):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if (pairs.get("namespace"), pairs.get("monitor"), pairs.get("action")) == (
            namespace,
            monitor,
            action,
        ):
            found[pairs["result"]] = float(value)
    return found


def wait_runs(cluster: KubeCluster, namespace: str, name: str, runs: int) -> dict[str, Any]:
    """Wait until ``runs`` more monitoring runs have finished; return the last status."""
    seen: list[str] = []

    def probe() -> dict[str, Any] | None:
        status = status_of(cluster, namespace, name)
        stamp = (status.get("lastRun") or {}).get("time")
        if stamp and (not seen or seen[-1] != stamp):
            seen.append(stamp)
        return status if len(seen) > runs else None

    return wait_for(
        probe, timeout=runs * INTERVAL_SECONDS + 60, interval=0.5, what=f"{runs} more runs"
    )


def get_row(cluster: KubeCluster, namespace: str, name: str) -> str:
    return str(cluster.kubectl("get", "mm", name, "-n", namespace).stdout)


@pytest.fixture
def good_model(
    operator_process: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> OperatorProcess:
    """v1 serving behind Deployment ``iris``, and the operator watching the namespace."""
    setup(operator_process.cluster, namespace, iris_images["v1"])
    return operator_process


def healthy_with_revision(
    cluster: KubeCluster, namespace: str, name: str, revision: str
) -> dict[str, Any]:
    return wait_status(
        cluster,
        namespace,
        name,
        lambda s: (
            s.get("phase") == "Healthy"
            and any(r.get("revision") == revision for r in s.get("healthyRevisions") or [])
        ),
        f"Healthy with revision {revision} recorded",
    )


def test_bad_rollout_is_rolled_back_once_and_the_slo_recovers(
    good_model: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = good_model.cluster
    actions = {"consecutiveBreaches": 2, "cooldownSeconds": 600, "onSLOBreach": ["rollback"]}
    cluster.apply(monitor("iris", actions), "-n", namespace)
    healthy_with_revision(cluster, namespace, "iris", "1")

    roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
    rolled_out = time.monotonic()
    breached = wait_status(
        cluster, namespace, "iris", lambda s: s.get("phase") == "Breached", "phase Breached"
    )
    detected = time.monotonic()
    print(f"\nrollout -> Breached: {detected - rolled_out:.1f}s")
    print(get_row(cluster, namespace, "iris"))
    assert breached["incident"]["state"] in ("Suspect", "Breached", "Remediating")

    done = wait_status(
        cluster,
        namespace,
        "iris",
        lambda s: (s.get("lastAction") or {}).get("type") == "rollback",
        "a rollback",
    )
    acted = time.monotonic()
    last = done["lastAction"]
    assert last["result"] == "succeeded", last
    assert last["reason"] == "RolledBack"
    assert (last["fromRevision"], last["toRevision"]) == (2, 1), last
    assert last["summary"] == "rollback rev 2->1"
    # from the operator's own timestamps (second precision): breach confirmed -> acted
    breach_cond = next(c for c in done["conditions"] if c["type"] == "SLOBreached")
    print(
        f"detection (first Breached seen) -> rollback recorded: {acted - detected:.1f}s; "
        f"rollout -> rollback recorded: {acted - rolled_out:.1f}s; "
        f"SLOBreached since {breach_cond['lastTransitionTime']}, rollback at {last['time']}"
    )
    print(get_row(cluster, namespace, "iris"))

    cluster.kubectl("rollout", "status", "deployment/iris", "-n", namespace, "--timeout=90s")
    dep = deployment(cluster, namespace)
    assert image_of(cluster, namespace) == iris_images["v1"]
    annotations = dep["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == "v1"
    assert annotations["deployment.kubernetes.io/revision"] == "3"  # v1's RS renumbered
    assert annotations["modelmonitor.io/action-id"] == last["id"]

    recovered = wait_status(
        cluster,
        namespace,
        "iris",
        lambda s: s.get("phase") == "Healthy" and s["incident"]["state"] == "Recovered",
        "Healthy and Recovered",
    )
    print(get_row(cluster, namespace, "iris"))
    assert recovered["incident"]["pending"] == []

    after = wait_runs(cluster, namespace, "iris", 5)
    assert after["phase"] == "Healthy"
    assert len(actions_of(after, "rollback")) == 1, after["actionHistory"]
    assert (
        deployment(cluster, namespace)["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        == "3"
    )
    reasons = [e["reason"] for e in events(cluster, namespace, "iris")]
    assert reasons.count("RolledBack") == 1, reasons
    assert reasons.count("ActionPlanned") == 1, reasons
    assert "IncidentConfirmed" in reasons
    assert "IncidentResolved" in reasons
    assert action_metric(good_model, namespace, "iris", "rollback") == {"succeeded": 1.0}
    # the rolled-back revision was seen healthy again, under its new number
    revisions = {r["revision"]: r for r in after["healthyRevisions"]}
    assert "3" in revisions
    assert "1" not in revisions


def test_dry_run_reports_what_it_would_do_and_changes_nothing(
    good_model: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = good_model.cluster
    actions = {"consecutiveBreaches": 1, "dryRun": True, "onSLOBreach": ["rollback"]}
    cluster.apply(monitor("dry", actions), "-n", namespace)
    healthy_with_revision(cluster, namespace, "dry", "1")
    roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
    status = wait_status(
        cluster,
        namespace,
        "dry",
        lambda s: (s.get("lastAction") or {}).get("result") == "dryrun",
        "a dry-run decision",
    )
    last = status["lastAction"]
    assert last["message"].startswith("would roll back deployment/iris from revision 2 to 1"), last
    remediated = next(c for c in status["conditions"] if c["type"] == "Remediated")
    assert (remediated["status"], remediated["reason"]) == ("False", "DryRun")
    after = wait_runs(cluster, namespace, "dry", 2)
    assert image_of(cluster, namespace) == iris_images["v2-slow"]
    assert after["phase"] == "Breached"
    assert len(actions_of(after, "rollback")) == 1  # reported once per incident
    assert "modelmonitor.io/action-id" not in deployment(cluster, namespace)["metadata"].get(
        "annotations", {}
    )
    assert action_metric(good_model, namespace, "dry", "rollback") == {"dryrun": 1.0}


def test_a_second_incident_inside_the_cooldown_is_not_acted_upon(
    good_model: OperatorProcess, namespace: str, iris_images: dict[str, str]
) -> None:
    cluster = good_model.cluster
    actions = {"consecutiveBreaches": 1, "cooldownSeconds": 3600, "onSLOBreach": ["rollback"]}
    cluster.apply(monitor("cool", actions), "-n", namespace)
    healthy_with_revision(cluster, namespace, "cool", "1")
    roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
    wait_status(
        cluster,
        namespace,
        "cool",
        lambda s: (
            s.get("phase") == "Healthy" and (s.get("incident") or {}).get("state") == "Recovered"
        ),
        "first incident rolled back and recovered",
    )
    roll_out(cluster, namespace, iris_images["v2-slow"], "v2 again")
    status = wait_status(
        cluster,
        namespace,
        "cool",
        lambda s: (s.get("lastAction") or {}).get("reason") == "Cooldown",
        "the second rollback suppressed by the cooldown",
    )
    assert "cooldown is 1h" in status["lastAction"]["message"]
    after = wait_runs(cluster, namespace, "cool", 2)
    assert image_of(cluster, namespace) == iris_images["v2-slow"]
    assert [a["result"] for a in actions_of(after, "rollback")] == ["succeeded", "suppressed"]
    assert action_metric(good_model, namespace, "cool", "rollback") == {
        "succeeded": 1.0,
        "suppressed": 1.0,
    }


def test_operator_killed_between_decision_and_action_acts_once_after_restart(
    good_model: OperatorProcess, namespace: str, iris_images: dict[str, str], tmp_path: Path
) -> None:
    cluster = good_model.cluster
    actions = {"consecutiveBreaches": 1, "onSLOBreach": ["rollback"]}
    cluster.apply(monitor("crash", actions), "-n", namespace)
    healthy_with_revision(cluster, namespace, "crash", "1")
    good_model.stop()
    faulty = OperatorProcess(
        cluster,
        tmp_path / "faulty.log",
        *good_model.args,
        env=good_model.extra_env,
        module="tests.e2e.exit_before_action",
    )
    faulty.start()
    try:
        roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
        wait_for(lambda: not faulty.alive(), timeout=WAIT, what="the operator exits before acting")
    finally:
        faulty.kill()
    assert "fault injection: exiting before rollback" in faulty.logs()
    assert faulty.proc is not None
    assert faulty.proc.returncode == EXIT_STATUS  # it exited there, it was not killed
    status = status_of(cluster, namespace, "crash")
    pending = status["incident"]["pending"]
    assert [p["action"] for p in pending] == ["rollback"], status["incident"]
    assert image_of(cluster, namespace) == iris_images["v2-slow"]  # decided, not done

    good_model.start()  # a fresh operator finds the recorded intent and carries it out
    done = wait_status(
        cluster,
        namespace,
        "crash",
        lambda s: (s.get("lastAction") or {}).get("type") == "rollback",
        "the recorded rollback carried out after the restart",
    )
    assert done["lastAction"]["id"] == pending[0]["id"]
    assert done["lastAction"]["result"] == "succeeded"
    after = wait_runs(cluster, namespace, "crash", 3)
    assert len(actions_of(after, "rollback")) == 1
    assert image_of(cluster, namespace) == iris_images["v1"]
    reasons = [e["reason"] for e in events(cluster, namespace, "crash")]
    assert reasons.count("IncidentConfirmed") == 1, reasons
    assert reasons.count("ActionPlanned") == 1, reasons
    revision = deployment(cluster, namespace)["metadata"]["annotations"]
    assert revision["deployment.kubernetes.io/revision"] == "3"


def test_killed_before_posting_the_intent_s_events_they_are_posted_once_after_restart(
    good_model: OperatorProcess, namespace: str, iris_images: dict[str, str], tmp_path: Path
) -> None:
    """Killed after writing the intent, before its Events: the restarted operator posts
    IncidentConfirmed and ActionPlanned (each exactly once) and acts once."""
    cluster = good_model.cluster
    actions = {"consecutiveBreaches": 1, "onSLOBreach": ["rollback"]}
    cluster.apply(monitor("lost", actions), "-n", namespace)
    healthy_with_revision(cluster, namespace, "lost", "1")
    good_model.stop()
    faulty = OperatorProcess(
        cluster,
        tmp_path / "faulty.log",
        *good_model.args,
        env={**good_model.extra_env, "EXIT_BEFORE": "events"},
        module="tests.e2e.exit_before_action",
    )
    faulty.start()
    try:
        roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
        wait_for(lambda: not faulty.alive(), timeout=WAIT, what="the operator exits before Events")
    finally:
        faulty.kill()
    assert "fault injection: exiting before the Events of" in faulty.logs()
    assert faulty.proc is not None
    assert faulty.proc.returncode == EXIT_STATUS
    pending = status_of(cluster, namespace, "lost")["incident"]["pending"]
    assert [p["action"] for p in pending] == ["rollback"]
    reasons = [e["reason"] for e in events(cluster, namespace, "lost")]
    assert "IncidentConfirmed" not in reasons  # lost with the process
    assert "ActionPlanned" not in reasons

    good_model.start()
    done = wait_status(
        cluster,
        namespace,
        "lost",
        lambda s: (s.get("lastAction") or {}).get("type") == "rollback",
        "the recorded rollback carried out after the restart",
    )
    assert done["lastAction"]["id"] == pending[0]["id"]
    after = wait_runs(cluster, namespace, "lost", 2)
    assert len(actions_of(after, "rollback")) == 1
    posted = events(cluster, namespace, "lost")
    confirmed = [e for e in posted if e["reason"] == "IncidentConfirmed"]
    planned = [e for e in posted if e["reason"] == "ActionPlanned"]
    assert len(confirmed) == 1, confirmed
    assert len(planned) == 1, planned
    assert confirmed[0].get("count", 1) == 1
    assert planned[0].get("count", 1) == 1
    assert pending[0]["incident"] in confirmed[0]["message"]
    assert f"carrying out rollback ({pending[0]['id']})" in planned[0]["message"]
    assert [e["reason"] for e in posted].count("RolledBack") == 1


def test_two_operator_replicas_never_both_act(
    good_model: OperatorProcess, namespace: str, iris_images: dict[str, str], tmp_path: Path
) -> None:
    """The leader Lease lets one replica act; the status-guarded intent stops a second one."""
    cluster = good_model.cluster
    args = list(good_model.args)
    for flag in ("--metrics-port", "--health-port", "--payload-port"):
        args[args.index(flag) + 1] = str(free_port())
    second = OperatorProcess(cluster, tmp_path / "second.log", *args, env=good_model.extra_env)
    second.start()
    try:
        wait_for(lambda: "modelmonitor operator starting" in second.logs(), timeout=60)
        actions = {"consecutiveBreaches": 1, "onSLOBreach": ["rollback"]}
        cluster.apply(monitor("twice", actions), "-n", namespace)
        healthy_with_revision(cluster, namespace, "twice", "1")
        roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
        wait_status(
            cluster,
            namespace,
            "twice",
            lambda s: (s.get("incident") or {}).get("state") == "Recovered",
            "rolled back and recovered",
        )
        after = wait_runs(cluster, namespace, "twice", 2)
        assert second.alive()
        assert good_model.alive()
    finally:
        second.stop()
    assert len(actions_of(after, "rollback")) == 1, after["actionHistory"]
    annotations = deployment(cluster, namespace)["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    reasons = [e["reason"] for e in events(cluster, namespace, "twice")]
    assert reasons.count("RolledBack") == 1, reasons
