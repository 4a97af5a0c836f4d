"""Each sink's payload (core/alerting/payloads.py) against the receiver's documented schema,
and the sender (actions/alerting.py) against a local recording server through the fence.

The recording server is not Alertmanager, PagerDuty, Slack or Teams: it records what it is
sent, and tests/notification_schemas.py holds each body to the service's documented shape.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modelmonitor.actions.alerting import deliver
from modelmonitor.adapters.outbound import Outbound
from modelmonitor.adapters.webhook import fenced_post
from modelmonitor.core.alerting import AlertingStatus, Notice, OutboxEntry, enqueue, notices
from modelmonitor.core.alerting.payloads import Subject, render
from modelmonitor.core.incident import ActionResult, Incident, IncidentState, Outcome
from modelmonitor.core.spec import KeyRef, SinkSpec
from tests import notification_schemas as schemas
from tests.unit.actions.fake_api import FakeApi, request
from tests.unit.loopback import LOOPBACK_ALLOWED
from tests.webhook import WebhookRecorder

NOW = dt.datetime(2026, 11, 26, 15, 57, 25, tzinfo=dt.UTC)
STAMP = "2026-11-26T15:57:25Z"
NS = "ml"
TOKEN = "R0UT1NGKEY-secret-abc"
SUBJECT = Subject(NS, "iris", "uid-1", "Deployment", "iris-model", "https://grafana.example/d/1")
INCIDENT = Incident(
    id="iris-20261126-155725",
    state=IncidentState.REMEDIATING,
    triggers=("drift", "slo"),
    reason="SLO p95-latency: 412 ms > 250 ms <b>&",
    breached_at=STAMP,
    started_at=STAMP,
    healthy_runs=2,
)
FOUND = notices.measurements(
    {
        "slos": [
            {
                "name": "p95-latency",
                "kind": "latency",
                "value": 412.5,
                "threshold": 250,
                "met": False,
            },
            {
                "name": "availability",
                "kind": "errorRatio",
                "value": 99.9,
                "objective": 99.5,
                "met": True,
            },
        ],
        "drift": {"status": "ok", "share": 0.75},
    },
    0.5,
)


def secret(name: str = "keys", key: str = "value") -> KeyRef:
    return KeyRef("Secret", name, key, "spec.alerting.sinks[0].secretRef")


def opened() -> Notice:
    return notices.opened(
        INCIDENT, namespace=NS, monitor="iris", found=FOUND, time=STAMP, valid_seconds=240
    )


def rollback_result() -> Notice:
    req = request("rollback", id="iris-20261126-155725-rollback-1", incident=INCIDENT.id)
    result = ActionResult(Outcome.SUCCEEDED, "RolledBack", "rolled back from revision 3 to 1")
    return notices.action_result(INCIDENT, req, result, time=STAMP, valid_seconds=240)


def resolved() -> Notice:
    return notices.resolved(INCIDENT, namespace=NS, monitor="iris", found=FOUND, time=STAMP)


def entries(*items: Notice, sink: str = "s") -> list[OutboxEntry]:
    return [OutboxEntry.of(n, sink) for n in items]


def bodies(
    sink: SinkSpec, *items: Notice, secret_value: str | None = TOKEN
) -> list[tuple[str, Any]]:
    out = []
    for entry in entries(*items, sink=sink.name):
        for req in render(entry, sink, SUBJECT, secret=secret_value, now=NOW):
            out.append((req.url, json.loads(req.body)))
    return out


def test_measurements_put_breaches_first_and_keep_values_against_thresholds() -> None:
    assert FOUND[0] == {
        "name": "p95-latency",
        "kind": "latency",
        "value": 412.5,
        "threshold": 250.0,
        "unit": "ms",
        "met": False,
    }
    assert {m["name"] for m in FOUND} == {"p95-latency", "dataset-drift", "availability"}
    drift = next(m for m in FOUND if m["kind"] == "drift")
    assert (drift["value"], drift["threshold"], drift["met"]) == (0.75, 0.5, False)
    inf = notices.measurements(
        {"slos": [{"name": "a", "value": float("inf"), "objective": 99}]}, 0.5
    )
    assert inf[0]["value"] == "+Inf"  # JSON has no infinity


def test_alertmanager_alerts_carry_the_monitors_labels_and_end_on_resolve() -> None:
    sink = SinkSpec(
        name="am", type="alertmanager", url="http://am.example:9093/", labels=(("team", "fraud"),)
    )
    sent = bodies(sink, opened(), resolved())
    assert [url for url, _ in sent] == ["http://am.example:9093/api/v2/alerts"] * 2
    (firing,), (done,) = (body for _, body in sent)
    for body in (firing, done):
        assert schemas.problems([body], schemas.ALERTMANAGER_ALERTS) == []
    assert firing["labels"] == {
        "alertname": "ModelMonitorIncident",
        "namespace": NS,
        "monitor": "iris",
        "target": "Deployment/iris-model",
        "severity": "critical",
        "incident": INCIDENT.id,
        "team": "fraud",
    }
    assert done["labels"] == firing["labels"]  # the same alert: Alertmanager dedupes on labels
    assert firing["startsAt"] == STAMP
    assert firing["endsAt"] == "2026-11-26T16:01:25Z"  # validSeconds (240) ahead
    assert done["endsAt"] == STAMP
    assert "412.5ms vs 250.0ms (breached)" in firing["annotations"]["description"]
    assert firing["annotations"]["monitorRef"].endswith("/namespaces/ml/modelmonitors/iris")
    assert firing["generatorURL"] == SUBJECT.link


def test_pagerduty_triggers_and_resolves_on_the_incident_id_and_reports_rollbacks_as_changes() -> (
    None
):
    sink = SinkSpec(name="pd", type="pagerduty", secret=secret())
    sent = bodies(sink, opened(), rollback_result(), resolved())
    urls = [url for url, _ in sent]
    assert urls == [
        "https://events.pagerduty.com/v2/enqueue",
        "https://events.pagerduty.com/v2/enqueue",
        "https://events.pagerduty.com/v2/change/enqueue",
        "https://events.pagerduty.com/v2/enqueue",
    ]
    trigger, update, change, resolve = (body for _, body in sent)
    for body in (trigger, update, resolve):
        assert schemas.problems(body, schemas.PAGERDUTY_EVENT) == []
        assert body["dedup_key"] == INCIDENT.id
        assert body["routing_key"] == TOKEN
    assert schemas.problems(change, schemas.PAGERDUTY_CHANGE) == []
    assert [trigger["event_action"], update["event_action"], resolve["event_action"]] == [
        "trigger",
        "trigger",
        "resolve",
    ]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["measurements"][0]["name"] == "p95-latency"
    assert update["payload"]["custom_details"]["action"]["type"] == "rollback"
    assert "rollback of Deployment/iris-model" in change["payload"]["summary"]


def test_pagerduty_url_can_point_at_the_eu_service() -> None:
    sink = SinkSpec(
        name="pd", type="pagerduty", url="https://events.eu.pagerduty.com", secret=secret()
    )
    assert bodies(sink, resolved())[0][0] == "https://events.eu.pagerduty.com/v2/enqueue"


def test_teams_gets_an_adaptive_card() -> None:
    sink = SinkSpec(name="t", type="teams", secret=secret())
    for url, body in bodies(
        sink, opened(), rollback_result(), resolved(), secret_value="https://t.example/wh"
    ):
        assert url == "https://t.example/wh"
        assert schemas.problems(body, schemas.TEAMS_MESSAGE) == []
    card = bodies(sink, opened(), secret_value="https://t.example/wh")[0][1]["attachments"][0][
        "content"
    ]
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Incident"] == INCIDENT.id
    assert "p95-latency: 412.5ms vs 250.0ms (breached)" in facts["Measured"]
    assert card["actions"][0]["url"] == SUBJECT.link


def test_slack_gets_block_kit_with_escaped_text() -> None:
    sink = SinkSpec(name="s", type="slack", secret=secret())
    ((_, body),) = bodies(sink, opened(), secret_value="https://hooks.slack.example/T/B/x")
    assert schemas.problems(body, schemas.SLACK_MESSAGE) == []
    assert "&lt;b&gt;&amp;" in body["blocks"][1]["text"]["text"]


def test_webhook_and_cloudevents_carry_the_notice_with_stable_ids() -> None:
    hook = SinkSpec(name="h", type="webhook", secret=secret())
    ce = SinkSpec(name="c", type="cloudevents", secret=secret())
    ((_, plain),) = bodies(hook, rollback_result(), secret_value="https://h.example/x")
    ((_, event),) = bodies(ce, rollback_result(), secret_value="https://h.example/x")
    assert plain["kind"] == "ModelMonitorIncidentNotice"
    assert plain["version"] == "v1"
    assert plain["id"] == "iris-20261126-155725-rollback-1-result"
    assert plain["action"]["result"] == "succeeded"
    assert event["specversion"] == "1.0"
    assert event["id"] == plain["id"]
    assert event["type"] == "io.modelmonitor.incident.action"
    assert event["source"] == "/apis/modelmonitor.io/v1alpha1/namespaces/ml/modelmonitors/iris"
    assert event["data"] == plain
    (req,) = render(
        entries(opened(), sink="c")[0], ce, SUBJECT, secret="https://h.example/x", now=NOW
    )
    assert req.headers["Content-Type"] == "application/cloudevents+json"


@pytest.fixture
def hook() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as recorder:
        yield recorder


def _api(value: str | None) -> FakeApi:
    api = FakeApi()
    if value is not None:
        api.secrets[(NS, "keys", "value")] = value
    return api


def test_the_sender_posts_in_order_through_the_fence(hook: WebhookRecorder) -> None:
    sink = SinkSpec(name="h", type="webhook", secret=secret())
    queued = enqueue(AlertingStatus(), [opened(), rollback_result(), resolved()], [sink]).outbox
    attempts = deliver(
        _api(hook.url_for(f"/hook/{TOKEN}") + "\n"),
        SUBJECT,
        [sink],
        queued,
        post=fenced_post(LOOPBACK_ALLOWED),
        now=lambda: NOW,
    )
    assert [a.ok for a in attempts] == [True, True, True]
    got = hook.wait_for(3, timeout=5)
    assert [r.json["event"] for r in got] == ["opened", "action", "resolved"]
    assert got[0].header("X-ModelMonitor-Notice-Id") == f"{INCIDENT.id}-opened"


def test_a_sink_stops_at_its_first_failure_and_says_why_without_the_url() -> None:
    with WebhookRecorder(fail_first=1, fail_status=503) as hook:
        sink = SinkSpec(name="h", type="webhook", secret=secret())
        queued = enqueue(AlertingStatus(), [opened(), resolved()], [sink]).outbox
        attempts = deliver(
            _api(hook.url_for(f"/hook/{TOKEN}")),
            SUBJECT,
            [sink],
            queued,
            post=fenced_post(LOOPBACK_ALLOWED),
            now=lambda: NOW,
        )
    assert [(a.ok, a.retryable, a.error) for a in attempts] == [(False, True, "HTTP 503")]


@pytest.mark.parametrize(
    ("status", "retryable"), [(400, False), (404, False), (408, True), (429, True), (500, True)]
)
def test_statuses_are_retried_or_given_up(status: int, retryable: bool) -> None:
    with WebhookRecorder(status=status) as hook:
        sink = SinkSpec(name="h", type="webhook", secret=secret())
        (attempt,) = deliver(
            _api(hook.url_for("/x")),
            SUBJECT,
            [sink],
            entries(opened(), sink="h"),
            post=fenced_post(LOOPBACK_ALLOWED),
            now=lambda: NOW,
        )
    assert (attempt.ok, attempt.retryable, attempt.error) == (False, retryable, f"HTTP {status}")


def test_loopback_is_refused_by_the_default_fence_and_the_url_is_never_named(
    hook: WebhookRecorder,
) -> None:
    """Attack: a monitor author points a sink at the operator's own loopback."""
    sink = SinkSpec(name="h", type="webhook", secret=secret())
    (attempt,) = deliver(
        _api(hook.url_for(f"/hook/{TOKEN}")),
        SUBJECT,
        [sink],
        entries(opened(), sink="h"),
        post=fenced_post(Outbound()),
        now=lambda: NOW,
    )
    assert not attempt.ok
    assert not attempt.retryable
    assert attempt.error.startswith("OutboundRefused")
    assert TOKEN not in attempt.error
    assert "127.0.0.1" not in attempt.error
    assert hook.requests == []


