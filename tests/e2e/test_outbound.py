"""The outbound fence with the real operator: a hostile monitor cannot read the metadata
service through its URLs, sees no secret in its status, and triggers no remediation.

The operator runs with 127.0.0.0/8 allowed (the harness's pods listen there); link-local
addresses and other hosts' redirects stay refused.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import condition, monitor, setup, wait_status

SECRETS = ("s3cr3t-pass", "t0p-s3cret-token")


class _Redirector(BaseHTTPRequestHandler):
    """Every GET is redirected to the metadata service, as an attacker's server would."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/iam/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def redirector() -> Iterator[tuple[str, list[str]]]:
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Redirector,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


def _events(operator_process: OperatorProcess, namespace: str, name: str) -> str:
    out = operator_process.cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    return json.dumps([e.get("message", "") for e in json.loads(out)["items"]])


def test_a_probe_at_the_metadata_service_is_refused_and_remediates_nothing(
    operator_process: OperatorProcess, namespace: str
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    doc = monitor(
        "imds",
        "http://169.254.169.254/latest",
        "iris",
        slos=[
            {
                "name": "availability",
                "errorRatio": {},
                "objective": 99,
                "window": "30s",
                "burnRate": {"windowScale": 0.001388889},
            }
        ],
        actions={"consecutiveBreaches": 1, "onSLOBreach": ["rollback"]},
    )
    doc["spec"]["data"]["probe"].update({"retries": 0, "timeoutSeconds": 1})
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster, namespace, "imds", lambda s: s.get("phase") == "Degraded", "phase Degraded"
    )
    degraded = condition(st, "Degraded")
    assert degraded["reason"] == "OutboundRefused"
    assert "outbound request to 169.254.169.254 refused: link-local address" in degraded["message"]
    assert condition(st, "SLOBreached").get("status") != "True"
    assert not st.get("lastAction")
    assert not st.get("incident")


def test_a_reference_url_redirecting_to_the_metadata_service_is_not_followed(
    operator_process: OperatorProcess, namespace: str, redirector: tuple[str, list[str]]
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace)
    where, hits = redirector
    url = f"http://admin:s3cr3t-pass@{where}/reference.csv?token=t0p-s3cret-token"
    doc = monitor("ssrf", "http://127.0.0.1:9", "iris", reference={"url": url})
    cluster.apply(doc, "-n", namespace)
    st = wait_status(
        cluster,
        namespace,
        "ssrf",
        lambda s: condition(s, "Degraded").get("reason") == "ReferenceUnavailable",
        "Degraded ReferenceUnavailable",
    )
    message = condition(st, "Degraded")["message"]
    assert "to http://169.254.169.254/latest/meta-data/iam/ refused: another host" in message
    assert f"http://{where}/reference.csv?..." in message
    assert hits  # the first hop was asked; the second never is
    shown = json.dumps(st) + _events(operator_process, namespace, "ssrf")
    shown += operator_process.logs()
    for secret in SECRETS:
        assert secret not in shown, f"{secret} leaked"
