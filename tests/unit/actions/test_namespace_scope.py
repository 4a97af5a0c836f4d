"""Executors act in the monitor's namespace only, whatever names reach them.

The specs here bypass the parser (as a spec from an older CRD once could), so only the
path builder and the namespace-scoped API stand between a traversal name and the API
server: the API below fails the test if any call reaches it.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmonitor.core.action_names import SCALE_BACK, ActionName
from modelmonitor.core.cluster import ClusterApi, NamespacedApi, PathError
from modelmonitor.core.incident import Outcome
from modelmonitor.core.spec import (
    ActionsSpec,
    MonitorSpec,
    NotifySpec,
    ReferenceSpec,
    ScaleSpec,
    TargetSpec,
)
from modelmonitor.engine.remediation import Remediator
from tests.unit.actions.fake_api import FakeApi, request

TRAVERSALS = [
    "../../kube-system/configmaps/private-config",
    "../../kube-system/secrets/private",
    "x/../../kube-system/deployments/coredns",
    "a%2F..%2F..%2Fkube-system",
    "..",
]


class Unreachable:
    """A ClusterApi that fails the test when called at all.

    It also keeps what was asked, since an executor that catches every exception (notify)
    would swallow the AssertionError.
    """

    def __init__(self) -> None:
        self.called: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.called.append(name)
        raise AssertionError(f"the API was called: {name}")


def execute(spec: MonitorSpec, action: str, **fields: Any) -> tuple[Any, list[str]]:
    """Run ``action`` through the Remediator over an API that must not be reached."""
    api = Unreachable()
    result = Remediator(api=api).execute(spec, request(action, **fields), {})  # type: ignore[arg-type]
    return result, api.called


def attack_spec(name: str, kind: str = "Deployment") -> MonitorSpec:
    return MonitorSpec(
        target=TargetSpec(name, kind=kind),  # type: ignore[arg-type]
        reference=ReferenceSpec(source="inline"),
        actions=ActionsSpec(
            on_drift=tuple(ActionName),
            scale=ScaleSpec(max_replicas=4),
            notify=NotifySpec(secret_name=name, secret_key="url"),
            retrain_job_template={"template": {"spec": {"containers": []}}},
        ),
    )


@pytest.mark.parametrize("name", TRAVERSALS)
@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (ActionName.ROLLBACK, "Deployment"),
        (ActionName.ROLLBACK, "InferenceService"),
        (ActionName.SCALE, "Deployment"),
        (ActionName.NOTIFY, "Deployment"),
    ],
)
def test_traversal_names_fail_before_any_call(name: str, action: str, kind: str) -> None:
    result, called = execute(attack_spec(name, kind), action)
    assert called == []
    assert result.outcome is Outcome.FAILED
    # notify names only the error's class (its message could carry a credential)
    assert "name" in result.message or "PathError" in result.message


@pytest.mark.parametrize("name", TRAVERSALS)
def test_scale_back_of_a_forged_restore_fails_before_any_call(name: str) -> None:
    restore = {"kind": "Deployment", "name": name, "field": "replicas", "original": 1, "applied": 2}
    result, called = execute(attack_spec("model"), SCALE_BACK, restore=restore)
    assert called == []
    assert result.outcome is Outcome.FAILED


@pytest.mark.parametrize("namespace", ["../kube-system", "ml/../kube-system", "", "ML"])
def test_a_request_in_a_bad_namespace_reaches_nothing(namespace: str) -> None:
    """Retrain builds its Job collection from the request's namespace (the monitor's)."""
    result, called = execute(attack_spec("model"), ActionName.RETRAIN, namespace=namespace)
    assert called == []
    assert result.outcome is Outcome.FAILED


# -- the scoped API itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/kube-system/secrets/private",
        "/api/v1/namespaces/ml/configmaps/../../kube-system/configmaps/private-config",
        "/api/v1/namespaces/ml-other/configmaps/x",
        "/api/v1/namespaces/ml/../kube-system/secrets",
        "/api/v1/namespaces/ml%2F..%2Fkube-system/secrets",
        "/api/v1/secrets",
        "/api/v1/nodes/n1",
        "/apis/apps/v1/deployments",
        "/api/v1/namespaces/ml//secrets",
    ],
)
def test_scoped_api_refuses_paths_outside_its_namespace(path: str) -> None:
    scoped: ClusterApi = NamespacedApi(Unreachable(), "ml")  # type: ignore[arg-type]
    for call in (
        lambda: scoped.get(path),
        lambda: scoped.list(path, "a=b"),
        lambda: scoped.patch(path, {}),
        lambda: scoped.create(path, {}),
    ):
        with pytest.raises(PathError, match="refusing"):
            call()


@pytest.mark.parametrize(
    ("namespace", "name", "key"),
    [
        ("kube-system", "private", "url"),
        ("ml", "../../kube-system/secrets/private", "url"),
        ("ml", "hook", "../x"),
        ("ml", "hook", ".."),
    ],
)
def test_scoped_api_refuses_secrets_elsewhere(namespace: str, name: str, key: str) -> None:
    scoped = NamespacedApi(Unreachable(), "ml")  # type: ignore[arg-type]
    with pytest.raises(PathError):
        scoped.secret_value(namespace, name, key)


@pytest.mark.parametrize("namespace", ["", "..", "kube-system/x", "ML"])
def test_scoped_api_needs_a_valid_namespace(namespace: str) -> None:
    with pytest.raises(PathError):
        NamespacedApi(Unreachable(), namespace)  # type: ignore[arg-type]


def test_scoped_api_passes_its_own_namespace_through() -> None:
    api = FakeApi()
    path = "/apis/apps/v1/namespaces/ml/deployments/model"
    api.objects[path] = {"metadata": {"name": "model", "resourceVersion": "1"}}
    scoped = NamespacedApi(api, "ml")
    assert scoped.get(path) == api.objects[path]
    assert scoped.get("/apis/apps/v1/namespaces/ml/deployments/other") is None
