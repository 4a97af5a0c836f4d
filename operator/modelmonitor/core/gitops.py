"""Who reconciles a target from Git, and how to pause and resume it: pure.

A rollback of a Deployment that Argo CD (self-heal) or Flux reconciles is undone at the
owner's next reconcile. This module finds the owner from the marks the GitOps tools put
on what they apply, and plans the patches that suspend and resume it:

* Argo CD: the tracking annotation ``argocd.argoproj.io/tracking-id``
  (``<app>:<group>/<kind>:<namespace>/<name>``, the app written ``<namespace>_<app>``
  when the Application lives outside Argo CD's own namespace), or the label
  ``app.kubernetes.io/instance`` when Argo CD tracks by label (a setting: Helm charts set
  that label too, so it is not trusted by default);
* Flux: ``kustomize.toolkit.fluxcd.io/name`` + ``/namespace`` (a Kustomization) and
  ``helm.toolkit.fluxcd.io/name`` + ``/namespace`` (a HelmRelease).

The marks are labels and annotations on the tenant's own object: anyone who may edit
the Deployment may write them, so an owner found here is a *claim*. The operator only
ever pauses an owner in the monitor's own namespace (:func:`pause_refusal`); see
docs/actions.md (GitOps owners) for the rule.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from modelmonitor.core.names import label_problem, subdomain_problem

ARGO_TRACKING_ANNOTATION = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE_LABEL = "app.kubernetes.io/instance"
FLUX_KUSTOMIZE_NAME = "kustomize.toolkit.fluxcd.io/name"
FLUX_KUSTOMIZE_NAMESPACE = "kustomize.toolkit.fluxcd.io/namespace"
FLUX_HELM_NAME = "helm.toolkit.fluxcd.io/name"
FLUX_HELM_NAMESPACE = "helm.toolkit.fluxcd.io/namespace"

# Set by the operator on an owner it paused: who paused it, for people and for the resume.
PAUSED_BY_ANNOTATION = "modelmonitor.io/paused-by"

DEFAULT_ARGOCD_NAMESPACE = "argocd"


class GitOpsPolicy(StrEnum):
    """``spec.actions.gitops``: what a rollback does when the target has a GitOps owner."""

    REFUSE = "refuse"  # do not roll back; report and notify (the default)
    PAUSE = "pause"  # suspend the owner, roll back, resume once Git moved on
    IGNORE = "ignore"  # roll back anyway


GITOPS_POLICIES: tuple[str, ...] = tuple(p.value for p in GitOpsPolicy)


@dataclass(frozen=True)
class OwnerKind:
    kind: str
    tool: str  # "Argo CD" | "Flux"
    api_prefix: str
    plural: str


APPLICATION = OwnerKind("Application", "Argo CD", "/apis/argoproj.io/v1alpha1", "applications")
KUSTOMIZATION = OwnerKind(
    "Kustomization", "Flux", "/apis/kustomize.toolkit.fluxcd.io/v1", "kustomizations"
)
HELMRELEASE = OwnerKind("HelmRelease", "Flux", "/apis/helm.toolkit.fluxcd.io/v2", "helmreleases")
OWNER_KINDS = {k.kind: k for k in (APPLICATION, KUSTOMIZATION, HELMRELEASE)}


@dataclass(frozen=True)
class GitOpsOwner:
    """The object that reconciles the target: ``status.target.gitOpsOwner``."""

    kind: str  # Application | Kustomization | HelmRelease
    name: str
    namespace: str
    mark: str  # the label or annotation it was found by

    @property
    def owner_kind(self) -> OwnerKind:
        return OWNER_KINDS[self.kind]

    def describe(self) -> str:
        return f"{self.owner_kind.tool} {self.kind} {self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "namespace": self.namespace}

    @classmethod
    def from_dict(cls, data: Any) -> GitOpsOwner | None:
        """The owner a status record names, or None when it is not a valid one."""
        if not isinstance(data, Mapping):
            return None
        kind, name, namespace = data.get("kind"), data.get("name"), data.get("namespace")
        if kind not in OWNER_KINDS or not isinstance(name, str) or not isinstance(namespace, str):
            return None
        if subdomain_problem(name) or label_problem(namespace):
            return None
        return cls(kind, name, namespace, str(data.get("mark") or ""))


def _valid(name: Any, namespace: Any) -> bool:
    return (
        isinstance(name, str)
        and isinstance(namespace, str)
        and subdomain_problem(name) is None
        and label_problem(namespace) is None
    )


def _argo_from_tracking_id(value: str, argocd_namespace: str) -> GitOpsOwner | None:
    app, sep, _rest = value.partition(":")
    if not sep or not app:
        return None
    namespace, under, name = app.partition("_")
    if not under:
        namespace, name = argocd_namespace, app
    if not _valid(name, namespace):
        return None
    return GitOpsOwner("Application", name, namespace, ARGO_TRACKING_ANNOTATION)


@dataclass(frozen=True)
class GitOpsSettings:
    """The cluster admin's settings (edge/config.py): where Argo CD keeps Applications
    it names without a namespace, and whether its label tracking is trusted."""

    argocd_namespace: str = DEFAULT_ARGOCD_NAMESPACE
    argocd_label_tracking: bool = False


def detect_owner(
    metadata: Mapping[str, Any], settings: GitOpsSettings | None = None
) -> GitOpsOwner | None:
    """The GitOps owner the target's ``metadata`` names, or None.

    Flux's labels come first (helm-controller's, then kustomize-controller's: a
    HelmRelease's objects are applied by helm-controller even when a Kustomization
    applied the HelmRelease), then Argo CD's annotation, then (only with
    ``argocd_label_tracking``) its label. A mark whose name or namespace is not a valid
    Kubernetes name is no owner.
    """
    settings = settings or GitOpsSettings()
    argocd_namespace = settings.argocd_namespace
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    if not isinstance(labels, Mapping) or not isinstance(annotations, Mapping):
        return None
    for kind, name_key, ns_key in (
        ("HelmRelease", FLUX_HELM_NAME, FLUX_HELM_NAMESPACE),
        ("Kustomization", FLUX_KUSTOMIZE_NAME, FLUX_KUSTOMIZE_NAMESPACE),
    ):
        name, namespace = labels.get(name_key), labels.get(ns_key)
        if _valid(name, namespace):
            return GitOpsOwner(kind, str(name), str(namespace), name_key)
    tracking = annotations.get(ARGO_TRACKING_ANNOTATION)
    if isinstance(tracking, str) and tracking:
        owner = _argo_from_tracking_id(tracking, argocd_namespace)
        if owner is not None:
            return owner
    instance = labels.get(ARGO_INSTANCE_LABEL)
    if settings.argocd_label_tracking and _valid(instance, argocd_namespace):
        return GitOpsOwner("Application", str(instance), argocd_namespace, ARGO_INSTANCE_LABEL)
    return None


def pause_refusal(owner: GitOpsOwner, monitor_namespace: str) -> str | None:
    """Why the operator will not pause ``owner`` for a monitor (None: it may).

    Only an owner in the monitor's own namespace: the marks that name the owner are
    written by whoever edits the target, so an owner elsewhere (``flux-system``,
    ``argocd``) could be any team's, and pausing it would stop their deliveries too.
    """
    if owner.namespace != monitor_namespace:
        return (
            f"{owner.describe()} is not in the monitor's namespace {monitor_namespace}; "
            "the operator pauses only owners in the monitor's own namespace"
        )
    return None


def source_revision(kind: str, obj: Mapping[str, Any]) -> str:
    """The revision of Git the owner last applied ("" when unknown).

    Flux: ``status.lastAppliedRevision``; Argo CD: ``status.sync.revision``.
    """
    status = obj.get("status") or {}
    if not isinstance(status, Mapping):
        return ""
    if kind == "Application":
        sync = status.get("sync") or {}
        value = sync.get("revision") if isinstance(sync, Mapping) else None
    else:
        value = status.get("lastAppliedRevision")
    return value if isinstance(value, str) else ""


def pause_settled(kind: str, obj: Mapping[str, Any]) -> bool:
    """Whether the owner has taken in its suspension, read after the suspend patch.

    Suspending stops the next reconcile, not one already running: kustomize-controller
    may be applying the bad revision while the patch lands, and would write it over a
    rollback made at once. Flux reconciles one object at a time and, after a reconcile
    that read the suspended spec, sets ``status.observedGeneration`` to its generation:
    from then on nothing of the owner's is in flight. An object without a generation
    (not one the API server stored) has nothing to wait for; nor has an Argo CD
    Application (an automated sync starts from the policy we removed; an operation
    already running is not waited for).
    """
    if kind == "Application":
        return True
    generation = (obj.get("metadata") or {}).get("generation")
    if not isinstance(generation, int):
        return True
    status = obj.get("status") or {}
    observed = status.get("observedGeneration") if isinstance(status, Mapping) else None
    return isinstance(observed, int) and observed >= generation


def is_suspended(kind: str, obj: Mapping[str, Any]) -> bool:
    """Whether the owner does not reconcile by itself now.

    Flux: ``spec.suspend``; Argo CD: no ``spec.syncPolicy.automated``, or one with
    ``selfHeal`` off and ``enabled: false`` (Argo CD 3's switch).
    """
    spec = obj.get("spec") or {}
    if not isinstance(spec, Mapping):
        return False
    if kind != "Application":
        return spec.get("suspend") is True
    policy = spec.get("syncPolicy") or {}
    automated = policy.get("automated") if isinstance(policy, Mapping) else None
    if not isinstance(automated, Mapping):
        return True
    return automated.get("enabled") is False


@dataclass(frozen=True)
class PausePlan:
    """The patch that suspends the owner, and what to remember to undo it."""

    patch: Any
    patch_type: str  # "merge" | "json"
    previous: Mapping[str, Any] | None  # Argo CD: the automated sync policy removed


def plan_pause(owner: GitOpsOwner, obj: Mapping[str, Any], paused_by: str) -> PausePlan:
    """Flux: ``spec.suspend: true``; Argo CD: remove ``spec.syncPolicy.automated``.

    Both guarded by the resourceVersion read (a JSON patch ``test``), so a change made
    between reading and pausing is never overwritten with what was read.
    """
    metadata = obj.get("metadata") or {}
    annotations = dict(metadata.get("annotations") or {})
    annotations[PAUSED_BY_ANNOTATION] = paused_by
    ops: list[dict[str, Any]] = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": metadata.get("resourceVersion"),
        },
        {
            "op": "replace" if "annotations" in metadata else "add",
            "path": "/metadata/annotations",
            "value": annotations,
        },
    ]
    previous: Mapping[str, Any] | None = None
    if owner.kind == "Application":
        policy = (obj.get("spec") or {}).get("syncPolicy") or {}
        automated = policy.get("automated") if isinstance(policy, Mapping) else None
        if isinstance(automated, Mapping):
            previous = copy.deepcopy(dict(automated))
            ops.append({"op": "remove", "path": "/spec/syncPolicy/automated"})
    else:
        spec_op = "replace" if "suspend" in (obj.get("spec") or {}) else "add"
        ops.append({"op": spec_op, "path": "/spec/suspend", "value": True})
    return PausePlan(ops, "json", previous)


def plan_resume(owner: GitOpsOwner, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The merge patch that undoes :func:`plan_pause` (and removes the paused-by mark)."""
    patch: dict[str, Any] = {"metadata": {"annotations": {PAUSED_BY_ANNOTATION: None}}}
    if owner.kind == "Application":
        patch["spec"] = {"syncPolicy": {"automated": dict(previous or {})}}
    else:
        patch["spec"] = {"suspend": False}
    return patch


class Resume(StrEnum):
    HOLD = "hold"  # still paused, Git still at the bad revision
    RESUME = "resume"  # Git moved on: resume the owner
    FORGET = "forget"  # a person resumed it (or it is gone): nothing left to undo


# Flux sources a Kustomization may name, by kind: (api prefix, plural). A suspended
# Kustomization applies nothing, so its lastAppliedRevision stays at the bad revision;
# its source (source-controller, never suspended by us) keeps fetching Git.
FLUX_SOURCES: dict[str, tuple[str, str]] = {
    "GitRepository": ("/apis/source.toolkit.fluxcd.io/v1", "gitrepositories"),
    "OCIRepository": ("/apis/source.toolkit.fluxcd.io/v1beta2", "ocirepositories"),
}


@dataclass(frozen=True)
class SourceRef:
    kind: str
    name: str
    namespace: str

    @property
    def api(self) -> tuple[str, str]:
        return FLUX_SOURCES[self.kind]


def flux_source(owner: GitOpsOwner, obj: Mapping[str, Any]) -> SourceRef | None:
    """The GitRepository or OCIRepository a Kustomization applies from (None: other)."""
    if owner.kind != "Kustomization":
        return None
    spec = obj.get("spec") or {}
    ref = spec.get("sourceRef") if isinstance(spec, Mapping) else None
    if not isinstance(ref, Mapping) or ref.get("kind") not in FLUX_SOURCES:
        return None
    name, namespace = ref.get("name"), ref.get("namespace") or owner.namespace
    if not _valid(name, namespace):
        return None
    return SourceRef(str(ref["kind"]), str(name), str(namespace))


def artifact_revision(source: Mapping[str, Any] | None) -> str:
    """A Flux source's ``status.artifact.revision`` ("" when unknown)."""
    status = (source or {}).get("status") or {}
    artifact = status.get("artifact") if isinstance(status, Mapping) else None
    value = artifact.get("revision") if isinstance(artifact, Mapping) else None
    return value if isinstance(value, str) else ""


def resume_decision(
    owner_obj: Mapping[str, Any] | None,
    kind: str,
    bad_revision: str,
    source_now: str = "",
) -> Resume:
    """What to do about an owner the operator paused, seen now.

    ``source_now`` is the revision its Flux source fetched last, when known; otherwise
    the owner's own (Argo CD keeps refreshing ``status.sync.revision`` without automated
    sync).
    """
    if owner_obj is None or not is_suspended(kind, owner_obj):
        return Resume.FORGET
    current = source_now or source_revision(kind, owner_obj)
    if current and current != bad_revision:
        return Resume.RESUME
    return Resume.HOLD


def written_back(current_images: list[str], rollback: Mapping[str, Any]) -> bool:
    """Whether the target serves the images a rollback left again (the owner wrote them back).

    ``rollback`` is the details of the succeeded rollback (``fromImages``, ``toImages``).
    """
    bad = rollback.get("fromImages")
    good = rollback.get("toImages")
    if not isinstance(bad, list) or not bad or bad == good:
        return False
    return list(current_images) == list(bad)


__all__ = [
    "ARGO_TRACKING_ANNOTATION",
    "GITOPS_POLICIES",
    "PAUSED_BY_ANNOTATION",
    "GitOpsOwner",
    "GitOpsPolicy",
    "GitOpsSettings",
    "PausePlan",
    "Resume",
    "artifact_revision",
    "detect_owner",
    "flux_source",
    "is_suspended",
    "pause_refusal",
    "pause_settled",
    "plan_pause",
    "plan_resume",
    "resume_decision",
    "source_revision",
    "written_back",
]
