"""KServe canary rollback on the in-memory API.

The status shapes follow KServe's ksvc reconciler (pkg/controller/v1beta1/inferenceservice/
reconcilers/knative): during a canary the latest revision gets canaryTrafficPercent
(``latestRevision: true``, tag ``latest`` with tag routing on), the last rolled-out
revision the rest (tag ``prev``).
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.actions.base import CONFLICT_ATTEMPTS
from modelmonitor.actions.kserve import (
    canary_state,
    execute_canary_rollback,
    isvc_path,
)
from modelmonitor.core.cluster import ACTION_ANNOTATION, ApiError
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import MonitorSpec, ReferenceSpec, TargetSpec
from tests.unit.actions.fake_api import FakeApi

NS = "ml"
PATH = isvc_path(NS, "iris")
SPEC = MonitorSpec(
    target=TargetSpec("iris", kind="InferenceService"), reference=ReferenceSpec(source="inline")
)


def request(id: str = "inc-1-rollback-1", *, dry_run: bool = False) -> ActionRequest:
    return ActionRequest(
        id=id,
        action="rollback",
        namespace=NS,
        monitor="m",
        monitor_uid="uid",
        incident="inc-1",
        trigger="drift",
        reason="prediction drift",
        dry_run=dry_run,
    )


def isvc(
    percent: int | None = 20, *, split: bool = True, tagged: bool = True, mode: str = ""
) -> dict[str, Any]:
    predictor: dict[str, Any] = {"model": {"modelFormat": {"name": "sklearn"}}}
    if percent is not None:
        predictor["canaryTrafficPercent"] = percent
    latest: dict[str, Any] = {
        "latestRevision": True,
        "revisionName": "iris-predictor-00002",
        "percent": percent if split and percent is not None else 100,
    }
    if tagged:
        latest["tag"] = "latest"
    traffic = [latest]
    if split:
        traffic.append(
            {
                "tag": "prev",
                "latestRevision": False,
                "revisionName": "iris-predictor-00001",
                "percent": 100 - (percent or 0),
            }
        )
    obj: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris"},
        "spec": {"predictor": predictor},
        "status": {
            "components": {
                "predictor": {
                    "latestCreatedRevision": "iris-predictor-00002",
                    "latestReadyRevision": "iris-predictor-00002",
                    "latestRolledoutRevision": "iris-predictor-00001" if split else "",
                    "previousRolledoutRevision": "iris-predictor-00000" if split else "",
                    "traffic": traffic,
                }
            }
        },
    }
    if mode:
        obj["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": mode}
    return obj


@pytest.fixture
def api() -> FakeApi:
    fake = FakeApi()
    fake.put(PATH, isvc(20))
    return fake


# -- canary_state ---------------------------------------------------------------------------


def test_state_of_a_canary() -> None:
    state = canary_state(isvc(20))
    assert state == {
        "in_progress": True,
        "rolled_back": False,
        "percent": 20,
        "traffic_percent": 20,
        "split": True,
        "canary_revision": "iris-predictor-00002",
        "stable_revision": "iris-predictor-00001",
        "latest_rolledout_revision": "iris-predictor-00001",
        "previous_rolledout_revision": "iris-predictor-00000",
        "deployment_mode": "",
    }


def test_state_without_tag_routing_finds_the_latest_target() -> None:
    state = canary_state(isvc(30, tagged=False))
    assert state["in_progress"]
    assert (state["traffic_percent"], state["canary_revision"]) == (30, "iris-predictor-00002")


@pytest.mark.parametrize(
    ("obj", "in_progress", "rolled_back"),
    [
        (isvc(None, split=False), False, False),  # one revision, no canary field
        (isvc(100), False, False),  # promoted
        (isvc(0), False, True),  # rolled back already
        (isvc(20, split=False), False, False),  # first revision: KServe ignores the percent
        (isvc(None), False, False),  # promotion not yet reconciled: the spec decides
        (isvc(20, mode="RawDeployment"), False, False),
        (isvc(20, mode="Standard"), False, False),
        (
            {"metadata": {"name": "iris"}, "spec": {"predictor": {"canaryTrafficPercent": 10}}},
            True,
            False,
        ),
    ],
    ids=[
        "single",
        "promoted",
        "zero",
        "first-revision",
        "promoting",
        "raw",
        "standard",
        "no-status",
    ],
)
def test_state_in_progress(obj: dict[str, Any], in_progress: bool, rolled_back: bool) -> None:
    state = canary_state(obj)
    assert (state["in_progress"], state["rolled_back"]) == (in_progress, rolled_back)


def test_state_tolerates_odd_values() -> None:
    obj = isvc(20)
    obj["spec"]["predictor"]["canaryTrafficPercent"] = "20"
    obj["status"]["components"]["predictor"]["traffic"] = ["junk", None]
    state = canary_state(obj)
    assert state["percent"] is None
    assert not state["in_progress"]


# -- execute_canary_rollback ------------------------------------------------------------------


def test_rolls_back_once(api: FakeApi) -> None:
    version = api.objects[PATH]["metadata"]["resourceVersion"]
    seen: list[Any] = []
    original = api.patch

    def spy(path: str, body: Any, **kw: Any) -> dict[str, Any]:
        seen.append(body)
        return original(path, body, **kw)

    api.patch = spy  # type: ignore[method-assign]
    result = execute_canary_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.SUCCEEDED, "CanaryRolledBack")
    assert result.message == (
        "sent inferenceservice/iris canary traffic from 20% back to 0% "
        "(revision iris-predictor-00002; all traffic to iris-predictor-00001)"
    )
    assert result.details == {
        "inferenceService": "iris",
        "fromPercent": 20,
        "toPercent": 0,
        "canaryRevision": "iris-predictor-00002",
        "stableRevision": "iris-predictor-00001",
    }
    assert seen == [
        {
            "metadata": {
                "resourceVersion": version,
                "annotations": {ACTION_ANNOTATION: "inc-1-rollback-1"},
            },
            "spec": {"predictor": {"canaryTrafficPercent": 0}},
        }
    ]
    stored = api.objects[PATH]
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert stored["spec"]["predictor"]["model"] == {"modelFormat": {"name": "sklearn"}}

    again = execute_canary_rollback(api, SPEC, request())
    assert again.outcome is Outcome.SUCCEEDED
    assert again.message.startswith("already applied by inc-1-rollback-1")
    assert api.patched() == [PATH]


def test_already_at_zero_is_success_without_a_patch() -> None:
    api = FakeApi()
    api.put(PATH, isvc(0))
    result = execute_canary_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.SUCCEEDED, "CanaryRolledBack")
    assert result.message == "already rolled back: inferenceservice/iris canary traffic is 0%"
    assert api.patched() == []


def test_no_canary_is_skipped() -> None:
    api = FakeApi()
    api.put(PATH, isvc(None, split=False))
    result = execute_canary_rollback(api, SPEC, request())
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "NoCanary")
    assert result.message == "inferenceservice/iris serves one revision; nothing to roll back"
    api.put(PATH, isvc(20, mode="Standard"))
    raw = execute_canary_rollback(api, SPEC, request())
    assert raw.reason == "NoCanary"
    assert "Standard mode" in raw.message
    assert api.patched() == []


def test_dry_run_changes_nothing(api: FakeApi) -> None:
    result = execute_canary_rollback(api, SPEC, request(dry_run=True))
    assert result.outcome is Outcome.DRY_RUN
    assert result.message == (
        "would send inferenceservice/iris canary traffic from 20% back to 0% "
        "(revision iris-predictor-00002; all traffic to iris-predictor-00001)"
    )
    assert api.patched() == []


def test_missing_and_wrong_kind_are_skipped() -> None:
    missing = execute_canary_rollback(FakeApi(), SPEC, request())
    assert (missing.outcome, missing.reason) == (Outcome.SKIPPED, "TargetNotFound")
    deployment = MonitorSpec(target=TargetSpec("iris"), reference=ReferenceSpec(source="inline"))
    wrong = execute_canary_rollback(FakeApi(), deployment, request())
    assert (wrong.outcome, wrong.reason) == (Outcome.SKIPPED, "UnsupportedTarget")


def test_conflict_rereads_and_retries_once(api: FakeApi) -> None:
    original = api.patch
    calls = 0

    def racing(path: str, body: Any, **kw: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:  # a person moves the canary to 30% just before our patch lands
            api.objects[PATH]["spec"]["predictor"]["canaryTrafficPercent"] = 30
            api._bump(api.objects[PATH])
        return original(path, body, **kw)

    api.patch = racing  # type: ignore[method-assign]
    result = execute_canary_rollback(api, SPEC, request())
    assert result.outcome is Outcome.SUCCEEDED
    assert result.details["fromPercent"] == 30
    assert api.objects[PATH]["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert calls == 2


def test_api_errors_fail(api: FakeApi) -> None:
    api.fail[("PATCH", PATH)] = ApiError(409, "the object has been modified")
    conflict = execute_canary_rollback(api, SPEC, request())
    assert (conflict.outcome, conflict.reason) == (Outcome.FAILED, "CanaryRollbackFailed")
    assert api.patched() == [PATH] * CONFLICT_ATTEMPTS
    api.fail = {("PATCH", PATH): ApiError(403, "forbidden")}
    denied = execute_canary_rollback(api, SPEC, request())
    assert (denied.outcome, denied.reason) == (Outcome.FAILED, "CanaryRollbackFailed")
