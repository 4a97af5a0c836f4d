"""The retrain pod policy: every field that would lend a tenant the operator's rights."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelmonitor.core.pod_policy import Violation, describe, job_template_violations

POD = "spec.actions.retrain.jobTemplate.template.spec"
ALLOWED = ("default", "trainer")


def template(**pod_fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "train", "image": "registry.example.com/train:1"}],
    }
    spec.update(pod_fields)
    return {"backoffLimit": 1, "template": {"spec": spec}}


def with_container(container_fields: dict[str, Any], lst: str = "containers") -> dict[str, Any]:
    t = template()
    container = {"name": "c", "image": "busybox", **container_fields}
    t["template"]["spec"].setdefault(lst, []).append(container)
    return t


def paths(t: dict[str, Any], allowed: tuple[str, ...] = ALLOWED) -> list[str]:
    return [v.path for v in job_template_violations(t, allowed)]


def test_an_ordinary_training_template_passes() -> None:
    t = template(
        serviceAccountName="trainer",
        securityContext={"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        shareProcessNamespace=True,
        automountServiceAccountToken=True,
        hostNetwork=False,
    )
    t["template"]["spec"]["containers"][0].update(
        securityContext={
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"], "add": []},
            "procMount": "Default",
        },
        ports=[{"containerPort": 8080, "hostPort": 0}],
    )
    t["template"]["metadata"] = {
        "annotations": {"container.apparmor.security.beta.kubernetes.io/train": "runtime/default"}
    }
    assert job_template_violations(t, ALLOWED) == []


def test_an_absent_service_account_is_the_default_one() -> None:
    assert paths(template()) == []
    assert paths(template(), allowed=("trainer",)) == [f"{POD}.serviceAccountName"]


@pytest.mark.parametrize("field", ["serviceAccountName", "serviceAccount"])
def test_a_service_account_outside_the_allowlist_is_refused(field: str) -> None:
    (violation,) = job_template_violations(template(**{field: "cluster-admin-sa"}), ALLOWED)
    assert violation.path == f"{POD}.{field}"
    assert "cluster-admin-sa" in violation.message


def test_the_deprecated_alias_cannot_smuggle_an_account_past_an_allowed_name() -> None:
    t = template(serviceAccountName="trainer", serviceAccount="cluster-admin-sa")
    assert paths(t) == [f"{POD}.serviceAccount"]


@pytest.mark.parametrize("field", ["hostNetwork", "hostPID", "hostIPC"])
def test_host_namespaces_are_refused(field: str) -> None:
    assert paths(template(**{field: True})) == [f"{POD}.{field}"]


def test_node_name_is_refused() -> None:
    assert paths(template(nodeName="control-plane")) == [f"{POD}.nodeName"]


def test_host_path_volumes_are_refused() -> None:
    t = template(
        volumes=[{"name": "ok", "emptyDir": {}}, {"name": "root", "hostPath": {"path": "/"}}]
    )
    assert paths(t) == [f"{POD}.volumes[1].hostPath"]


@pytest.mark.parametrize("lst", ["containers", "initContainers", "ephemeralContainers"])
@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"privileged": True}, "securityContext.privileged"),
        ({"allowPrivilegeEscalation": True}, "securityContext.allowPrivilegeEscalation"),
        ({"capabilities": {"add": ["NET_ADMIN"]}}, "securityContext.capabilities.add"),
        ({"procMount": "Unmasked"}, "securityContext.procMount"),
        ({"seccompProfile": {"type": "Unconfined"}}, "securityContext.seccompProfile.type"),
        ({"appArmorProfile": {"type": "Unconfined"}}, "securityContext.appArmorProfile.type"),
        ({"seLinuxOptions": {"type": "spc_t"}}, "securityContext.seLinuxOptions.type"),
        ({"seLinuxOptions": {"user": "system_u"}}, "securityContext.seLinuxOptions.user"),
        ({"seLinuxOptions": {"role": "sysadm_r"}}, "securityContext.seLinuxOptions.role"),
        (
            {"windowsOptions": {"hostProcess": True}},
            "securityContext.windowsOptions.hostProcess",
        ),
    ],
)
def test_every_container_list_is_checked(lst: str, context: dict[str, Any], field: str) -> None:
    t = with_container({"securityContext": context}, lst)
    index = len(t["template"]["spec"][lst]) - 1
    assert paths(t) == [f"{POD}.{lst}[{index}].{field}"]


def test_host_ports_are_refused() -> None:
    t = with_container({"ports": [{"containerPort": 80}, {"containerPort": 80, "hostPort": 80}]})
    assert paths(t) == [f"{POD}.containers[1].ports[1].hostPort"]


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"seccompProfile": {"type": "Unconfined"}}, "seccompProfile.type"),
        ({"seLinuxOptions": {"type": "spc_t"}}, "seLinuxOptions.type"),
        ({"windowsOptions": {"hostProcess": True}}, "windowsOptions.hostProcess"),
        ({"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, "sysctls[0].name"),
    ],
)
def test_the_pod_security_context_is_checked(context: dict[str, Any], field: str) -> None:
    assert paths(template(securityContext=context)) == [f"{POD}.securityContext.{field}"]


def test_safe_sysctls_pass() -> None:
    context = {"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}
    assert paths(template(securityContext=context)) == []


def test_an_unconfined_apparmor_annotation_is_refused() -> None:
    t = template()
    key = "container.apparmor.security.beta.kubernetes.io/train"
    t["template"]["metadata"] = {"annotations": {key: "unconfined"}}
    assert paths(t) == [f"spec.actions.retrain.jobTemplate.template.metadata.annotations[{key}]"]
    for allowed in ("", "runtime/default", "localhost/train-profile"):
        t["template"]["metadata"]["annotations"][key] = allowed
        assert paths(t) == []


def test_the_issue_attack_names_every_field() -> None:
    t = template(
        serviceAccountName="operator-sa",
        hostPID=True,
        hostNetwork=True,
        nodeName="control-plane",
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    t["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    violations = job_template_violations(t, ("default",))
    assert {v.path for v in violations} == {
        f"{POD}.hostNetwork",
        f"{POD}.hostPID",
        f"{POD}.nodeName",
        f"{POD}.serviceAccountName",
        f"{POD}.volumes[0].hostPath",
        f"{POD}.containers[0].securityContext.privileged",
    }
    message = describe(violations)
    assert all(v.path in message for v in violations)


def test_malformed_fields_do_not_crash_and_never_pass_as_harmless() -> None:
    t = template(hostNetwork="true", volumes="nope", containers=[None, "x"])
    assert paths(t) == [f"{POD}.hostNetwork"]
    assert job_template_violations({"template": "nope"}, ALLOWED) == []


def test_the_template_is_not_changed() -> None:
    t = template(hostPID=True)
    before = copy.deepcopy(t)
    job_template_violations(t, ALLOWED)
    assert t == before


def test_a_violation_reads_as_path_and_reason() -> None:
    assert str(Violation("a.b", "no")) == "a.b: no"
