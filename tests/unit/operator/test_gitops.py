"""GitOps owners: detection from the tools' marks, pause/resume plans, the write-back check."""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.core.gitops import (
    ARGO_TRACKING_ANNOTATION,
    PAUSED_BY_ANNOTATION,
    GitOpsOwner,
    GitOpsSettings,
    Resume,
    detect_owner,
    is_suspended,
    pause_refusal,
    plan_pause,
    plan_resume,
    resume_decision,
    source_revision,
    written_back,
)
from modelmonitor.core.spec import SpecError, parse_spec
from tests.unit.actions.fake_api import json_patch, merge_patch

FLUX_KS = {
    "kustomize.toolkit.fluxcd.io/name": "apps",
    "kustomize.toolkit.fluxcd.io/namespace": "ml",
}
FLUX_HR = {"helm.toolkit.fluxcd.io/name": "iris", "helm.toolkit.fluxcd.io/namespace": "ml"}


def meta(labels: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    return {"labels": labels or {}, "annotations": dict(annotations)}


def test_flux_kustomization_from_its_labels() -> None:
    owner = detect_owner(meta(FLUX_KS))
    assert owner == GitOpsOwner("Kustomization", "apps", "ml", "kustomize.toolkit.fluxcd.io/name")
    assert owner.to_dict() == {"kind": "Kustomization", "name": "apps", "namespace": "ml"}
    assert owner.describe() == "Flux Kustomization ml/apps"


def test_helm_release_wins_over_the_kustomization_that_applied_it() -> None:
    owner = detect_owner(meta({**FLUX_KS, **FLUX_HR}))
    assert owner is not None
    assert (owner.kind, owner.name) == ("HelmRelease", "iris")


def test_argo_tracking_id_in_argos_namespace_and_in_any_namespace() -> None:
    plain = detect_owner(meta(**{ARGO_TRACKING_ANNOTATION: "iris:apps/Deployment:ml/iris"}))
    assert plain is not None
    assert (plain.kind, plain.name, plain.namespace) == (
        "Application",
        "iris",
        "argocd",
    )
    anyns = detect_owner(meta(**{ARGO_TRACKING_ANNOTATION: "ml_iris:apps/Deployment:ml/iris"}))
    assert anyns is not None
    assert (anyns.name, anyns.namespace) == ("iris", "ml")
    other = detect_owner(
        meta(**{ARGO_TRACKING_ANNOTATION: "iris:apps/Deployment:ml/iris"}),
        GitOpsSettings(argocd_namespace="gitops"),
    )
    assert other is not None
    assert other.namespace == "gitops"


def test_argo_instance_label_only_when_label_tracking_is_trusted() -> None:
    labels = {"app.kubernetes.io/instance": "iris"}  # Helm sets it too
    assert detect_owner(meta(labels)) is None
    owner = detect_owner(meta(labels), GitOpsSettings(argocd_label_tracking=True))
    assert owner is not None
    assert (owner.kind, owner.name, owner.namespace) == (
        "Application",
        "iris",
        "argocd",
    )


@pytest.mark.parametrize(
    "metadata",
    [
        meta(),
        meta({"kustomize.toolkit.fluxcd.io/name": "apps"}),  # no namespace label
        meta({**FLUX_KS, "kustomize.toolkit.fluxcd.io/namespace": "../kube-system"}),
        meta({**FLUX_KS, "kustomize.toolkit.fluxcd.io/name": "a/b"}),
        meta(**{ARGO_TRACKING_ANNOTATION: "no-colon"}),
        meta(**{ARGO_TRACKING_ANNOTATION: "x_../y:apps/Deployment:ml/iris"}),
        {"labels": "not a map"},
    ],
)
def test_no_owner_from_missing_or_malformed_marks(metadata: dict[str, Any]) -> None:
    assert detect_owner(metadata) is None


def test_an_owner_outside_the_monitors_namespace_is_never_paused() -> None:
    ours = GitOpsOwner("Kustomization", "apps", "ml", "")
    theirs = GitOpsOwner("Kustomization", "apps", "flux-system", "")
    assert pause_refusal(ours, "ml") is None
    refusal = pause_refusal(theirs, "ml")
    assert refusal is not None
    assert "flux-system/apps" in refusal


def kustomization(suspend: bool | None = None, revision: str = "main@sha1:bad") -> dict[str, Any]:
    spec: dict[str, Any] = {"interval": "1m", "path": "./apps"}
    if suspend is not None:
        spec["suspend"] = suspend
    return {
        "metadata": {"name": "apps", "namespace": "ml", "resourceVersion": "7"},
        "spec": spec,
        "status": {"lastAppliedRevision": revision},
    }


def application(automated: dict[str, Any] | None, revision: str = "bad") -> dict[str, Any]:
    policy = {"syncOptions": ["CreateNamespace=true"]}
    if automated is not None:
        policy["automated"] = automated
    return {
        "metadata": {"name": "iris", "namespace": "ml", "resourceVersion": "3", "annotations": {}},
        "spec": {"project": "default", "syncPolicy": policy},
        "status": {"sync": {"status": "Synced", "revision": revision}},
    }


KS = GitOpsOwner("Kustomization", "apps", "ml", "")
APP = GitOpsOwner("Application", "iris", "ml", "")


def test_flux_pause_sets_suspend_and_resume_clears_it() -> None:
    obj = kustomization()
    plan = plan_pause(KS, obj, "inc-1-rollback-1")
    paused = json_patch(obj, plan.patch)
    assert paused["spec"]["suspend"] is True
    assert is_suspended("Kustomization", paused)
    assert paused["metadata"]["annotations"][PAUSED_BY_ANNOTATION] == "inc-1-rollback-1"
    assert plan.previous is None
    resumed = merge_patch(paused, plan_resume(KS, None))
    assert resumed["spec"]["suspend"] is False
    assert not is_suspended("Kustomization", resumed)
    assert PAUSED_BY_ANNOTATION not in resumed["metadata"]["annotations"]
    # an explicit suspend: false is replaced, not added twice
    assert json_patch(kustomization(False), plan_pause(KS, kustomization(False), "x").patch)[
        "spec"
    ]["suspend"]


def test_argo_pause_removes_automated_and_resume_puts_it_back() -> None:
    automated = {"prune": True, "selfHeal": True}
    obj = application(automated)
    assert not is_suspended("Application", obj)
    plan = plan_pause(APP, obj, "inc-1-rollback-1")
    paused = json_patch(obj, plan.patch)
    assert "automated" not in paused["spec"]["syncPolicy"]
    assert paused["spec"]["syncPolicy"]["syncOptions"] == ["CreateNamespace=true"]
    assert is_suspended("Application", paused)
    assert plan.previous == automated
    resumed = merge_patch(paused, plan_resume(APP, plan.previous))
    assert resumed["spec"]["syncPolicy"]["automated"] == automated


def test_pause_is_guarded_by_the_resource_version_read() -> None:
    obj = kustomization()
    plan = plan_pause(KS, obj, "x")
    changed = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "8"}}
    with pytest.raises(Exception, match="test"):
        json_patch(changed, plan.patch)


