"""Whether to act on a verdict, and with what: the incident state machine.

Pure: the caller passes the verdict's conditions, the monitor's remediation state (the
:class:`~modelmonitor.core.incident.Incident` read from ``status.incident``), the spec and
"now", and writes back what :func:`step` returns. One incident per monitor at a time::

    Healthy --breach--> Suspect --(consecutiveBreaches runs)--> Breached --act--> Remediating
       ^                   |                                        |                 |
       +----healthy--------+        (consecutiveBreaches healthy runs: hysteresis)     |
       +----------------------------------------------------- Recovered <-------------+

Rules (see docs/actions.md):

* only evidence acts: a run whose sources failed (Degraded) or that lacked data
  (InsufficientData, Pending) neither counts towards a breach nor towards recovery;
* each configured action runs at most once per incident (``scale`` may step again after
  another ``consecutiveBreaches`` breaching runs, up to ``maxReplicas``);
* ``cooldown`` separates the actions of different incidents, ``maxActionsPerHour``
  caps actions in any rolling hour, the ``modelmonitor.io/paused`` annotation suspends
  acting; each of these is reported once per incident and action, not once per run;
* ``dryRun`` plans and reports ("would roll back deployment/x from revision 7 to 6")
  and changes nothing; it does not start a cooldown;
* a planned action is written to status (``pending``, with a deterministic id) before it
  is carried out, so an operator killed in between finds it again and does not plan it
  twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from modelmonitor.core.action_names import CHANGE_NOTHING, RUN_ORDER, SCALE_BACK, ActionName
from modelmonitor.core.incident import (
    OPEN_STATES,
    PLANNED,
    ActionRequest,
    ActionResult,
    Incident,
    IncidentState,
    Outcome,
    Restore,
)
from modelmonitor.core.slo.budget import format_duration
from modelmonitor.core.spec import ActionsSpec
from modelmonitor.core.status import Condition, ConditionType, Phase, format_time

PAUSE_ANNOTATION = "modelmonitor.io/paused"
HISTORY_CAP = 20
MAX_RESTORE_ATTEMPTS = 3
RATE_WINDOW = dt.timedelta(hours=1)


class Signal(StrEnum):
    BREACH = "breach"
    HEALTHY = "healthy"
    UNKNOWN = "unknown"  # no evidence either way: hold


@dataclass(frozen=True)
class Observation:
    """One run's verdict, reduced to what the policy needs."""

    signal: Signal
    triggers: frozenset[str] = frozenset()  # "slo", "drift", "performance"
    latency_breach: bool = False
    reason: str = ""
    phase: str = ""


def observe(
    conditions: Sequence[Condition],
    phase: str,
    slos: Mapping[str, bool | None],
    latency_slos: frozenset[str],
) -> Observation:
    """Classify a verdict: a breach with evidence, healthy, or unknown.

    ``conditions`` are the monitor's conditions after the run, ``slos`` each SLO's
    verdict (met, breached, or None: unknown) and ``latency_slos`` the SLOs on latency.
    """
    found = {c.type: c for c in conditions}

    def status_of(kind: str) -> tuple[str, str]:
        cond = found.get(kind)
        return (cond.status, cond.message) if cond is not None else ("", "")

    degraded, degraded_message = status_of(ConditionType.DEGRADED)
    if degraded == "True":
        return Observation(
            Signal.UNKNOWN, reason=f"sources degraded: {degraded_message}", phase=phase
        )
    slo, slo_message = status_of(ConditionType.SLO_BREACHED)
    drift, drift_message = status_of(ConditionType.DRIFT_DETECTED)
    perf, perf_message = status_of(ConditionType.PERFORMANCE_DEGRADED)
    drift_cond = found.get(ConditionType.DRIFT_DETECTED)
    drift_reason = drift_cond.reason if drift_cond is not None else ""
    triggers = set()
    reasons = []
    if slo == "True":
        triggers.add("slo")
        reasons.append(slo_message)
    if drift == "True":
        triggers.add("drift")
        reasons.append(drift_message)
    if perf == "True":
        triggers.add("performance")
        reasons.append(perf_message)
    if triggers:
        breached = {name for name, met in slos.items() if met is False}
        return Observation(
            Signal.BREACH,
            frozenset(triggers),
            latency_breach=bool(breached & latency_slos),
            reason="; ".join(r for r in reasons if r),
            phase=phase,
        )
    # Healthy needs evidence too: every SLO met and the drift verdict known (or off), and
    # at least one of them measured; a run of InsufficientData is no recovery.
    slo_known = slo in ("False", "")
    drift_known = drift in ("False", "")
    perf_known = perf in ("False", "")
    evidence = (
        slo == "False" or (drift == "False" and drift_reason != "Disabled") or perf == "False"
    )
    if phase == Phase.HEALTHY and slo_known and drift_known and perf_known and evidence:
        return Observation(Signal.HEALTHY, phase=phase)
    return Observation(Signal.UNKNOWN, reason="no verdict (insufficient data)", phase=phase)


