"""The ``scale`` action: one step more replicas for the target, and the way back.

Policy with a HorizontalPodAutoscaler: never fight it. When an HPA targets the
Deployment, setting ``spec.replicas`` would be undone on the HPA's next sync (or worse,
flap against it), so the step raises the HPA's ``spec.minReplicas`` instead and lets the
HPA scale the Deployment; the cap is the smaller of ``spec.actions.scale.maxReplicas``
and the HPA's own ``maxReplicas``. Without an HPA the step raises the Deployment's
``spec.replicas``.

Every write is a merge patch that carries the object's ``metadata.resourceVersion``
(the API server refuses it with 409 when someone changed the object since we read it)
and sets :data:`~modelmonitor.core.cluster.ACTION_ANNOTATION` to the request id in the
same write, so the change and its idempotency mark land together or not at all. The
patch also records what this step changed in :data:`RESTORE_ANNOTATION`, so a request
re-run after a crash (acted, but the result was never recorded) still returns the
``restore`` mapping scale-back needs.

The planning functions are pure (dicts in, dicts out); ``execute_*`` do the I/O.
``stabilization_seconds`` is the policy's business (when to scale back), not this module's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelmonitor.actions.base import retry_on_conflict
from modelmonitor.core.cluster import ACTION_ANNOTATION, ClusterApi, resource_path
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec, ScaleSpec

RESTORE_ANNOTATION = "modelmonitor.io/scale-restore"
Kind = Literal["Deployment", "HorizontalPodAutoscaler"]
_FIELDS: dict[str, str] = {"Deployment": "replicas", "HorizontalPodAutoscaler": "minReplicas"}
_RESOURCES: dict[str, tuple[str, str]] = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "HorizontalPodAutoscaler": ("/apis/autoscaling/v2", "horizontalpodautoscalers"),
}


def object_path(kind: str, namespace: str, name: str | None = None) -> str:
    """The object's path (the collection's without ``name``)."""
    prefix, plural = _RESOURCES[kind]
    return resource_path(prefix, namespace, plural, name)


# -- pure planning ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalePlan:
    """One step for one object: ``field`` goes from ``current`` to ``target`` (<= ``cap``)."""

    kind: Kind
    name: str
    field: str
    current: int
    target: int
    cap: int

    @property
    def at_cap(self) -> bool:
        return self.target <= self.current

    def restore(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "field": self.field,
            "original": self.current,
            "applied": self.target,
        }


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def current_value(obj: Mapping[str, Any], field: str) -> int:
    """``spec.<field>``, with the API server's default of 1 for both fields we touch."""
    return _int((obj.get("spec") or {}).get(field), 1)


def find_hpa(hpas: list[dict[str, Any]], deployment: str) -> dict[str, Any] | None:
    """The HPA whose ``scaleTargetRef`` is this Deployment (apps/v1), if any.

    An empty ``apiVersion`` is accepted (the field is optional in autoscaling/v2).
    With several (a misconfiguration the HPA controller itself reports), the first
    by name, so repeated runs pick the same one.
    """
    for hpa in sorted(hpas, key=_name):
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        if (
            ref.get("kind") == "Deployment"
            and ref.get("name") == deployment
            and ref.get("apiVersion", "apps/v1") in ("apps/v1", "", None)
        ):
            return hpa
    return None


def plan_scale_up(
    deployment: Mapping[str, Any], hpa: Mapping[str, Any] | None, scale: ScaleSpec
) -> ScalePlan:
    """One ``scale.step`` up, on the HPA's minReplicas when there is an HPA, else replicas."""
    if hpa is not None:
        cap = min(scale.max_replicas, _int((hpa.get("spec") or {}).get("maxReplicas"), 1))
        current = current_value(hpa, "minReplicas")
        kind: Kind = "HorizontalPodAutoscaler"
        name = _name(hpa)
    else:
        cap = scale.max_replicas
        current = current_value(deployment, "replicas")
        kind = "Deployment"
        name = _name(deployment)
    # Never lower: above the cap (a person scaled further) counts as at the cap.
    target = max(current, min(current + scale.step, cap))
    return ScalePlan(kind, name, _FIELDS[kind], current, target, cap)


