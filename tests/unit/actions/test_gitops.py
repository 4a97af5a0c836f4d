"""Rollback under spec.actions.gitops, the resume and the write-back guard, on FakeApi.

The attacks: a tenant who labels their Deployment with another namespace's Flux
Kustomization (or an Argo CD tracking id of an Application in ``argocd``) must not get
the operator to suspend it, whatever the policy; the namespaced API refuses the path
even if the executor were to try.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from modelmonitor.actions import registry
from modelmonitor.actions.gitops import PREVIOUS_ANNOTATION, guarded, resume
from modelmonitor.actions.rollback import execute_rollback
from modelmonitor.core.cluster import NamespacedApi, PathError
from modelmonitor.core.gitops import PAUSED_BY_ANNOTATION, GitOpsOwner, Resume
from modelmonitor.core.incident import ActionRequest, Incident, IncidentState, Outcome
from modelmonitor.core.spec import MonitorSpec, parse_spec
from modelmonitor.core.status import Condition, Phase
from modelmonitor.core.verdict import Verdict
from modelmonitor.engine.remediation import GitOpsView, Remediator
from tests.unit.actions import test_rollback as rb
from tests.unit.actions.fake_api import FakeApi

NS = rb.NS
KS_PATH = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{NS}/kustomizations/apps"
APP_PATH = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/applications/iris"
FLUX_SYSTEM_KS = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps"
NOW = dt.datetime(2026, 11, 26, 16, tzinfo=dt.UTC)


def spec(policy: str, *actions: str) -> MonitorSpec:
    data: dict[str, Any] = {
        "target": {"name": "iris"},
        "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
        "actions": {"gitops": policy, "onSLOBreach": list(actions or ["rollback"])},
    }
    if "notify" in actions:
        data["actions"]["notify"] = {"webhookSecretRef": {"name": "hook", "key": "url"}}
    return parse_spec(data)


def owned_by(labels: dict[str, str] | None = None, **annotations: str) -> FakeApi:
    deploy = rb.deployment()
    deploy["metadata"].setdefault("labels", {}).update(labels or {})
    deploy["metadata"]["annotations"].update(annotations)
    api = rb.cluster(deploy)
    for path, obj in api.objects.items():  # the Deployment controller copies annotations
        if "/replicasets/" in path:
            obj["metadata"].setdefault("annotations", {}).update(annotations)
    return api


FLUX = {"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": NS}


def kustomization(namespace: str = NS, revision: str = "main@sha1:bad") -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": namespace},
        "spec": {"interval": "1m", "path": "./apps", "prune": True},
        "status": {"lastAppliedRevision": revision},
    }


def execute(api: FakeApi, monitor: MonitorSpec, request: ActionRequest | None = None) -> Any:
    executor = registry.all_executors()["rollback"]
    return executor(NamespacedApi(api, NS), monitor, request or rb.request())


def test_no_owner_rolls_back_as_before() -> None:
    api = rb.cluster()
    result = execute(api, spec("refuse"))
    assert result.outcome == Outcome.SUCCEEDED
    assert "gitOps" not in result.details


def test_refuse_is_the_default_and_changes_nothing() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, kustomization())
    before = copy.deepcopy(api.objects)
    result = execute(api, parse_spec({**_base(), "actions": {"onSLOBreach": ["rollback"]}}))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "GitOpsManaged")
    assert "Flux Kustomization models/apps" in result.message
    assert result.details["gitOps"]["policy"] == "refuse"
    assert api.patched() == []
    assert api.objects == before


def _base() -> dict[str, Any]:
    return {
        "target": {"name": "iris"},
        "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
    }


def test_ignore_rolls_back_and_names_the_owner() -> None:
    api = owned_by(FLUX)
    result = execute(api, spec("ignore"))
    assert result.outcome == Outcome.SUCCEEDED
    assert result.details["gitOps"] == {
        "kind": "Kustomization",
        "name": "apps",
        "namespace": NS,
        "policy": "ignore",
        "paused": False,
    }
    assert api.patched() == [rb.DEPLOY_PATH]


def test_pause_suspends_the_flux_owner_before_rolling_back() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, kustomization())
    result = execute(api, spec("pause"))
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert api.patched() == [KS_PATH, rb.DEPLOY_PATH]  # owner first
    ks = api.objects[KS_PATH]
    assert ks["spec"]["suspend"] is True
    assert ks["metadata"]["annotations"][PAUSED_BY_ANNOTATION] == rb.request().id
    info = result.details["gitOps"]
    assert (info["paused"], info["badRevision"]) == (True, "main@sha1:bad")
    assert result.message.startswith("paused Flux Kustomization models/apps, then rolled back")


def test_pause_remembers_argos_automated_policy_on_the_application() -> None:
    api = owned_by(**{"argocd.argoproj.io/tracking-id": f"{NS}_iris:apps/Deployment:{NS}/iris"})
    automated = {"prune": True, "selfHeal": True}
    api.put(
        APP_PATH,
        {
            "metadata": {"name": "iris", "namespace": NS},
            "spec": {"syncPolicy": {"automated": automated}},
            "status": {"sync": {"revision": "bad"}},
        },
    )
    result = execute(api, spec("pause"))
    assert result.outcome == Outcome.SUCCEEDED
    app = api.objects[APP_PATH]
    assert "automated" not in app["spec"]["syncPolicy"]
    assert result.details["gitOps"]["previousAutomated"] == automated
    assert PREVIOUS_ANNOTATION in app["metadata"]["annotations"]
    # run again (an operator killed before recording): acts once, still remembers
    again = execute(api, spec("pause"))
    assert again.details["gitOps"]["previousAutomated"] == automated
    owner = GitOpsOwner("Application", "iris", NS, "")
    resume(NamespacedApi(api, NS), owner, again.details["gitOps"]["previousAutomated"])
    app = api.objects[APP_PATH]
    assert app["spec"]["syncPolicy"]["automated"] == automated
    assert PAUSED_BY_ANNOTATION not in app["metadata"]["annotations"]
    assert PREVIOUS_ANNOTATION not in app["metadata"]["annotations"]


def test_pause_resumes_at_once_when_nothing_was_rolled_back() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, kustomization())
    result = execute(api, spec("pause"), rb.request(healthy_revisions=()))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "NoHealthyRevision")
    assert api.objects[KS_PATH]["spec"]["suspend"] is False
    assert result.details["gitOps"]["paused"] is False


def test_an_owner_someone_else_suspended_is_not_ours_to_resume() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, {**kustomization(), "spec": {"suspend": True}})
    result = execute(api, spec("pause"))
    assert result.outcome == Outcome.SUCCEEDED
    assert result.details["gitOps"]["paused"] is False
    assert api.patched() == [rb.DEPLOY_PATH]


def test_pause_without_the_owner_object_does_not_roll_back() -> None:
    api = owned_by(FLUX)
    result = execute(api, spec("pause"))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "GitOpsOwnerNotFound")
    assert api.patched() == []


def test_dry_run_pauses_nothing() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, kustomization())
    result = execute(api, spec("pause"), rb.request(dry_run=True))
    assert result.outcome == Outcome.DRY_RUN
    assert result.message.startswith("would pause")
    assert api.patched() == []


# -- attacks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "annotations"),
    [
        # a tenant's Deployment claiming flux-system's Kustomization
        (
            {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            },
            {},
        ),
        # or an Application in Argo CD's own namespace
        ({}, {"argocd.argoproj.io/tracking-id": "platform:apps/Deployment:models/iris"}),
    ],
)
def test_a_tenant_cannot_make_the_operator_pause_another_namespaces_owner(
    labels: dict[str, str], annotations: dict[str, str]
) -> None:
    api = owned_by(labels, **annotations)
    api.put(FLUX_SYSTEM_KS, kustomization("flux-system"))
    before = copy.deepcopy(api.objects)
    result = execute(api, spec("pause"))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "GitOpsOwnerElsewhere")
    assert "monitor's own namespace" in result.message
    assert api.objects == before
    assert not any("flux-system" in path or "argocd" in path for _, path in api.calls)


def test_the_executors_api_refuses_another_namespaces_owner_anyway() -> None:
    api = FakeApi()
    api.put(FLUX_SYSTEM_KS, kustomization("flux-system"))
    owner = GitOpsOwner("Kustomization", "apps", "flux-system", "")
    with pytest.raises(PathError):
        resume(NamespacedApi(api, NS), owner, None)
    assert api.calls == []


def test_a_forged_paused_record_in_status_reaches_no_other_namespace() -> None:
    """status is the operator's, but a paused record naming flux-system is never acted on."""
    api = rb.cluster()
    api.put(FLUX_SYSTEM_KS, {**kustomization("flux-system", "new"), "spec": {"suspend": True}})
    status = {
        "gitOps": {
            "paused": {
                "kind": "Kustomization",
                "name": "apps",
                "namespace": "flux-system",
                "badRevision": "old",
            }
        }
    }
    view = Remediator(api=api, executors={}).observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed is None
    assert api.objects[FLUX_SYSTEM_KS]["spec"]["suspend"] is True