@dataclass(frozen=True)
class PolicyContext:
    namespace: str
    monitor: str
    monitor_uid: str
    actions: ActionsSpec
    target_kind: str
    target_name: str
    paused: bool
    now: dt.datetime
    healthy_revisions: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Note:
    """A decision not to act (suppressed): reported once per incident and action."""

    action: str
    reason: str  # Cooldown | RateLimited | Paused | NotLatencyBreach
    message: str


@dataclass(frozen=True)
class Decision:
    incident: Incident
    requests: tuple[ActionRequest, ...] = ()
    notes: tuple[Note, ...] = ()
    transition: tuple[str, str] | None = None  # (old state, new state) when it changed


def _parse(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _incident_id(monitor: str, now: dt.datetime) -> str:
    return f"{monitor[:40]}-{now.astimezone(dt.UTC).strftime('%Y%m%d-%H%M%S')}"


def configured_actions(actions: ActionsSpec, triggers: frozenset[str]) -> list[str]:
    wanted: set[str] = set()
    if "slo" in triggers:
        wanted.update(actions.on_slo_breach)
    if "drift" in triggers:
        wanted.update(actions.on_drift)
    if "performance" in triggers:
        wanted.update(actions.on_performance_drop)
    return [a.value for a in RUN_ORDER if a in wanted]


def _open(old: Incident, monitor: str, now: dt.datetime) -> Incident:
    """A new incident; what outlives the last one: cooldown/rate bookkeeping, a pending
    scale-back and what is still pending."""
    return Incident(
        id=_incident_id(monitor, now),
        state=IncidentState.SUSPECT,
        started_at=format_time(now),
        breaches=0,
        healthy_runs=0,
        triggers=(),
        acted={},
        suppressed={},
        pending=old.pending,
        restore=old.restore,
        last_action_at=old.last_action_at,
        last_action_incident=old.last_action_incident,
        recent_actions=old.recent_actions,
    )


def step(obs: Observation, old: Incident, ctx: PolicyContext) -> Decision:
    """Advance the incident by one run's observation; plan the actions now due."""
    state = old.state
    now = ctx.now
    stamp = format_time(now)
    n = ctx.actions.consecutive_breaches

    if obs.signal == Signal.UNKNOWN:
        return Decision(old)  # hold: neither a breach nor a recovery

    if obs.signal == Signal.BREACH:
        incident = old if state in OPEN_STATES else _open(old, ctx.monitor, now)
        incident = replace(
            incident,
            breaches=incident.breaches + 1,
            step_breaches=incident.step_breaches + 1,
            healthy_runs=0,
            triggers=tuple(sorted(set(incident.triggers) | obs.triggers)),
            reason=obs.reason[:1024],
            updated_at=stamp,
        )
        if incident.state == IncidentState.SUSPECT and incident.breaches >= n:
            incident = replace(incident, state=IncidentState.BREACHED, breached_at=stamp)
        requests: tuple[ActionRequest, ...] = ()
        notes: tuple[Note, ...] = ()
        if incident.state in (IncidentState.BREACHED, IncidentState.REMEDIATING):
            incident, requests, notes = _plan(obs, incident, ctx)
        if requests:
            incident = replace(incident, state=IncidentState.REMEDIATING)
        return Decision(incident, requests, notes, _transition(state, incident))

    # healthy run
    if not old.id:
        return Decision(old)  # no incident ever: nothing to track
    incident = replace(old, updated_at=stamp)
    if state == IncidentState.SUSPECT:
        # a blip below consecutiveBreaches
        incident = replace(incident, state=IncidentState.HEALTHY, breaches=0, closed_at=stamp)
    elif state in (IncidentState.BREACHED, IncidentState.REMEDIATING):
        incident = replace(
            incident, breaches=0, step_breaches=0, healthy_runs=incident.healthy_runs + 1
        )
        if incident.healthy_runs >= n and not incident.pending:
            if state == IncidentState.REMEDIATING:
                incident = replace(
                    incident, state=IncidentState.RECOVERED, closed_at=stamp, recovered_at=stamp
                )
            else:
                incident = replace(incident, state=IncidentState.HEALTHY, closed_at=stamp)
    incident, requests = _plan_restore(incident, ctx)
    return Decision(incident, requests, (), _transition(state, incident))


def _transition(old: IncidentState, incident: Incident) -> tuple[str, str] | None:
    new = incident.state
    return (old.value, new.value) if new != old else None


def _request(
    action: str, number: int, incident: Incident, ctx: PolicyContext, obs: Observation
) -> ActionRequest:
    return ActionRequest(
        id=f"{incident.id}-{action}-{number}",
        action=action,
        namespace=ctx.namespace,
        monitor=ctx.monitor,
        monitor_uid=ctx.monitor_uid,
        incident=incident.id,
        trigger=",".join(incident.triggers or sorted(obs.triggers)),
        reason=obs.reason[:1024],
        dry_run=ctx.actions.dry_run,
        phase=obs.phase,
        healthy_revisions=ctx.healthy_revisions if action == ActionName.ROLLBACK else (),
        created=format_time(ctx.now),
    )


def _recent(incident: Incident, now: dt.datetime) -> list[str]:
    times = []
    for value in incident.recent_actions or ():
        moment = _parse(value)
        if moment is not None and now - moment < RATE_WINDOW:
            times.append(value)
    return times


def _plan(
    obs: Observation, incident: Incident, ctx: PolicyContext
) -> tuple[Incident, tuple[ActionRequest, ...], tuple[Note, ...]]:
    if incident.pending:
        return incident, (), ()  # the executor has not finished the last decision yet
    acted = dict(incident.acted)
    suppressed = dict(incident.suppressed)
    recent = _recent(incident, ctx.now)
    scale_steps, step_breaches = incident.scale_steps, incident.step_breaches
    requests: list[ActionRequest] = []
    notes: list[Note] = []
    actions = ctx.actions

    def suppress(action: str, reason: str, message: str) -> None:
        if suppressed.get(action) != reason:
            suppressed[action] = reason
            notes.append(Note(action, reason, message))

    for action in configured_actions(actions, frozenset(incident.triggers or obs.triggers)):
        if action == ActionName.SCALE:
            if not obs.latency_breach:
                suppress(action, "NotLatencyBreach", "scale acts on latency SLO breaches only")
                continue
            if action in acted and (
                acted[action] != Outcome.SUCCEEDED or step_breaches < actions.consecutive_breaches
            ):
                continue  # the last step failed or was refused, or it has not had time to work
        elif action in acted:
            continue  # once per incident
        if ctx.paused:
            suppress(
                action, "Paused", f"not acting: the monitor has the {PAUSE_ANNOTATION} annotation"
            )
            continue
        if not actions.dry_run:
            last = _parse(incident.last_action_at)
            other_incident = incident.last_action_incident != incident.id
            if last is not None and other_incident:
                elapsed = (ctx.now - last).total_seconds()
                if elapsed < actions.cooldown_seconds:
                    suppress(
                        action,
                        "Cooldown",
                        f"not acting: last action {elapsed:.0f}s ago, "
                        f"cooldown is {format_duration(actions.cooldown_seconds)}",
                    )
                    continue
            if len(recent) >= actions.max_actions_per_hour:
                suppress(
                    action,
                    "RateLimited",
                    f"not acting: {len(recent)} actions in the last hour, "
                    f"maxActionsPerHour is {actions.max_actions_per_hour}",
                )
                continue
        number = 1
        if action == ActionName.SCALE:
            number = (scale_steps or 0) + 1
            scale_steps, step_breaches = number, 0
        requests.append(_request(action, number, incident, ctx, obs))
        acted[action] = PLANNED
        if not actions.dry_run:
            recent.append(format_time(ctx.now))  # for the cap within this decision
    incident = replace(
        incident,
        acted=acted,
        suppressed=suppressed,
        pending=tuple(requests),
        scale_steps=scale_steps,
        step_breaches=step_breaches,
    )
    return incident, tuple(requests), tuple(notes)


def _plan_restore(
    incident: Incident, ctx: PolicyContext
) -> tuple[Incident, tuple[ActionRequest, ...]]:
    """Scale back to the original replicas once healthy for stabilizationSeconds."""
    restore = incident.restore
    if restore is None or incident.pending or ctx.paused or incident.state in OPEN_STATES:
        return incident, ()
    since = _parse(incident.closed_at)
    stabilization = ctx.actions.scale.stabilization_seconds if ctx.actions.scale else 0
    if since is None or (ctx.now - since).total_seconds() < stabilization:
        return incident, ()
    request = ActionRequest(
        id=f"{incident.id}-{SCALE_BACK}-1",
        action=SCALE_BACK,
        namespace=ctx.namespace,
        monitor=ctx.monitor,
        monitor_uid=ctx.monitor_uid,
        incident=incident.id,
        trigger=",".join(incident.triggers),
        reason=f"healthy for {stabilization}s (stabilizationSeconds)",
        dry_run=ctx.actions.dry_run,
        restore=restore.to_dict(),
        created=format_time(ctx.now),
    )
    return replace(incident, pending=(request,)), (request,)


# --- results --------------------------------------------------------------------------


def history_entry(
    request: ActionRequest | None,
    action: str,
    outcome: Outcome,
    reason: str,
    message: str,
    now: dt.datetime,
    *,
    incident: str = "",
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": request.id if request else "",
        "type": action,
        "result": outcome.value,
        "reason": reason,
        "message": message[:1024],
        "time": format_time(now),
        "incident": request.incident if request else incident,
        "summary": _summary(action, outcome, details or {}),
    }
    if request is not None:
        entry["trigger"] = request.trigger
        entry["dryRun"] = request.dry_run
    for key, value in (details or {}).items():
        if key != "restore":
            entry[key] = value
    return entry


def _summary(action: str, outcome: Outcome, details: Mapping[str, Any]) -> str:
    """A few words for the LAST ACTION column: ``rollback rev 3->1``, ``scale 2->3``."""
    text = f"{action} {outcome.value}"
    if outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN):
        if "fromRevision" in details and "toRevision" in details:
            text = f"{action} rev {details['fromRevision']}->{details['toRevision']}"
        elif "from" in details and "to" in details:
            text = f"{action} {details['from']}->{details['to']}"
        elif "fromPercent" in details:
            text = f"{action} canary {details['fromPercent']}%->0%"
        if outcome == Outcome.DRY_RUN:
            text += " (dry run)"
    return text