def test_argo_3_enabled_false_counts_as_suspended() -> None:
    assert is_suspended("Application", application({"enabled": False}))
    assert is_suspended("Application", application(None))


def test_source_revisions() -> None:
    assert source_revision("Kustomization", kustomization(revision="main@sha1:abc")) == (
        "main@sha1:abc"
    )
    assert source_revision("Application", application(None, "f00d")) == "f00d"
    assert source_revision("Application", {"status": {"sync": "weird"}}) == ""


def test_resume_once_the_source_moved_on() -> None:
    assert resume_decision(kustomization(True), "Kustomization", "main@sha1:bad") == Resume.HOLD
    moved = kustomization(True, "main@sha1:fix")
    assert resume_decision(moved, "Kustomization", "main@sha1:bad") == Resume.RESUME
    # a person resumed it, or deleted it: nothing left to undo
    assert resume_decision(kustomization(False), "Kustomization", "main@sha1:bad") == Resume.FORGET
    assert resume_decision(None, "Kustomization", "main@sha1:bad") == Resume.FORGET
    # no revision known yet: hold rather than resume on nothing
    assert resume_decision(kustomization(True, ""), "Kustomization", "x") == Resume.HOLD


def test_written_back_compares_the_images_the_rollback_left() -> None:
    done = {"fromImages": ["iris:v3"], "toImages": ["iris:v1"]}
    assert written_back(["iris:v3"], done)
    assert not written_back(["iris:v1"], done)
    assert not written_back(["iris:v4"], done)  # a new version: not the bad one back
    assert not written_back(["iris:v3"], {"fromImages": ["iris:v3"], "toImages": ["iris:v3"]})
    assert not written_back(["iris:v3"], {})


def test_owner_from_status_is_checked() -> None:
    assert GitOpsOwner.from_dict({"kind": "Kustomization", "name": "a", "namespace": "ml"})
    assert GitOpsOwner.from_dict({"kind": "Secret", "name": "a", "namespace": "ml"}) is None
    assert (
        GitOpsOwner.from_dict({"kind": "Kustomization", "name": "a", "namespace": "../x"}) is None
    )
    assert GitOpsOwner.from_dict(None) is None


BASE = {
    "target": {"name": "iris"},
    "reference": {"configMapRef": {"name": "ref", "key": "reference.csv"}},
}


def test_spec_gitops_defaults_to_refuse_and_is_checked() -> None:
    assert parse_spec(BASE).actions.gitops == "refuse"
    assert parse_spec({**BASE, "actions": {"gitops": "pause"}}).actions.gitops == "pause"
    with pytest.raises(SpecError, match="gitops"):
        parse_spec({**BASE, "actions": {"gitops": "fight"}})
