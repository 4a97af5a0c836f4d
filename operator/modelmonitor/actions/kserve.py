"""Rollback of a KServe InferenceService canary: all traffic back to the stable revision.

KServe (serverless/Knative mode) splits a component's traffic by
``spec.predictor.canaryTrafficPercent``: that percentage goes to the latest revision
(status traffic target ``latestRevision: true``, tagged ``latest`` when tag routing is
on), the rest to the last revision that was rolled out with 100% (tag ``prev``, its name
in ``status.components.predictor.latestRolledoutRevision``). KServe's own rollback is to
set ``canaryTrafficPercent: 0``: the canary revision stays but gets no traffic, so a
person can inspect it, fix it, or promote it later. That is all this action does; it
never edits the model spec, so nothing a person wrote is lost.

Whether a canary is in progress is read from the spec, which is what KServe acts on:
a status split without ``canaryTrafficPercent`` is a promotion the controller has not
finished, and rolling it back would override a person. In Standard (raw Deployment)
and ModelMesh modes KServe ignores the field, so there is no canary to roll back.

The patch is a merge patch carrying ``metadata.resourceVersion`` (409 when the object
changed since our read: read again and retry, up to 4 attempts) and the
:data:`~modelmonitor.core.cluster.ACTION_ANNOTATION` mark in the same write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelmonitor.actions.base import retry_on_conflict
from modelmonitor.core.cluster import ACTION_ANNOTATION, ClusterApi, resource_path
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
# Modes without Knative revisions, where canaryTrafficPercent has no effect
# (RawDeployment is Standard's name before KServe 0.16).
NO_CANARY_MODES = frozenset({"RawDeployment", "Standard", "ModelMesh"})


def isvc_path(namespace: str, name: str) -> str:
    return resource_path("/apis/serving.kserve.io/v1beta1", namespace, "inferenceservices", name)


def _percent(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def canary_state(isvc: Mapping[str, Any]) -> dict[str, Any]:
    """What the predictor's traffic looks like, from spec and status (pure).

    Keys: ``in_progress`` (a canary gets some but not all traffic, and there is a
    stable revision to give it back to), ``rolled_back`` (canaryTrafficPercent is 0),
    ``percent`` (spec canaryTrafficPercent or None), ``traffic_percent`` (the latest
    revision's share in status, or None), ``split`` (status shows latest < 100% next to
    a ``prev`` target), ``canary_revision``, ``stable_revision`` (the one that gets the
    traffic back), ``latest_rolledout_revision``, ``previous_rolledout_revision``,
    ``deployment_mode`` ("" when not stated on the object).
    """
    metadata = isvc.get("metadata") or {}
    status = isvc.get("status") or {}
    predictor_spec = (isvc.get("spec") or {}).get("predictor") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    traffic = [t for t in predictor.get("traffic") or [] if isinstance(t, Mapping)]
    latest = next(
        (t for t in traffic if t.get("latestRevision") is True or t.get("tag") == "latest"),
        None,
    )
    prev = next(
        (t for t in traffic if t.get("tag") == "prev" and t.get("latestRevision") is not True),
        None,
    )
    percent = _percent(predictor_spec.get("canaryTrafficPercent"))
    traffic_percent = _percent(latest.get("percent")) if latest is not None else None
    latest_rolledout = str(predictor.get("latestRolledoutRevision") or "")
    stable = str((prev or {}).get("revisionName") or latest_rolledout)
    canary = str(
        (latest or {}).get("revisionName")
        or predictor.get("latestReadyRevision")
        or predictor.get("latestCreatedRevision")
        or ""
    )
    mode = str(
        (metadata.get("annotations") or {}).get(DEPLOYMENT_MODE_ANNOTATION)
        or status.get("deploymentMode")
        or ""
    )
    split = (
        latest is not None
        and prev is not None
        and traffic_percent is not None
        and traffic_percent < 100
    )
    # With status, KServe splits only when it knows a rolled-out revision; without
    # status (not reconciled yet) the spec is all we have.
    has_stable = bool(stable) or not predictor
    splits = mode not in NO_CANARY_MODES and has_stable
    return {
        "in_progress": splits and percent is not None and 0 < percent < 100,
        "rolled_back": splits and percent == 0,
        "percent": percent,
        "traffic_percent": traffic_percent,
        "split": split,
        "canary_revision": canary,
        "stable_revision": stable,
        "latest_rolledout_revision": latest_rolledout,
        "previous_rolledout_revision": str(predictor.get("previousRolledoutRevision") or ""),
        "deployment_mode": mode,
    }


def rollback_patch(isvc: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """canaryTrafficPercent 0 and the mark, guarded by the resourceVersion we read."""
    return {
        "metadata": {
            "resourceVersion": (isvc.get("metadata") or {}).get("resourceVersion"),
            "annotations": {ACTION_ANNOTATION: request_id},
        },
        "spec": {"predictor": {"canaryTrafficPercent": 0}},
    }


def _details(name: str, state: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "inferenceService": name,
        "fromPercent": state["percent"],
        "toPercent": 0,
        "canaryRevision": state["canary_revision"],
        "stableRevision": state["stable_revision"],
    }


def _rollback_once(api: ClusterApi, name: str, request: ActionRequest) -> ActionResult:
    ref = f"inferenceservice/{name}"
    isvc = api.get(isvc_path(request.namespace, name))
    if isvc is None:
        return ActionResult(
            Outcome.SKIPPED, "TargetNotFound", f"{ref} not found in {request.namespace}"
        )
    state = canary_state(isvc)
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ACTION_ANNOTATION) == request.id:
        return ActionResult(
            Outcome.SUCCEEDED,
            "CanaryRolledBack",
            f"already applied by {request.id}: {ref} canary traffic is {state['percent']}%",
            _details(name, state),
        )
    if state["rolled_back"]:
        return ActionResult(
            Outcome.SUCCEEDED,
            "CanaryRolledBack",
            f"already rolled back: {ref} canary traffic is 0%",
            _details(name, state),
        )
    if not state["in_progress"]:
        why = (
            f"{state['deployment_mode']} mode has no canary traffic split"
            if state["deployment_mode"] in NO_CANARY_MODES
            else "serves one revision"
        )
        return ActionResult(
            Outcome.SKIPPED,
            "NoCanary",
            f"{ref} {why}; nothing to roll back",
            {"inferenceService": name, "percent": state["percent"]},
        )
    canary = state["canary_revision"] or "not yet known"
    stable = state["stable_revision"] or "the last rolled-out revision"
    change = (
        f"{ref} canary traffic from {state['percent']}% back to 0% "
        f"(revision {canary}; all traffic to {stable})"
    )
    if request.dry_run:
        return ActionResult(
            Outcome.DRY_RUN, "CanaryRolledBack", f"would send {change}", _details(name, state)
        )
    api.patch(isvc_path(request.namespace, name), rollback_patch(isvc, request.id))
    return ActionResult(
        Outcome.SUCCEEDED, "CanaryRolledBack", f"sent {change}", _details(name, state)
    )


def execute_canary_rollback(
    api: ClusterApi, spec: MonitorSpec, request: ActionRequest
) -> ActionResult:
    """Send all of the predictor's traffic back to its stable revision."""
    if spec.target.kind != "InferenceService":
        return ActionResult(
            Outcome.SKIPPED,
            "UnsupportedTarget",
            f"a canary rollback needs an InferenceService, not a {spec.target.kind}",
        )
    return retry_on_conflict(
        lambda: _rollback_once(api, spec.target.name, request), "CanaryRollbackFailed"
    )
