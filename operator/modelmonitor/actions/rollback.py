"""Roll a Deployment back to the newest revision the monitor saw healthy.

``kubectl rollout undo`` goes back to the *previous* revision, which after a bad rollout
is often another bad one (a hotfix that did not help). This action goes back to the
newest revision the monitor itself observed serving healthily, and otherwise does what
kubectl's ``DeploymentRollbacker`` does on the server side: copy the target
ReplicaSet's pod template (without its ``pod-template-hash`` label) and its annotations
(the change-cause among them) into the Deployment with one JSON patch.

The planning is pure (plain dicts in, a :class:`RollbackPlan` or a :class:`Refusal`
out); :func:`execute_rollback` is the thin I/O around it.

A revision is identified by the ``pod-template-hash`` of its ReplicaSet, not by its
number: a rollback makes the Deployment controller renumber the old ReplicaSet to
max+1, and the hash is what stays.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelmonitor.actions.base import CONFLICT_ATTEMPTS
from modelmonitor.core.cluster import ACTION_ANNOTATION, ApiError, ClusterApi, resource_path
from modelmonitor.core.incident import ActionRequest, ActionResult, Outcome
from modelmonitor.core.spec import MonitorSpec

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
ROLLED_BACK_FROM_ANNOTATION = "modelmonitor.io/rolled-back-from"
ROLLED_BACK_TO_ANNOTATION = "modelmonitor.io/rolled-back-to"
OWN_ANNOTATION_PREFIX = "modelmonitor.io/"

# The Deployment keeps its own values of these; kubectl's annotationsToSkip.
ANNOTATIONS_TO_SKIP = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)

# A failed resourceVersion ``test`` (or a conflicting write) answers one of these.
_CONFLICT_STATUSES = frozenset({409, 422})


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback will change; ``patch`` is an RFC 6902 JSON patch for the Deployment."""

    deployment: str
    from_revision: str
    to_revision: str  # the target ReplicaSet's revision before the rollback renumbers it
    pod_template_hash: str
    from_images: tuple[str, ...]
    to_images: tuple[str, ...]
    patch: tuple[Mapping[str, Any], ...]

    def describe(self, verb: str = "roll back") -> str:
        """One line for people: ``verb`` deployment/x from revision 7 to 6 (image ...)."""
        return (
            f"{verb} deployment/{self.deployment} from revision {self.from_revision} "
            f"to {self.to_revision} ({_image_change(self.from_images, self.to_images)})"
        )


@dataclass(frozen=True)
class Refusal:
    """Why no rollback is possible; becomes a SKIPPED result."""

    reason: str  # DeploymentPaused | NoHealthyRevision | HealthyRevisionGone
    message: str


# -- pure ---------------------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("annotations") or {}


def _revision(obj: Mapping[str, Any]) -> str:
    return str(_annotations(obj).get(REVISION_ANNOTATION) or "")


def _hash(rs: Mapping[str, Any]) -> str:
    return str((_meta(rs).get("labels") or {}).get(HASH_LABEL) or "")


