"""The Remediated condition and the Events around an incident (pure parts of remediation)."""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.engine.remediation import incident_condition


def entry(kind: str, result: str, reason: str, incident: str = "i-1") -> dict[str, str]:
    return {
        "type": kind,
        "result": result,
        "reason": reason,
        "message": f"{kind} {reason}",
        "incident": incident,
    }


def test_a_refused_rollback_stays_visible_next_to_what_went_out() -> None:
    history = [
        entry("rollback", "skipped", "NoHealthyRevision"),
        entry("notify", "succeeded", "Notified"),
        entry("rollback", "succeeded", "RolledBack", incident="i-0"),  # another incident
    ]
    cond = incident_condition(history, "i-1")
    assert (cond.status, cond.reason) == ("True", "Notified")
    assert cond.message == "rollback: rollback NoHealthyRevision; notify: notify Notified"


def test_only_notes_so_far_report_the_latest_note() -> None:
    history = [
        entry("rollback", "suppressed", "Cooldown"),
        entry("rollback", "suppressed", "Paused"),
    ]
    cond = incident_condition(history, "i-1")
    assert (cond.status, cond.reason) == ("False", "Paused")


def test_notes_do_not_hide_results() -> None:
    history = [
        entry("rollback", "failed", "RollbackFailed"),
        entry("scale", "suppressed", "Paused"),
    ]
    cond = incident_condition(history, "i-1")
    assert (cond.status, cond.reason) == ("False", "RollbackFailed")
    assert "Paused" not in cond.message


def _verdict(slo_status: str) -> Any:
    import datetime as dt

    from modelmonitor.core.status import Condition, Phase
    from modelmonitor.core.verdict import Verdict

    conditions = (
        Condition("DriftDetected", "False", "Disabled", "drift is disabled"),
        Condition("SLOBreached", slo_status, "x", "p95"),
        Condition("Degraded", "False", "SourcesAvailable", "all sources answered"),
    )
    finished = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    slos = {"p95": {"True": False, "False": True}.get(slo_status)}
    return Verdict(Phase.HEALTHY, {}, (), conditions, conditions, slos, finished)


def test_a_revision_is_recorded_healthy_only_on_measured_evidence() -> None:
    import datetime as dt

    from modelmonitor.core.spec import parse_spec
    from modelmonitor.engine.remediation import Remediator

    spec = parse_spec(
        {
            "target": {"name": "iris"},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "actions": {"onSLOBreach": ["rollback"]},
        }
    )
    obj = {"metadata": {"name": "m", "namespace": "ml"}, "status": {}}
    seen = {"revision": "3", "podTemplateHash": "abc", "images": ["iris:v1"]}
    remediator = Remediator(api=None, executors={})  # type: ignore[arg-type]
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    unknown = remediator.plan(obj, spec, _verdict("Unknown"), (seen, seen), now)
    assert "healthyRevisions" not in unknown.status_patch  # no SLO data: not evidence
    met = remediator.plan(obj, spec, _verdict("False"), (seen, seen), now)
    assert met.status_patch["healthyRevisions"][0]["podTemplateHash"] == "abc"
    assert met.status_patch["healthyRevisions"][0]["lastSeen"] == "2026-11-26T12:00:00Z"
    moved = remediator.plan(
        obj, spec, _verdict("False"), (seen, {**seen, "podTemplateHash": "d"}), now
    )
    assert "healthyRevisions" not in moved.status_patch  # a rollout during the run


def test_the_fault_launcher_runs_the_operator_with_its_remediator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tests/e2e/exit_before_action.py: ``modelmonitor run`` whose remediator exits."""
    from modelmonitor.core.spec import MonitorSpec, ReferenceSpec, TargetSpec
    from tests.e2e import exit_before_action
    from tests.unit.actions.fake_api import request

    seen: dict[str, Any] = {}

    def run_command(args: Any, *, remediation: Any) -> int:
        seen.update(namespaces=args.namespaces, remediation=remediation)
        return 0

    monkeypatch.setattr(exit_before_action, "run_command", run_command)
    assert exit_before_action.main(["--namespace", "ml", "--standalone"]) == 0
    assert seen == {"namespaces": ["ml"], "remediation": exit_before_action.ExitBeforeAction}

    def exit_(status: int) -> None:
        raise SystemExit(status)

    monkeypatch.setattr(exit_before_action.os, "_exit", exit_)
    remediator = exit_before_action.ExitBeforeAction(api=None, executors={})  # type: ignore[arg-type]
    spec = MonitorSpec(target=TargetSpec("iris"), reference=ReferenceSpec("inline"))
    with pytest.raises(SystemExit, match="75"):
        remediator.execute(spec, request("notify"), {})
    dry = remediator.execute(spec, request("notify", dry_run=True), {})
    assert dry.reason == "NoLongerConfigured"  # a dry run goes on as usual


def test_only_on_performance_drop_keeps_an_incident() -> None:
    """A monitor whose only action list is onPerformanceDrop still opens incidents."""
    import datetime as dt

    from modelmonitor.core.spec import parse_spec
    from modelmonitor.core.status import Condition, Phase
    from modelmonitor.core.verdict import Verdict
    from modelmonitor.engine.remediation import Remediator

    spec = parse_spec(
        {
            "target": {"name": "iris", "endpoint": {"url": "http://m:8080"}},
            "reference": {"configMapRef": {"name": "r", "key": "k"}},
            "data": {"probe": {}},
            "performance": {"target": "y", "probabilities": ["p"], "minimum": {"accuracy": 0.9}},
            "actions": {"onPerformanceDrop": ["rollback"], "consecutiveBreaches": 1},
        }
    )
    conditions = (
        Condition("PerformanceDegraded", "True", "EstimatedPerformanceDropped", "accuracy"),
        Condition("Degraded", "False", "SourcesAvailable", "all sources answered"),
    )
    now = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)
    verdict = Verdict(Phase.BREACHED, {}, (), conditions, conditions, {}, now)
    obj = {"metadata": {"name": "m", "namespace": "ml"}, "status": {}}
    remediator = Remediator(api=None, executors={})  # type: ignore[arg-type]
    seen = {"revision": "3", "podTemplateHash": "abc", "images": ["iris:v1"]}
    plan = remediator.plan(obj, spec, verdict, (seen, seen), now)
    incident = plan.status_patch["incident"]
    assert incident["triggers"] == ["performance"]
    assert [r.action for r in plan.requests] == ["rollback"]
