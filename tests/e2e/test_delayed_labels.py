"""Late labels end to end: served predictions estimated first, realized when labels come.

The model is the real MLServer of tests/e2e/test_performance.py; the reference is the
same (iris with the model's own class probabilities). KServe's payload logger cannot run
here (no KServe, no Knative): this test stands in for it, sending each request to
MLServer and forwarding request and answer as binary-mode CloudEvents to the monitor's
logger URL, as tests/e2e/test_payload_runs.py does. The traffic is covariate-shifted:
only flowers whose petal length lies in 4-5.5 cm, where versicolor and virginica meet
(the model's P(y | x) is unchanged, the inputs moved), each sent twice, four rows a
request. The label feed is this test too: after the estimate is in status, it POSTs
the true species by row id (``<request id>:<row>``) to the collector's label route.

* ``shifted`` (the real model): the estimate moves below the reference's accuracy
  before any label; labels POSTed with another monitor's token are refused and change
  nothing; the real labels give realized accuracy inside the estimate's interval.
* ``filed`` (the real model, labels from a ConfigMap ``id,label`` CSV instead of HTTP):
  the labels join when the ConfigMap appears.
* ``swapped`` (``iris-shuffled``, a model trained on shuffled labels, wrong on this
  subgroup as everywhere, scored with the real model's calibration): the labels put its
  realized accuracy far below the estimate - ConceptDrift.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import numpy as np
import pytest

from tests.cluster.kube import KubeCluster
from tests.e2e.monitors import performance_monitor
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_payload_runs import send
from tests.e2e.test_performance import _iris, reference_csv
from tests.e2e.test_runs import condition, wait_status
from tests.modelserver import ModelServer

pytestmark = pytest.mark.timeout(300)

BATCH = 4


def _infer(server: ModelServer, model: str, rows: np.ndarray) -> dict[str, Any]:
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
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
        answer: dict[str, Any] = json.loads(reply.read())
    return {"request": body, "response": answer}


def _labels_monitor(name: str, **labels: Any) -> dict[str, Any]:
    # No probe: production traffic through the payload log is the only current data.
    return performance_monitor(
        name,
        url="http://127.0.0.1:9",
        min_rows=50,
        data={"payloadLog": {"window": "10m", "minSamples": 40}},
        labels={"source": "http", "labelDelay": "10m", **labels},
    )


def _token(cluster: KubeCluster, namespace: str, name: str) -> str:
    st = wait_status(cluster, namespace, name, lambda s: "payloadLog" in s, "a logger URL")
    secret = cluster.get("secret", st["payloadLog"]["secretName"], "-n", namespace)
    return base64.b64decode(secret["data"]["token"]).decode()


def _post_labels(url: str, labels: list[dict[str, Any]]) -> tuple[int, dict[str, Any] | str]:
    request = urllib.request.Request(
        url, json.dumps(labels).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status), json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def _next_run(cluster: KubeCluster, namespace: str, name: str, after: str) -> dict[str, Any]:
    return wait_status(
        cluster,
        namespace,
        name,
        lambda s: (s.get("lastRun") or {}).get("time", "") > after,
        f"a run after {after}",
    )


def test_the_estimate_moves_first_then_late_labels_realize_it_and_reveal_concept_drift(
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
            _labels_monitor("shifted"),
            _labels_monitor("swapped"),
            _labels_monitor(
                "filed",
                source="configMap",
                configMapRef={"name": "iris-labels", "key": "labels.csv"},
            ),
        ],
        "-n",
        namespace,
    )
    names = ("shifted", "swapped", "filed")
    tokens = {name: _token(cluster, namespace, name) for name in names}
    port = operator_process.args[operator_process.args.index("--payload-port") + 1]
    base = f"http://127.0.0.1:{port}"

    # Covariate shift: the flowers where two species meet, each twice, four to a request.
    x, y = _iris()
    near = (x[:, 2] >= 4.0) & (x[:, 2] <= 5.5)
    rows, truth = np.concatenate([x[near], x[near]]), np.concatenate([y[near], y[near]])
    labels: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for start in range(0, len(rows), BATCH):
        batch = rows[start : start + BATCH]
        request_id = str(uuid.uuid4())
        for name, model in (("shifted", "iris"), ("swapped", "iris-shuffled"), ("filed", "iris")):
            served = _infer(model_server, model, batch)
            url = f"{base}/v1/logs/{namespace}/{name}/{tokens[name]}"
            for kind in ("request", "response"):
                assert send(url, namespace, kind, request_id, served[kind]) == 202
        labels += [
            {"id": f"{request_id}:{i}", "label": int(v)}
            for i, v in enumerate(truth[start : start + BATCH])
        ]
    served_rows = len(rows)

    # Before any label: an estimate, and it moved below the reference's own accuracy.
    st = wait_status(
        cluster,
        namespace,
        "shifted",
        lambda s: (s.get("performance") or {}).get("rows") == served_rows,
        f"an estimate on {served_rows} served rows",
    )
    estimated_after = time.monotonic() - t0
    perf = st["performance"]
    assert perf["basis"] == "estimated", perf
    assert perf["labelledRows"] == 0
    assert "realized" not in perf
    assert perf["labels"]["awaiting"] == served_rows
    before = perf["estimated"]["accuracy"]
    reference = perf["reference"]["accuracy"]
    print(f"shifted traffic: estimated accuracy {before}, reference {reference}")
    assert before["value"] < reference - 0.01, (before, reference)

    # An attacker with its own monitor's token (or none) cannot label the victim's rows.
    victim = f"{base}/v1/labels/{namespace}/shifted"
    status, text = _post_labels(f"{victim}/{tokens['swapped']}", labels)
    assert status == 403, text
    assert _post_labels(victim, labels)[0] == 401
    st = _next_run(cluster, namespace, "shifted", st["lastRun"]["time"])
    st = _next_run(cluster, namespace, "shifted", st["lastRun"]["time"])  # after the attack
    assert st["performance"]["labelledRows"] == 0
    assert st["performance"]["labels"]["received"] == 0
    assert "realized" not in st["performance"]

    # The labels arrive late (after the estimate), and some garbage with them.
    extra = [{"id": "no-such-request", "label": 1}, labels[0]]
    for name in ("shifted", "swapped"):
        status, answer = _post_labels(f"{base}/v1/labels/{namespace}/{name}/{tokens[name]}", labels)
        assert status == 202, answer
        assert isinstance(answer, dict)
        assert answer["matched"] == served_rows, answer
    status, answer = _post_labels(f"{victim}/{tokens['shifted']}", extra)
    assert (status, answer) == (
        202,
        {"accepted": 2, "matched": 0, "unknownIds": 1, "duplicates": 1, "late": 0},
    )
    t_labels = time.monotonic()

    st = wait_status(
        cluster,
        namespace,
        "shifted",
        lambda s: (s.get("performance") or {}).get("basis") == "realized",
        "realized accuracy",
    )
    realized_after = time.monotonic() - t_labels
    perf = st["performance"]
    assert perf["labelledRows"] == served_rows
    est, real = perf["estimated"]["accuracy"], perf["realized"]["accuracy"]
    print(
        f"shifted with labels: realized {real}, estimated {est} (estimate {estimated_after:.1f}"
        f" s after the traffic began, realized {realized_after:.1f} s after the labels)"
    )
    assert est["lower"] <= real["value"] <= est["upper"], (est, real)
    assert perf["conceptDrift"] is False
    assert condition(st, "ConceptDrift").get("status") != "True"
    counts = perf["labels"]
    assert (counts["matched"], counts["unknownIds"], counts["duplicates"]) == (
        served_rows,
        1,
        1,
    )

    # The same labels as a file in a ConfigMap: joined once it is there.
    csv = "id,label\n" + "".join(f"{item['id']},{item['label']}\n" for item in labels)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "iris-labels"},
            "data": {"labels.csv": csv},
        },
        "-n",
        namespace,
    )
    st = wait_status(
        cluster,
        namespace,
        "filed",
        lambda s: (s.get("performance") or {}).get("basis") == "realized",
        "realized accuracy from the ConfigMap",
    )
    assert st["performance"]["labelledRows"] == served_rows
    assert st["performance"]["realized"]["accuracy"] == real
    assert "message" not in st["performance"]["labels"]

    st = wait_status(
        cluster,
        namespace,
        "swapped",
        lambda s: condition(s, "ConceptDrift").get("status") == "True",
        "ConceptDrift=True",
    )
    perf = st["performance"]
    print(
        f"swapped model with labels: realized {perf['realized']['accuracy']}, estimated "
        f"{perf['estimated']['accuracy']}, concept drift on {perf['conceptDriftMetrics']}"
    )
    assert perf["basis"] == "realized"
    assert perf["realized"]["accuracy"]["upper"] < perf["estimated"]["accuracy"]["lower"]
    assert condition(st, "ConceptDrift")["reason"] == "ConceptDrift"
