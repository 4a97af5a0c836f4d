"""Rollback under a GitOps owner: refuse, pause the owner first, or act anyway.

:func:`guarded` wraps the rollback executor. It reads the target, finds its owner
(:func:`modelmonitor.core.gitops.detect_owner`) and applies ``spec.actions.gitops``:

* ``refuse`` (default): no rollback (SKIPPED, reason ``GitOpsManaged``); the incident's
  other actions (notify) still run and say why;
* ``pause``: suspend the owner (Flux ``spec.suspend``, Argo CD without
  ``spec.syncPolicy.automated``), wait (at most ``settle_seconds``) until a Flux owner
  has taken the suspension in (:func:`~modelmonitor.core.gitops.pause_settled`: no
  reconcile of the bad revision still in flight), then roll back; when the rollback changes nothing
  the owner is resumed at once. The owner must be in the monitor's namespace (the
  executor's API reaches no other; :func:`modelmonitor.core.gitops.pause_refusal`);
* ``ignore``: roll back; the result still names the owner.

Pausing is idempotent like every action: the owner carries
:data:`~modelmonitor.core.gitops.PAUSED_BY_ANNOTATION` = the request id, and what
was removed from an Application is kept in :data:`PREVIOUS_ANNOTATION`, so an operator
killed between pausing and rolling back finds both again. :func:`resume` undoes it
(called by the engine once the owner's source has moved on).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from modelmonitor.actions.base import Executor
from modelmonitor.actions.kserve import isvc_path
from modelmonitor.actions.rollback import deployment_path
from modelmonitor.core.cluster import ApiError, ClusterApi, resource_path
from modelmonitor.core.gitops import (
    PAUSED_BY_ANNOTATION,
    GitOpsOwner,
    GitOpsPolicy,
    GitOpsSettings,
    detect_owner,
    is_suspended,
    pause_refusal,
    pause_settled,
    plan_pause,
    plan_resume,
    source_revision,
)
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec

PREVIOUS_ANNOTATION = "modelmonitor.io/paused-automated-sync"
SETTLE_SECONDS = 10.0  # at most, for a Flux owner to take its suspension in
SETTLE_POLL_SECONDS = 0.25


def owner_path(owner: GitOpsOwner) -> str:
    kind = owner.owner_kind
    return resource_path(kind.api_prefix, owner.namespace, kind.plural, owner.name)


def target_path(spec: MonitorSpec, namespace: str) -> str:
    if spec.target.kind == "InferenceService":
        return isvc_path(namespace, spec.target.name)
    return deployment_path(namespace, spec.target.name)


def find_owner(
    api: ClusterApi, spec: MonitorSpec, namespace: str, settings: GitOpsSettings
) -> tuple[dict[str, Any] | None, GitOpsOwner | None]:
    """The target as it is now, and the owner its marks name (None, None when absent)."""
    target = api.get(target_path(spec, namespace))
    if target is None:
        return None, None
    return target, detect_owner(target.get("metadata") or {}, settings)


def _with(result: ActionResult, info: Mapping[str, Any], message: str = "") -> ActionResult:
    details = {**result.details, "gitOps": dict(info)}
    return replace(result, details=details, message=message or result.message)


def _pause(
    api: ClusterApi, owner: GitOpsOwner, request: ActionRequest
) -> tuple[bool, str, Mapping[str, Any] | None]:
    """Suspend ``owner``; (paused by us, its source revision, the Argo policy removed).

    An owner already suspended by someone else is left as it is (paused False): it is
    not ours to resume.
    """
    path = owner_path(owner)
    obj = api.get(path)
    if obj is None:
        raise LookupError(f"{owner.describe()} not found")
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    revision = source_revision(owner.kind, obj)
    if annotations.get(PAUSED_BY_ANNOTATION) == request.id:
        previous = _previous_from(annotations)
        return True, revision, previous
    if is_suspended(owner.kind, obj):
        return False, revision, None
    plan = plan_pause(owner, obj, request.id)
    if plan.previous is not None:
        ops = list(plan.patch)
        ops[1]["value"][PREVIOUS_ANNOTATION] = json.dumps(plan.previous, sort_keys=True)
        body: Any = ops
    else:
        body = plan.patch
    api.patch(path, body, patch_type="json")
    return True, revision, plan.previous


def _settle(
    api: ClusterApi,
    owner: GitOpsOwner,
    seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> bool:
    """Wait until the suspended owner has taken it in (see pause_settled); False when
    ``seconds`` passed first (the rollback goes ahead; the guard reports a write-back)."""
    deadline = clock() + seconds
    while True:
        obj = api.get(owner_path(owner))
        if obj is None or pause_settled(owner.kind, obj):
            return True
        if clock() >= deadline:
            return False
        sleep(SETTLE_POLL_SECONDS)


def _previous_from(annotations: Mapping[str, Any]) -> Mapping[str, Any] | None:
    raw = annotations.get(PREVIOUS_ANNOTATION)
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def resume(api: ClusterApi, owner: GitOpsOwner, previous: Mapping[str, Any] | None) -> None:
    """Undo a pause: Flux ``spec.suspend: false``, Argo CD its automated policy back."""
    patch = plan_resume(owner, previous)
    patch["metadata"]["annotations"][PREVIOUS_ANNOTATION] = None
    api.patch(owner_path(owner), patch, patch_type="merge")


def guarded(
    rollback: Executor,
    settings: GitOpsSettings | None = None,
    *,
    settle_seconds: float = SETTLE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Executor:
    """``rollback`` under ``spec.actions.gitops`` (see the module's docstring)."""
    gitops_settings = settings or GitOpsSettings()

    def execute(api: ClusterApi, spec: MonitorSpec, request: ActionRequest) -> ActionResult:
        _target, owner = find_owner(api, spec, request.namespace, gitops_settings)
        if owner is None:
            return rollback(api, spec, request)
        policy = spec.actions.gitops
        info: dict[str, Any] = {**owner.to_dict(), "policy": policy, "paused": False}
        what = f"{spec.target.kind.lower()}/{spec.target.name}"
        if policy == GitOpsPolicy.IGNORE:
            return _with(rollback(api, spec, request), info)
        if policy == GitOpsPolicy.REFUSE:
            return ActionResult(
                Outcome.SKIPPED,
                "GitOpsManaged",
                f"not rolling back {what}: it is managed by {owner.describe()} (found by "
                f"{owner.mark}), whose next reconcile would undo it; spec.actions.gitops is "
                "refuse. Revert the change in Git, or set spec.actions.gitops to pause",
                {"gitOps": info},
            )
        refusal = pause_refusal(owner, request.namespace)
        if refusal is not None:
            return ActionResult(
                Outcome.SKIPPED,
                "GitOpsOwnerElsewhere",
                f"not rolling back {what}: {refusal}",
                {"gitOps": info},
            )
        if request.dry_run:
            result = rollback(api, spec, request)
            return _with(result, info, f"would pause {owner.describe()}, then: {result.message}")
        try:
            paused, revision, previous = _pause(api, owner, request)
        except LookupError as exc:
            return ActionResult(
                Outcome.SKIPPED,
                "GitOpsOwnerNotFound",
                f"not rolling back {what}: {exc} (named by its {owner.mark}); a stale mark "
                "can be removed, or spec.actions.gitops set to ignore",
                {"gitOps": info},
            )
        except ApiError as exc:
            return ActionResult(
                Outcome.FAILED,
                "GitOpsPauseFailed",
                f"not rolling back {what}: cannot pause {owner.describe()}: {exc}",
                {"gitOps": info},
            )
        info.update(paused=paused, badRevision=revision, previousAutomated=previous)
        if paused:
            try:
                info["settled"] = _settle(api, owner, settle_seconds, sleep, clock)
            except ApiError:
                info["settled"] = False  # the rollback goes ahead; the guard watches
        result = rollback(api, spec, request)
        if result.outcome != Outcome.SUCCEEDED and paused:
            try:
                resume(api, owner, previous)  # nothing rolled back: nothing to hold
                info["paused"] = False
            except ApiError as exc:
                return _with(
                    result, info, f"{result.message}; resuming {owner.describe()} failed: {exc}"
                )
            return _with(result, info)
        verb = "paused" if paused else "found suspended"
        return _with(result, info, f"{verb} {owner.describe()}, then {result.message}")

    return execute


__all__ = ["find_owner", "guarded", "owner_path", "resume"]