# -- resume and guard (Remediator) -------------------------------------------------------


def _verdict(breach: bool) -> Verdict:
    conditions = (
        Condition("DriftDetected", "False", "Disabled", "drift is disabled"),
        Condition("SLOBreached", "True" if breach else "False", "x", "p95"),
        Condition("Degraded", "False", "SourcesAvailable", "all sources answered"),
    )
    phase = Phase.BREACHED if breach else Phase.HEALTHY
    patch = {"conditions": []}
    return Verdict(phase, patch, (), conditions, conditions, {"p95": not breach}, NOW)


def test_observe_resumes_once_the_source_moved_on_and_forgets_a_person_resumed_one() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, kustomization())
    result = execute(api, spec("pause"))
    remediator = Remediator(api=api, executors={})
    record = {**result.details["gitOps"], "incident": "i"}
    status = {"gitOps": {"paused": record}}
    view = remediator.observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed is None
    assert view.owner is not None
    assert view.owner.kind == "Kustomization"
    moved = api.objects[KS_PATH]
    moved["status"]["lastAppliedRevision"] = "main@sha1:fix"
    view = remediator.observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed == Resume.RESUME
    assert api.objects[KS_PATH]["spec"]["suspend"] is False
    assert "main@sha1:bad" in view.message
    assert "main@sha1:fix" in view.message
    plan = remediator.plan(
        {"metadata": {"name": "m", "namespace": NS}, "status": status},
        spec("pause"),
        _verdict(False),
        (None, None),
        NOW,
        view,
    )
    assert plan.status_patch["gitOps"]["paused"] is None
    assert plan.status_patch["target"]["gitOpsOwner"]["name"] == "apps"
    assert [e.reason for e in plan.events] == ["GitOpsOwnerResumed"]
    # resumed by a person meanwhile: forgotten, not patched
    api.objects[KS_PATH]["spec"]["suspend"] = False
    calls = len(api.patched())
    view = remediator.observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed == Resume.FORGET
    assert len(api.patched()) == calls


