"""The scale action on the in-memory API: steps, caps, the HPA path, scale back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmonitor.actions.base import CONFLICT_ATTEMPTS
from modelmonitor.actions.scale import (
    RESTORE_ANNOTATION,
    execute_scale,
    execute_scale_back,
    find_hpa,
    parse_restore,
    plan_scale_up,
)
from modelmonitor.core.cluster import ACTION_ANNOTATION, ApiError
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import ActionsSpec, MonitorSpec, ReferenceSpec, ScaleSpec, TargetSpec
from tests.unit.actions.fake_api import FakeApi

NS = "ml"
DEPLOY = f"/apis/apps/v1/namespaces/{NS}/deployments/model"
HPAS = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
HPA = f"{HPAS}/model-hpa"


def monitor_spec(max_replicas: int = 4, step: int = 1) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec("model"),
        reference=ReferenceSpec(source="inline"),
        actions=ActionsSpec(scale=ScaleSpec(max_replicas=max_replicas, step=step)),
    )


def request(
    id: str = "inc-1-scale-1", *, dry_run: bool = False, restore: dict[str, Any] | None = None
) -> ActionRequest:
    return ActionRequest(
        id=id,
        action="scale-back" if restore is not None else "scale",
        namespace=NS,
        monitor="m",
        monitor_uid="uid",
        incident="inc-1",
        trigger="slo",
        reason="p99 latency above objective",
        dry_run=dry_run,
        restore=restore,
    )


def deployment(replicas: int | None = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "model"}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "model"},
        "spec": spec,
    }


def hpa(
    min_replicas: int | None = 2, max_replicas: int = 3, target: str = "model"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "maxReplicas": max_replicas,
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    return {"kind": "HorizontalPodAutoscaler", "metadata": {"name": "model-hpa"}, "spec": spec}


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.put(DEPLOY, deployment(1))
    return fake


# -- pure planning ------------------------------------------------------------------------


def test_plan_steps_and_caps() -> None:
    scale = ScaleSpec(max_replicas=4, step=2)
    assert (
        plan_scale_up(deployment(1), None, scale).target,
        plan_scale_up(deployment(3), None, scale).target,
    ) == (3, 4)
    assert plan_scale_up(deployment(4), None, scale).at_cap
    # Scaled further by a person: never lowered, counts as at the cap.
    above = plan_scale_up(deployment(6), None, scale)
    assert above.at_cap
    assert above.target == 6
    # spec.replicas absent: the API server's default of 1.
    assert plan_scale_up(deployment(None), None, scale).current == 1


def test_plan_on_hpa_is_capped_by_its_max_replicas() -> None:
    plan = plan_scale_up(deployment(5), hpa(min_replicas=2, max_replicas=3), ScaleSpec(10, step=5))
    assert (plan.kind, plan.field, plan.current, plan.target, plan.cap) == (
        "HorizontalPodAutoscaler",
        "minReplicas",
        2,
        3,
        3,
    )
    assert plan_scale_up(deployment(1), hpa(min_replicas=None), ScaleSpec(10)).current == 1


def test_find_hpa_matches_the_deployment_only() -> None:
    other = hpa(target="other")
    statefulset = hpa()
    statefulset["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
    assert find_hpa([other, statefulset], "model") is None
    assert find_hpa([other, hpa()], "model") == hpa()


def test_parse_restore_refuses_incomplete_records() -> None:
    good = {"kind": "Deployment", "name": "model", "field": "replicas", "original": 1, "applied": 3}
    assert parse_restore(good) == good
    assert parse_restore(None) is None
    assert parse_restore({**good, "kind": "StatefulSet"}) is None
    assert parse_restore({**good, "field": "minReplicas"}) is None
    assert parse_restore({**good, "original": "1"}) is None


# -- execute_scale --------------------------------------------------------------------------


def test_steps_up_to_the_cap_then_skips(api: FakeApi) -> None:
    spec = monitor_spec(max_replicas=4, step=2)
    first = execute_scale(api, spec, request("r1"))
    assert (first.outcome, first.reason) == (Outcome.SUCCEEDED, "ScaledUp")
    assert first.message == "scaled deployment/model from 1 to 3 replicas"
    assert first.details == {
        "kind": "Deployment",
        "name": "model",
        "field": "replicas",
        "from": 1,
        "to": 3,
        "restore": {
            "kind": "Deployment",
            "name": "model",
            "field": "replicas",
            "original": 1,
            "applied": 3,
        },
    }
    second = execute_scale(api, spec, request("r2"))
    assert (second.details["from"], second.details["to"]) == (3, 4)
    third = execute_scale(api, spec, request("r3"))
    assert (third.outcome, third.reason) == (Outcome.SKIPPED, "AtMaxReplicas")
    stored = api.objects[DEPLOY]
    assert stored["spec"]["replicas"] == 4
    assert stored["metadata"]["annotations"][ACTION_ANNOTATION] == "r2"
    assert json.loads(stored["metadata"]["annotations"][RESTORE_ANNOTATION])["applied"] == 4
    assert len(api.patched()) == 2


def test_same_request_twice_patches_once(api: FakeApi) -> None:
    spec = monitor_spec()
    first = execute_scale(api, spec, request())
    again = execute_scale(api, spec, request())
    assert api.patched() == [DEPLOY]
    assert again.outcome is Outcome.SUCCEEDED
    assert again.message.startswith("already applied by inc-1-scale-1")
    # The restore record survives a crash between acting and recording the result.
    assert again.details["restore"] == first.details["restore"]
    assert api.objects[DEPLOY]["spec"]["replicas"] == 2


def test_patch_carries_resource_version_and_mark(api: FakeApi) -> None:
    seen: list[Any] = []
    original = api.patch

    def spy(path: str, body: Any, **kw: Any) -> dict[str, Any]:
        seen.append(body)
        return original(path, body, **kw)

    api.patch = spy  # type: ignore[method-assign]
    version = api.objects[DEPLOY]["metadata"]["resourceVersion"]
    execute_scale(api, monitor_spec(), request())
    assert seen[0]["metadata"]["resourceVersion"] == version
    assert seen[0]["metadata"]["annotations"][ACTION_ANNOTATION] == "inc-1-scale-1"
    assert seen[0]["spec"] == {"replicas": 2}


def test_hpa_path_raises_min_replicas_and_leaves_the_deployment(api: FakeApi) -> None:
    api.put(HPA, hpa(min_replicas=2, max_replicas=3))
    spec = monitor_spec(max_replicas=10, step=5)
    result = execute_scale(api, spec, request("r1"))
    assert (result.outcome, result.reason) == (Outcome.SUCCEEDED, "ScaledUp")
    assert result.message == (
        "raised the minReplicas of horizontalpodautoscaler/model-hpa from 2 to 3 "
        "(it scales deployment/model)"
    )
    assert result.details["restore"] == {
        "kind": "HorizontalPodAutoscaler",
        "name": "model-hpa",
        "field": "minReplicas",
        "original": 2,
        "applied": 3,
    }
    assert api.objects[HPA]["spec"]["minReplicas"] == 3
    assert api.objects[DEPLOY]["spec"]["replicas"] == 1
    assert api.patched() == [HPA]
    # Capped by the HPA's maxReplicas (3), below spec.actions.scale.maxReplicas (10).
    capped = execute_scale(api, spec, request("r2"))
    assert (capped.outcome, capped.reason) == (Outcome.SKIPPED, "AtMaxReplicas")
    assert capped.details["cap"] == 3


def test_dry_run_changes_nothing(api: FakeApi) -> None:
    result = execute_scale(api, monitor_spec(step=2), request(dry_run=True))
    assert result.outcome is Outcome.DRY_RUN
    assert result.message == "would scale deployment/model from 1 to 3 replicas"
    assert api.patched() == []
    api.put(HPA, hpa(min_replicas=2, max_replicas=5))
    on_hpa = execute_scale(api, monitor_spec(step=1), request(dry_run=True))
    assert on_hpa.message.startswith(
        "would raise the minReplicas of horizontalpodautoscaler/model-hpa from 2 to 3"
    )
    assert api.patched() == []


def test_missing_target_is_skipped() -> None:
    result = execute_scale(FakeApi(), monitor_spec(), request())
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "TargetNotFound")


def test_conflict_rereads_and_retries_once(api: FakeApi) -> None:
    """A write between our read and our patch: the 409 makes us plan again on it."""
    original = api.patch
    calls = 0

    def racing(path: str, body: Any, **kw: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else scales to 2 just before our first patch lands
            api.objects[DEPLOY]["spec"]["replicas"] = 2
            api._bump(api.objects[DEPLOY])
        return original(path, body, **kw)

    api.patch = racing  # type: ignore[method-assign]
    result = execute_scale(api, monitor_spec(), request())
    assert result.outcome is Outcome.SUCCEEDED
    assert (result.details["from"], result.details["to"]) == (2, 3)
    assert api.objects[DEPLOY]["spec"]["replicas"] == 3
    assert calls == 2


def test_persistent_conflict_and_other_errors_fail(api: FakeApi) -> None:
    api.fail[("PATCH", DEPLOY)] = ApiError(409, "the object has been modified")
    result = execute_scale(api, monitor_spec(), request())
    assert (result.outcome, result.reason) == (Outcome.FAILED, "ScaleFailed")
    assert api.patched() == [DEPLOY] * CONFLICT_ATTEMPTS
    api.fail = {("LIST", HPAS): ApiError(403, "forbidden")}
    denied = execute_scale(api, monitor_spec(), request())
    assert (denied.outcome, denied.reason) == (Outcome.FAILED, "ScaleFailed")
    assert "forbidden" in denied.message


# -- execute_scale_back ---------------------------------------------------------------------


def restore_of(api: FakeApi, *ids: str, spec: MonitorSpec | None = None) -> dict[str, Any]:
    """Scale once per id and keep the first original and the last applied, like the caller."""
    results = [execute_scale(api, spec or monitor_spec(), request(i)) for i in ids]
    first, last = results[0].details["restore"], results[-1].details["restore"]
    return {**first, "applied": last["applied"]}


def test_scale_back_restores_the_first_original(api: FakeApi) -> None:
    restore = restore_of(api, "r1", "r2")
    assert (restore["original"], restore["applied"]) == (1, 3)
    result = execute_scale_back(api, monitor_spec(), request("b1", restore=restore))
    assert (result.outcome, result.reason) == (Outcome.SUCCEEDED, "ScaledBack")
    assert result.message == "set deployment/model replicas back from 3 to 1"
    stored = api.objects[DEPLOY]
    assert stored["spec"]["replicas"] == 1
    assert stored["metadata"]["annotations"][ACTION_ANNOTATION] == "b1"
    assert RESTORE_ANNOTATION not in stored["metadata"]["annotations"]
    again = execute_scale_back(api, monitor_spec(), request("b1", restore=restore))
    assert again.outcome is Outcome.SUCCEEDED
    assert "already" in again.message
    assert len(api.patched()) == 3


def test_scale_back_leaves_a_changed_value_alone(api: FakeApi) -> None:
    restore = restore_of(api, "r1")
    api.patch(DEPLOY, {"spec": {"replicas": 5}})  # a person or another controller
    result = execute_scale_back(api, monitor_spec(), request("b1", restore=restore))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "ChangedSince")
    assert api.objects[DEPLOY]["spec"]["replicas"] == 5


def test_scale_back_when_already_at_the_original(api: FakeApi) -> None:
    restore = restore_of(api, "r1")
    api.patch(DEPLOY, {"spec": {"replicas": 1}})
    result = execute_scale_back(api, monitor_spec(), request("b1", restore=restore))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.message == "already restored: deployment/model replicas is 1"
    assert len(api.patched()) == 2


def test_scale_back_on_hpa(api: FakeApi) -> None:
    api.put(HPA, hpa(min_replicas=None, max_replicas=5))
    restore = restore_of(api, "r1", "r2", spec=monitor_spec(max_replicas=5))
    assert restore["kind"] == "HorizontalPodAutoscaler"
    assert (restore["original"], restore["applied"]) == (1, 3)
    result = execute_scale_back(api, monitor_spec(), request("b1", restore=restore))
    assert (result.outcome, result.reason) == (Outcome.SUCCEEDED, "ScaledBack")
    assert api.objects[HPA]["spec"]["minReplicas"] == 1


def test_scale_back_dry_run_and_nothing_to_restore(api: FakeApi) -> None:
    restore = restore_of(api, "r1")
    dry = execute_scale_back(api, monitor_spec(), request("b1", dry_run=True, restore=restore))
    assert dry.outcome is Outcome.DRY_RUN
    assert dry.message == "would set deployment/model replicas back from 2 to 1"
    assert api.objects[DEPLOY]["spec"]["replicas"] == 2
    empty = execute_scale_back(api, monitor_spec(), request("b2", restore={}))
    assert (empty.outcome, empty.reason) == (Outcome.SKIPPED, "NothingToRestore")
    gone = execute_scale_back(FakeApi(), monitor_spec(), request("b3", restore=restore))
    assert (gone.outcome, gone.reason) == (Outcome.SKIPPED, "TargetNotFound")


def test_scale_back_retries_a_conflict_once(api: FakeApi) -> None:
    restore = restore_of(api, "r1")
    original = api.patch
    calls = 0

    def racing(path: str, body: Any, **kw: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:  # a label change by someone else: same replicas, new resourceVersion
            api._bump(api.objects[DEPLOY])
        return original(path, body, **kw)

    api.patch = racing  # type: ignore[method-assign]
    result = execute_scale_back(api, monitor_spec(), request("b1", restore=restore))
    assert result.outcome is Outcome.SUCCEEDED
    assert api.objects[DEPLOY]["spec"]["replicas"] == 1
    assert calls == 2
