"""From a verdict to actions and back to status: the glue around :mod:`modelmonitor.core.policy`.

Two steps, each one conflict-safe status write:

1. :meth:`Remediator.plan` runs inside the run's status write: the policy's decision
   (the incident, and the actions now due as ``status.incident.pending`` with
   deterministic ids) is written together with the verdict, before anything is done;
2. :meth:`Remediator.execute` carries out one pending request through its executor, and
   :meth:`Remediator.record` writes the result (``lastAction``, ``actionHistory``, the
   ``Remediated`` condition, the incident without that request) in a second write.

An operator killed between the two finds the request still pending after its restart
and carries it out then; executors mark what they change with the request id, so one
killed after acting but before recording does not act twice. The Events of the intent
(``IncidentConfirmed``, ``ActionPlanned``) are keyed (:mod:`modelmonitor.core.events`)
and posted by :meth:`Remediator.announce` before acting: after a restart
:meth:`Remediator.announcements` rebuilds them from the recorded intent, and the API
server's refusal of a second Event of the same name keeps each to one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelmonitor.actions import registry
from modelmonitor.actions.base import Executor
from modelmonitor.adapters.webhook import Post, urllib_post
from modelmonitor.core import alerting
from modelmonitor.core.action_names import SCALE_BACK, ActionName
from modelmonitor.core.cluster import ApiError, ClusterApi, NamespacedApi, resource_path
from modelmonitor.core.events import build_event
from modelmonitor.core.gitops import GitOpsSettings
from modelmonitor.core.incident import (
    ActionRequest,
    ActionResult,
    Incident,
    IncidentState,
    Outcome,
)
from modelmonitor.core.policy import (
    PAUSE_ANNOTATION,
    Note,
    PolicyContext,
    Signal,
    history_entry,
    observe,
    record_result,
    remediated_condition,
    step,
    with_history,
)
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.status import Condition, format_time, merge_conditions, replacing
from modelmonitor.core.verdict import Event, Verdict
from modelmonitor.engine import notifications
from modelmonitor.engine.gitops_watch import (
    GitOpsView,
    gitops_status,
    guard,
    observe_gitops,
    paused_by,
    paused_record,
)
from modelmonitor.engine.incident_events import (
    confirmed_event,
    planned_event,
    result_event,
    transition_events,
)

log = logging.getLogger(__name__)

HEALTHY_REVISIONS_CAP = 10


# The target's served revision before and after a run (None: not observed).
Revisions = tuple[dict[str, Any] | None, dict[str, Any] | None]


@dataclass(frozen=True)
class Plan:
    """What a run's decision adds to the status write, and what to report after it."""

    status_patch: dict[str, Any]
    requests: tuple[ActionRequest, ...] = ()
    events: tuple[Event, ...] = ()
    results: tuple[tuple[str, str], ...] = ()  # (action, result) for the metric