def _incident_status(images_from: list[str], images_to: list[str]) -> dict[str, Any]:
    incident = Incident(
        id="m-1",
        state=IncidentState.REMEDIATING,
        breaches=3,
        triggers=("slo",),
        acted={"rollback": Outcome.SUCCEEDED, "notify": Outcome.SUCCEEDED},
    )
    return {
        "incident": incident.to_dict(),
        "actionHistory": [
            {
                "id": "m-1-rollback-1",
                "type": "rollback",
                "result": "succeeded",
                "incident": "m-1",
                "reason": "RolledBack",
                "fromImages": images_from,
                "toImages": images_to,
            }
        ],
    }


def test_guard_reports_a_write_back_once_pages_and_never_rolls_back_again() -> None:
    monitor = spec("ignore", "rollback", "notify")
    status = _incident_status(["iris:v3"], ["iris:v1"])
    obj = {"metadata": {"name": "m", "namespace": NS, "uid": "u"}, "status": status}
    owner = GitOpsOwner("Kustomization", "apps", NS, "")
    view = GitOpsView(owner, ("iris:v3",))
    remediator = Remediator(api=FakeApi(), executors={})
    plan = remediator.plan(obj, monitor, _verdict(True), (None, None), NOW, view)
    assert [r.action for r in plan.requests] == ["notify"]  # a page, no second rollback
    (page,) = plan.requests
    assert page.id == "m-1-notify-writeback"
    assert "written back by Flux" in page.reason
    assert plan.status_patch["gitOps"]["writtenBack"]["incident"] == "m-1"
    reverted = [c for c in plan.status_patch["conditions"] if c["type"] == "RollbackReverted"]
    assert reverted
    assert reverted[0]["status"] == "True"
    assert "RollbackReverted" in [e.reason for e in plan.events]
    pending = plan.status_patch["incident"]["pending"]
    assert [p["id"] for p in pending] == ["m-1-notify-writeback"]
    # once per incident
    status2 = {**status, "gitOps": plan.status_patch["gitOps"]}
    again = remediator.plan(
        {**obj, "status": status2}, monitor, _verdict(True), (None, None), NOW, view
    )
    assert again.requests == ()
    assert "RollbackReverted" not in [e.reason for e in again.events]


