"""Incidents reach the on-call tools: a real Alertmanager, and PagerDuty and Teams stand-ins.

Real: the control plane, the harness acting as a node (MLServer processes; a rollout of
the slow model version really breaches the 300 ms p95 latency SLO), the operator process
and Alertmanager (Debian's ``prometheus-alertmanager``, tests/alertmanager.py) receiving
the incident on ``POST /api/v2/alerts``.

Not real: PagerDuty and Microsoft Teams. A local recording server (tests/webhook.py)
stands in for each; it is NOT the real service. It records what the operator sent, and
tests/notification_schemas.py holds every body to the service's documented payload
schema (PagerDuty Events API v2 alert and change events; a Teams message with an
Adaptive Card).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests import notification_schemas as schemas
from tests.alertmanager import AlertmanagerServer, reap_orphans
from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.admission_fixtures import assert_refused as assert_forbidden
from tests.e2e.admission_fixtures import create_as, grant
from tests.e2e.operator_fixtures import OperatorProcess, start_and_wait
from tests.e2e.test_crd import _monitor, assert_refused, spec_with
from tests.e2e.test_remediation import (
    metrics_port,
    monitor,
    roll_out,
    setup,
    status_of,
    wait_status,
)
from tests.webhook import RecordedRequest, WebhookRecorder

pytestmark = pytest.mark.timeout(420)

ROUTING_KEY = "e2e0routing0key0000000000000000a"  # 32 characters, as PagerDuty issues them
RESEND_SECONDS = 10


@pytest.fixture
def alertmanager() -> Iterator[AlertmanagerServer]:
    reap_orphans()
    server = AlertmanagerServer(f"e2e-{time.monotonic_ns()}")
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def _secret(cluster: KubeCluster, namespace: str, name: str, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    cluster.apply(
        [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}],
        "-n",
        namespace,
    )


def _alerts(am: AlertmanagerServer, namespace: str) -> list[dict[str, Any]]:
    return am.alerts(filter=f'namespace="{namespace}"')


def _notification_metric(op: OperatorProcess, namespace: str) -> dict[tuple[str, str], float]:
    url = f"http://127.0.0.1:{metrics_port(op)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    found: dict[tuple[str, str], float] = {}
    for labels, value in re.findall(
        r"^modelmonitor_notifications_total\{([^}]*)\} (\S+)$", text, re.M
    ):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if pairs.get("namespace") == namespace:
            found[(pairs["sink"], pairs["result"])] = float(value)
    return found


def _check(requests: list[RecordedRequest], schema: dict[str, Any]) -> list[dict[str, Any]]:
    bodies = [r.json for r in requests]
    for body in bodies:
        assert schemas.problems(body, schema) == [], body
    return bodies


def test_an_incident_fires_in_alertmanager_survives_a_restart_and_resolves(
    operator_process: OperatorProcess,
    namespace: str,
    iris_images: dict[str, str],
    alertmanager: AlertmanagerServer,
) -> None:
    cluster = operator_process.cluster
    setup(cluster, namespace, iris_images["v1"])
    with WebhookRecorder(status=202) as pagerduty, WebhookRecorder() as teams:
        _secret(
            cluster,
            namespace,
            "oncall",
            {"routingKey": ROUTING_KEY, "teams": teams.url_for("/workflows/wh/secret-token")},
        )
        sinks = [
            {
                "name": "am",
                "type": "alertmanager",
                "url": alertmanager.url,
                "labels": {"team": "fraud"},
                "resendSeconds": RESEND_SECONDS,
            },
            {
                "name": "pager",
                "type": "pagerduty",
                "url": pagerduty.url,
                "minSeverity": "critical",
                "secretRef": {"name": "oncall", "key": "routingKey"},
            },
            {"name": "teams", "type": "teams", "secretRef": {"name": "oncall", "key": "teams"}},
        ]
        # No action: the sinks alone hear the incident, and the test controls recovery.
        actions = {"consecutiveBreaches": 1}
        alerting = {"sinks": sinks, "link": "https://grafana.example/d/iris"}
        cluster.apply(monitor("iris", actions, alerting=alerting), "-n", namespace)
        wait_status(cluster, namespace, "iris", lambda s: s.get("phase") == "Healthy", "Healthy")
        assert _alerts(alertmanager, namespace) == []

        roll_out(cluster, namespace, iris_images["v2-slow"], "v2")
        confirmed = wait_status(
            cluster,
            namespace,
            "iris",
            lambda s: (s.get("incident") or {}).get("state") == "Breached",
            "incident confirmed",
        )
        seen_confirmed = time.monotonic()
        incident = confirmed["incident"]["id"]
        (alert,) = wait_for(
            lambda: _alerts(alertmanager, namespace) or None,
            timeout=30,
            interval=0.1,
            what="the alert in Alertmanager",
        )
        visible = time.monotonic() - seen_confirmed
        breached_at = dt.datetime.fromisoformat(confirmed["incident"]["breachedAt"])
        received = dt.datetime.fromisoformat(alert["updatedAt"])
        print(
            f"\nincident confirmed -> Alertmanager alert visible: {visible:.2f}s after the test "
            f"saw the confirmation; Alertmanager received it "
            f"{(received - breached_at).total_seconds():.3f}s after breachedAt "
            f"({confirmed['incident']['breachedAt']}, second precision)"
        )
        assert alert["status"]["state"] == "active"
        assert alert["labels"] == {
            "alertname": "ModelMonitorIncident",
            "namespace": namespace,
            "monitor": "iris",
            "target": "Deployment/iris",
            "severity": "critical",
            "incident": incident,
            "team": "fraud",
        }
        assert "p95-latency" in alert["annotations"]["description"]
        assert alert["generatorURL"] == "https://grafana.example/d/iris"

        # Everyone heard the opening (so the kill below cannot cut a send short).
        wait_status(
            cluster,
            namespace,
            "iris",
            lambda s: all(
                x.get("delivered", 0) >= 1 for x in (s.get("alerting") or {}).get("sinks", [])
            ),
            "the opening delivered to every sink",
            timeout=30,
        )
        # The operator dies (SIGKILL) and comes back: the alert stays firing meanwhile.
        operator_process.kill()
        time.sleep(RESEND_SECONDS + 2)
        (still,) = _alerts(alertmanager, namespace)
        assert still["status"]["state"] == "active"
        assert still["labels"]["incident"] == incident
        start_and_wait(operator_process)
        # ... and re-sends it while the incident is open (endsAt moves on)
        wait_for(
            lambda: (
                any(a["endsAt"] > still["endsAt"] for a in _alerts(alertmanager, namespace)) or None
            ),
            timeout=60,
            interval=0.5,
            what="a re-send after the restart",
        )
        (refreshed,) = _alerts(alertmanager, namespace)
        assert refreshed["labels"] == still["labels"]  # the same alert, not a second one

        # Recovery: v1 again; the latency SLO recovers and the incident closes.
        roll_out(cluster, namespace, iris_images["v1"], "v1 again")
        closed = wait_status(
            cluster,
            namespace,
            "iris",
            lambda s: (
                (s.get("incident") or {}).get("state") == "Healthy"
                and bool((s.get("incident") or {}).get("closedAt"))
            ),
            "incident closed",
            timeout=180,
        )
        seen_closed = time.monotonic()
        wait_for(
            lambda: _alerts(alertmanager, namespace) == [] or None,
            timeout=30,
            interval=0.1,
            what="the alert resolved in Alertmanager",
        )
        waited = time.monotonic() - seen_closed
        print(f"incident closed (seen) -> alert gone from active: {waited:.2f}s")
        assert closed["incident"]["id"] == incident

        status = wait_status(
            cluster,
            namespace,
            "iris",
            lambda s: not (s.get("alerting") or {}).get("outbox"),
            "outbox drained",
        )
        sink_state = {s["name"]: s for s in status["alerting"]["sinks"]}
        assert sink_state["am"]["lastResult"] == "delivered"
        assert sink_state["am"].get("firingIncident") is None
        assert sink_state["pager"]["delivered"] >= 2
        assert sink_state["teams"]["delivered"] >= 2

        # PagerDuty stand-in: trigger then resolve, both keyed on the incident id
        pd = _check(pagerduty.requests, schemas.PAGERDUTY_EVENT)
        assert [b["event_action"] for b in pd] == ["trigger", "resolve"]
        assert {b["dedup_key"] for b in pd} == {incident}
        assert {b["routing_key"] for b in pd} == {ROUTING_KEY}
        assert {r.path for r in pagerduty.requests} == {"/v2/enqueue"}
        assert pd[0]["payload"]["custom_details"]["measurements"][0]["name"] == "p95-latency"
        # Teams stand-in: an Adaptive Card for the opening and one for the resolution
        cards = _check(teams.requests, schemas.TEAMS_MESSAGE)
        titles = [c["attachments"][0]["content"]["body"][0]["text"] for c in cards]
        assert titles[0].startswith("Incident opened (critical)")
        assert titles[-1].startswith("Incident resolved (critical)")
        assert {r.path for r in teams.requests} == {"/workflows/wh/secret-token"}

    metric = _notification_metric(operator_process, namespace)
    assert metric.get(("am", "delivered"), 0) >= 1, metric  # counted since the restart
    assert metric.get(("pager", "delivered"), 0) >= 1, metric
    # nothing of a credential in status
    text = str(status_of(cluster, namespace, "iris"))
    assert ROUTING_KEY not in text
    assert "secret-token" not in text


def _sinks(*sinks: dict[str, Any]) -> dict[str, Any]:
    return spec_with("alerting", {"sinks": list(sinks)})


AM = {"name": "am", "type": "alertmanager", "url": "http://am.monitoring:9093"}
REF = {"name": "oncall", "key": "k"}
# (case, spec, the field path the API server's message must name)
REFUSED: list[tuple[str, dict[str, Any], str]] = [
    ("alertmanager without url", _sinks({"name": "am", "type": "alertmanager"}), "url"),
    ("pagerduty without secretRef", _sinks({"name": "p", "type": "pagerduty"}), "secretRef"),
    (
        "a webhook URL in the spec",
        _sinks(
            {"name": "s", "type": "slack", "url": "https://hooks.slack.com/x", "secretRef": REF}
        ),
        "url",
    ),
    ("a secretRef on alertmanager", _sinks({**AM, "secretRef": REF}), "secretRef"),
    ("an unknown type", _sinks({"name": "x", "type": "sms", "secretRef": REF}), "type"),
    ("an info severity", _sinks({**AM, "minSeverity": "info"}), "minSeverity"),
    ("a reserved label", _sinks({**AM, "labels": {"severity": "low"}}), "labels"),
    ("a label that is no label name", _sinks({**AM, "labels": {"a-b": "x"}}), "labels"),
    (
        "labels on a webhook",
        _sinks({"name": "h", "type": "webhook", "secretRef": REF, "labels": {"a": "b"}}),
        "labels",
    ),
    ("the same name twice", _sinks(AM, AM), "spec.alerting.sinks"),
    (
        "a secret in another namespace",
        _sinks({"name": "h", "type": "webhook", "secretRef": {"name": "../x", "key": "k"}}),
        "secretRef.name",
    ),
    ("a resend below 10s", _sinks({**AM, "resendSeconds": 5}), "resendSeconds"),
    ("a url with a query", _sinks({**AM, "url": "http://am:9093/?x=1"}), "url"),
]


@pytest.mark.parametrize(("case", "spec", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_the_api_server_refuses_sinks_that_cannot_work(
    crds: KubeCluster, namespace: str, case: str, spec: dict[str, Any], field: str
) -> None:
    assert_refused(crds, namespace, case, spec, field)


def test_every_sink_type_is_accepted_with_what_it_needs(crds: KubeCluster, namespace: str) -> None:
    spec = _sinks(
        {**AM, "labels": {"team": "fraud"}},
        {"name": "pd", "type": "pagerduty", "secretRef": REF, "minSeverity": "critical"},
        {
            "name": "pd-eu",
            "type": "pagerduty",
            "secretRef": REF,
            "url": "https://events.eu.pagerduty.com",
        },
        {"name": "slack", "type": "slack", "secretRef": REF},
        {"name": "teams", "type": "teams", "secretRef": REF},
        {"name": "hook", "type": "webhook", "secretRef": REF},
        {"name": "ce", "type": "cloudevents", "secretRef": REF},
    )
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=_monitor("sinks", spec))
    stored = crds.get("mm", "sinks", "-n", namespace)["spec"]["alerting"]["sinks"]
    assert [s.get("minSeverity") for s in stored][:2] == ["warning", "critical"]  # defaulted
    assert stored[0]["resendSeconds"] == 60


def test_a_sink_credential_needs_get_on_its_secret(policy: KubeCluster, ns: str) -> None:
    """Attack: a monitor author names a Secret they cannot read (another team's PagerDuty
    key, in a namespace they share) so that the operator would use it for them."""
    spec = {
        "target": {"name": "app", "kind": "External", "endpoint": {"url": "http://app:8080"}},
        "reference": {"inline": [{"x": 1}]},
        "alerting": {
            "sinks": [
                {"name": "own", "type": "webhook", "secretRef": {"name": "mine", "key": "url"}},
                {"name": "pd", "type": "pagerduty", "secretRef": {"name": "theirs", "key": "k"}},
            ]
        },
    }
    grant(policy, ns, "eve", [("", "secrets", "get", ("mine",))])
    assert_forbidden(
        create_as(policy, ns, "eve", "borrow", spec), "get secrets/theirs in namespace"
    )
    assert policy.kubectl("get", "mm", "borrow", "-n", ns, check=False).returncode != 0
    grant(policy, ns, "eve", [("", "secrets", "get", ("mine", "theirs"))])
    assert create_as(policy, ns, "eve", "owned", spec).returncode == 0
