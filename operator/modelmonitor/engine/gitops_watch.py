"""The target's GitOps owner, run by run: shown in status, resumed, and watched for write-backs.

:mod:`modelmonitor.actions.gitops` pauses an Argo CD Application or a Flux
Kustomization/HelmRelease before a rollback (``spec.actions.gitops: pause``). This module
is the rest of that story, for :class:`~modelmonitor.engine.remediation.Remediator`:

* :func:`observe_gitops` (I/O, before a run's status write) reads the target and its owner,
  and resumes an owner the monitor paused once its source moved to another revision than
  the bad one (or forgets it when a person resumed it);
* :func:`gitops_status` (pure) writes ``status.target.gitOpsOwner`` and the end of a pause;
* :func:`guard` (pure) notices the owner writing back what the incident's rollback left,
  and says so once (condition ``RollbackReverted``, a Warning Event, a notify request)
  instead of fighting: the policy never plans a second rollback for one incident.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from typing import Any

from modelmonitor.actions import gitops
from modelmonitor.core.action_names import ActionName
from modelmonitor.core.cluster import ApiError, ClusterApi, resource_path
from modelmonitor.core.gitops import (
    GitOpsOwner,
    GitOpsSettings,
    Resume,
    artifact_revision,
    flux_source,
    resume_decision,
    source_revision,
    written_back,
)
from modelmonitor.core.incident import (
    OPEN_STATES,
    ActionRequest,
    ActionResult,
    IncidentState,
    Outcome,
)
from modelmonitor.core.policy import Decision, Note, PolicyContext
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.status import Condition, format_time
from modelmonitor.core.verdict import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GitOpsView:
    """The target's GitOps owner as one run saw it, and what became of an owner we paused."""

    owner: GitOpsOwner | None
    images: tuple[str, ...] | None = None  # the Deployment's template images now
    resumed: Resume | None = None  # RESUME: resumed now; FORGET: resumed by a person
    message: str = ""


def _source_revision(
    api: ClusterApi, owner: GitOpsOwner, obj: Mapping[str, Any] | None, namespace: str
) -> str:
    """The revision a paused Kustomization's source fetched last ("" when not readable).

    Only a source in the monitor's namespace is read, like the owner itself.
    """
    ref = flux_source(owner, obj or {})
    if ref is None or ref.namespace != namespace:
        return ""
    prefix, plural = ref.api
    try:
        return artifact_revision(api.get(resource_path(prefix, ref.namespace, plural, ref.name)))
    except ApiError as exc:
        log.warning("cannot read the source %s/%s: %s", ref.namespace, ref.name, exc)
        return ""


def observe_gitops(
    api: ClusterApi,
    namespace: str,
    spec: MonitorSpec,
    status: Mapping[str, Any],
    settings: GitOpsSettings,
) -> GitOpsView | None:
    """Read the target's owner; resume an owner this monitor paused once its source
    moved past the bad revision (None when the target cannot be read)."""
    try:
        target, owner = gitops.find_owner(api, spec, namespace, settings)
    except ApiError as exc:
        log.warning("cannot read the target of %s: %s", namespace, exc)
        return None
    if target is None:
        return None
    images = None
    if spec.target.kind == "Deployment":
        template = (target.get("spec") or {}).get("template") or {}
        containers = (template.get("spec") or {}).get("containers") or []
        images = tuple(str(c.get("image") or "") for c in containers if isinstance(c, Mapping))
    view = GitOpsView(owner, images)
    record = paused_record(status)
    paused = GitOpsOwner.from_dict(record)
    if paused is None:
        return view
    bad = str(record.get("badRevision") or "")
    try:
        paused_obj = api.get(gitops.owner_path(paused))
        source_now = _source_revision(api, paused, paused_obj, namespace)
        decision = resume_decision(paused_obj, paused.kind, bad, source_now)
        if decision == Resume.RESUME:
            previous = record.get("previousAutomated")
            gitops.resume(api, paused, previous if isinstance(previous, Mapping) else None)
            now_at = source_now or source_revision(paused.kind, paused_obj or {})
            message = (
                f"resumed {paused.describe()}: its source moved from {bad or 'unknown'} to {now_at}"
            )
            return dc_replace(view, resumed=decision, message=message)
        if decision == Resume.FORGET:
            message = (
                f"{paused.describe()} was resumed (or removed) by someone else; "
                "the monitor no longer holds it"
            )
            return dc_replace(view, resumed=decision, message=message)
    except ApiError as exc:
        log.warning("cannot check the paused owner %s: %s", paused.describe(), exc)
    return view