def test_guard_holds_back_a_new_incidents_rollback_while_the_bad_images_are_served() -> None:
    """The first incident recovered after the rollback; the owner's write-back breaches
    again: the new incident does not roll back (no fight), and says why once."""
    monitor = spec("ignore", "rollback", "notify")
    status = _incident_status(["iris:v3"], ["iris:v1"])
    closed = Incident(id="m-1", state=IncidentState.RECOVERED, acted={"rollback": "succeeded"})
    status["incident"] = closed.to_dict()
    obj = {"metadata": {"name": "m", "namespace": NS, "uid": "u"}, "status": status}
    view = GitOpsView(GitOpsOwner("Application", "iris", NS, ""), ("iris:v3",))
    remediator = Remediator(api=FakeApi(), executors={})
    plan = remediator.plan(obj, monitor, _verdict(True), (None, None), NOW, view)
    assert "rollback" not in [r.action for r in plan.requests]
    (page,) = plan.requests  # on the incident open now, not the closed one
    assert page.action == "notify"
    assert page.id.endswith("-notify-writeback")
    assert page.incident != "m-1"
    incident = plan.status_patch["incident"]
    assert incident["suppressed"]["rollback"] == "OwnerWroteBack"
    assert all(p["action"] != "rollback" for p in incident["pending"])
    assert plan.status_patch["gitOps"]["writtenBack"]["rollback"] == "m-1-rollback-1"
    notes = [e for e in plan.status_patch["actionHistory"] if e["reason"] == "OwnerWroteBack"]
    assert len(notes) == 1
    assert notes[0]["result"] == "suppressed"
    # later runs of that incident: still no rollback, no second report
    status2 = {**status, **plan.status_patch}
    again = remediator.plan(
        {**obj, "status": status2}, monitor, _verdict(True), (None, None), NOW, view
    )
    assert "rollback" not in [r.action for r in again.requests]
    assert "RollbackReverted" not in [e.reason for e in again.events]
    # a fix from Git: the record is cleared, the condition turns False
    fixed = remediator.plan(
        {**obj, "status": status2},
        monitor,
        _verdict(False),
        (None, None),
        NOW,
        GitOpsView(view.owner, ("iris:v4",)),
    )
    assert fixed.status_patch["gitOps"]["writtenBack"] is None
    (cond,) = [c for c in fixed.status_patch["conditions"] if c["type"] == "RollbackReverted"]
    assert cond["status"] == "False"


