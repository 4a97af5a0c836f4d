"""``status.incident`` as a typed record: it reads and writes back exactly the status JSON.

The dicts below are what the operator writes (docs/actions.md, "status.incident"), and
what an older or newer one may have left: keys missing, keys it does not know, values of
a type it never writes. An upgraded operator must write back exactly what it read where
it changed nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from typing import Any

import pytest

from modelmonitor.core.incident import (
    PLANNED,
    ActionRequest,
    Incident,
    IncidentState,
    Outcome,
    PendingAction,
    Restore,
)
from modelmonitor.core.policy import Observation, PolicyContext, Signal, step
from modelmonitor.core.spec import ActionsSpec
from tests.unit.actions.fake_api import request

RESTORE = {
    "kind": "Deployment",
    "name": "iris",
    "field": "spec.replicas",
    "original": 2,
    "applied": 4,
}
PENDING_ROLLBACK = {
    "id": "iris-20261126-154501-rollback-1",
    "action": "rollback",
    "incident": "iris-20261126-154501",
    "trigger": "slo",
    "reason": "p95 latency 612 ms > 300 ms this run",
    "dryRun": False,
    "phase": "Breached",
    "healthyRevisions": [
        {"revision": "1", "podTemplateHash": "5d4f8b7c9", "lastSeen": "2026-11-26T15:40:00Z"}
    ],
    "restore": None,
    "created": "2026-11-26T15:45:12Z",
}
PENDING_SCALE_BACK = {
    "id": "iris-20261126-154501-scale-back-1",
    "action": "scale-back",
    "incident": "iris-20261126-154501",
    "trigger": "slo",
    "reason": "healthy for 300s (stabilizationSeconds)",
    "dryRun": False,
    "phase": "",
    "healthyRevisions": [],
    "restore": RESTORE,
    "created": "2026-11-26T15:52:00Z",
}
RECOVERED = {  # docs/actions.md
    "id": "iris-20261126-154501",
    "state": "Recovered",
    "triggers": ["slo"],
    "reason": "p95 latency 612 ms > 300 ms this run",
    "startedAt": "2026-11-26T15:45:01Z",
    "breachedAt": "2026-11-26T15:45:12Z",
    "closedAt": "2026-11-26T15:45:45Z",
    "recoveredAt": "2026-11-26T15:45:45Z",
    "updatedAt": "2026-11-26T15:46:45Z",
    "breaches": 0,
    "healthyRuns": 2,
    "stepBreaches": 0,
    "acted": {"rollback": "succeeded"},
    "suppressed": {},
    "pending": [],
    "lastActionAt": "2026-11-26T15:45:12Z",
    "lastActionIncident": "iris-20261126-154501",
    "recentActions": ["2026-11-26T15:45:12Z"],
}
REMEDIATING = {
    "id": "iris-20261126-154501",
    "state": "Remediating",
    "triggers": ["drift", "slo"],
    "reason": "p95 latency 612 ms > 300 ms this run; 3/4 features drifted",
    "startedAt": "2026-11-26T15:45:01Z",
    "breachedAt": "2026-11-26T15:45:12Z",
    "updatedAt": "2026-11-26T15:45:12Z",
    "breaches": 2,
    "healthyRuns": 0,
    "stepBreaches": 0,
    "scaleSteps": 1,
    "acted": {"rollback": "pending", "scale": "succeeded", "notify": "dryrun"},
    "suppressed": {"retrain": "RateLimited"},
    "pending": [PENDING_ROLLBACK],
    "restore": RESTORE,
    "restoreFailures": 1,
    "lastActionAt": "2026-11-26T15:30:00Z",
    "lastActionIncident": "iris-20261126-150000",
    "recentActions": ["2026-11-26T15:30:00Z", "2026-11-26T15:31:00Z"],
}
SCALING_BACK = {
    **RECOVERED,
    "acted": {"scale": "succeeded"},
    "pending": [PENDING_SCALE_BACK],
    "restore": RESTORE,
    "scaleSteps": 2,
}
# An older operator: no scale bookkeeping, no updatedAt/stepBreaches, a suspect incident.
OLDER = {
    "id": "fraud-20261126-101500",
    "state": "Suspect",
    "triggers": ["drift"],
    "reason": "2/3 features drifted",
    "startedAt": "2026-11-26T10:15:00Z",
    "breaches": 1,
    "healthyRuns": 0,
    "acted": {},
    "suppressed": {},
    "pending": [],
}
# A newer operator: keys and values this one does not know, also inside nested records.
NEWER = {
    **REMEDIATING,
    "escalatedAt": "2026-11-26T15:50:00Z",
    "owner": {"team": "ml-platform"},
    "pending": [{**PENDING_ROLLBACK, "priority": 3}, {**PENDING_SCALE_BACK, "dryRun": False}],
    "restore": {**RESTORE, "hpa": "iris"},
}
# Values of a type this version never writes: kept as they are.
UNREADABLE = {
    **RECOVERED,
    "state": "Escalated",
    "breaches": "2",
    "acted": {"rollback": "rolled-back"},
    "recentActions": "2026-11-26T15:45:12Z",
    "pending": [{**PENDING_ROLLBACK, "dryRun": "false"}],
}
STATUSES = {
    "none": {},
    "recovered": RECOVERED,
    "remediating": REMEDIATING,
    "scaling-back": SCALING_BACK,
    "older": OLDER,
    "newer": NEWER,
    "unreadable": UNREADABLE,
    "carried-only": {k: RECOVERED[k] for k in ("lastActionAt", "recentActions")},
}


@pytest.mark.parametrize("name", list(STATUSES))
def test_status_round_trips_exactly(name: str) -> None:
    status = copy.deepcopy(STATUSES[name])
    # as the API server returns it: keys sorted, through JSON
    stored = json.loads(json.dumps(status, sort_keys=True))
    incident = Incident.from_dict(stored)
    assert incident.to_dict() == status
    assert json.dumps(incident.to_dict(), sort_keys=True) == json.dumps(status, sort_keys=True)
    assert stored == status  # reading changes nothing it was given


def test_the_record_is_typed() -> None:
    incident = Incident.from_dict(REMEDIATING)
    assert incident.state is IncidentState.REMEDIATING
    assert incident.triggers == ("drift", "slo")
    assert incident.acted == {"rollback": PLANNED, "scale": Outcome.SUCCEEDED, "notify": "dryrun"}
    assert incident.suppressed == {"retrain": "RateLimited"}
    assert (incident.breaches, incident.healthy_runs, incident.scale_steps) == (2, 0, 1)
    assert incident.restore == Restore(
        kind="Deployment", name="iris", path="spec.replicas", original=2, applied=4
    )
    (pending,) = incident.pending
    assert isinstance(pending, PendingAction)
    assert (pending.action, pending.dry_run, pending.restore) == ("rollback", False, None)
    assert pending.healthy_revisions[0]["podTemplateHash"] == "5d4f8b7c9"
    assert incident.recent_actions == ("2026-11-26T15:30:00Z", "2026-11-26T15:31:00Z")
    assert Incident.from_dict(OLDER).scale_steps is None
    assert Incident.from_dict(OLDER).restore is None


def test_unreadable_values_read_as_absent_and_are_kept() -> None:
    incident = Incident.from_dict(UNREADABLE)
    assert incident.state is IncidentState.HEALTHY
    assert incident.breaches == 0
    assert incident.acted == {}
    assert incident.recent_actions is None
    assert incident.extra["state"] == "Escalated"
    (pending,) = incident.pending  # read; only its unreadable key is kept aside
    assert pending.extra == {"dryRun": "false"}
    # and a flag it cannot read never turns the plan into acting
    assert pending.bind(namespace="ml", monitor="iris", monitor_uid="u").dry_run is True
    assert ActionRequest.from_dict(UNREADABLE["pending"][0]).dry_run is True


def test_a_pending_entry_becomes_the_request_of_its_monitor() -> None:
    (pending,) = Incident.from_dict(SCALING_BACK).pending
    request = pending.bind(namespace="ml", monitor="iris", monitor_uid="uid-1")
    assert isinstance(request, ActionRequest)
    assert (request.namespace, request.monitor, request.monitor_uid) == ("ml", "iris", "uid-1")
    assert request.restore == RESTORE
    assert request.to_dict() == PENDING_SCALE_BACK  # the monitor is not part of status
    again = ActionRequest.from_dict(PENDING_SCALE_BACK, namespace="ml", monitor="iris")
    assert again.to_dict() == PENDING_SCALE_BACK


def test_a_request_planned_in_code_writes_every_key() -> None:
    assert request("notify", trigger="drift", reason="drifted").to_dict() == {
        "id": "i-notify-1",
        "action": "notify",
        "incident": "i",
        "trigger": "drift",
        "reason": "drifted",
        "dryRun": False,
        "phase": "",
        "healthyRevisions": [],
        "restore": None,
        "created": "",
    }


T0 = dt.datetime(2026, 11, 26, 16, 0, tzinfo=dt.UTC)


def _ctx(**actions: Any) -> PolicyContext:
    return PolicyContext(
        namespace="ml",
        monitor="iris",
        monitor_uid="u",
        actions=ActionsSpec(consecutive_breaches=2, on_slo_breach=("rollback",), **actions),
        target_kind="Deployment",
        target_name="iris",
        paused=False,
        now=T0,
    )


@pytest.mark.parametrize("name", list(STATUSES))
def test_a_run_without_evidence_writes_back_what_it_read(name: str) -> None:
    decision = step(Observation(Signal.UNKNOWN), Incident.from_dict(STATUSES[name]), _ctx())
    assert decision.incident.to_dict() == STATUSES[name]


def test_what_this_version_does_not_know_survives_a_change() -> None:
    breach = Observation(Signal.BREACH, frozenset({"slo"}), reason="slow", phase="Breached")
    decision = step(breach, Incident.from_dict(NEWER), _ctx())
    written = decision.incident.to_dict()
    assert written["breaches"] == 3
    assert written["escalatedAt"] == NEWER["escalatedAt"]
    assert written["owner"] == {"team": "ml-platform"}
    assert written["pending"] == NEWER["pending"]
    assert written["restore"] == NEWER["restore"]


def test_an_older_incident_gets_only_the_keys_that_change() -> None:
    breach = Observation(Signal.BREACH, frozenset({"drift"}), reason="drifted", phase="Drifted")
    ctx = _ctx(on_drift=("notify",), dry_run=True)
    written = step(breach, Incident.from_dict(OLDER), ctx).incident.to_dict()
    assert set(written) - set(OLDER) == {"breachedAt", "updatedAt", "stepBreaches"}
    assert written["state"] == "Remediating"
    assert written["acted"] == {"notify": "pending"}