REVERTED_CONDITION = "RollbackReverted"
WROTE_BACK = "OwnerWroteBack"


def paused_record(status: Mapping[str, Any]) -> Mapping[str, Any]:
    gitops = status.get("gitOps")
    paused = gitops.get("paused") if isinstance(gitops, Mapping) else None
    return paused if isinstance(paused, Mapping) else {}


def paused_by(
    result: ActionResult, request: ActionRequest, now: dt.datetime
) -> dict[str, Any] | None:
    """``status.gitOps.paused`` after a rollback that paused the owner (None: it did not)."""
    info = result.details.get("gitOps")
    if request.action != ActionName.ROLLBACK or not isinstance(info, Mapping):
        return None
    if not info.get("paused") or result.outcome != Outcome.SUCCEEDED:
        return None
    previous = info.get("previousAutomated")
    return {
        "kind": info.get("kind"),
        "name": info.get("name"),
        "namespace": info.get("namespace"),
        "badRevision": str(info.get("badRevision") or ""),
        "previousAutomated": dict(previous) if isinstance(previous, Mapping) else None,
        "incident": request.incident,
        "time": format_time(now),
    }


def gitops_status(
    status: Mapping[str, Any], view: GitOpsView, result: dict[str, Any]
) -> list[Event]:
    """``status.target.gitOpsOwner`` and the end of a pause, into ``result``; their Events."""
    owner = view.owner.to_dict() if view.owner is not None else None
    found = status.get("target")
    target: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if not target or target.get("gitOpsOwner") != owner:
        result["target"] = {**target, "gitOpsOwner": owner}
    if view.resumed is None:
        return []
    gitops = dict(status.get("gitOps") or {})
    gitops["paused"] = None
    result["gitOps"] = gitops
    reason = "GitOpsOwnerResumed" if view.resumed == Resume.RESUME else "GitOpsOwnerReleased"
    return [Event("Normal", reason, view.message)]