def test_guard_is_quiet_while_the_rollback_holds() -> None:
    monitor = spec("ignore", "rollback")
    status = _incident_status(["iris:v3"], ["iris:v1"])
    obj = {"metadata": {"name": "m", "namespace": NS}, "status": status}
    view = GitOpsView(None, ("iris:v1",))
    plan = Remediator(api=FakeApi(), executors={}).plan(
        obj, monitor, _verdict(True), (None, None), NOW, view
    )
    assert "gitOps" not in plan.status_patch
    assert plan.requests == ()


def test_record_keeps_what_was_paused() -> None:
    api = owned_by(FLUX)
    api.put(KS_PATH, kustomization())
    request = rb.request()
    result = execute(api, spec("pause"), request)
    incident = Incident(id=request.incident, state=IncidentState.REMEDIATING, pending=(request,))
    obj = {"metadata": {"name": "m", "namespace": NS}, "status": {"incident": incident.to_dict()}}
    patch = Remediator(api=api, executors={}).record(obj, request, result, NOW)
    assert patch is not None
    paused = patch["gitOps"]["paused"]
    assert (paused["kind"], paused["name"], paused["badRevision"]) == (
        "Kustomization",
        "apps",
        "main@sha1:bad",
    )
    assert paused["incident"] == request.incident


def test_the_guarded_executor_wraps_the_plain_one() -> None:
    api = rb.cluster()
    result = guarded(execute_rollback)(NamespacedApi(api, NS), spec("pause"), rb.request())
    assert result.outcome == Outcome.SUCCEEDED


# -- status samples (tests/unit/status_samples.py) -----------------------------------------


def _argo_cluster() -> FakeApi:
    api = owned_by(**{"argocd.argoproj.io/tracking-id": f"{NS}_iris:apps/Deployment:{NS}/iris"})
    api.put(
        APP_PATH,
        {
            "metadata": {"name": "iris", "namespace": NS},
            "spec": {"syncPolicy": {"automated": {"prune": True, "selfHeal": True}}},
            "status": {"sync": {"revision": "bad"}},
        },
    )
    return api


def argo_paused_result() -> Any:
    """A rollback that paused an Argo CD Application, as the executor returns it."""
    return execute(_argo_cluster(), spec("pause"))


def gitops_statuses() -> Any:
    """``target``, ``gitOps.paused`` and ``gitOps.writtenBack`` as the operator writes them."""
    api = _argo_cluster()
    request = rb.request()
    result = execute(api, spec("pause"), request)
    incident = Incident(id=request.incident, state=IncidentState.REMEDIATING, pending=(request,))
    obj = {"metadata": {"name": "m", "namespace": NS}, "status": {"incident": incident.to_dict()}}
    remediator = Remediator(api=api, executors={})
    recorded = remediator.record(obj, request, result, NOW) or {}
    yield "gitOps paused", {"gitOps": recorded["gitOps"]}
    view = remediator.observe_gitops(NS, spec("pause"), recorded)
    assert view is not None
    monitor = spec("ignore", "rollback", "notify")
    status = _incident_status(["iris:v3"], ["iris:v1"])
    plan = remediator.plan(
        {"metadata": {"name": "m", "namespace": NS}, "status": status},
        monitor,
        _verdict(True),
        (None, None),
        NOW,
        GitOpsView(view.owner, ("iris:v3",)),
    )
    yield (
        "gitOps owner and write-back",
        {
            "target": plan.status_patch["target"],
            "gitOps": plan.status_patch["gitOps"],
        },
    )
    none = remediator.plan(obj, monitor, _verdict(False), (None, None), NOW, GitOpsView(None))
    yield "no gitOps owner", {"target": none.status_patch["target"]}


GIT_PATH = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{NS}/gitrepositories/apps"


