"""What an action takes and returns, and the records remediation keeps about an incident.

An action is planned by :mod:`modelmonitor.core.policy` (pure) as an :class:`ActionRequest`
whose ``id`` is deterministic and is written to the monitor's status *before* the action
runs (``status.incident.pending``, a :class:`PendingAction`); its executor
(:mod:`modelmonitor.actions`) returns an :class:`ActionResult`. :class:`Incident` is
``status.incident`` as a typed record: the policy works on it, and it becomes JSON again
only where status is written, exactly as it was read (:mod:`~modelmonitor.core.records`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Final, Literal, Self

from modelmonitor.core import records


class Outcome(StrEnum):
    """The ``result`` label of ``modelmonitor_actions_total``."""

    SUCCEEDED = "succeeded"  # the cluster was changed (or already was, by this request)
    DRY_RUN = "dryrun"  # planned and reported, nothing changed
    SKIPPED = "skipped"  # refused for a stated reason (paused Deployment, no healthy revision)
    FAILED = "failed"  # tried and failed (API error, webhook down after retries)
    SUPPRESSED = "suppressed"  # not attempted: cooldown, rate limit, pause (policy)


class IncidentState(StrEnum):
    HEALTHY = "Healthy"  # no incident open
    SUSPECT = "Suspect"  # breaching, fewer than consecutiveBreaches runs in a row
    BREACHED = "Breached"  # breach confirmed; nothing carried out (yet)
    REMEDIATING = "Remediating"  # at least one action planned or carried out
    RECOVERED = "Recovered"  # healthy again after acting (closed)


OPEN_STATES = frozenset({IncidentState.SUSPECT, IncidentState.BREACHED, IncidentState.REMEDIATING})

# An action's entry in ``status.incident.acted``: planned, or the outcome recorded for it.
PLANNED: Final = "pending"
Progress = Outcome | Literal["pending"]


def _progress(value: Any) -> dict[str, Progress]:
    return {
        action: PLANNED if state == PLANNED else Outcome(state)
        for action, state in records.text_map(value).items()
    }


def _plain(progress: Mapping[str, Progress]) -> dict[str, str]:
    return {action: str(state) for action, state in progress.items()}


@dataclass(frozen=True)
class Restore(records.Record):
    """What scale-back sets back: written by the scale action, ``status.incident.restore``."""

    kind: str = records.key(
        "kind", records.text, default=""
    )  # Deployment | HorizontalPodAutoscaler
    name: str = records.key("name", records.text, default="")
    path: str = records.key("field", records.text, default="")  # spec.replicas | spec.minReplicas
    original: int | None = records.key("original", records.integer)  # before the first step
    applied: int | None = records.key("applied", records.integer)  # after the last step


@dataclass(frozen=True)
class PendingAction(records.Record):
    """A planned action as ``status.incident.pending`` keeps it until its result is recorded."""

    id: str = records.key("id", records.text, default="")  # e.g. "fraud-20261126-154501-rollback-1"
    action: str = records.key("action", records.text, default="")  # an ActionName, or scale-back
    incident: str = records.key("incident", records.text, default="")  # incident id
    trigger: str = records.key("trigger", records.text, default="")  # "slo", "drift", "slo,drift"
    reason: str = records.key("reason", records.text, default="")  # why, for people
    dry_run: bool = records.key("dryRun", records.boolean, default=False)
    phase: str = records.key("phase", records.text, default="")  # the monitor's phase when planned
    # rollback: the revisions the monitor saw healthy, newest first:
    # [{"revision": "6", "podTemplateHash": "5d4f...", "lastSeen": RFC3339}]
    healthy_revisions: tuple[Mapping[str, Any], ...] = records.key(
        "healthyRevisions", records.objs, default=(), write=records.as_dicts
    )
    # scale-back: the "restore" mapping a scale result returned (always written, null if none)
    restore: Mapping[str, Any] | None = records.key(
        "restore", records.obj, write=records.as_dict, null=True
    )
    created: str = records.key("created", records.text, default="")  # RFC 3339, the decision

    def bind(self, *, namespace: str, monitor: str, monitor_uid: str) -> ActionRequest:
        """This action as a request of the monitor it belongs to."""
        return ActionRequest(
            **_stored(self), namespace=namespace, monitor=monitor, monitor_uid=monitor_uid
        )


def _stored(action: PendingAction) -> dict[str, Any]:
    stored = {f.name: getattr(action, f.name) for f in fields(PendingAction)}
    if "dryRun" in action.extra:
        # A dryRun this version cannot read is a dry run: a malformed flag never turns a
        # plan into acting.
        stored["dry_run"] = True
    return stored


@dataclass(frozen=True, kw_only=True)
class ActionRequest(PendingAction):
    """One planned action; everything an executor needs besides the spec and the API.

    ``to_dict`` is what status keeps (:class:`PendingAction`): the monitor it belongs to
    is the object whose status holds it.
    """

    namespace: str
    monitor: str
    monitor_uid: str

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        namespace: str = "",
        monitor: str = "",
        monitor_uid: str = "",
    ) -> Self:
        stored = _stored(PendingAction.from_dict(data))
        return cls(**stored, namespace=namespace, monitor=monitor, monitor_uid=monitor_uid)


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    reason: str  # CamelCase, e.g. RolledBack, NoHealthyRevision, DeploymentPaused
    message: str  # one line for people; never contains a secret
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Incident(records.Record):
    """``status.incident``: the monitor's current or last incident, and what outlives it.

    :mod:`~modelmonitor.core.policy` advances it run by run; it is read from status and
    written back with ``from_dict``/``to_dict`` only, which keep what an older or newer
    operator wrote (see :mod:`~modelmonitor.core.records`). ``Incident.from_dict({})``
    is "no incident yet". docs/actions.md (status.incident) describes every key.
    """

    id: str = records.key("id", records.text, default="")  # <monitor>-<UTC time it opened>
    state: IncidentState = records.key(
        "state", IncidentState, default=IncidentState.HEALTHY, write=str
    )
    triggers: tuple[str, ...] = records.key(
        "triggers", records.texts, default=(), write=records.as_list
    )  # "slo", "drift": all the incident saw, sorted
    reason: str = records.key("reason", records.text, default="")  # the latest breach's message
    started_at: str = records.key("startedAt", records.text, default="")
    breached_at: str | None = records.key("breachedAt", records.text)
    closed_at: str | None = records.key("closedAt", records.text)
    recovered_at: str | None = records.key("recoveredAt", records.text)
    updated_at: str = records.key("updatedAt", records.text, default="")
    breaches: int = records.key("breaches", records.integer, default=0)  # in a row
    healthy_runs: int = records.key("healthyRuns", records.integer, default=0)  # in a row
    step_breaches: int = records.key("stepBreaches", records.integer, default=0)  # since a step
    scale_steps: int | None = records.key("scaleSteps", records.integer)
    # per action: planned ("pending") or the outcome recorded for it
    acted: Mapping[str, Progress] = records.key("acted", _progress, factory=dict, write=_plain)
    # per action: the reason it was last suppressed (reported once)
    suppressed: Mapping[str, str] = records.key(
        "suppressed", records.text_map, factory=dict, write=records.as_dict
    )
    pending: tuple[PendingAction, ...] = records.key(
        "pending", records.records(PendingAction), default=(), write=records.record_dicts
    )
    # what scale-back will set back, and its failed attempts: outlive the incident
    restore: Restore | None = records.key(
        "restore", records.record(Restore), write=records.record_dict
    )
    restore_failures: int | None = records.key("restoreFailures", records.integer)
    # cooldown and hourly cap bookkeeping: outlive the incident
    last_action_at: str | None = records.key("lastActionAt", records.text)
    last_action_incident: str | None = records.key("lastActionIncident", records.text)
    recent_actions: tuple[str, ...] | None = records.key(
        "recentActions", records.texts, write=records.as_list
    )