def marked_patch(
    obj: Mapping[str, Any],
    field: str,
    value: int,
    request_id: str,
    restore_note: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A merge patch that sets ``spec.<field>`` and the marks, guarded by resourceVersion.

    ``restore_note`` None removes :data:`RESTORE_ANNOTATION` (after a scale-back).
    """
    note = json.dumps(dict(restore_note), sort_keys=True) if restore_note is not None else None
    return {
        "metadata": {
            "resourceVersion": (obj.get("metadata") or {}).get("resourceVersion"),
            "annotations": {ACTION_ANNOTATION: request_id, RESTORE_ANNOTATION: note},
        },
        "spec": {field: value},
    }


def recorded_restore(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The restore mapping an earlier step wrote on ``obj``, or None."""
    raw = _annotations(obj).get(RESTORE_ANNOTATION)
    try:
        data = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return dict(data) if isinstance(data, dict) else None


def parse_restore(restore: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The caller's restore mapping checked and normalised, or None when unusable."""
    if not restore:
        return None
    kind = restore.get("kind")
    name = restore.get("name")
    original = restore.get("original")
    applied = restore.get("applied")
    if kind not in _FIELDS or not isinstance(name, str) or not name:
        return None
    if restore.get("field", _FIELDS[kind]) != _FIELDS[kind]:
        return None
    if _int(original, -1) < 0 or _int(applied, -1) < 0:
        return None
    return {
        "kind": kind,
        "name": name,
        "field": _FIELDS[kind],
        "original": original,
        "applied": applied,
    }


def _ref(kind: str, name: str) -> str:
    return f"{kind.lower()}/{name}"


def _describe(plan: ScalePlan, deployment: str) -> str:
    if plan.kind == "Deployment":
        return f"deployment/{deployment} from {plan.current} to {plan.target} replicas"
    return (
        f"the minReplicas of horizontalpodautoscaler/{plan.name} from {plan.current} to "
        f"{plan.target} (it scales deployment/{deployment})"
    )


def _verb(plan: ScalePlan) -> str:
    return "scale" if plan.kind == "Deployment" else "raise"


def _details(plan: ScalePlan) -> dict[str, Any]:
    return {
        "kind": plan.kind,
        "name": plan.name,
        "field": plan.field,
        "from": plan.current,
        "to": plan.target,
        "restore": plan.restore(),
    }


# -- I/O ----------------------------------------------------------------------------------


def _already_applied(obj: Mapping[str, Any], kind: Kind, request: ActionRequest) -> ActionResult:
    field = _FIELDS[kind]
    name = _name(obj)
    restore = recorded_restore(obj)
    details: dict[str, Any] = {"kind": kind, "name": name, "field": field}
    if restore is not None:
        details.update(
            {"from": restore.get("original"), "to": restore.get("applied"), "restore": restore}
        )
    return ActionResult(
        Outcome.SUCCEEDED,
        "ScaledUp",
        f"already applied by {request.id}: {_ref(kind, name)} {field} is "
        f"{current_value(obj, field)}",
        details,
    )


def _scale_once(
    api: ClusterApi, namespace: str, target: str, scale: ScaleSpec, request: ActionRequest
) -> ActionResult:
    deployment = api.get(object_path("Deployment", namespace, target))
    if deployment is None:
        return ActionResult(
            Outcome.SKIPPED, "TargetNotFound", f"deployment/{target} not found in {namespace}"
        )
    hpa = find_hpa(api.list(object_path("HorizontalPodAutoscaler", namespace)), target)
    # A step already taken by this request (on either object: the HPA may be new).
    if _annotations(deployment).get(ACTION_ANNOTATION) == request.id:
        return _already_applied(deployment, "Deployment", request)
    if hpa is not None and _annotations(hpa).get(ACTION_ANNOTATION) == request.id:
        return _already_applied(hpa, "HorizontalPodAutoscaler", request)
    plan = plan_scale_up(deployment, hpa, scale)
    if plan.at_cap:
        return ActionResult(
            Outcome.SKIPPED,
            "AtMaxReplicas",
            f"{_ref(plan.kind, plan.name)} {plan.field} is {plan.current}, "
            f"at or above the cap of {plan.cap}",
            {
                "kind": plan.kind,
                "name": plan.name,
                "field": plan.field,
                "current": plan.current,
                "cap": plan.cap,
            },
        )
    if request.dry_run:
        return ActionResult(
            Outcome.DRY_RUN,
            "ScaledUp",
            f"would {_verb(plan)} {_describe(plan, target)}",
            _details(plan),
        )
    obj = hpa if hpa is not None else deployment
    api.patch(
        object_path(plan.kind, namespace, plan.name),
        marked_patch(obj, plan.field, plan.target, request.id, plan.restore()),
    )
    return ActionResult(
        Outcome.SUCCEEDED, "ScaledUp", f"{_verb(plan)}d {_describe(plan, target)}", _details(plan)
    )


def execute_scale(api: ClusterApi, spec: MonitorSpec, request: ActionRequest) -> ActionResult:
    """One step up for ``spec.target`` (see the module doc for the HPA policy)."""
    scale = spec.actions.scale
    if scale is None:
        return ActionResult(Outcome.SKIPPED, "NotConfigured", "spec.actions.scale is not set")
    if spec.target.kind != "Deployment":
        return ActionResult(
            Outcome.SKIPPED, "UnsupportedTarget", f"cannot scale a {spec.target.kind}"
        )
    return retry_on_conflict(
        lambda: _scale_once(api, request.namespace, spec.target.name, scale, request),
        "ScaleFailed",
    )


def _scale_back_once(
    api: ClusterApi, restore: Mapping[str, Any], request: ActionRequest
) -> ActionResult:
    kind, name, field = restore["kind"], restore["name"], restore["field"]
    original, applied = restore["original"], restore["applied"]
    ref = _ref(kind, name)
    path = object_path(kind, request.namespace, name)
    obj = api.get(path)
    if obj is None:
        return ActionResult(
            Outcome.SKIPPED, "TargetNotFound", f"{ref} not found in {request.namespace}"
        )
    details = {"kind": kind, "name": name, "field": field, "from": applied, "to": original}
    if _annotations(obj).get(ACTION_ANNOTATION) == request.id:
        return ActionResult(
            Outcome.SUCCEEDED,
            "ScaledBack",
            f"already restored by {request.id}: {ref} {field} is {current_value(obj, field)}",
            details,
        )
    current = current_value(obj, field)
    if current == original:
        return ActionResult(
            Outcome.SUCCEEDED,
            "ScaledBack",
            f"already restored: {ref} {field} is {original}",
            details,
        )
    if current != applied:
        return ActionResult(
            Outcome.SKIPPED,
            "ChangedSince",
            f"{ref} {field} is {current}, not the {applied} we set; someone else changed it, "
            "leaving it alone",
            {**details, "current": current},
        )
    if request.dry_run:
        return ActionResult(
            Outcome.DRY_RUN,
            "ScaledBack",
            f"would set {ref} {field} back from {current} to {original}",
            details,
        )
    api.patch(path, marked_patch(obj, field, original, request.id, None))
    return ActionResult(
        Outcome.SUCCEEDED,
        "ScaledBack",
        f"set {ref} {field} back from {current} to {original}",
        details,
    )


def execute_scale_back(api: ClusterApi, spec: MonitorSpec, request: ActionRequest) -> ActionResult:
    """Undo the scale steps of an incident, unless someone changed the value since.

    ``request.restore`` is ``{"kind", "name", "field", "original", "applied"}`` with the
    first step's original and the last step's applied value.
    """
    restore = parse_restore(request.restore)
    if restore is None:
        return ActionResult(
            Outcome.SKIPPED, "NothingToRestore", "no usable restore record on the request"
        )
    return retry_on_conflict(lambda: _scale_back_once(api, restore, request), "ScaleFailed")