def test_alertmanager_on_a_link_local_address_is_refused() -> None:
    """Attack: the cloud metadata address as an Alertmanager."""
    sink = SinkSpec(name="am", type="alertmanager", url="http://169.254.169.254")
    (attempt,) = deliver(
        FakeApi(),
        SUBJECT,
        [sink],
        entries(opened(), sink="am"),
        post=fenced_post(Outbound()),
        now=lambda: NOW,
    )
    assert not attempt.ok
    assert attempt.error.startswith("OutboundRefused")


def test_a_missing_secret_is_retried_later_and_other_sinks_go_on(hook: WebhookRecorder) -> None:
    missing = SinkSpec(name="pd", type="pagerduty", secret=secret("absent"))
    fine = SinkSpec(name="h", type="webhook", secret=secret())
    queued = enqueue(AlertingStatus(), [opened()], [missing, fine]).outbox
    attempts = deliver(
        _api(hook.url_for("/x")),
        SUBJECT,
        [missing, fine],
        queued,
        post=fenced_post(LOOPBACK_ALLOWED),
        now=lambda: NOW,
    )
    assert [(a.sink, a.ok, a.retryable, a.error) for a in attempts] == [
        ("pd", False, True, "SecretNotFound"),
        ("h", True, False, ""),
    ]


def test_a_secret_that_is_not_a_url_is_refused_without_quoting_it() -> None:
    sink = SinkSpec(name="h", type="webhook", secret=secret())
    (attempt,) = deliver(
        _api(f"not a url {TOKEN}"),
        SUBJECT,
        [sink],
        entries(opened(), sink="h"),
        post=fenced_post(LOOPBACK_ALLOWED),
        now=lambda: NOW,
    )
    assert (attempt.ok, attempt.retryable, attempt.error) == (False, False, "InvalidUrl")
