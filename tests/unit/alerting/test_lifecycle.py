"""An incident's whole life reaches the sinks: remediation queues each notice in the same
status write as the decision that caused it, then delivers and records (engine glue)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from modelmonitor.adapters.webhook import fenced_post
from modelmonitor.core.incident import ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec, SpecError, parse_spec
from modelmonitor.core.status import Condition, Phase
from modelmonitor.core.verdict import Verdict
from modelmonitor.engine.remediation import Remediator
from tests.unit.actions.fake_api import FakeApi, merge_patch
from tests.unit.loopback import LOOPBACK_ALLOWED
from tests.webhook import WebhookRecorder

T0 = dt.datetime(2026, 11, 26, 15, 57, 25, tzinfo=dt.UTC)


def spec(sinks: list[dict[str, Any]], **actions: Any) -> MonitorSpec:
    return parse_spec(
        {
            "target": {"name": "iris"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "actions": {"consecutiveBreaches": 1, **actions},
            "alerting": {"sinks": sinks, "link": "https://grafana.example/d/iris"},
        }
    )


def verdict(breached: bool, at: dt.datetime) -> Verdict:
    conditions = (
        Condition("DriftDetected", "False", "Disabled", "drift is disabled"),
        Condition("SLOBreached", "True" if breached else "False", "x", "p95 412 ms > 250 ms"),
        Condition("Degraded", "False", "SourcesAvailable", "all sources answered"),
    )
    patch = {
        "slos": [
            {
                "name": "p95",
                "kind": "latency",
                "value": 412.0 if breached else 90.0,
                "threshold": 250,
                "met": not breached,
            }
        ]
    }
    phase = Phase.BREACHED if breached else Phase.HEALTHY
    return Verdict(phase, patch, (), conditions, conditions, {"p95": not breached}, at)


def run(
    remediator: Remediator, obj: dict[str, Any], s: MonitorSpec, breached: bool, at: dt.datetime
) -> Any:
    plan = remediator.plan(obj, s, verdict(breached, at), (None, None), at)
    obj["status"] = merge_patch(obj.get("status") or {}, plan.status_patch)
    return plan


HOOK = {"name": "hook", "type": "webhook", "secretRef": {"name": "hooks", "key": "url"}}


def test_opened_action_and_resolved_are_queued_with_the_decision_and_delivered() -> None:
    api = FakeApi()
    with WebhookRecorder() as hook:
        api.secrets[("ml", "hooks", "url")] = hook.url_for("/in")
        s = spec(
            [HOOK],
            onSLOBreach=["notify"],
            notify={"webhookSecretRef": {"name": "hooks", "key": "url"}},
        )
        obj: dict[str, Any] = {
            "metadata": {"name": "iris", "namespace": "ml", "uid": "u"},
            "spec": {},
        }
        obj["spec"] = {
            "target": {"name": "iris"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "actions": {
                "consecutiveBreaches": 1,
                "onSLOBreach": ["notify"],
                "notify": {"webhookSecretRef": {"name": "hooks", "key": "url"}},
            },
            "alerting": {"sinks": [HOOK]},
        }
        remediator = Remediator(
            api, executors={}, clock=lambda: T0, post=fenced_post(LOOPBACK_ALLOWED)
        )
        plan = run(remediator, obj, s, True, T0)
        incident = obj["status"]["incident"]["id"]
        # the opened notice is in the very patch that confirms the incident
        (queued,) = plan.status_patch["alerting"]["outbox"]
        assert (queued["id"], queued["event"]) == (f"{incident}-opened", "opened")
        assert queued["measurements"][0]["value"] == 412.0
        (request,) = plan.requests
        patch = remediator.record(
            obj, request, ActionResult(Outcome.SUCCEEDED, "Notified", "ok"), T0
        )
        assert patch is not None
        obj["status"] = merge_patch(obj["status"], patch)
        events = [e["event"] for e in obj["status"]["alerting"]["outbox"]]
        assert events == ["opened", "action"]
        # delivered later (the operator may have restarted meanwhile: status is all it needs)
        assert remediator.deliveries_due(obj, T0)
        attempts = remediator.deliver(s, obj, T0)
        written, counted = remediator.record_deliveries(obj, s, attempts, T0)
        assert counted == [("hook", "webhook", "delivered")] * 2
        obj["status"] = merge_patch(obj["status"], written)
        assert obj["status"]["alerting"]["outbox"] == []
        assert obj["status"]["alerting"]["sinks"][0]["delivered"] == 2
        # recovery: healthy for consecutiveBreaches runs closes the incident
        later = T0 + dt.timedelta(minutes=1)
        plan = run(remediator, obj, s, False, later)
        assert [e["event"] for e in obj["status"]["alerting"]["outbox"]] == ["resolved"]
        attempts = remediator.deliver(s, obj, later)
        written, _ = remediator.record_deliveries(obj, s, attempts, later)
        got = [r.json for r in hook.wait_for(3, timeout=5)]
    assert [b["event"] for b in got] == ["opened", "action", "resolved"]
    assert {b["incident"] for b in got} == {incident}
    assert got[0]["link"] == "https://grafana.example/d/iris"


def test_sinks_hear_incidents_without_any_action_listed() -> None:
    s = spec([{"name": "am", "type": "alertmanager", "url": "http://am:9093"}])
    obj: dict[str, Any] = {"metadata": {"name": "iris", "namespace": "ml"}, "status": {}}
    remediator = Remediator(FakeApi(), executors={}, clock=lambda: T0)
    plan = run(remediator, obj, s, True, T0)
    assert plan.requests == ()
    assert obj["status"]["incident"]["state"] == "Breached"
    assert [e["event"] for e in obj["status"]["alerting"]["outbox"]] == ["opened"]
    assert obj["status"]["alerting"]["outbox"][0]["validSeconds"] == 240  # 4 x 60 s


def test_an_open_incident_is_re_sent_to_alertmanager_once_per_resend_period() -> None:
    s = spec([{"name": "am", "type": "alertmanager", "url": "http://am:9093", "resendSeconds": 30}])
    obj: dict[str, Any] = {"metadata": {"name": "iris", "namespace": "ml"}, "status": {}}
    remediator = Remediator(FakeApi(), executors={}, clock=lambda: T0)
    run(remediator, obj, s, True, T0)
    opened = obj["status"]["alerting"]["outbox"][0]["id"]
    from modelmonitor.core.alerting import Attempt

    patch, _ = remediator.record_deliveries(obj, s, [Attempt(opened, "am", ok=True)], T0)
    obj["status"] = merge_patch(obj["status"], patch)
    run(remediator, obj, s, True, T0 + dt.timedelta(seconds=20))
    assert obj["status"]["alerting"]["outbox"] == []
    run(remediator, obj, s, True, T0 + dt.timedelta(seconds=30))
    assert [e["event"] for e in obj["status"]["alerting"]["outbox"]] == ["refresh"]


@pytest.mark.parametrize(
    ("sink", "where"),
    [
        ({"name": "am", "type": "alertmanager"}, "spec.alerting.sinks[0].url"),
        ({"name": "pd", "type": "pagerduty"}, "spec.alerting.sinks[0].secretRef"),
        (
            {"name": "s", "type": "slack", "url": "https://hooks.slack.com/x"},
            "spec.alerting.sinks[0].url",
        ),
        ({"name": "x", "type": "sms", "url": "http://a"}, "spec.alerting.sinks[0].type"),
        (
            {"name": "Bad_Name", "type": "alertmanager", "url": "http://a"},
            "spec.alerting.sinks[0].name",
        ),
        ({"name": "am", "type": "alertmanager", "url": "ftp://a"}, "spec.alerting.sinks[0].url"),
        (
            {
                "name": "am",
                "type": "alertmanager",
                "url": "http://a",
                "labels": {"severity": "low"},
            },
            "spec.alerting.sinks[0].labels.severity",
        ),
        (
            {"name": "h", "type": "webhook", "secretRef": {"name": "../kube-system/x", "key": "u"}},
            "spec.alerting.sinks[0].secretRef.name",
        ),
        (
            {"name": "am", "type": "alertmanager", "url": "http://a", "minSeverity": "info"},
            "spec.alerting.sinks[0].minSeverity",
        ),
    ],
)
def test_bad_sinks_are_spec_errors_naming_the_field(sink: dict[str, Any], where: str) -> None:
    with pytest.raises(SpecError) as raised:
        spec([sink])
    assert where in str(raised.value)


def test_sink_names_are_unique() -> None:
    am = {"name": "a", "type": "alertmanager", "url": "http://am:9093"}
    with pytest.raises(SpecError, match="duplicate sink name"):
        spec([am, am])
