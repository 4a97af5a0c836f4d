"""Rollback to the newest revision seen healthy: planning on dicts, execution on FakeApi."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelmonitor.actions.base import CONFLICT_ATTEMPTS
from modelmonitor.actions.rollback import (
    Refusal,
    RollbackPlan,
    execute_rollback,
    observe_revision,
    plan_rollback,
    record_healthy,
)
from modelmonitor.core.cluster import ACTION_ANNOTATION, ApiError
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import parse_spec
from tests.unit.actions.fake_api import FakeApi

NS = "models"
UID = "0b5e2c55-7d0a-4c39-9a64-5f1e0c0d4a11"
DEPLOY_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/iris"
RS_PATH = f"/apis/apps/v1/namespaces/{NS}/replicasets"
HASHES = {5: "6d9f7c8b4", 6: "7b5c9d6f8", 7: "58c4b7f9d"}
IMAGES = {5: "iris:v1", 6: "iris:v2", 7: "iris:v3"}
CAUSES = {5: "release v1", 6: "release v2", 7: None}
SPEC = parse_spec(
    {
        "target": {"name": "iris"},
        "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
    }
)


def template(image: str, pod_hash: str | None = None) -> dict[str, Any]:
    labels = {"app": "iris"}
    if pod_hash:
        labels["pod-template-hash"] = pod_hash
    return {
        "metadata": {"creationTimestamp": None, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "model",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "dnsPolicy": "ClusterFirst",
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        },
    }


def deployment(revision: int = 7, **spec: Any) -> dict[str, Any]:
    """Deployment iris, rolled out to ``revision``, as the API server returns it."""
    annotations = {
        "deployment.kubernetes.io/revision": str(revision),
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
        "modelmonitor.io/owner": "iris-monitor",
        "team": "ml",
    }
    if CAUSES[revision]:
        annotations["kubernetes.io/change-cause"] = str(CAUSES[revision])
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris",
            "namespace": NS,
            "uid": UID,
            "generation": 9,
            "annotations": annotations,
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "iris"}},
            "template": template(IMAGES[revision]),
            **spec,
        },
        "status": {
            "observedGeneration": 9,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }


def replicaset(revision: int, *, owner_uid: str = UID, replicas: int = 0) -> dict[str, Any]:
    pod_hash = HASHES[revision]
    annotations = {
        "deployment.kubernetes.io/revision": str(revision),
        "deployment.kubernetes.io/desired-replicas": "2",
        "deployment.kubernetes.io/max-replicas": "3",
        "modelmonitor.io/owner": "old-monitor",
        "modelmonitor.io/action-id": "inc-old-rollback-1",
        "team": "ml",
    }
    if CAUSES[revision]:
        annotations["kubernetes.io/change-cause"] = str(CAUSES[revision])
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"iris-{pod_hash}",
            "namespace": NS,
            "labels": {"app": "iris", "pod-template-hash": pod_hash},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "iris",
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "iris", "pod-template-hash": pod_hash}},
            "template": template(IMAGES[revision], pod_hash),
        },
    }


def healthy(*revisions: int) -> list[dict[str, Any]]:
    return [
        {
            "revision": str(r),
            "podTemplateHash": HASHES[r],
            "images": [IMAGES[r]],
            "lastSeen": f"2026-11-2{r}T10:00:00Z",
        }
        for r in revisions
    ]


def all_replicasets() -> list[dict[str, Any]]:
    return [replicaset(5), replicaset(6), replicaset(7, replicas=2)]


def request(**changes: Any) -> ActionRequest:
    fields: dict[str, Any] = {
        "id": "inc-20261126t154501-rollback-1",
        "action": "rollback",
        "namespace": NS,
        "monitor": "iris-monitor",
        "monitor_uid": "m-uid",
        "incident": "inc-20261126t154501",
        "trigger": "slo",
        "reason": "error budget burning 14x",
        "healthy_revisions": tuple(healthy(5)),
    }
    fields.update(changes)
    return ActionRequest(**fields)


def cluster(
    deploy: dict[str, Any] | None = None, rss: list[dict[str, Any]] | None = None
) -> FakeApi:
    api = FakeApi()
    api.put(DEPLOY_PATH, deploy if deploy is not None else deployment())
    for rs in rss if rss is not None else all_replicasets():
        api.put(f"{RS_PATH}/{rs['metadata']['name']}", rs)
    return api


def patch_ops(plan: RollbackPlan) -> dict[str, Any]:
    return {op["path"]: op for op in plan.patch}


# -- observe_revision ---------------------------------------------------------------------


def test_observe_revision_of_a_complete_rollout() -> None:
    assert observe_revision(deployment(), all_replicasets()) == {
        "revision": "7",
        "podTemplateHash": HASHES[7],
        "images": ["iris:v3"],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"metadata": {"generation": 10}},  # spec changed, controller has not looked yet
        {"status": {"updatedReplicas": 1}},  # new pods still coming
        {"status": {"replicas": 3}},  # old pods still running
        {"status": {"availableReplicas": 1}},  # new pods not available yet
        {"spec": {"paused": True}},
    ],
)
def test_observe_revision_of_an_incomplete_rollout_is_none(change: dict[str, Any]) -> None:
    deploy = deployment()
    for part, values in change.items():
        deploy[part].update(values)
    assert observe_revision(deploy, all_replicasets()) is None


def test_observe_revision_needs_the_current_replicaset_of_this_deployment() -> None:
    assert observe_revision(deployment(), [replicaset(5), replicaset(6)]) is None
    foreign = [replicaset(5), replicaset(7, owner_uid="someone-else")]
    assert observe_revision(deployment(), foreign) is None


def test_observe_revision_defaults_spec_replicas_to_one() -> None:
    deploy = deployment()
    del deploy["spec"]["replicas"]
    deploy["status"].update(replicas=1, updatedReplicas=1, availableReplicas=1)
    assert observe_revision(deploy, all_replicasets()) is not None


# -- record_healthy -----------------------------------------------------------------------


def test_record_healthy_puts_the_newest_first() -> None:
    seen = observe_revision(deployment(), all_replicasets())
    assert seen is not None
    result = record_healthy(healthy(5), seen, "2026-11-26T12:00:00Z")
    assert [h["revision"] for h in result] == ["7", "5"]
    assert result[0]["lastSeen"] == "2026-11-26T12:00:00Z"


def test_record_healthy_dedupes_by_hash_and_takes_the_new_revision_number() -> None:
    # rollout undo to revision 5 renumbered its ReplicaSet to 8: same template, same hash
    seen = {"revision": "8", "podTemplateHash": HASHES[5], "images": ["iris:v1"]}
    result = record_healthy(healthy(6, 5), seen, "2026-11-26T12:00:00Z")
    assert [(h["revision"], h["podTemplateHash"]) for h in result] == [
        ("8", HASHES[5]),
        ("6", HASHES[6]),
    ]
    assert result[0]["lastSeen"] == "2026-11-26T12:00:00Z"


def test_record_healthy_caps_the_list() -> None:
    entries: list[dict[str, Any]] = []
    for n in range(1, 15):
        seen = {"revision": str(n), "podTemplateHash": f"h{n}", "images": [f"iris:{n}"]}
        entries = record_healthy(entries, seen, f"t{n}", cap=10)
    assert [e["revision"] for e in entries] == [str(n) for n in range(14, 4, -1)]


# -- plan_rollback ------------------------------------------------------------------------


def test_goes_to_the_last_healthy_revision_not_the_previous_one() -> None:
    # 5 was seen healthy, 6 never was (rolled out and replaced), 7 is current and bad.
    plan = plan_rollback(deployment(), all_replicasets(), healthy(7, 5), "act-1")
    assert isinstance(plan, RollbackPlan)
    assert (plan.from_revision, plan.to_revision) == ("7", "5")
    assert plan.pod_template_hash == HASHES[5]
    assert (plan.from_images, plan.to_images) == (("iris:v3",), ("iris:v1",))
    assert (
        plan.describe()
        == "roll back deployment/iris from revision 7 to 5 (image iris:v3 -> iris:v1)"
    )


def test_patch_tests_the_resource_version_first() -> None:
    deploy = deployment()
    deploy["metadata"]["resourceVersion"] = "4711"
    plan = plan_rollback(deploy, all_replicasets(), healthy(5), "act-1")
    assert isinstance(plan, RollbackPlan)
    assert plan.patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"}
    assert [op["op"] for op in plan.patch[1:]] == ["replace", "replace"]


def test_template_is_the_replicasets_without_the_hash_label() -> None:
    plan = plan_rollback(deployment(), all_replicasets(), healthy(5), "act-1")
    assert isinstance(plan, RollbackPlan)
    restored = patch_ops(plan)["/spec/template"]["value"]
    assert restored == template("iris:v1")
    assert "pod-template-hash" not in restored["metadata"]["labels"]


def test_annotations_follow_kubectl_rollout_undo() -> None:
    plan = plan_rollback(deployment(), all_replicasets(), healthy(5), "act-1")
    assert isinstance(plan, RollbackPlan)
    annotations = patch_ops(plan)["/metadata/annotations"]["value"]
    assert annotations == {
        # kept from the Deployment (kubectl's annotationsToSkip, the monitor's own)
        "deployment.kubernetes.io/revision": "7",
        "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Deployment"}',
        "modelmonitor.io/owner": "iris-monitor",
        # from the ReplicaSet: the change-cause of revision 5 is back
        "kubernetes.io/change-cause": "release v1",
        "team": "ml",
        # the marks of this action
        ACTION_ANNOTATION: "act-1",
        "modelmonitor.io/rolled-back-from": "7",
        "modelmonitor.io/rolled-back-to": "5",
    }


def test_change_cause_absent_in_the_replicaset_is_dropped() -> None:
    # current 6 has a change-cause; target 7 never had one (say, after an undo to 6)
    deploy = deployment(6)
    plan = plan_rollback(deploy, all_replicasets(), healthy(7), "act-1")
    assert isinstance(plan, RollbackPlan)
    annotations = patch_ops(plan)["/metadata/annotations"]["value"]
    assert "kubernetes.io/change-cause" not in annotations


def test_paused_deployment_is_refused() -> None:
    result = plan_rollback(deployment(paused=True), all_replicasets(), healthy(5), "act-1")
    assert isinstance(result, Refusal)
    assert result.reason == "DeploymentPaused"
    assert "kubectl rollout resume deployment/iris" in result.message


def test_no_healthy_revision_known() -> None:
    result = plan_rollback(deployment(), all_replicasets(), [], "act-1")
    assert result == Refusal(
        "NoHealthyRevision",
        "the monitor has not yet seen a revision of deployment/iris healthy, "
        "so it does not know where to go back to",
    )


def test_only_the_current_revision_was_healthy() -> None:
    result = plan_rollback(deployment(), all_replicasets(), healthy(7), "act-1")
    assert isinstance(result, Refusal)
    assert result.reason == "NoHealthyRevision"
    assert "current one (revision 7)" in result.message


def test_healthy_revisions_whose_replicasets_are_gone() -> None:
    rss = [replicaset(6), replicaset(7, replicas=2)]  # 5 pruned by revisionHistoryLimit
    result = plan_rollback(deployment(), rss, healthy(7, 5), "act-1")
    assert isinstance(result, Refusal)
    assert result.reason == "HealthyRevisionGone"
    assert f"5 ({HASHES[5]})" in result.message


def test_a_gone_revision_is_passed_over_for_an_older_one_that_is_there() -> None:
    rss = [replicaset(5), replicaset(7, replicas=2)]  # 6 pruned
    plan = plan_rollback(deployment(), rss, healthy(6, 5), "act-1")
    assert isinstance(plan, RollbackPlan)
    assert plan.to_revision == "5"


def test_replicasets_of_other_owners_are_not_targets() -> None:
    rss = [replicaset(5, owner_uid="another-deployment"), replicaset(7, replicas=2)]
    result = plan_rollback(deployment(), rss, healthy(5), "act-1")
    assert isinstance(result, Refusal)
    assert result.reason == "HealthyRevisionGone"


def test_template_already_rolled_back_counts_as_current() -> None:
    # Patched to revision 5's template; the controller has not renumbered it yet.
    deploy = deployment()
    deploy["spec"]["template"] = template("iris:v1")
    result = plan_rollback(deploy, all_replicasets(), healthy(5), "act-2")
    assert isinstance(result, Refusal)
    assert result.reason == "NoHealthyRevision"


# -- execute_rollback ---------------------------------------------------------------------


def test_execute_rolls_back_and_reports_what_it_did() -> None:
    api = cluster()
    result = execute_rollback(api, SPEC, request())
    assert result.outcome == Outcome.SUCCEEDED
    assert result.reason == "RolledBack"
    assert result.message == (
        "rolled back deployment/iris from revision 7 to 5 (image iris:v3 -> iris:v1)"
    )
    assert result.details == {
        "deployment": "iris",
        "fromRevision": 7,
        "toRevision": 5,
        "podTemplateHash": HASHES[5],
        "fromImages": ["iris:v3"],
        "toImages": ["iris:v1"],
    }
    stored = api.objects[DEPLOY_PATH]
    assert stored["spec"]["template"] == template("iris:v1")
    assert stored["metadata"]["annotations"][ACTION_ANNOTATION] == request().id
    assert ("LIST", RS_PATH) in api.calls


def test_execute_twice_acts_once() -> None:
    api = cluster()
    first = execute_rollback(api, SPEC, request())
    version = api.objects[DEPLOY_PATH]["metadata"]["resourceVersion"]
    api.calls.clear()
    second = execute_rollback(api, SPEC, request())
    assert first.outcome == second.outcome == Outcome.SUCCEEDED
    assert second.reason == "RolledBack"
    assert "already applied" in second.message
    assert second.details["fromRevision"] == 7
    assert second.details["toRevision"] == 5
    assert not [c for c in api.calls if c[0] == "PATCH"]
    assert api.objects[DEPLOY_PATH]["metadata"]["resourceVersion"] == version


def test_dry_run_changes_nothing() -> None:
    api = cluster()
    before = copy.deepcopy(api.objects[DEPLOY_PATH])
    result = execute_rollback(api, SPEC, request(dry_run=True))
    assert result.outcome == Outcome.DRY_RUN
    assert result.reason == "DryRun"
    assert result.message == (
        "would roll back deployment/iris from revision 7 to 5 (image iris:v3 -> iris:v1)"
    )
    assert not [c for c in api.calls if c[0] == "PATCH"]
    assert api.objects[DEPLOY_PATH] == before


def test_missing_deployment_is_skipped() -> None:
    api = FakeApi()
    result = execute_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "TargetNotFound")


def test_refusal_is_skipped_with_its_reason() -> None:
    api = cluster(deployment(paused=True))
    result = execute_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "DeploymentPaused")
    assert not [c for c in api.calls if c[0] == "PATCH"]


class ConcurrentWriter(FakeApi):
    """Someone scales the Deployment between our read and our first patch."""

    def __init__(self) -> None:
        super().__init__()
        self.interfered = False

    def patch(self, path: str, body: Any, *, patch_type: Any = "merge") -> dict[str, Any]:
        if not self.interfered:
            self.interfered = True
            obj = self.objects[path]
            obj["spec"]["replicas"] = 3
            self._bump(obj)
        return super().patch(path, body, patch_type=patch_type)


def test_conflict_is_re_read_and_retried_once() -> None:
    api = ConcurrentWriter()
    api.put(DEPLOY_PATH, deployment())
    for rs in all_replicasets():
        api.put(f"{RS_PATH}/{rs['metadata']['name']}", rs)
    result = execute_rollback(api, SPEC, request())
    assert result.outcome == Outcome.SUCCEEDED
    assert [c[0] for c in api.calls] == ["GET", "LIST", "PATCH", "GET", "LIST", "PATCH"]
    stored = api.objects[DEPLOY_PATH]
    assert stored["spec"]["replicas"] == 3  # the other writer's change survives
    assert stored["spec"]["template"] == template("iris:v1")


def test_persistent_conflicts_fail_after_a_few_attempts() -> None:
    api = cluster()
    api.fail[("PATCH", DEPLOY_PATH)] = ApiError(409, "the object has been modified")
    result = execute_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "RollbackFailed")
    assert [c[0] for c in api.calls].count("PATCH") == CONFLICT_ATTEMPTS


def test_other_api_errors_fail_at_once() -> None:
    api = cluster()
    api.fail[("PATCH", DEPLOY_PATH)] = ApiError(403, "forbidden: cannot patch deployments")
    result = execute_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "RollbackFailed")
    assert "forbidden" in result.message
    assert [c[0] for c in api.calls].count("PATCH") == 1
