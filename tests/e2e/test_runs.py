"""Monitoring runs end to end: the operator process probing a real MLServer.

The model server is MLServer serving scikit-learn models trained on iris (see
tests/modelserver.py); it runs on loopback outside the cluster, so the monitors address
it by URL. The control plane is real; the Deployments named as targets exist but have no
pods (the harness-as-node tests cover serving from pods).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.iris import FEATURES, IRIS, drifted_rows, reference_csv
from tests.modelserver import ModelServer

__all__ = ["FEATURES", "IRIS", "condition", "drifted_rows", "monitor", "setup", "wait_status"]

RUN_WITHIN = 60.0


def setup(cluster: KubeCluster, namespace: str) -> None:
    labels = {"app": "iris-model"}
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "iris-reference"},
                "data": {"reference.csv": reference_csv()},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "iris-model"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "model", "image": "iris-model:v1"}]},
                    },
                },
            },
        ],
        "-n",
        namespace,
    )


def monitor(name: str, url: str, model: str, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "target": {
            "kind": "Deployment",
            "name": "iris-model",
            "endpoint": {"url": url, "protocol": "v2", "model": model},
        },
        "schedule": {"interval": "10s"},
        "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
        "features": [{"name": f, "type": "numerical"} for f in FEATURES],
        "prediction": {"name": "prediction", "type": "categorical"},
        "data": {"probe": {"samples": 60, "batchSize": 10, "timeoutSeconds": 5}},
    }
    spec.update(extra)
    return {
        "apiVersion": "modelmonitor.io/v1alpha1",
        "kind": "ModelMonitor",
        "metadata": {"name": name},
        "spec": spec,
    }


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


def wait_status(
    cluster: KubeCluster, namespace: str, name: str, predicate: Any, what: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        status = cluster.get("mm", name, "-n", namespace).get("status") or {}
        return status if predicate(status) else None

    try:
        return wait_for(probe, timeout=RUN_WITHIN, interval=0.5, what=f"{name}: {what}")
    except TimeoutError as exc:
        status = cluster.get("mm", name, "-n", namespace).get("status")
        raise TimeoutError(f"{exc}; status: {json.dumps(status)[:3000]}") from None


def test_healthy_model_is_healthy_with_columns_filled(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    slos = [{"name": "p95-latency", "latency": {"percentile": 95, "thresholdMs": 1000}}]
    cluster.apply(monitor("healthy", model_server.url, "iris", slos=slos), "-n", namespace)
    st = wait_status(
        cluster, namespace, "healthy", lambda s: s.get("phase") == "Healthy", "phase Healthy"
    )
    drift = condition(st, "DriftDetected")
    assert drift["status"] == "False", drift
    assert drift["message"].startswith("0/1 features drifted")  # the prediction column
    assert condition(st, "SLOBreached")["status"] == "False"
    assert st["lastRun"]["samples"] == 60
    assert st["drift"]["summary"] == "0/1"
    assert st["sloSummary"] == "1/1"
    row = cluster.kubectl("get", "mm", "healthy", "-n", namespace, "--no-headers").stdout.split()
    assert row[:5] == ["healthy", "iris-model", "Healthy", "0/1", "1/1"], row
    assert re.fullmatch(r"\d+s", row[5]), row  # LAST RUN


def test_drifted_probe_set_names_the_feature(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    # One input of four moved (and, through it, the predictions): 2/5 columns.
    doc = monitor("drifted", model_server.url, "iris", drift={"driftShare": 0.2})
    doc["spec"]["data"]["probe"]["dataset"] = {"inline": drifted_rows()}
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster, namespace, "drifted", lambda s: s.get("phase") == "Drifted", "phase Drifted"
    )
    drift = condition(st, "DriftDetected")
    assert drift["status"] == "True"
    assert "petal_length (ks p=" in drift["message"], drift["message"]
    assert "sepal_width" not in drift["message"]
    names = [f["name"] for f in st["drift"]["features"]]
    assert "petal_length" in names
    events = cluster.get(
        "events", "-n", namespace, "--field-selector", "involvedObject.name=drifted"
    )
    assert [e["reason"] for e in events["items"]].count("DriftDetected") == 1


def test_slow_and_erroring_model_breach_slos(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    slow = monitor(
        "slow",
        model_server.url,
        "iris-slow",
        slos=[{"name": "p95-latency", "latency": {"percentile": 95, "thresholdMs": 250}}],
    )
    slow["spec"]["data"]["probe"].update({"samples": 8, "batchSize": 2, "concurrency": 4})
    flaky = monitor(
        "flaky",
        model_server.url,
        "iris-flaky",
        slos=[{"name": "errors", "objective": 99, "errorRatio": {}}],
    )
    flaky["spec"]["data"]["probe"]["retries"] = 0
    cluster.apply([slow, flaky], "-n", namespace)
    st = wait_status(
        cluster, namespace, "slow", lambda s: s.get("phase") == "Breached", "phase Breached"
    )
    msg = condition(st, "SLOBreached")["message"]
    assert re.search(r"p95 latency 1\d{3} ms > 250 ms this run; burn rate", msg), msg
    st = wait_status(
        cluster, namespace, "flaky", lambda s: s.get("phase") == "Breached", "phase Breached"
    )
    slo = st["slos"][0]
    assert slo["met"] is False
    assert "burn rate" in slo["message"], slo["message"]
    assert max(v for v in slo["burnRates"].values() if v is not None) > 14.4
    assert st["sloSummary"] == "breached: errors"


def test_slo_only_monitor_needs_no_reference(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer
) -> None:
    """No spec.reference: the probe set is the model's input (drift off), probeErrors
    counts the failed requests, durations are strings; nothing is loaded, DRIFT is '-'."""
    cluster = operator_process.cluster
    setup(cluster, namespace)
    doc = monitor(
        "slo-only",
        model_server.url,
        "iris-flaky",
        slos=[{"name": "errors", "objective": 99, "window": "7d", "probeErrors": {}}],
        drift={"enabled": False},
        actions={"cooldown": "10m"},
    )
    del doc["spec"]["reference"], doc["spec"]["features"]
    doc["spec"]["data"]["probe"] = {
        "samples": 20,
        "batchSize": 2,
        "retries": 0,
        "timeout": "5s",
        "dataset": {"inline": drifted_rows()},
    }
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster, namespace, "slo-only", lambda s: s.get("phase") == "Breached", "phase Breached"
    )
    ready = condition(st, "Ready")
    assert ready["status"] == "True", ready
    assert "deprecated" not in ready["message"], ready
    assert "Degraded" not in [c["type"] for c in st["conditions"] if c["status"] == "True"]
    slo = st["slos"][0]
    assert slo["met"] is False
    # A 7-day SLO's first page alert: 1h and 5m scaled by 7/30.
    assert "over 14m and" in slo["message"], slo["message"]
    assert {"14m", "1m10s"} <= set(slo["burnRates"]), slo["burnRates"]
    assert st["drift"]["summary"] == "-"
    row = cluster.kubectl("get", "mm", "slo-only", "-n", namespace, "--no-headers").stdout.split()
    assert row[:4] == ["slo-only", "iris-model", "Breached", "-"], row


def test_unreachable_endpoint_is_degraded(
    operator_process: OperatorProcess, namespace: str
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    doc = monitor("down", "http://127.0.0.1:9", "iris")
    doc["spec"]["data"]["probe"].update({"retries": 0, "timeoutSeconds": 1})
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster, namespace, "down", lambda s: s.get("phase") == "Degraded", "phase Degraded"
    )
    degraded = condition(st, "Degraded")
    assert degraded["reason"] == "EndpointUnreachable"
    assert "127.0.0.1:9" in degraded["message"]
    # No verdict from missing data: drift is not claimed either way.
    assert (
        condition(st, "DriftDetected") == {} or condition(st, "DriftDetected")["status"] != "True"
    )


def test_metrics_exported(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer
) -> None:
    import urllib.request

    cluster = operator_process.cluster
    setup(cluster, namespace)
    cluster.apply(monitor("metered", model_server.url, "iris"), "-n", namespace)
    wait_status(cluster, namespace, "metered", lambda s: "lastRun" in s, "a finished run")
    port = operator_process.args[operator_process.args.index("--metrics-port") + 1]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert f'modelmonitor_dataset_drift_share{{monitor="metered",namespace="{namespace}"}}' in body
    assert "modelmonitor_run_duration_seconds_bucket" in body
    assert 'modelmonitor_feature_drift_score{feature="prediction"' in body
    json.dumps(body[:10])