def test_a_suspended_kustomization_is_resumed_when_its_git_source_moves() -> None:
    """A suspended Kustomization's lastAppliedRevision stays put; its GitRepository's
    artifact revision is what moves when the fix is pushed."""
    api = owned_by(FLUX)
    api.put(
        KS_PATH,
        {**kustomization(), "spec": {"sourceRef": {"kind": "GitRepository", "name": "apps"}}},
    )
    api.put(GIT_PATH, {"status": {"artifact": {"revision": "main@sha1:bad"}}})
    result = execute(api, spec("pause"))
    status = {"gitOps": {"paused": {**result.details["gitOps"], "incident": "i"}}}
    remediator = Remediator(api=api, executors={})
    view = remediator.observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed is None
    api.objects[GIT_PATH]["status"]["artifact"]["revision"] = "main@sha1:fix"
    view = remediator.observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed == Resume.RESUME
    assert "to main@sha1:fix" in view.message
    assert api.objects[KS_PATH]["spec"]["suspend"] is False


def test_a_source_in_another_namespace_is_not_read() -> None:
    api = owned_by(FLUX)
    ref = {"kind": "GitRepository", "name": "apps", "namespace": "flux-system"}
    api.put(KS_PATH, {**kustomization(), "spec": {"sourceRef": ref}})
    result = execute(api, spec("pause"))
    status = {"gitOps": {"paused": {**result.details["gitOps"], "incident": "i"}}}
    view = Remediator(api=api, executors={}).observe_gitops(NS, spec("pause"), status)
    assert view is not None
    assert view.resumed is None
    assert not any("flux-system" in path for _, path in api.calls)


def test_without_an_owner_a_redeployed_image_is_left_to_the_policy() -> None:
    """No GitOps owner: someone rolled the bad image out again by hand. The guard stays
    out of it; the policy (here: no cooldown left to wait) rolls back as for any incident."""
    monitor = spec("ignore", "rollback")
    status = _incident_status(["iris:v3"], ["iris:v1"])
    closed = Incident(id="m-1", state=IncidentState.RECOVERED, acted={"rollback": "succeeded"})
    status["incident"] = closed.to_dict()
    obj = {"metadata": {"name": "m", "namespace": NS, "uid": "u"}, "status": status}
    view = GitOpsView(None, ("iris:v3",))
    plan = Remediator(api=FakeApi(), executors={}).plan(
        obj, monitor, _verdict(True), (None, None), NOW, view
    )
    assert "gitOps" not in plan.status_patch
    assert all(
        e.get("reason") != "OwnerWroteBack" for e in plan.status_patch.get("actionHistory", [])
    )


def test_a_write_back_inside_the_cooldown_is_noted_once_not_every_run() -> None:
    """The policy's Cooldown and the guard's OwnerWroteBack must not take turns in
    actionHistory run after run: the write-back is noted once and outranks the cooldown."""
    monitor = parse_spec(
        {
            "target": {"name": "iris"},
            "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
            "actions": {
                "gitops": "ignore",
                "onSLOBreach": ["rollback"],
                "cooldown": "1h",
                "consecutiveBreaches": 1,
            },
        }
    )
    status = _incident_status(["iris:v3"], ["iris:v1"])
    status["actionHistory"][0]["time"] = "2026-11-26T15:59:00Z"  # a minute before NOW
    closed = Incident(id="m-1", state=IncidentState.RECOVERED, acted={"rollback": "succeeded"})
    status["incident"] = closed.to_dict()
    obj: dict[str, Any] = {"metadata": {"name": "m", "namespace": NS, "uid": "u"}, "status": status}
    view = GitOpsView(GitOpsOwner("Kustomization", "apps", NS, ""), ("iris:v3",))
    remediator = Remediator(api=FakeApi(), executors={})
    reasons: list[str] = []
    for _ in range(4):
        plan = remediator.plan(obj, monitor, _verdict(True), (None, None), NOW, view)
        history = plan.status_patch.get("actionHistory")
        if history is not None:
            reasons = [e["reason"] for e in history if e.get("result") == "suppressed"]
        obj = {**obj, "status": {**obj["status"], **plan.status_patch}}
    assert reasons.count("OwnerWroteBack") == 1
    assert "Cooldown" not in reasons
