"""ModelMonitors in Kubernetes' built-in view/edit/admin roles, against a real API server.

manifests/user-roles.yaml (the chart ships the same) labels ClusterRoles for aggregation;
the controller manager's ClusterRole aggregation adds their rules to `view`, `edit` and
`admin`. Users are impersonated (``kubectl --as``) and bound only to a built-in role in
one namespace, with the requester-rights admission policy enforced: a namespace's `edit`
user creates a monitor, a `view` user reads it and can neither create, change, delete
it nor write its status.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.admission_fixtures import monitor

ROOT = Path(__file__).resolve().parents[2]
USER_ROLES = ROOT / "manifests" / "user-roles.yaml"

# A Deployment target behind a Service, with its reference in a ConfigMap: what the
# policy asks the requester for (get them), all of which `edit` has.
SPEC: dict[str, Any] = {
    "target": {"name": "app", "endpoint": {"service": {"name": "app", "port": 8080}}},
    "reference": {"configMapRef": {"name": "ref", "key": "reference.csv"}},
}


def _aggregated(cluster: KubeCluster, builtin: str, verb: str) -> bool:
    rules = cluster.get("clusterrole", builtin).get("rules") or []
    return any(
        "modelmonitors" in r.get("resources", []) and verb in r.get("verbs", []) for r in rules
    )


@pytest.fixture(scope="module")
def user_roles(policy: KubeCluster) -> Iterator[KubeCluster]:
    policy.kubectl("apply", "-f", str(USER_ROLES))
    try:
        for builtin, verb in (("view", "list"), ("edit", "create"), ("admin", "delete")):
            wait_for(
                lambda b=builtin, v=verb: _aggregated(policy, b, v),
                timeout=30,
                what=f"modelmonitors aggregated into {builtin}",
            )
        yield policy
    finally:
        policy.kubectl("delete", "-f", str(USER_ROLES), "--ignore-not-found")


def _bind(cluster: KubeCluster, namespace: str, user: str, builtin: str) -> None:
    cluster.kubectl(
        "create", "rolebinding", user, f"--clusterrole={builtin}", f"--user={user}", "-n", namespace
    )


def _as(cluster: KubeCluster, user: str, *args: str, text: str | None = None) -> Any:
    return cluster.kubectl(*args, f"--as={user}", input=text, check=False)


def _can(
    cluster: KubeCluster, user: str, namespace: str, verb: str, resource: str, *extra: str
) -> bool:
    proc = _as(cluster, user, "auth", "can-i", verb, resource, "-n", namespace, *extra)
    return proc.stdout.strip() == "yes"


def test_edit_user_creates_a_monitor_and_view_user_only_reads_it(
    user_roles: KubeCluster,
    ns: str,
) -> None:
    cluster = user_roles
    _bind(cluster, ns, "edith", "edit")
    _bind(cluster, ns, "vic", "view")
    body = monitor("fraud", SPEC)

    created = _as(cluster, "edith", "create", "-n", ns, "-f", "-", text=body)
    assert created.returncode == 0, created.stderr
    listed = _as(cluster, "vic", "get", "modelmonitors", "-n", ns, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["modelmonitor.modelmonitor.io/fraud"]

    refused = _as(cluster, "vic", "create", "-n", ns, "-f", "-", text=monitor("mine", SPEC))
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr
    assert 'cannot create resource "modelmonitors"' in refused.stderr
    for verb in ("update", "patch", "delete"):
        assert not _can(cluster, "vic", ns, verb, "modelmonitors.modelmonitor.io"), verb
    # Nobody but the operator writes a verdict: not even edit may forge status.
    for user in ("edith", "vic"):
        for verb in ("patch", "update"):
            assert not _can(
                cluster, user, ns, verb, "modelmonitors.modelmonitor.io", "--subresource=status"
            ), (user, verb)
    assert _can(cluster, "edith", ns, "delete", "modelmonitors.modelmonitor.io")
    # The binding is the namespace's only: elsewhere edith may do nothing with monitors.
    assert not _can(cluster, "edith", "default", "create", "modelmonitors.modelmonitor.io")
