"""The retrain action: the Job it builds, one running Job per monitor, idempotency."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from modelmonitor.actions.retrain import (
    build_job,
    execute_retrain,
    job_name,
    label_value,
    owner_reference,
)
from modelmonitor.core.cluster import ACTION_ANNOTATION, INCIDENT_LABEL, MONITOR_LABEL, ApiError
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import ActionsSpec, MonitorSpec, ReferenceSpec, TargetSpec
from tests.unit.actions.fake_api import FakeApi

NS = "ml"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def job_template(**overrides: Any) -> dict[str, Any]:
    template: dict[str, Any] = {
        "backoffLimit": 1,
        "template": {
            "metadata": {"labels": {"team": "fraud"}},
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "name": "train",
                        "image": "registry.example.com/train:1",
                        "env": [{"name": "MODELMONITOR_TRIGGER", "value": "user-set"}],
                    },
                    {"name": "sidecar", "image": "busybox"},
                ],
            },
        },
    }
    template.update(overrides)
    return template


def make_spec(template: dict[str, Any] | None = None) -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name="fraud-model"),
        reference=ReferenceSpec(source="inline"),
        actions=ActionsSpec(
            on_drift=("retrain",),
            retrain_job_template=template if template is not None else job_template(),
        ),
    )


def make_request(**overrides: Any) -> ActionRequest:
    values: dict[str, Any] = {
        "id": "inc-20261126t154501-retrain-1",
        "action": "retrain",
        "namespace": NS,
        "monitor": "fraud",
        "monitor_uid": "uid-1234",
        "incident": "inc-20261126t154501",
        "trigger": "drift",
        "reason": "4 of 6 features drifted",
        "phase": "Drifting",
    }
    values.update(overrides)
    return ActionRequest(**values)


def existing_job(name: str, action_id: str, *, conditions: list[dict[str, str]]) -> dict[str, Any]:
    job = build_job(make_spec(), make_request(id=action_id), owner=owner_reference(make_request()))
    job["metadata"]["name"] = name
    job["status"] = {"conditions": conditions}
    return job


def posts(api: FakeApi) -> list[tuple[str, str]]:
    return [call for call in api.calls if call[0] == "POST"]


# --- names and labels -------------------------------------------------------------------


def test_job_name_is_monitor_plus_hash_of_the_action_id() -> None:
    digest = hashlib.sha256(b"inc-20261126t154501-retrain-1").hexdigest()[:8]
    assert job_name("fraud", "inc-20261126t154501-retrain-1") == f"fraud-retrain-{digest}"
    assert job_name("fraud", "a") != job_name("fraud", "b")


@pytest.mark.parametrize(
    "monitor", ["m" * 253, "a." * 100 + "b", "x" * 46 + "-" + "y" * 10, "model.v2-monitor"]
)
def test_job_name_is_a_dns_label_for_any_monitor_name(monitor: str) -> None:
    name = job_name(monitor, "inc-1-retrain-1")
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name


@pytest.mark.parametrize("text", ["fraud", "m" * 63, "m" * 64, "a." * 100 + "b", "x" * 60 + ".y"])
def test_label_values_are_valid_and_distinct(text: str) -> None:
    value = label_value(text)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value
    if len(text) <= 63:
        assert value == text
    assert label_value(text + "z") != value


def test_build_job_metadata_owner_and_env() -> None:
    request = make_request()
    job = build_job(make_spec(), request, owner=owner_reference(request))

    meta = job["metadata"]
    assert job["apiVersion"] == "batch/v1"
    assert job["kind"] == "Job"
    assert meta["name"] == job_name("fraud", request.id)
    assert meta["namespace"] == NS
    labels = {
        "app.kubernetes.io/managed-by": "modelmonitor",
        "app.kubernetes.io/component": "retrain",
        MONITOR_LABEL: "fraud",
        INCIDENT_LABEL: "inc-20261126t154501",
    }
    assert meta["labels"] == labels
    assert meta["annotations"] == {
        ACTION_ANNOTATION: request.id,
        "modelmonitor.io/trigger": "drift",
        "modelmonitor.io/reason": "4 of 6 features drifted",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "modelmonitor.io/v1alpha1",
            "kind": "ModelMonitor",
            "name": "fraud",
            "uid": "uid-1234",
            "blockOwnerDeletion": False,
            "controller": False,
        }
    ]
    pod = job["spec"]["template"]
    assert pod["metadata"]["labels"] == {"team": "fraud", **labels}
    train, sidecar = pod["spec"]["containers"]
    assert {e["name"]: e["value"] for e in train["env"]} == {
        "MODELMONITOR_TRIGGER": "user-set",  # the user's own value wins
        "MODELMONITOR_NAMESPACE": NS,
        "MODELMONITOR_MONITOR": "fraud",
        "MODELMONITOR_INCIDENT": "inc-20261126t154501",
        "MODELMONITOR_ACTION_ID": request.id,
    }
    assert train["env"][0] == {"name": "MODELMONITOR_TRIGGER", "value": "user-set"}
    assert {e["name"]: e["value"] for e in sidecar["env"]}["MODELMONITOR_TRIGGER"] == "drift"


def test_build_job_leaves_the_users_jobspec_as_written() -> None:
    template = job_template(activeDeadlineSeconds=3600)
    job = build_job(make_spec(template), make_request(), owner=owner_reference(make_request()))
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert template == job_template(activeDeadlineSeconds=3600)  # the spec is not mutated


def test_build_job_defaults_only_what_kubernetes_would_refuse() -> None:
    template = job_template()
    del template["backoffLimit"]
    del template["template"]["spec"]["restartPolicy"]
    job = build_job(make_spec(template), make_request(), owner=owner_reference(make_request()))
    assert "backoffLimit" not in job["spec"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_long_names_reason_and_odd_incidents_stay_valid() -> None:
    request = make_request(monitor="m" * 253, incident="inc/" + "x" * 80, reason="r" * 5000)
    job = build_job(make_spec(), request, owner=owner_reference(request))
    meta = job["metadata"]
    assert DNS_LABEL.match(meta["name"])
    assert len(meta["name"]) <= 63
    assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in meta["labels"].values())
    assert len(meta["annotations"]["modelmonitor.io/reason"]) <= 1024


@pytest.mark.parametrize(
    "template", [{"backoffLimit": 1}, {"template": {"spec": {"containers": []}}}]
)
def test_a_template_without_a_pod_is_refused(template: dict[str, Any]) -> None:
    api = FakeApi()
    result = execute_retrain(api, make_spec(template), make_request())
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "InvalidJobTemplate"
    assert posts(api) == []


# --- execution --------------------------------------------------------------------------


def test_creates_the_job() -> None:
    api = FakeApi()
    request = make_request()
    result = execute_retrain(api, make_spec(), request)

    name = job_name("fraud", request.id)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "RetrainStarted"
    assert result.details == {"job": name}
    assert api.calls[0] == ("LIST", JOBS)
    assert posts(api) == [("POST", JOBS)]
    created = api.objects[f"{JOBS}/{name}"]
    assert created["metadata"]["annotations"][ACTION_ANNOTATION] == request.id


def test_executing_twice_creates_one_job() -> None:
    api = FakeApi()
    first = execute_retrain(api, make_spec(), make_request())
    second = execute_retrain(api, make_spec(), make_request())
    assert first.outcome is second.outcome is Outcome.SUCCEEDED
    assert "already created" in second.message
    assert second.details == first.details
    assert len(posts(api)) == 1


def test_a_name_conflict_is_the_same_job() -> None:
    api = FakeApi()
    name = job_name("fraud", make_request().id)
    api.fail[("POST", JOBS)] = ApiError(409, f"jobs.batch {name} already exists")
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.SUCCEEDED
    assert "already created" in result.message


def test_at_most_one_running_job_per_monitor() -> None:
    api = FakeApi()
    api.put(f"{JOBS}/fraud-retrain-old", existing_job("fraud-retrain-old", "old", conditions=[]))
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "RetrainRunning"
    assert "fraud-retrain-old" in result.message
    assert posts(api) == []


def test_another_monitors_running_job_does_not_block() -> None:
    api = FakeApi()
    other = existing_job("other-retrain-1", "old", conditions=[])
    other["metadata"]["labels"][MONITOR_LABEL] = "other"
    api.put(f"{JOBS}/other-retrain-1", other)
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.SUCCEEDED
    assert result.reason == "RetrainStarted"


@pytest.mark.parametrize("kind", ["Complete", "Failed"])
def test_a_finished_job_does_not_block(kind: str) -> None:
    api = FakeApi()
    done = existing_job("fraud-retrain-old", "old", conditions=[{"type": kind, "status": "True"}])
    api.put(f"{JOBS}/fraud-retrain-old", done)
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.SUCCEEDED
    assert len(posts(api)) == 1


def test_a_condition_that_is_not_true_still_counts_as_running() -> None:
    api = FakeApi()
    job = existing_job(
        "fraud-retrain-old", "old", conditions=[{"type": "Failed", "status": "False"}]
    )
    api.put(f"{JOBS}/fraud-retrain-old", job)
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.SKIPPED


def test_dry_run_creates_nothing() -> None:
    api = FakeApi()
    result = execute_retrain(api, make_spec(), make_request(dry_run=True))
    name = job_name("fraud", make_request().id)
    assert result.outcome is Outcome.DRY_RUN
    assert result.message == f"would create Job {name}"
    assert posts(api) == []
    assert api.objects == {}


def test_api_errors_fail_the_action() -> None:
    api = FakeApi()
    api.fail[("POST", JOBS)] = ApiError(403, "forbidden")
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.FAILED
    assert result.reason == "RetrainFailed"

    api = FakeApi()
    api.fail[("LIST", JOBS)] = ApiError(0, "connection refused")
    result = execute_retrain(api, make_spec(), make_request())
    assert result.outcome is Outcome.FAILED
    assert result.reason == "RetrainFailed"
    assert posts(api) == []


def test_not_configured_is_skipped() -> None:
    spec = MonitorSpec(target=TargetSpec(name="m"), reference=ReferenceSpec(source="inline"))
    result = execute_retrain(FakeApi(), spec, make_request())
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "NotConfigured"


# --- the pod policy, checked again right before creating ----------------------------------


def attack_template() -> dict[str, Any]:
    """The issue's template: the operator's rights through a privileged host-root pod."""
    template = job_template()
    pod = template["template"]["spec"]
    pod.update(
        serviceAccountName="modelmonitor",
        hostPID=True,
        hostNetwork=True,
        nodeName="control-plane",
        volumes=[{"name": "host", "hostPath": {"path": "/"}}],
    )
    pod["containers"][0]["securityContext"] = {"privileged": True}
    return template


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_template_beyond_the_policy_creates_nothing(dry_run: bool) -> None:
    api = FakeApi()
    result = execute_retrain(api, make_spec(attack_template()), make_request(dry_run=dry_run))
    assert result.outcome is Outcome.SKIPPED
    assert result.reason == "RetrainTemplateRefused"
    pod = "spec.actions.retrain.jobTemplate.template.spec"
    for field in ("hostPID", "hostNetwork", "nodeName", "serviceAccountName"):
        assert f"{pod}.{field}" in result.message
    assert f"{pod}.volumes[0].hostPath" in result.message
    assert f"{pod}.containers[0].securityContext.privileged" in result.message
    assert api.calls == []  # not even a list: nothing reaches the API server
    assert api.objects == {}


def test_the_executor_holds_the_service_account_to_its_allowlist() -> None:
    template = job_template()
    template["template"]["spec"]["serviceAccountName"] = "trainer"
    refused = execute_retrain(FakeApi(), make_spec(template), make_request())
    assert refused.reason == "RetrainTemplateRefused"
    api = FakeApi()
    allowed = execute_retrain(
        api, make_spec(template), make_request(), allowed_service_accounts=("trainer",)
    )
    assert allowed.outcome is Outcome.SUCCEEDED
    assert posts(api) == [("POST", JOBS)]


def test_the_registered_executor_uses_the_operators_allowlist() -> None:
    from modelmonitor.actions import registry

    template = job_template()
    template["template"]["spec"]["serviceAccountName"] = "trainer"
    spec, request = make_spec(template), make_request()
    default = registry.executor_for("retrain")
    assert default(FakeApi(), spec, request).reason == "RetrainTemplateRefused"
    configured = registry.executor_for(
        "retrain", registry.all_executors(retrain_service_accounts=["trainer"])
    )
    assert configured(FakeApi(), spec, request).outcome is Outcome.SUCCEEDED
