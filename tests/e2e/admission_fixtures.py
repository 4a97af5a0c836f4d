"""Shared parts of the admission-policy e2e modules: the policy applied as shipped, users
impersonated with chosen rights, and the assertions on admission and refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import KubeCluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
POLICY_FILE = ROOT / "manifests" / "policy" / "requester-rights.yaml"
POLICY = "modelmonitor-requester-rights"

Doc = dict[str, Any]
# (apiGroup, resource, verb, resourceNames or None for all of the namespace)
Right = tuple[str, str, str, tuple[str, ...] | None]

MONITOR_RIGHTS: list[Right] = [
    ("modelmonitor.io", "modelmonitors", "create", None),
    ("modelmonitor.io", "modelmonitors", "get", None),
    ("modelmonitor.io", "modelmonitors", "update", None),
    ("modelmonitor.io", "modelmonitors", "patch", None),
]

# Uses every action and every reference a Deployment target can have.
FULL_SPEC: Doc = {
    "target": {"name": "app", "endpoint": {"service": {"name": "app", "port": 8080}}},
    "reference": {"configMapRef": {"name": "ref", "key": "reference.csv"}},
    "data": {"probe": {"dataset": {"configMapRef": {"name": "golden", "key": "golden.csv"}}}},
    "prometheus": {
        "url": "https://prometheus:9090",
        "basicAuth": {
            "username": {"name": "prom-user", "key": "username"},
            "password": {"name": "prom-pass", "key": "password"},
        },
        "headers": [
            {"name": "X-Scope-OrgID", "value": "team-a"},
            {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "prom-key", "key": "k"}}},
        ],
        "tlsConfig": {
            "ca": {"configMapKeyRef": {"name": "prom-ca", "key": "ca.crt"}},
            "clientCertSecretRef": {"name": "prom-client"},
        },
    },
    "actions": {
        "onSLOBreach": ["rollback", "scale", "notify"],
        "onDrift": ["retrain"],
        "scale": {"maxReplicas": 4},
        "notify": {"webhookSecretRef": {"name": "hook", "key": "url"}},
        "retrain": {
            "jobTemplate": {
                "template": {"spec": {"containers": [{"name": "train", "image": "trainer:1"}]}}
            }
        },
    },
}

# Each right FULL_SPEC needs, and the words the refusal must contain without it.
FULL_RIGHTS: list[tuple[Right, str]] = [
    (("apps", "deployments", "get", ("app",)), "may not get deployments.apps/app"),
    (("apps", "deployments", "patch", ("app",)), "may not patch deployments.apps/app"),
    (
        ("autoscaling", "horizontalpodautoscalers", "patch", None),
        "may not patch horizontalpodautoscalers.autoscaling",
    ),
    (("batch", "jobs", "create", None), "may not create jobs.batch"),
    (("", "secrets", "get", ("hook",)), "may not get secrets/hook"),
    (("", "configmaps", "get", ("ref",)), "may not get configmaps/ref"),
    (("", "configmaps", "get", ("golden",)), "may not get configmaps/golden"),
    (("", "services", "get", ("app",)), "may not get services/app"),
    (("", "secrets", "get", ("prom-user",)), "may not get secrets/prom-user"),
    (("", "secrets", "get", ("prom-pass",)), "may not get secrets/prom-pass"),
    (("", "secrets", "get", ("prom-key",)), "may not get secrets/prom-key"),
    (("", "configmaps", "get", ("prom-ca",)), "may not get configmaps/prom-ca"),
    (("", "secrets", "get", ("prom-client",)), "may not get secrets/prom-client"),
]


# -- helpers -------------------------------------------------------------------------------
def monitor(name: str, spec: Doc) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "modelmonitor.io/v1alpha1",
            "kind": "ModelMonitor",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def grant(cluster: KubeCluster, namespace: str, user: str, rights: list[Right]) -> None:
    """A Role with ``rights`` (plus creating and editing ModelMonitors), bound to ``user``."""
    rules = [
        {
            "apiGroups": [group],
            "resources": [resource],
            "verbs": [verb],
            **({"resourceNames": list(names)} if names else {}),
        }
        for group, resource, verb, names in [*MONITOR_RIGHTS, *rights]
    ]
    cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": user, "namespace": namespace},
                "rules": rules,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": user, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            },
        ]
    )


def create_as(cluster: KubeCluster, namespace: str, user: str, name: str, spec: Doc) -> Any:
    return cluster.kubectl(
        "create", "-n", namespace, f"--as={user}", "-f", "-", input=monitor(name, spec), check=False
    )


def assert_admitted(proc: Any) -> None:
    assert proc.returncode == 0, proc.stderr


def assert_refused(proc: Any, words: str) -> None:
    assert proc.returncode != 0, f"admitted, expected a refusal naming {words!r}"
    assert "is forbidden" in proc.stderr, proc.stderr
    assert POLICY in proc.stderr, proc.stderr
    assert words in proc.stderr, f"the refusal does not say {words!r}: {proc.stderr}"


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def policy(crds: KubeCluster) -> Iterator[KubeCluster]:
    """manifests/policy/ applied as shipped, enforced, and removed again afterwards."""
    crds.kubectl("apply", "-f", str(POLICY_FILE))
    try:
        # The policy type-checks against the ModelMonitor schema without a warning.
        def checked() -> Doc | None:
            vap = crds.get("validatingadmissionpolicy", POLICY)
            status = vap.get("status") or {}
            done = status.get("observedGeneration") == vap["metadata"]["generation"]
            return status if done else None

        status = wait_for(checked, timeout=30, what="type checking of the policy")
        assert not (status.get("typeChecking") or {}).get("expressionWarnings"), status
        yield crds
    finally:
        crds.kubectl("delete", "-f", str(POLICY_FILE), "--ignore-not-found", check=False)


@pytest.fixture
def ns(policy: KubeCluster, namespace: str) -> str:
    """A namespace in which the policy is seen to refuse (the policy informer has synced)."""
    grant(policy, namespace, "probe-user", [])

    def refused() -> bool:
        proc = policy.kubectl(
            "create",
            "-n",
            namespace,
            "--as=probe-user",
            "--dry-run=server",
            "-f",
            "-",
            input=monitor("probe", FULL_SPEC),
            check=False,
        )
        return proc.returncode != 0 and POLICY in proc.stderr

    wait_for(refused, timeout=30, what="the admission policy to be enforced")
    return namespace
