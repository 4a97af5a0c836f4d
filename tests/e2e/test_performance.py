"""Estimated model performance end to end: the operator process probing a real MLServer.

The reference is the iris data with the true species and the class probabilities the
served model itself gives each row (asked from the same MLServer), so the calibration the
operator fits is the real model's. The probe set is the reference's 150 rows, on which
the model's real accuracy is known (its training score). A second monitor points the
same reference at ``iris-shuffled`` (a model trained on shuffled labels): its estimate
must drop below the floor and PerformanceDegraded must turn True. A third monitor gives
the bad model the golden labels: it is judged on realized accuracy, and the realized
value outside the estimate's interval is ConceptDrift.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest

from tests.cluster.kube import KubeCluster
from tests.e2e import monitors
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import condition, wait_status
from tests.iris import FEATURES, IRIS, SPECIES
from tests.modelserver import ModelServer

pytestmark = pytest.mark.timeout(600)


def _iris() -> tuple[np.ndarray, np.ndarray]:
    lines = IRIS.read_text().splitlines()[1:]
    x = np.asarray([[float(v) for v in line.split(",")[:4]] for line in lines])
    y = np.asarray([SPECIES[line.split(",")[4]] for line in lines])
    return x, y


def _predict_proba(server: ModelServer, model: str, x: np.ndarray) -> np.ndarray:
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(x.shape),
                "datatype": "FP64",
                "data": x.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    request = urllib.request.Request(
        f"{server.url}/v2/models/{model}/infer",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        out = json.loads(reply.read())["outputs"][0]
    return np.asarray(out["data"], dtype=float).reshape(x.shape[0], -1)


def reference_csv(server: ModelServer) -> str:
    x, y = _iris()
    proba = _predict_proba(server, "iris", x)
    out = [",".join([*FEATURES, "prediction", "species", "p0", "p1", "p2"])]
    for row, label, p in zip(x, y, proba, strict=True):
        values = [*(f"{v:g}" for v in row), str(int(np.argmax(p))), str(int(label))]
        out.append(",".join(values + [repr(float(v)) for v in p]))
    return "\n".join(out) + "\n"


def performance_monitor(name: str, server: ModelServer, model: str) -> dict[str, Any]:
    return monitors.performance_monitor(
        name,
        url=server.url,
        model=model,
        min_rows=100,
        probe={"samples": 150, "batchSize": 50},
        probabilityOutput="predict_proba",
        minimum={"accuracy": 0.9},
    )


def test_estimated_accuracy_matches_the_real_one_and_a_bad_model_degrades(
    operator_process: OperatorProcess, namespace: str, model_server: ModelServer
) -> None:
    cluster: KubeCluster = operator_process.cluster
    cluster.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "iris-performance"},
                "data": {"reference.csv": reference_csv(model_server)},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "iris-model"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "iris-model"}},
                    "template": {
                        "metadata": {"labels": {"app": "iris-model"}},
                        "spec": {"containers": [{"name": "model", "image": "iris-model:v1"}]},
                    },
                },
            },
        ],
        "-n",
        namespace,
    )
    cluster.apply(performance_monitor("good", model_server, "iris"), "-n", namespace)
    cluster.apply(performance_monitor("bad", model_server, "iris-shuffled"), "-n", namespace)
    # The same bad model with the golden labels (the probe set is the labelled reference):
    # judged on realized accuracy.
    labelled = performance_monitor("bad-labelled", model_server, "iris-shuffled")
    labelled["spec"]["prediction"]["labelColumn"] = "species"
    cluster.apply(labelled, "-n", namespace)

    good = wait_status(
        cluster,
        namespace,
        "good",
        lambda s: (s.get("performance") or {}).get("status") in ("ok", "degraded"),
        "an estimate",
    )
    perf = good["performance"]
    assert perf["status"] == "ok", perf
    assert perf["basis"] == "estimated"
    assert perf["rows"] == 150
    real = model_server.accuracy["iris"]
    est = perf["estimated"]["accuracy"]
    print(f"iris: estimated accuracy {est} against the real {real:.4f}")  # for the CI log
    assert abs(est["value"] - real) < 0.03, (est, real)
    assert est["lower"] - 0.01 <= real <= est["upper"] + 0.01, (est, real)
    cond = condition(good, "PerformanceDegraded")
    assert (cond["status"], cond["reason"]) == ("False", "PerformanceMet"), cond

    bad = wait_status(
        cluster,
        namespace,
        "bad",
        lambda s: condition(s, "PerformanceDegraded").get("status") == "True",
        "PerformanceDegraded=True",
    )
    cond = condition(bad, "PerformanceDegraded")
    assert cond["reason"] == "EstimatedPerformanceDropped", cond
    assert "estimated accuracy" in cond["message"]
    bad_est = bad["performance"]["estimated"]["accuracy"]
    print(f"iris-shuffled: estimated accuracy {bad_est}")
    assert bad_est["upper"] < 0.9
    assert bad["phase"] == "Breached"
    events = cluster.get("events", "-n", namespace, "--field-selector", "involvedObject.name=bad")
    assert "EstimatedPerformanceDropped" in [e["reason"] for e in events["items"]]

    realized = wait_status(
        cluster,
        namespace,
        "bad-labelled",
        lambda s: condition(s, "PerformanceDegraded").get("status") == "True",
        "PerformanceDegraded=True on realized accuracy",
    )
    cond = condition(realized, "PerformanceDegraded")
    assert cond["reason"] == "RealizedPerformanceDropped", cond
    perf = realized["performance"]
    assert perf["basis"] == "realized"
    assert perf["labelledRows"] == 150
    assert perf["realized"]["accuracy"]["upper"] < 0.9
    # The calibration is the real model's; the shuffled model's scores mean something
    # else, so its realized accuracy (0.29) lies far below the estimate's interval
    # ([0.50, 0.62]): concept drift, deterministic (fixed model, the whole probe set).
    drift = condition(realized, "ConceptDrift")
    assert (drift.get("status"), drift.get("reason")) == ("True", "ConceptDrift"), drift
    print(
        f"iris-shuffled with labels: realized {perf['realized']['accuracy']}, estimated "
        f"{perf['estimated']['accuracy']}, concept drift {perf['conceptDrift']}"
    )
