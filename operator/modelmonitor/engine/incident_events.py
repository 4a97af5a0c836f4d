"""The Events an incident's life produces, built from its records (pure).

Kept apart from the remediator so the wording of what people read in `kubectl describe`
lives in one place, and the same Event can be rebuilt from status after a restart.
"""

from __future__ import annotations

from collections.abc import Sequence

from modelmonitor.core.incident import ActionRequest, ActionResult, Incident, IncidentState, Outcome
from modelmonitor.core.policy import Decision
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.verdict import Event


def result_event(request: ActionRequest, result: ActionResult) -> Event:
    good = result.outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN)
    return Event("Normal" if good else "Warning", result.reason, result.message)


def confirmed_event(incident: Incident, spec: MonitorSpec) -> Event:
    """``IncidentConfirmed``, keyed on the incident: from the record, as after a restart."""
    return Event(
        "Warning",
        "IncidentConfirmed",
        f"incident {incident.id}: {incident.breaches} breaching runs in a row "
        f"(consecutiveBreaches {spec.actions.consecutive_breaches}): {incident.reason}"[:1024],
        key=f"IncidentConfirmed/{incident.id}",
    )


def planned_event(request: ActionRequest) -> Event:
    """``ActionPlanned``, keyed on the request id: from the request, as status keeps it."""
    what = "dry run of" if request.dry_run else "carrying out"
    return Event(
        "Warning" if not request.dry_run else "Normal",
        "ActionPlanned",
        f"{what} {request.action} ({request.id}) for incident {request.incident}",
        key=f"ActionPlanned/{request.id}",
    )


def transition_events(decision: Decision, spec: MonitorSpec) -> Sequence[Event]:
    """``IncidentConfirmed`` or ``IncidentResolved`` when the decision changed the state."""
    if decision.transition is None:
        return ()
    old, new = decision.transition
    incident = decision.incident
    confirmed = (IncidentState.BREACHED, IncidentState.REMEDIATING)
    if new in confirmed and old not in confirmed:
        return (confirmed_event(incident, spec),)
    if new == IncidentState.RECOVERED or (
        new == IncidentState.HEALTHY and old in (IncidentState.BREACHED, IncidentState.REMEDIATING)
    ):
        return (
            Event(
                "Normal",
                "IncidentResolved",
                f"incident {incident.id}: healthy for {incident.healthy_runs} runs "
                f"in a row ({new})",
            ),
        )
    return ()


__all__ = ["confirmed_event", "planned_event", "result_event", "transition_events"]
