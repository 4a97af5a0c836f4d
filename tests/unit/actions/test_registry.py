"""One vocabulary of action names: the core's, the executor registry's and the CRD's agree.

A monitor lists action names in ``spec.actions.onSLOBreach``/``onDrift``; the API server
checks them against the CRD's enum, :mod:`modelmonitor.core.spec` against
:class:`~modelmonitor.core.action_names.ActionName`, and the operator carries each out
through :data:`modelmonitor.actions.registry.EXECUTORS`. A name in one and not the others
would be accepted and then fail, or never be accepted at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelmonitor.actions import kserve, registry, rollback
from modelmonitor.core.action_names import NONE, RUN_ORDER, SCALE_BACK, ActionName
from modelmonitor.core.incident import ActionResult, Outcome
from modelmonitor.core.spec import ACTIONS, MonitorSpec, ReferenceSpec, TargetSpec
from tests.unit.actions.fake_api import FakeApi, request

CRDS = Path(__file__).resolve().parents[3] / "crds"
ACTION_LISTS = ("onSLOBreach", "onDrift")


def crd_action_enums() -> dict[str, set[str]]:
    """The enum of each action list's items, from every version of the ModelMonitor CRD."""
    enums: dict[str, set[str]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc["spec"]["names"]["kind"] != "ModelMonitor":
                continue
            for version in doc["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                actions = schema["properties"]["spec"]["properties"]["actions"]["properties"]
                for key in ACTION_LISTS:
                    enums[f"{version['name']}.{key}"] = set(actions[key]["items"]["enum"])
    return enums


def test_registry_vocabulary_and_crd_name_the_same_actions() -> None:
    vocabulary = {a.value for a in ActionName}
    assert set(registry.EXECUTORS) == vocabulary
    enums = crd_action_enums()
    assert enums, "no ModelMonitor CRD with action lists found"
    for where, enum in enums.items():
        assert enum == vocabulary | {NONE}, where
    assert set(ACTIONS) == vocabulary | {NONE}  # what spec validation accepts


def test_every_action_has_its_place_in_the_run_order() -> None:
    assert sorted(RUN_ORDER) == sorted(ActionName)


def test_follow_ups_are_not_names_a_monitor_lists() -> None:
    assert set(registry.FOLLOW_UPS) == {SCALE_BACK}
    assert not set(registry.FOLLOW_UPS) & set(ACTIONS)


def test_an_unknown_action_is_an_error_not_a_fallback() -> None:
    with pytest.raises(registry.UnknownActionError, match="no executor for restart"):
        registry.executor_for("restart")
    with pytest.raises(registry.UnknownActionError):
        registry.executor_for(ActionName.ROLLBACK, {})  # only what the given table has
    assert registry.executor_for(SCALE_BACK) is registry.FOLLOW_UPS[SCALE_BACK]


def _spec(kind: Any) -> MonitorSpec:
    return MonitorSpec(target=TargetSpec("iris", kind=kind), reference=ReferenceSpec("inline"))


KINDS = ("Deployment", "InferenceService", "External")


def test_by_target_kind_picks_the_executor_of_the_target_kind() -> None:
    def answer(reason: str) -> Any:
        return lambda api, spec, request: ActionResult(Outcome.SUCCEEDED, reason, "")

    execute = registry.by_target_kind(answer("Default"), InferenceService=answer("Canary"))
    results = [execute(FakeApi(), _spec(kind), request("rollback")) for kind in KINDS]
    assert [r.reason for r in results] == ["Default", "Canary", "Default"]


def test_rollback_of_an_inference_service_is_the_canary_rollback() -> None:
    api = FakeApi()
    execute = registry.executor_for(ActionName.ROLLBACK)
    for kind in ("Deployment", "InferenceService"):
        result = execute(api, _spec(kind), request("rollback"))
        assert result.reason == "TargetNotFound", result
    # the GitOps check reads the target first: absent, the plain executor reports it
    assert [c[1] for c in api.calls] == [
        rollback.deployment_path("ml", "iris"),
        rollback.deployment_path("ml", "iris"),
        kserve.isvc_path("ml", "iris"),
        kserve.isvc_path("ml", "iris"),
    ]


def test_the_remediator_reports_an_unknown_action_as_failed() -> None:
    from modelmonitor.engine.remediation import Remediator

    remediator = Remediator(api=None, executors={})  # type: ignore[arg-type]
    result = remediator.execute(_spec("Deployment"), request(SCALE_BACK), {})
    assert (result.outcome, result.reason) == (Outcome.FAILED, "UnknownAction")
    assert result.message == "no executor for scale-back"