def _last_rollback(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The newest rollback that changed the target (any incident: one may have closed)."""
    for entry in reversed(status.get("actionHistory") or []):
        if (
            isinstance(entry, Mapping)
            and entry.get("type") == ActionName.ROLLBACK
            and entry.get("result") == Outcome.SUCCEEDED
            and not entry.get("dryRun")
        ):
            return entry
    return None


def _without_rollback(decision: Decision, message: str) -> tuple[Decision, bool]:
    """``decision`` without a rollback it planned; suppressed (noted once per incident)."""
    incident = decision.incident
    planned = [r for r in decision.requests if r.action == ActionName.ROLLBACK]
    already = incident.suppressed.get(ActionName.ROLLBACK) == WROTE_BACK
    if not planned and (already or not incident.id or incident.state not in OPEN_STATES):
        return decision, False
    keep = tuple(r for r in decision.requests if r.action != ActionName.ROLLBACK)
    planned_ids = {r.id for r in planned}
    pending = tuple(p for p in incident.pending if p.id not in planned_ids)
    acted = dict(incident.acted)
    if planned:
        acted.pop(ActionName.ROLLBACK, None)  # planned just now: not acted after all
    state = incident.state
    if state == IncidentState.REMEDIATING and not pending and not acted:
        state = IncidentState.BREACHED  # it was about to act, and now does not
    updated = dc_replace(
        incident,
        acted=acted,
        suppressed={**incident.suppressed, ActionName.ROLLBACK: WROTE_BACK},
        pending=pending,
        state=state,
    )
    notes = decision.notes
    if not already:
        notes = (*notes, Note(ActionName.ROLLBACK, WROTE_BACK, message))
    return dc_replace(decision, incident=updated, requests=keep, notes=notes), True


def guard(
    decision: Decision,
    status: Mapping[str, Any],
    spec: MonitorSpec,
    view: GitOpsView,
    ctx: PolicyContext,
    result: dict[str, Any],
    events: list[Event],
    conditions: list[Condition],
) -> Decision:
    """The owner wrote back what a rollback left: say so, page, never fight.

    While the target serves the images the last rollback left (``fromImages``), no
    rollback is planned (suppressed, reason ``OwnerWroteBack``), in this incident or a
    later one. The first time it is seen (``status.gitOps.writtenBack`` names the
    rollback), a ``RollbackReverted`` condition, a Warning Event and, when the monitor
    notifies, one more notify request (``<incident>-notify-writeback``). Once the target
    serves something else (a fix from Git), the record is cleared and the condition False.
    """
    if view.images is None:
        return decision
    found = status.get("gitOps")
    gitops: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    seen = gitops.get("writtenBack")
    seen = seen if isinstance(seen, Mapping) else None
    rollback = _last_rollback(status)
    if rollback is None or not written_back(list(view.images), rollback):
        if seen is not None:
            result["gitOps"] = {**(result.get("gitOps") or gitops), "writtenBack": None}
            conditions.append(
                Condition(
                    REVERTED_CONDITION,
                    "False",
                    "BadImagesGone",
                    f"the target no longer serves {', '.join(seen.get('images') or [])}",
                )
            )
        return decision
    owner = view.owner.describe() if view.owner is not None else "someone"
    what = f"{spec.target.kind.lower()}/{spec.target.name}"
    message = (
        f"the rollback {rollback.get('id') or ''} of {what} was undone: it serves "
        f"{', '.join(view.images)} again, written back by {owner}; not rolling back "
        "again. Revert the change in Git"
    )[:1024]
    decision, _dropped = _without_rollback(decision, message)
    if seen is not None and seen.get("rollback") == rollback.get("id"):
        return decision  # reported already
    incident = decision.incident
    result["gitOps"] = {
        **(result.get("gitOps") or gitops),
        "writtenBack": {
            "incident": incident.id or str(rollback.get("incident") or ""),
            "rollback": str(rollback.get("id") or ""),
            "time": format_time(ctx.now),
            "images": list(view.images),
        },
    }
    events.append(Event("Warning", REVERTED_CONDITION, message))
    conditions.append(Condition(REVERTED_CONDITION, "True", WROTE_BACK, message))
    if not spec.actions.uses(ActionName.NOTIFY) or not incident.id:
        return decision
    request = ActionRequest(
        id=f"{incident.id}-notify-writeback",
        action=ActionName.NOTIFY,
        namespace=ctx.namespace,
        monitor=ctx.monitor,
        monitor_uid=ctx.monitor_uid,
        incident=incident.id,
        trigger=",".join(incident.triggers),
        reason=f"incident {incident.id}: {message}"[:1024],
        dry_run=ctx.actions.dry_run,
        created=format_time(ctx.now),
    )
    if any(p.id == request.id for p in incident.pending):
        return decision
    updated = dc_replace(incident, pending=(*incident.pending, request))
    return dc_replace(decision, incident=updated, requests=(*decision.requests, request))


__all__ = [
    "REVERTED_CONDITION",
    "GitOpsView",
    "gitops_status",
    "guard",
    "observe_gitops",
    "paused_by",
    "paused_record",
]