class Remediation(Protocol):
    """What the run loop asks of remediation: :class:`Remediator`, or
    :class:`NoRemediation` where there is none."""

    def tracks_revisions(self, spec: MonitorSpec) -> bool: ...

    def observe_revision(self, namespace: str, spec: MonitorSpec) -> dict[str, Any] | None: ...

    def plan(
        self,
        obj: Mapping[str, Any],
        spec: MonitorSpec,
        verdict: Verdict,
        revisions: Revisions,
        now: dt.datetime,
        gitops: GitOpsView | None = None,
    ) -> Plan: ...

    def tracks_gitops(self, spec: MonitorSpec, status: Mapping[str, Any]) -> bool: ...

    def observe_gitops(
        self, namespace: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> GitOpsView | None: ...

    def pending(self, obj: Mapping[str, Any]) -> list[ActionRequest]: ...

    def announcements(self, obj: Mapping[str, Any], spec: MonitorSpec) -> list[Event]: ...

    def announce(self, obj: Mapping[str, Any], events: Sequence[Event]) -> None: ...

    def execute(
        self, spec: MonitorSpec, request: ActionRequest, metadata: Mapping[str, Any]
    ) -> ActionResult: ...

    def record(
        self,
        obj: Mapping[str, Any],
        request: ActionRequest,
        result: ActionResult,
        now: dt.datetime,
    ) -> dict[str, Any] | None: ...

    def deliveries_due(self, obj: Mapping[str, Any], now: dt.datetime) -> bool: ...

    def deliver(
        self, spec: MonitorSpec, obj: Mapping[str, Any], now: dt.datetime
    ) -> list[alerting.Attempt]: ...

    def record_deliveries(
        self,
        obj: Mapping[str, Any],
        spec: MonitorSpec,
        attempts: Sequence[alerting.Attempt],
        now: dt.datetime,
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]: ...


class NoRemediation:
    """No remediation: observes no revision, plans nothing, finds nothing pending.

    The verdict is written alone, and no action is ever carried out or recorded.
    """

    def tracks_revisions(self, spec: MonitorSpec) -> bool:
        return False

    def observe_revision(self, namespace: str, spec: MonitorSpec) -> dict[str, Any] | None:
        return None

    def plan(
        self,
        obj: Mapping[str, Any],
        spec: MonitorSpec,
        verdict: Verdict,
        revisions: Revisions,
        now: dt.datetime,
        gitops: GitOpsView | None = None,
    ) -> Plan:
        return Plan({})

    def tracks_gitops(self, spec: MonitorSpec, status: Mapping[str, Any]) -> bool:
        return False

    def observe_gitops(
        self, namespace: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> GitOpsView | None:
        return None

    def pending(self, obj: Mapping[str, Any]) -> list[ActionRequest]:
        return []

    def announcements(self, obj: Mapping[str, Any], spec: MonitorSpec) -> list[Event]:
        return []

    def announce(self, obj: Mapping[str, Any], events: Sequence[Event]) -> None:
        return None

    def execute(
        self, spec: MonitorSpec, request: ActionRequest, metadata: Mapping[str, Any]
    ) -> ActionResult:
        return ActionResult(Outcome.SKIPPED, "NoRemediation", "remediation is off")

    def record(
        self,
        obj: Mapping[str, Any],
        request: ActionRequest,
        result: ActionResult,
        now: dt.datetime,
    ) -> dict[str, Any] | None:
        return None

    def deliveries_due(self, obj: Mapping[str, Any], now: dt.datetime) -> bool:
        return False

    def deliver(
        self, spec: MonitorSpec, obj: Mapping[str, Any], now: dt.datetime
    ) -> list[alerting.Attempt]:
        return []

    def record_deliveries(
        self,
        obj: Mapping[str, Any],
        spec: MonitorSpec,
        attempts: Sequence[alerting.Attempt],
        now: dt.datetime,
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
        return None, []


@dataclass
class Remediator:
    """Decides (pure policy) and acts (executors over ``api``) for every monitor."""

    api: ClusterApi
    executors: Mapping[str, Executor] = field(default_factory=registry.all_executors)
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    gitops_settings: GitOpsSettings = field(default_factory=GitOpsSettings)
    post: Post = field(default=urllib_post)  # the incident notifications' fenced POST

    # -- observing the target --------------------------------------------------------
    @staticmethod
    def tracks_revisions(spec: MonitorSpec) -> bool:
        """Only a Deployment that may be rolled back needs its healthy revisions known."""
        return spec.target.kind == "Deployment" and spec.actions.uses(ActionName.ROLLBACK)

    def observe_revision(self, namespace: str, spec: MonitorSpec) -> dict[str, Any] | None:
        """The Deployment revision being served, when rollback needs to know it."""
        if not self.tracks_revisions(spec):
            return None
        from modelmonitor.actions.rollback import read_revision

        try:
            return read_revision(NamespacedApi(self.api, namespace), namespace, spec.target.name)
        except ApiError as exc:
            log.warning("cannot read deployment %s/%s: %s", namespace, spec.target.name, exc)
            return None

    @staticmethod
    def tracks_gitops(spec: MonitorSpec, status: Mapping[str, Any]) -> bool:
        """A monitor that may roll back, or that paused an owner, watches the GitOps owner."""
        return spec.actions.uses(ActionName.ROLLBACK) or bool(paused_record(status))

    def observe_gitops(
        self, namespace: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> GitOpsView | None:
        """The target's GitOps owner now; resumes an owner this monitor paused once its
        source moved past the bad revision (None when the target cannot be read)."""
        return observe_gitops(
            NamespacedApi(self.api, namespace), namespace, spec, status, self.gitops_settings
        )

    # -- deciding --------------------------------------------------------------------
    def plan(
        self,
        obj: Mapping[str, Any],
        spec: MonitorSpec,
        verdict: Verdict,
        revisions: Revisions,
        now: dt.datetime,
        gitops: GitOpsView | None = None,
    ) -> Plan:
        """The policy's decision for this run, as a status patch to merge into the verdict's."""
        metadata = obj.get("metadata") or {}
        status = obj.get("status") or {}
        gen = metadata.get("generation")
        generation = gen if isinstance(gen, int) else None
        healthy = [dict(r) for r in status.get("healthyRevisions") or [] if isinstance(r, Mapping)]
        result: dict[str, Any] = {}
        latency = frozenset(s.name for s in spec.slos if s.latency is not None)
        obs = observe(verdict.current, verdict.phase.value, verdict.slos, latency)
        before, after = revisions
        if (
            obs.signal == Signal.HEALTHY  # measured healthy, not just "no complaints"
            and before is not None
            and after is not None
            and before.get("podTemplateHash") == after.get("podTemplateHash")
        ):
            from modelmonitor.actions.rollback import record_healthy

            updated = record_healthy(
                healthy, after, format_time(verdict.finished), HEALTHY_REVISIONS_CAP
            )
            if updated != healthy:
                healthy = updated
                result["healthyRevisions"] = healthy
        gitops_events: list[Event] = []
        if gitops is not None:
            gitops_events = gitops_status(status, gitops, result)
        actions = spec.actions
        if not (actions.on_slo_breach or actions.on_drift or actions.on_performance_drop) and (
            not spec.alerting.sinks
        ):
            # no incident to keep: nobody acts on it nor hears of it
            return Plan(result, events=tuple(gitops_events))
        ctx = PolicyContext(
            namespace=str(metadata.get("namespace") or "default"),
            monitor=str(metadata.get("name") or ""),
            monitor_uid=str(metadata.get("uid") or ""),
            actions=spec.actions,
            target_kind=spec.target.kind,
            target_name=spec.target.name,
            paused=is_paused(metadata),
            now=now,
            healthy_revisions=tuple(healthy),
        )
        decision = step(obs, read_incident(status), ctx)
        extra: list[Condition] = []
        if gitops is not None:
            decision = guard(decision, status, spec, gitops, ctx, result, gitops_events, extra)
        written = decision.incident.to_dict()
        if written != (status.get("incident") or {}):
            result["incident"] = replacing(status.get("incident"), written)
        queued = notifications.queue_lifecycle(status, spec, ctx, decision, verdict, now)
        if queued is not None:
            result["alerting"] = queued
        events = [*gitops_events, *transition_events(decision, spec)]
        entries = []
        for note in decision.notes:
            entries.append(
                history_entry(
                    None,
                    note.action,
                    Outcome.SUPPRESSED,
                    note.reason,
                    note.message,
                    now,
                    incident=decision.incident.id,
                )
            )
            events.append(Event("Warning", note.reason, f"{note.action}: {note.message}"))
        events.extend(planned_event(request) for request in decision.requests)
        if entries:
            history = with_history(status, entries)
            result.update(history)
            result["lastAction"] = replacing(status.get("lastAction"), history["lastAction"])
            extra.append(incident_condition(history["actionHistory"], decision.incident.id))
        if extra:
            result["conditions"] = verdict.conditions_with(extra, generation=generation, now=now)
        return Plan(
            result,
            decision.requests,
            tuple(events),
            tuple((n.action, Outcome.SUPPRESSED.value) for n in decision.notes),
        )

    # -- acting ----------------------------------------------------------------------
    def pending(self, obj: Mapping[str, Any]) -> list[ActionRequest]:
        """What a previous decision wrote and nobody has recorded a result for."""
        return pending_requests(obj)

    def announcements(self, obj: Mapping[str, Any], spec: MonitorSpec) -> list[Event]:
        """The keyed Events the recorded intent promises: posted before, or to post now.

        For the requests still pending: their incident's ``IncidentConfirmed`` and each
        one's ``ActionPlanned``, with the messages :meth:`plan` gave them.
        """
        incident = read_incident(obj.get("status") or {})
        requests = pending_requests(obj)
        events: list[Event] = []
        confirmed = incident.state in (IncidentState.BREACHED, IncidentState.REMEDIATING)
        if confirmed and incident.id and any(r.incident == incident.id for r in requests):
            events.append(confirmed_event(incident, spec))
        events.extend(planned_event(r) for r in requests)
        return events

    def announce(self, obj: Mapping[str, Any], events: Sequence[Event]) -> None:
        """Post each keyed Event once: a second one of the same key is refused (409)."""
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "default")
        now = self.clock()
        for event in events:
            if not event.key:
                continue
            body = build_event(
                monitor=obj,
                key=event.key,
                type_=event.type,
                reason=event.reason,
                message=event.message,
                now=now,
            )
            try:
                api = NamespacedApi(self.api, namespace)
                api.create(resource_path("/api/v1", namespace, "events"), body)
            except ApiError as exc:
                if exc.status == 409:
                    log.debug("%s (%s) was posted already", event.reason, event.key)
                else:
                    log.warning("cannot post %s (%s): %s", event.reason, event.key, exc)
                continue
            except Exception:  # an Event lost must never stop the action it announces
                log.exception("cannot post %s (%s)", event.reason, event.key)
                continue
            log.info("%s: %s", event.reason, event.message)

    def execute(
        self, spec: MonitorSpec, request: ActionRequest, metadata: Mapping[str, Any]
    ) -> ActionResult:
        """Carry out one pending request; every error becomes a FAILED result."""
        if request.action != SCALE_BACK and not spec.actions.uses(request.action):
            return ActionResult(
                Outcome.SKIPPED,
                "NoLongerConfigured",
                f"{request.action} was removed from spec.actions before it ran",
            )
        if is_paused(metadata):
            return ActionResult(
                Outcome.SUPPRESSED,
                "Paused",
                f"not acting: the monitor has the {PAUSE_ANNOTATION} annotation",
            )
        try:
            executor = registry.executor_for(request.action, self.executors)
        except registry.UnknownActionError as exc:
            log.error("%s (%s)", exc, request.id)
            return ActionResult(Outcome.FAILED, "UnknownAction", str(exc))
        try:
            # Scoped to the monitor's namespace: a path elsewhere is refused, never sent.
            return executor(NamespacedApi(self.api, request.namespace), spec, request)
        except ApiError as exc:
            return ActionResult(Outcome.FAILED, "ApiError", f"{request.action}: {exc}")
        except Exception as exc:  # an executor bug must not stop the monitor's loop
            log.exception("%s %s failed", request.action, request.id)
            return ActionResult(
                Outcome.FAILED, "ActionError", f"{request.action}: {exc.__class__.__name__}"
            )

    def record(
        self,
        obj: Mapping[str, Any],
        request: ActionRequest,
        result: ActionResult,
        now: dt.datetime,
    ) -> dict[str, Any] | None:
        """The status patch recording ``result``; None when it was recorded already."""
        status = obj.get("status") or {}
        gen = (obj.get("metadata") or {}).get("generation")
        incident = record_result(read_incident(status), request, result, now)
        if incident is None:
            return None
        entry = history_entry(
            request,
            request.action,
            result.outcome,
            result.reason,
            result.message,
            now,
            details=result.details,
        )
        history = with_history(status, [entry])
        condition = incident_condition(history["actionHistory"], request.incident)
        patch: dict[str, Any] = {
            **history,
            "incident": replacing(status.get("incident"), incident.to_dict()),
            "lastAction": replacing(status.get("lastAction"), history["lastAction"]),
        }
        paused = paused_by(result, request, now)
        if paused is not None:
            gitops_status = dict(status.get("gitOps") or {})
            gitops_status["paused"] = paused
            patch["gitOps"] = gitops_status
        patch["conditions"] = merge_conditions(
            status.get("conditions"),
            [condition],
            generation=gen if isinstance(gen, int) else None,
            now=now,
        )
        queued = notifications.queue_action_result(obj, incident, request, result, now)
        if queued is not None:
            patch["alerting"] = queued
        return patch

    # -- notifying (engine/notifications.py) --------------------------------------
    def deliveries_due(self, obj: Mapping[str, Any], now: dt.datetime) -> bool:
        """Whether ``status.alerting.outbox`` holds an entry due now."""
        return notifications.deliveries_due(obj, now)

    def deliver(
        self, spec: MonitorSpec, obj: Mapping[str, Any], now: dt.datetime
    ) -> list[alerting.Attempt]:
        """One attempt for each due outbox entry (blocking: run it on a worker thread)."""
        return notifications.deliver(self.api, self.post, self.clock, spec, obj, now)

    def record_deliveries(
        self,
        obj: Mapping[str, Any],
        spec: MonitorSpec,
        attempts: Sequence[alerting.Attempt],
        now: dt.datetime,
    ) -> tuple[dict[str, Any] | None, list[tuple[str, str, str]]]:
        """The status patch recording ``attempts``; and (sink, type, result) for the metric."""
        return notifications.record_deliveries(obj, spec, attempts, now)


def incident_condition(history: Sequence[Mapping[str, Any]], incident: str) -> Condition:
    """``Remediated`` for the whole incident: True once any action changed the cluster.

    The message lists each action's latest result, so a refused rollback ("no healthy
    revision known") stays visible next to the webhook that did go out.
    """
    mine = [e for e in history if e.get("incident") == incident]
    acted = [e for e in mine if e.get("result") != Outcome.SUPPRESSED]
    latest: dict[str, Mapping[str, Any]] = {}
    for entry in acted or mine[-1:]:  # notes (cooldown, pause) only while nothing ran
        latest[str(entry.get("type"))] = entry
    succeeded = [e for e in latest.values() if e.get("result") == Outcome.SUCCEEDED]
    lead = succeeded[0] if succeeded else list(latest.values())[-1]
    message = "; ".join(f"{a}: {e.get('message')}" for a, e in latest.items())
    outcome = Outcome.SUCCEEDED if succeeded else Outcome(str(lead.get("result")))
    return remediated_condition(outcome, str(lead.get("reason")), message)


def is_paused(metadata: Mapping[str, Any]) -> bool:
    annotations = metadata.get("annotations") or {}
    return str(annotations.get(PAUSE_ANNOTATION, "")).lower() in ("true", "1", "yes")


def read_incident(status: Mapping[str, Any]) -> Incident:
    """``status.incident`` as the policy's record (no incident yet, when there is none)."""
    incident = status.get("incident")
    return Incident.from_dict(incident if isinstance(incident, Mapping) else {})


def pending_requests(obj: Mapping[str, Any]) -> list[ActionRequest]:
    """The requests a previous decision wrote and nobody has recorded a result for."""
    metadata = obj.get("metadata") or {}
    return [
        p.bind(
            namespace=str(metadata.get("namespace") or "default"),
            monitor=str(metadata.get("name") or ""),
            monitor_uid=str(metadata.get("uid") or ""),
        )
        for p in read_incident(obj.get("status") or {}).pending
        if p.id
    ]


__all__ = [
    "GitOpsView",
    "NoRemediation",
    "Note",
    "Plan",
    "Remediation",
    "Remediator",
    "confirmed_event",
    "is_paused",
    "pending_requests",
    "planned_event",
    "result_event",
]
