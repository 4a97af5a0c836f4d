"""The incident state machine, driven run by run with an injected clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest

from modelmonitor.core.incident import ActionResult, Incident, IncidentState, Outcome
from modelmonitor.core.policy import (
    Decision,
    Observation,
    PolicyContext,
    Signal,
    observe,
    record_result,
    step,
)
from modelmonitor.core.spec import ActionsSpec, ScaleSpec
from modelmonitor.core.status import Condition

T0 = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
BREACH = Observation(Signal.BREACH, frozenset({"slo"}), latency_breach=True, reason="p95 slow")
DRIFT = Observation(Signal.BREACH, frozenset({"drift"}), reason="3/4 features drifted")
HEALTHY = Observation(Signal.HEALTHY, phase="Healthy")
UNKNOWN = Observation(Signal.UNKNOWN)


class Monitor:
    """Feeds observations one run at a time and records results like the operator does."""

    def __init__(self, actions: ActionsSpec, *, interval: float = 60.0) -> None:
        self.actions = actions
        self.incident = Incident.from_dict({})
        self.now = T0
        self.interval = dt.timedelta(seconds=interval)
        self.paused = False
        self.executed: list[str] = []
        self.outcome = Outcome.SUCCEEDED
        self.details: dict[str, Any] = {}

    def ctx(self) -> PolicyContext:
        return PolicyContext(
            namespace="ml",
            monitor="iris",
            monitor_uid="uid-1",
            actions=self.actions,
            target_kind="Deployment",
            target_name="iris",
            paused=self.paused,
            now=self.now,
            healthy_revisions=({"revision": "1", "podTemplateHash": "abc"},),
        )

    def run(self, obs: Observation, *, execute: bool = True) -> Decision:
        decision = step(obs, self.incident, self.ctx())
        self.incident = decision.incident
        if execute:
            for request in decision.requests:
                self.executed.append(request.action)
                result = ActionResult(self.outcome, "Done", "done", dict(self.details))
                updated = record_result(self.incident, request, result, self.now)
                assert updated is not None
                self.incident = updated
        self.now += self.interval
        return decision

    @property
    def state(self) -> str:
        return self.incident.state


def rollback_actions(**overrides: Any) -> ActionsSpec:
    base = ActionsSpec(consecutive_breaches=3, cooldown_seconds=600, on_slo_breach=("rollback",))
    return replace(base, **overrides)


def test_breaches_must_be_consecutive_before_acting() -> None:
    mon = Monitor(rollback_actions())
    assert mon.run(BREACH).requests == ()
    assert mon.state == IncidentState.SUSPECT
    assert mon.run(BREACH).requests == ()
    decision = mon.run(BREACH)
    assert [r.action for r in decision.requests] == ["rollback"]
    request = decision.requests[0]
    assert request.id == f"{mon.incident.id}-rollback-1"
    assert request.healthy_revisions[0]["podTemplateHash"] == "abc"
    assert decision.transition == ("Suspect", "Remediating")
    assert mon.state == IncidentState.REMEDIATING


def test_a_healthy_run_resets_a_suspect_and_unknown_runs_hold() -> None:
    mon = Monitor(rollback_actions())
    mon.run(BREACH)
    mon.run(BREACH)
    mon.run(HEALTHY)
    assert mon.state == IncidentState.HEALTHY
    mon.run(BREACH)
    mon.run(UNKNOWN)  # Degraded / InsufficientData: neither counts nor resets
    mon.run(UNKNOWN)
    mon.run(BREACH)
    assert mon.executed == []
    assert mon.incident.breaches == 2
    mon.run(BREACH)
    assert mon.executed == ["rollback"]


def test_unknown_runs_never_act_however_many() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1))
    for _ in range(10):
        assert mon.run(UNKNOWN).requests == ()
    assert mon.executed == []
    assert mon.incident.to_dict() == {}


def test_each_action_runs_once_per_incident_and_recovery_needs_hysteresis() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=2))
    for _ in range(8):
        mon.run(BREACH)
    assert mon.executed == ["rollback"]
    mon.run(HEALTHY)
    mon.run(BREACH)  # flapping: healthy runs start over
    mon.run(HEALTHY)
    assert mon.state == IncidentState.REMEDIATING
    decision = mon.run(HEALTHY)
    assert mon.state == IncidentState.RECOVERED
    assert decision.transition == ("Remediating", "Recovered")
    assert mon.executed == ["rollback"]


def test_a_second_incident_inside_the_cooldown_does_not_act_and_says_so_once() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1, cooldown_seconds=600))
    mon.run(BREACH)
    mon.run(HEALTHY)  # recovered after one healthy run (consecutiveBreaches 1)
    assert mon.state == IncidentState.RECOVERED
    first = mon.incident.last_action_at
    assert first is not None
    notes = [mon.run(BREACH).notes, mon.run(BREACH).notes]
    assert mon.executed == ["rollback"]
    assert [n.reason for n in notes[0]] == ["Cooldown"]
    assert notes[1] == ()
    assert "cooldown is 10m" in notes[0][0].message
    mon.now = dt.datetime.fromisoformat(first.replace("Z", "+00:00")) + dt.timedelta(seconds=601)
    decision = mon.run(BREACH)  # still the same incident, cooldown over: acts now
    assert [r.action for r in decision.requests] == ["rollback"]


def test_actions_of_one_incident_are_not_held_back_by_each_others_cooldown() -> None:
    mon = Monitor(
        rollback_actions(consecutive_breaches=1, on_slo_breach=("rollback", "notify", "retrain"))
    )
    decision = mon.run(BREACH)
    assert [r.action for r in decision.requests] == ["rollback", "retrain", "notify"]


def test_the_hourly_cap_holds_across_incidents() -> None:
    mon = Monitor(
        rollback_actions(consecutive_breaches=1, cooldown_seconds=0, max_actions_per_hour=2)
    )
    for _ in range(2):
        mon.run(BREACH)
        mon.run(HEALTHY)
    decision = mon.run(BREACH)
    assert [n.reason for n in decision.notes] == ["RateLimited"]
    assert mon.executed == ["rollback", "rollback"]
    mon.now += dt.timedelta(hours=1)
    assert [r.action for r in mon.run(BREACH).requests] == ["rollback"]


def test_failed_or_refused_actions_do_not_start_a_cooldown() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1))
    mon.outcome = Outcome.SKIPPED  # e.g. NoHealthyRevision
    mon.run(BREACH)
    mon.run(BREACH)
    assert mon.executed == ["rollback"]  # not retried within the incident
    assert mon.incident.last_action_at is None
    mon.run(HEALTHY)
    mon.outcome = Outcome.SUCCEEDED
    assert [r.action for r in mon.run(BREACH).requests] == ["rollback"]


def test_dry_run_decides_and_reports_without_cooldown() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1, dry_run=True))
    mon.outcome = Outcome.DRY_RUN
    decision = mon.run(BREACH)
    assert decision.requests[0].dry_run
    mon.run(BREACH)
    assert mon.executed == ["rollback"]  # once per incident, also in dry run
    mon.run(HEALTHY)
    assert mon.incident.last_action_at is None
    assert mon.run(BREACH).requests[0].dry_run  # next incident: reported again


def test_the_pause_annotation_suspends_acting_until_removed() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1))
    mon.paused = True
    notes = [mon.run(BREACH).notes for _ in range(3)]
    assert [n.reason for n in notes[0]] == ["Paused"]
    assert notes[1] == notes[2] == ()
    assert mon.executed == []
    mon.paused = False
    assert [r.action for r in mon.run(BREACH).requests] == ["rollback"]


def test_pending_requests_block_new_decisions() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1, on_slo_breach=("rollback",)))
    first = mon.run(BREACH, execute=False)
    assert len(first.requests) == 1
    assert mon.run(BREACH, execute=False).requests == ()
    assert len(mon.incident.pending) == 1
    result = ActionResult(Outcome.SUCCEEDED, "RolledBack", "ok")
    recorded = record_result(mon.incident, first.requests[0], result, mon.now)
    assert recorded is not None
    assert recorded.pending == ()
    assert record_result(recorded, first.requests[0], result, mon.now) is None  # only once


def test_scale_steps_on_latency_then_scales_back_after_stabilization() -> None:
    actions = rollback_actions(
        consecutive_breaches=2,
        on_slo_breach=("scale",),
        scale=ScaleSpec(max_replicas=4, step=1, stabilization_seconds=300),
    )
    mon = Monitor(actions)
    mon.details = {"restore": {"kind": "Deployment", "name": "iris", "original": 1, "applied": 2}}
    for _ in range(2):
        mon.run(BREACH)
    assert mon.executed == ["scale"]
    mon.details = {"restore": {"kind": "Deployment", "name": "iris", "original": 2, "applied": 3}}
    mon.run(BREACH)
    assert mon.executed == ["scale"]  # the step needs consecutiveBreaches runs to work
    decision = mon.run(BREACH)
    assert decision.requests[0].id.endswith("-scale-2")
    assert mon.incident.restore is not None
    assert mon.incident.restore.to_dict() == {
        "kind": "Deployment",
        "name": "iris",
        "original": 1,  # the first step's original, the last step's applied
        "applied": 3,
    }
    mon.run(HEALTHY)
    mon.run(HEALTHY)
    assert mon.state == IncidentState.RECOVERED
    assert mon.run(HEALTHY).requests == ()  # stabilizing
    mon.now += dt.timedelta(seconds=300)
    decision = mon.run(HEALTHY)
    assert [r.action for r in decision.requests] == ["scale-back"]
    assert decision.requests[0].restore == {
        "kind": "Deployment",
        "name": "iris",
        "original": 1,
        "applied": 3,
    }
    assert mon.incident.restore is None
    assert mon.run(HEALTHY).requests == ()


def test_scale_ignores_breaches_that_are_not_about_latency() -> None:
    actions = rollback_actions(
        consecutive_breaches=1, on_slo_breach=("scale",), scale=ScaleSpec(max_replicas=3)
    )
    mon = Monitor(actions)
    decision = mon.run(replace(BREACH, latency_breach=False))
    assert decision.requests == ()
    assert [n.reason for n in decision.notes] == ["NotLatencyBreach"]


def test_drift_uses_on_drift_and_slo_uses_on_slo_breach() -> None:
    mon = Monitor(
        rollback_actions(consecutive_breaches=1, on_slo_breach=("rollback",), on_drift=("notify",))
    )
    assert [r.action for r in mon.run(DRIFT).requests] == ["notify"]
    assert [r.action for r in mon.run(BREACH).requests] == ["rollback"]  # same incident


@pytest.mark.parametrize(
    ("conditions", "phase", "signal"),
    [
        ([("SLOBreached", "True"), ("Degraded", "True")], "Breached", Signal.UNKNOWN),
        ([("SLOBreached", "True"), ("Degraded", "False")], "Breached", Signal.BREACH),
        ([("DriftDetected", "True")], "Drifted", Signal.BREACH),
        ([("DriftDetected", "Unknown"), ("SLOBreached", "Unknown")], "Pending", Signal.UNKNOWN),
        ([("DriftDetected", "False"), ("SLOBreached", "False")], "Healthy", Signal.HEALTHY),
        # drift off and no SLO data: the phase says Healthy, but nothing was measured
        (
            [("DriftDetected", "False:Disabled"), ("SLOBreached", "Unknown")],
            "Healthy",
            Signal.UNKNOWN,
        ),
        (
            [("DriftDetected", "False:Disabled"), ("SLOBreached", "False")],
            "Healthy",
            Signal.HEALTHY,
        ),
        ([("DriftDetected", "False:NoDrift")], "Healthy", Signal.HEALTHY),
    ],
)
def test_observe(conditions: list[tuple[str, str]], phase: str, signal: Signal) -> None:
    conds = [
        Condition(t, s.split(":")[0], s.partition(":")[2], f"{t} says {s}") for t, s in conditions
    ]
    obs = observe(conds, phase, {"p95": False, "errors": True}, frozenset({"p95"}))
    assert obs.signal == signal
    if signal == Signal.BREACH and "SLOBreached" in dict(conditions):
        assert obs.latency_breach
        assert "SLOBreached says True" in obs.reason


def test_a_delivered_webhook_counts_towards_the_cap_but_starts_no_cooldown() -> None:
    mon = Monitor(rollback_actions(consecutive_breaches=1, on_slo_breach=("notify",)))
    mon.run(BREACH)
    assert mon.incident.last_action_at is None
    assert len(mon.incident.recent_actions or ()) == 1
    mon.run(HEALTHY)
    assert [r.action for r in mon.run(BREACH).requests] == ["notify"]


def test_a_scale_back_paused_at_the_last_moment_is_kept_for_later() -> None:
    restore = {"kind": "Deployment", "name": "iris", "original": 1, "applied": 2}
    incident = {"id": "i", "state": "Recovered", "restore": restore, "pending": []}
    mon = Monitor(
        rollback_actions(
            on_slo_breach=("scale",), scale=ScaleSpec(max_replicas=3, stabilization_seconds=0)
        )
    )
    incident["closedAt"] = "2026-11-26T11:00:00Z"
    decision = step(HEALTHY, Incident.from_dict(incident), mon.ctx())
    (request,) = decision.requests
    paused = ActionResult(Outcome.SUPPRESSED, "Paused", "paused")
    kept = record_result(decision.incident, request, paused, mon.now)
    assert kept is not None
    assert kept.restore is not None
    assert kept.restore.to_dict() == restore
    assert kept.pending == ()
