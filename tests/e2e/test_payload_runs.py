"""Production payloads through the operator: CloudEvents in, drift verdict out.

KServe's payload logger cannot run here (no KServe, no Knative); this test's HTTP client
stands in for it, sending each request and response as one binary-mode CloudEvent, the
way the logger does (see tests/e2e/test_payload_server.py), to the logger URL that the
operator wrote into the monitor's Secret. The operator's collector, its token Secret,
the window, the run and the verdict are all the real thing.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid

import numpy as np

from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import FEATURES, IRIS, condition, monitor, setup, wait_status


def send(url: str, namespace: str, kind: str, event_id: str, body: object) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Ce-Id": event_id,
            "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
            "Ce-Source": "http://localhost:9081/",
            "Ce-Specversion": "1.0",
            "Ce-Inferenceservicename": "iris-model",
            "Ce-Namespace": namespace,
            "Ce-Component": "predictor",
            "Ce-Endpoint": "default",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_payload_log_feeds_drift(operator_process: OperatorProcess, namespace: str) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    doc = monitor("production", "http://127.0.0.1:9", "iris", drift={"driftShare": 0.2})
    # No probe: production traffic is the only current data.
    doc["spec"]["data"] = {"payloadLog": {"windowSeconds": 600, "minSamples": 40}}
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster,
        namespace,
        "production",
        lambda s: condition(s, "DriftDetected").get("reason") == "InsufficientData",
        "InsufficientData before any traffic",
    )
    assert "minSamples 40" in condition(st, "DriftDetected")["message"]

    # The operator created the monitor's token Secret, owned by the monitor; status says
    # where the logger URL is, without the token.
    where = st["payloadLog"]
    assert where["secretName"] == "production-payload-log"
    assert where["secretKey"] == "url"
    assert where["url"].endswith(f"/v1/logs/{namespace}/production/<token>")
    secret = cluster.get("secret", where["secretName"], "-n", namespace)
    owner = cluster.get("mm", "production", "-n", namespace)["metadata"]["uid"]
    assert [r["uid"] for r in secret["metadata"]["ownerReferences"]] == [owner]
    token = base64.b64decode(secret["data"]["token"]).decode()
    logger_url = base64.b64decode(secret["data"]["url"]).decode()
    assert logger_url == where["url"].replace("<token>", token)

    port = operator_process.args[operator_process.args.index("--payload-port") + 1]
    base = f"http://127.0.0.1:{port}/v1/logs/{namespace}/production"
    url = f"{base}/{token}"
    forged = {"instances": [[9.0, 9.0, 9.0, 9.0]]}
    assert send(base, namespace, "request", "forged", forged) == 401  # no token
    assert send(f"{base}/{'A' * 43}", namespace, "request", "forged", forged) == 403
    rng = np.random.default_rng(5)
    rows = [[float(v) for v in line.split(",")[:4]] for line in IRIS.read_text().splitlines()[1:]]
    for i in range(0, 150, 5):  # 30 requests of 5 rows: sepal_width moved by +1.5 cm
        batch = [[r[0], r[1] + 1.5 + rng.normal(0, 0.05), r[2], r[3]] for r in rows[i : i + 5]]
        event_id = str(uuid.uuid4())
        assert send(url, namespace, "request", event_id, {"instances": batch}) == 202
        predictions = [0 if r[2] < 2.5 else 1 if r[2] < 4.9 else 2 for r in batch]
        response = {"predictions": predictions}
        assert send(url, namespace, "response", event_id, response) == 202

    st = wait_status(
        cluster, namespace, "production", lambda s: s.get("phase") == "Drifted", "Drifted"
    )
    message = condition(st, "DriftDetected")["message"]
    assert "sepal_width" in message, message
    assert st["lastRun"]["samples"] == 150
    drifted = {f["name"] for f in st["drift"]["features"] if f["drifted"]}
    assert drifted == {"sepal_width"}, st["drift"]
    assert set(FEATURES) >= drifted

    # The token appears in no status, no Event and no log line of the operator.
    events = cluster.get("events", "-n", namespace)
    assert token not in json.dumps(st)
    assert token not in json.dumps(events)
    assert token not in operator_process.logs()