def _template(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return (obj.get("spec") or {}).get("template") or {}


def _images(template: Mapping[str, Any]) -> list[str]:
    containers = (template.get("spec") or {}).get("containers") or []
    return [str(c.get("image") or "") for c in containers]


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template as the Deployment holds it: the controller adds the hash label."""
    result = copy.deepcopy(dict(template))
    metadata = dict(result.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != HASH_LABEL}
    metadata["labels"] = labels
    result["metadata"] = metadata
    return result


def _owned(deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The ReplicaSets this Deployment controls (a selector can match others' too)."""
    uid = _meta(deployment).get("uid")
    return [
        rs
        for rs in replicasets
        if any(
            ref.get("controller") and ref.get("uid") == uid
            for ref in _meta(rs).get("ownerReferences") or []
        )
    ]


def _image_change(before: Sequence[str], after: Sequence[str]) -> str:
    if list(before) == list(after):
        return f"image unchanged: {', '.join(after) or 'none'}"
    word = "image" if len(before) == len(after) == 1 else "images"
    return f"{word} {', '.join(before) or 'none'} -> {', '.join(after) or 'none'}"


def observe_revision(
    deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The revision the Deployment serves, once its rollout is complete; else None.

    Only a finished rollout may be recorded healthy: during one, the old and the new
    pods both serve, and a good verdict would vouch for a revision not yet tested.
    """
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    if spec.get("paused"):
        return None
    replicas = spec.get("replicas")
    desired = 1 if replicas is None else int(replicas)
    updated = int(status.get("updatedReplicas") or 0)
    complete = (
        int(status.get("observedGeneration") or 0) >= int(_meta(deployment).get("generation") or 0)
        and updated == desired
        and int(status.get("replicas") or 0) == updated
        and int(status.get("availableReplicas") or 0) >= updated
    )
    revision = _revision(deployment)
    if not complete or not revision:
        return None
    for rs in _owned(deployment, replicasets):
        if _revision(rs) == revision and _hash(rs):
            return {
                "revision": revision,
                "podTemplateHash": _hash(rs),
                "images": _images(_template(rs)),
            }
    return None


def record_healthy(
    healthy: Sequence[Mapping[str, Any]], observed: Mapping[str, Any], now: str, cap: int = 10
) -> list[dict[str, Any]]:
    """``healthy`` with ``observed`` in front (newest first), one entry per template hash.

    An entry seen again moves to the front with its new revision number: ``rollout undo``
    renumbers the same template, and the hash is its identity.
    """
    key = observed.get("podTemplateHash")
    entry = {
        "revision": str(observed.get("revision") or ""),
        "podTemplateHash": key,
        "images": list(observed.get("images") or []),
        "lastSeen": now,
    }
    rest = [dict(h) for h in healthy if h.get("podTemplateHash") != key]
    return [entry, *rest][: max(cap, 1)]


def _current_hashes(deployment: Mapping[str, Any], owned: Sequence[Mapping[str, Any]]) -> set[str]:
    """Hashes of what the Deployment serves or is rolling out.

    Like the Deployment controller, a ReplicaSet whose template equals the Deployment's
    (ignoring the hash label) is the current one, even before the revision annotation
    catches up; the ReplicaSet bearing the Deployment's revision number is too.
    """
    template = _without_hash(_template(deployment))
    revision = _revision(deployment)
    return {
        _hash(rs)
        for rs in owned
        if _without_hash(_template(rs)) == template or (revision and _revision(rs) == revision)
    }


def _annotations_for(
    deployment: Mapping[str, Any], rs: Mapping[str, Any], action_id: str, from_revision: str
) -> dict[str, str]:
    """kubectl's annotation merge, keeping the monitor's own marks from the Deployment.

    The ReplicaSet's copies of ``modelmonitor.io/*`` are stale marks of earlier actions.
    """
    own = _annotations(deployment)
    result = {
        k: v
        for k, v in own.items()
        if k in ANNOTATIONS_TO_SKIP or k.startswith(OWN_ANNOTATION_PREFIX)
    }
    for k, v in _annotations(rs).items():
        if k not in ANNOTATIONS_TO_SKIP and not k.startswith(OWN_ANNOTATION_PREFIX):
            result[k] = v
    result[ACTION_ANNOTATION] = action_id
    result[ROLLED_BACK_FROM_ANNOTATION] = from_revision
    result[ROLLED_BACK_TO_ANNOTATION] = _revision(rs)
    return result


def plan_rollback(
    deployment: Mapping[str, Any],
    replicasets: Sequence[Mapping[str, Any]],
    healthy: Sequence[Mapping[str, Any]],
    action_id: str,
) -> RollbackPlan | Refusal:
    """Plan ``rollout undo`` to the newest healthy revision other than the current one."""
    name = str(_meta(deployment).get("name") or "")
    if (deployment.get("spec") or {}).get("paused"):
        return Refusal(
            "DeploymentPaused",
            f"deployment/{name} is paused; a rollback would not roll out until it is resumed "
            f"(kubectl rollout resume deployment/{name})",
        )
    if not healthy:
        return Refusal(
            "NoHealthyRevision",
            f"the monitor has not yet seen a revision of deployment/{name} healthy, "
            "so it does not know where to go back to",
        )
    owned = _owned(deployment, replicasets)
    by_hash = {_hash(rs): rs for rs in owned if _hash(rs)}
    current = _current_hashes(deployment, owned)
    from_revision = _revision(deployment)
    candidates = [h for h in healthy if h.get("podTemplateHash") not in current]
    if not candidates:
        return Refusal(
            "NoHealthyRevision",
            f"the only revision of deployment/{name} seen healthy is the current one "
            f"(revision {from_revision}); there is nothing healthy to go back to",
        )
    target = next(
        (by_hash[h["podTemplateHash"]] for h in candidates if h.get("podTemplateHash") in by_hash),
        None,
    )
    if target is None:
        gone = ", ".join(f"{h.get('revision')} ({h.get('podTemplateHash')})" for h in candidates)
        return Refusal(
            "HealthyRevisionGone",
            f"the ReplicaSets of the revisions of deployment/{name} seen healthy are gone: "
            f"{gone} (pruned by spec.revisionHistoryLimit)",
        )
    annotations_op = "replace" if "annotations" in _meta(deployment) else "add"
    patch = (
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": _meta(deployment).get("resourceVersion"),
        },
        {"op": "replace", "path": "/spec/template", "value": _without_hash(_template(target))},
        {
            "op": annotations_op,
            "path": "/metadata/annotations",
            "value": _annotations_for(deployment, target, action_id, from_revision),
        },
    )
    return RollbackPlan(
        deployment=name,
        from_revision=from_revision,
        to_revision=_revision(target),
        pod_template_hash=_hash(target),
        from_images=tuple(_images(_template(deployment))),
        to_images=tuple(_images(_template(target))),
        patch=patch,
    )


# -- I/O ----------------------------------------------------------------------------------


def _as_int(revision: str) -> int | str:
    return int(revision) if revision.isdigit() else revision


def _selector(deployment: Mapping[str, Any]) -> str:
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def deployment_path(namespace: str, name: str) -> str:
    return resource_path("/apis/apps/v1", namespace, "deployments", name)


def list_replicasets(
    api: ClusterApi, namespace: str, deployment: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The ReplicaSets the Deployment's selector matches (the planners keep its own)."""
    return api.list(
        resource_path("/apis/apps/v1", namespace, "replicasets"),
        label_selector=_selector(deployment),
    )


def read_revision(api: ClusterApi, namespace: str, name: str) -> dict[str, Any] | None:
    """:func:`observe_revision` of the Deployment as it is now (None when it is absent)."""
    deployment = api.get(deployment_path(namespace, name))
    if deployment is None:
        return None
    return observe_revision(deployment, list_replicasets(api, namespace, deployment))


def _already_applied(deployment: Mapping[str, Any]) -> ActionResult:
    annotations = _annotations(deployment)
    name = str(_meta(deployment).get("name") or "")
    from_revision = str(annotations.get(ROLLED_BACK_FROM_ANNOTATION) or "")
    to_revision = str(annotations.get(ROLLED_BACK_TO_ANNOTATION) or "")
    return ActionResult(
        Outcome.SUCCEEDED,
        "RolledBack",
        f"already applied: deployment/{name} was rolled back from revision {from_revision} "
        f"to {to_revision} by this action",
        {
            "deployment": name,
            "fromRevision": _as_int(from_revision),
            "toRevision": _as_int(to_revision),
            "alreadyApplied": True,
        },
    )


def execute_rollback(api: ClusterApi, spec: MonitorSpec, request: ActionRequest) -> ActionResult:
    """Roll ``spec.target`` back to the newest of ``request.healthy_revisions`` still present.

    Idempotent through :data:`ACTION_ANNOTATION`. The patch tests the resourceVersion it
    was planned against; when someone wrote the Deployment in between, it is re-read
    and re-planned (up to CONFLICT_ATTEMPTS times). ``toRevision`` is the number the
    target ReplicaSet had when planned (as kubectl reports it): the Deployment controller
    then renumbers that ReplicaSet to the highest revision + 1 (what ``rollout history``
    shows after).
    """
    name = spec.target.name
    if spec.target.kind != "Deployment":
        return ActionResult(
            Outcome.SKIPPED,
            "NotADeployment",
            f"rollback needs a Deployment target; {spec.target.kind}/{name} has no revisions",
        )
    path = deployment_path(request.namespace, name)
    try:
        for attempt in range(CONFLICT_ATTEMPTS):
            deployment = api.get(path)
            if deployment is None:
                return ActionResult(
                    Outcome.SKIPPED,
                    "TargetNotFound",
                    f"deployment/{name} not found in namespace {request.namespace}",
                )
            if _annotations(deployment).get(ACTION_ANNOTATION) == request.id:
                return _already_applied(deployment)
            replicasets = list_replicasets(api, request.namespace, deployment)
            plan = plan_rollback(deployment, replicasets, request.healthy_revisions, request.id)
            if isinstance(plan, Refusal):
                return ActionResult(Outcome.SKIPPED, plan.reason, plan.message)
            if request.dry_run:
                return ActionResult(
                    Outcome.DRY_RUN, "DryRun", plan.describe("would roll back"), _details(plan)
                )
            try:
                api.patch(path, [dict(op) for op in plan.patch], patch_type="json")
            except ApiError as exc:
                if exc.status in _CONFLICT_STATUSES and attempt < CONFLICT_ATTEMPTS - 1:
                    continue  # changed since we read it: look again
                raise
            return ActionResult(
                Outcome.SUCCEEDED, "RolledBack", plan.describe("rolled back"), _details(plan)
            )
    except ApiError as exc:
        return ActionResult(
            Outcome.FAILED, "RollbackFailed", f"rollback of deployment/{name} failed: {exc}"
        )
    raise AssertionError("unreachable: the last attempt returns or raises")


def _details(plan: RollbackPlan) -> dict[str, Any]:
    return {
        "deployment": plan.deployment,
        "fromRevision": _as_int(plan.from_revision),
        "toRevision": _as_int(plan.to_revision),
        "podTemplateHash": plan.pod_template_hash,
        "fromImages": list(plan.from_images),
        "toImages": list(plan.to_images),
    }