def remediated_condition(outcome: Outcome, reason: str, message: str) -> Condition:
    return Condition(
        ConditionType.REMEDIATED,
        "True" if outcome == Outcome.SUCCEEDED else "False",
        reason,
        message[:1024],
    )


def with_history(status: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``lastAction`` and ``actionHistory`` (newest last, capped) after ``entries``."""
    history = [dict(e) for e in status.get("actionHistory") or [] if isinstance(e, Mapping)]
    history.extend(dict(e) for e in entries)
    history = history[-HISTORY_CAP:]
    return {"lastAction": dict(entries[-1]), "actionHistory": history} if entries else {}


def record_result(
    incident: Incident,
    request: ActionRequest,
    result: ActionResult,
    now: dt.datetime,
) -> Incident | None:
    """The incident after ``request`` finished; None when it was no longer pending."""
    if not any(p.id == request.id for p in incident.pending):
        return None  # recorded already (by another replica, or before a restart)
    updated = replace(incident, pending=tuple(p for p in incident.pending if p.id != request.id))
    if request.action == SCALE_BACK:
        if result.outcome == Outcome.SUPPRESSED:
            return updated  # paused at the last moment: planned again once resumed
        if result.outcome != Outcome.FAILED or request.dry_run:
            return replace(updated, restore=None)
        failures = (updated.restore_failures or 0) + 1
        keep = failures < MAX_RESTORE_ATTEMPTS  # reported each time; then stop trying
        return replace(
            updated, restore_failures=failures, restore=updated.restore if keep else None
        )
    acted = dict(updated.acted)
    if result.outcome == Outcome.SUPPRESSED:
        # stopped at the last moment (paused): planned again, if still due, once resumed
        acted.pop(request.action, None)
        suppressed = {**updated.suppressed, request.action: result.reason}
        updated = replace(updated, suppressed=suppressed)
    else:
        acted[request.action] = result.outcome
    updated = replace(updated, acted=acted)
    if request.action == ActionName.SCALE and result.outcome == Outcome.SUCCEEDED:
        new = result.details.get("restore")
        if isinstance(new, Mapping):
            step_restore = Restore.from_dict(new)
            old = updated.restore
            if old is not None and old.name == step_restore.name:  # the original stays
                step_restore = replace(old, applied=step_restore.applied)
            updated = replace(updated, restore=step_restore)
    if result.outcome == Outcome.SUCCEEDED and not request.dry_run:
        # Only what was done counts towards the cap; only a change to the cluster starts
        # a cooldown (a delivered webhook changes nothing to wait for).
        when = format_time(_parse(request.created) or now)
        if request.action not in CHANGE_NOTHING:
            updated = replace(updated, last_action_at=when, last_action_incident=request.incident)
        updated = replace(updated, recent_actions=(*_recent(updated, now), when))
    return updated
