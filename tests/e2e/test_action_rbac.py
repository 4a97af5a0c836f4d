"""The remediation RBAC grants exactly what the action executors call, and confines them.

EXECUTOR_CALLS below is the table: for each ``rbac.actions.*`` toggle, the API calls its
executor makes. The chart (rendered with each toggle alone, both scopes) must grant
exactly that, and tests/unit/test_packaging.py's ACTION_GRANTS (what manifests/ is
checked against) must agree with it.

Against the real API server, a namespace-scoped install for namespace A lets rollback
and scale act there (as the chart's ServiceAccount, through ``KubePaths``), and refuses
them with 403 in another namespace B, whose Deployment stays as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as kube_config

from modelmonitor.actions.rollback import execute_rollback, observe_revision, record_healthy
from modelmonitor.actions.scale import execute_scale
from modelmonitor.adapters.kube import KubePaths
from modelmonitor.core.cluster import PatchType
from modelmonitor.core.incident import ActionRequest, Outcome
from modelmonitor.core.spec import parse_spec
from tests.cluster.kube import KubeCluster, wait_for
from tests.e2e.chart_fixtures import (
    CHART,
    can_i,
    helm_template,
    release_name,
    sa_kubeconfig,
    with_chart_crds,
)
from tests.unit.test_packaging import ACTION_GRANTS, MONITORING_GRANTS, Grant, by_kind, grants

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def cluster(kube_cluster: KubeCluster) -> KubeCluster:
    return with_chart_crds(kube_cluster)


# What each executor calls through modelmonitor.adapters.kube.KubePaths, as (verb, apiGroup,
# resource). Read off the modules; keep in step with them:
#   rollback  operator/modelmonitor/actions/rollback.py execute_rollback: GET the Deployment,
#             LIST ReplicaSets, PATCH (JSON patch) the Deployment; and
#             operator/modelmonitor/engine/remediation.py Remediator.observe_revision (runs when
#             rollback is configured): GET the Deployment, LIST ReplicaSets.
#   scale     operator/modelmonitor/actions/scale.py execute_scale / execute_scale_back:
#             GET the Deployment, LIST autoscaling/v2 HPAs, PATCH the Deployment or the
#             HPA; scale-back GETs and PATCHes either.
#   notify    operator/modelmonitor/actions/notify.py: api.secret_value = GET the Secret.
#   kserve    operator/modelmonitor/actions/kserve.py: GET, PATCH the InferenceService.
#   retrain   operator/modelmonitor/actions/retrain.py: LIST Jobs, POST (create) a Job.
#   gitops    operator/modelmonitor/actions/gitops.py guarded (spec.actions.gitops: pause):
#             GET and PATCH the owner (Application, Kustomization or HelmRelease) to pause
#             it; engine/gitops_watch.py observe_gitops GETs it and PATCHes it to resume,
#             and GETs a paused Kustomization's GitRepository or OCIRepository.
EXECUTOR_CALLS: dict[str, set[Grant]] = {
    "rollback": {
        ("get", "apps", "deployments"),
        ("list", "apps", "replicasets"),
        ("patch", "apps", "deployments"),
    },
    "scale": {
        ("get", "apps", "deployments"),
        ("patch", "apps", "deployments"),
        ("list", "autoscaling", "horizontalpodautoscalers"),
        ("get", "autoscaling", "horizontalpodautoscalers"),
        ("patch", "autoscaling", "horizontalpodautoscalers"),
    },
    "notify": {("get", "", "secrets")},
    "kserve": {
        ("get", "serving.kserve.io", "inferenceservices"),
        ("patch", "serving.kserve.io", "inferenceservices"),
    },
    "retrain": {("list", "batch", "jobs"), ("create", "batch", "jobs")},
    "gitops": {
        (verb, group, resource)
        for group, resource in (
            ("argoproj.io", "applications"),
            ("kustomize.toolkit.fluxcd.io", "kustomizations"),
            ("helm.toolkit.fluxcd.io", "helmreleases"),
        )
        for verb in ("get", "patch")
    }
    | {("get", "source.toolkit.fluxcd.io", r) for r in ("gitrepositories", "ocirepositories")},
}


def expected_grants(*actions: str) -> set[Grant]:
    """The (apiGroup, resource, verb) grants the table asks for, for these actions."""
    return {(group, res, verb) for a in actions for verb, group, res in EXECUTOR_CALLS[a]}


def test_packaging_table_agrees_with_the_executor_table() -> None:
    assert set(ACTION_GRANTS) == set(EXECUTOR_CALLS)
    for action in EXECUTOR_CALLS:
        assert ACTION_GRANTS[action] == expected_grants(action), action


# -- the chart, rendered ----------------------------------------------------------------------
SCOPES = {
    "cluster": ((), "ClusterRole"),
    "namespace": (("scope=namespace", "watchNamespaces={ml}"), "Role"),
}


def _roles(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, kind)}


@pytest.mark.parametrize("scope", list(SCOPES))
def test_chart_grants_exactly_what_the_enabled_executors_call(
    cluster: KubeCluster,
    scope: str,
) -> None:
    scope_sets, kind = SCOPES[scope]
    off = [f"rbac.actions.{a}=false" for a in EXECUTOR_CALLS]
    # None: no actions role (nor binding) at all; the monitoring role is untouched.
    docs = helm_template(cluster, "ops", *scope_sets, *off)
    roles = _roles(docs, kind)
    # (the payload-log tokens' and Prometheus credentials' roles are no action's:
    # rbac.payloadLogTokens, rbac.prometheusAuth)
    # Cluster scope also renders the aggregated view/edit/admin roles for tenants
    # (rbac.aggregateToDefaultRoles); they grant ModelMonitors, never an action.
    user_roles = (
        {"mm-modelmonitor-view", "mm-modelmonitor-edit", "mm-modelmonitor-admin"}
        if kind == "ClusterRole"
        else set()
    )
    # and the leader Lease's Role, in the release namespace whatever the scope
    lease_role = {"mm-modelmonitor-leader-election"} if kind == "Role" else set()
    assert set(roles) == {
        "mm-modelmonitor",
        "mm-modelmonitor-payload-tokens",
        "mm-modelmonitor-prometheus-auth",
        *user_roles,
        *lease_role,
    }
    for name in user_roles:
        assert {g[0] for g in grants(roles[name])} <= {"modelmonitor.io"}, name
    monitoring = grants(roles["mm-modelmonitor"])
    assert monitoring >= MONITORING_GRANTS
    assert not any(
        b["metadata"]["name"].endswith("-actions") for b in by_kind(docs, f"{kind}Binding")
    )
    # Each alone, then all together.
    cases = [(a,) for a in EXECUTOR_CALLS] + [tuple(EXECUTOR_CALLS)]
    for enabled in cases:
        sets = [s for s in off if s.split(".")[2].split("=")[0] not in enabled]
        sets += [f"rbac.actions.{a}=true" for a in enabled]
        docs = helm_template(cluster, "ops", *scope_sets, *sets)
        roles = _roles(docs, kind)
        assert grants(roles["mm-modelmonitor-actions"]) == expected_grants(*enabled), enabled
        # The monitoring role does not change with the action toggles.
        assert grants(roles["mm-modelmonitor"]) == monitoring
        bindings = _roles(docs, f"{kind}Binding")
        assert bindings["mm-modelmonitor-actions"]["roleRef"]["name"] == "mm-modelmonitor-actions"


# -- against the API server ---------------------------------------------------------------------
class RecordingApi:
    """KubePaths that records each call as (verb, apiGroup, resource)."""

    def __init__(self, api: KubePaths) -> None:
        self.api = api
        self.calls: set[Grant] = set()

    def _note(self, verb: str, path: str) -> None:
        parts = path.split("?")[0].strip("/").split("/")
        if parts[0] == "api":  # /api/v1/namespaces/<ns>/<resource>[/<name>]
            group, rest = "", parts[4:]
        else:  # /apis/<group>/<version>/namespaces/<ns>/<resource>[/<name>]
            group, rest = parts[1], parts[5:]
        self.calls.add((verb, group, rest[0]))

    def get(self, path: str) -> dict[str, Any] | None:
        self._note("get", path)
        return self.api.get(path)

    def list(self, path: str, label_selector: str = "") -> list[dict[str, Any]]:
        self._note("list", path)
        return self.api.list(path, label_selector)

    def patch(self, path: str, body: Any, *, patch_type: PatchType = "merge") -> dict[str, Any]:
        self._note("patch", path)
        return self.api.patch(path, body, patch_type=patch_type)

    def create(self, path: str, body: Any) -> dict[str, Any]:
        self._note("create", path)
        return self.api.create(path, body)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        self._note("get", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        return self.api.secret_value(namespace, name, key)


def _deployment(name: str, image: str) -> Doc:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,  # the controller still makes a ReplicaSet per revision
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "model", "image": image}]},
            },
        },
    }


def _settled(api: KubePaths, namespace: str, name: str, revision: str) -> dict[str, Any]:
    """What observe_revision sees once ``revision`` is rolled out."""
    base = f"/apis/apps/v1/namespaces/{namespace}"

    def probe() -> dict[str, Any] | None:
        deploy = api.get(f"{base}/deployments/{name}")
        if deploy is None:
            return None
        seen = observe_revision(deploy, api.list(f"{base}/replicasets", f"app={name}"))
        return seen if seen and seen.get("revision") == revision else None

    return wait_for(probe, timeout=20, what=f"{namespace}/{name} at revision {revision}")


def _two_revisions(kube: KubeCluster, admin: KubePaths, namespace: str) -> list[Doc]:
    """Deployment iris at v1 (recorded healthy), then v2; the healthy revisions."""
    kube.apply(_deployment("iris", "iris:v1"), "-n", namespace)
    healthy = record_healthy([], _settled(admin, namespace, "iris", "1"), _now())
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "model", "image": "iris:v2"}]}}}
    }
    kube.kubectl("patch", "deployment", "iris", "-n", namespace, "-p", json.dumps(patch))
    _settled(admin, namespace, "iris", "2")
    return healthy


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _request(action: str, namespace: str, healthy: list[Doc]) -> ActionRequest:
    return ActionRequest(
        id=f"inc-rbac-{action}-1",
        action=action,
        namespace=namespace,
        monitor="iris-monitor",
        monitor_uid="uid",
        incident="inc-rbac",
        trigger="slo",
        reason="error budget burning",
        healthy_revisions=tuple(healthy),
    )


@pytest.fixture
def namespace_b(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"t-rbac-b-{release_name('x')[-6:]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def _client(kubeconfig: Path) -> Any:
    return kube_config.new_client_from_config(config_file=str(kubeconfig))


def test_namespaced_install_confines_the_actions_to_its_namespace(
    cluster: KubeCluster,
    namespace: str,
    namespace_b: str,
    tmp_path: Path,
) -> None:
    a, b = namespace, namespace_b
    release = release_name("rbac")
    fullname = f"{release}-modelmonitor"
    install = ["-n", a, "--set=scope=namespace", f"--set=watchNamespaces={{{a}}}"]
    install += ["--set=leaderElection.enabled=false"]
    cluster.helm("install", release, str(CHART), *install, "--set=rbac.actions.retrain=true")

    admin_client = _client(cluster.kubeconfig)
    sa_client = _client(sa_kubeconfig(cluster, a, fullname, tmp_path / "kubeconfig"))
    try:
        admin = KubePaths(admin_client)
        operator = RecordingApi(KubePaths(sa_client))
        healthy = {ns: _two_revisions(cluster, admin, ns) for ns in (a, b)}
        spec = parse_spec(
            {
                "target": {"name": "iris"},
                "reference": {"configMapRef": {"name": "iris-reference", "key": "reference.csv"}},
                "actions": {"scale": {"maxReplicas": 3}},
            }
        )

        # A: allowed, and the calls made are in the table.
        rolled = execute_rollback(operator, spec, _request("rollback", a, healthy[a]))
        assert rolled.outcome == Outcome.SUCCEEDED, rolled
        assert operator.calls == EXECUTOR_CALLS["rollback"]
        operator.calls.clear()
        scaled = execute_scale(operator, spec, _request("scale", a, []))
        assert scaled.outcome == Outcome.SUCCEEDED, scaled
        assert operator.calls <= EXECUTOR_CALLS["scale"]

        # B: refused by RBAC, nothing changed.
        path_b = f"/apis/apps/v1/namespaces/{b}/deployments/iris"
        before = admin.get(path_b)
        assert before is not None
        for execute, action in ((execute_rollback, "rollback"), (execute_scale, "scale")):
            result = execute(operator, spec, _request(action, b, healthy[b]))
            assert result.outcome == Outcome.FAILED, result
            assert "HTTP 403" in result.message, result
            assert "forbidden" in result.message, result
        after = admin.get(path_b)
        assert after is not None
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["spec"] == before["spec"]
    finally:
        sa_client.close()
        admin_client.close()

    sa = f"system:serviceaccount:{a}:{fullname}"
    for verb, resource in (
        ("patch", "deployments.apps"),
        ("list", "replicasets.apps"),
        ("patch", "horizontalpodautoscalers.autoscaling"),
        ("get", "secrets"),
        ("create", "jobs.batch"),
    ):
        assert can_i(cluster, sa, verb, resource, "-n", a), (verb, resource)
        assert not can_i(cluster, sa, verb, resource, "-n", b), (verb, resource)
    for verb, resource in (
        ("list", "secrets"),
        ("delete", "deployments.apps"),
        ("update", "deployments.apps"),
        ("patch", "replicasets.apps"),
        ("delete", "jobs.batch"),
    ):
        assert not can_i(cluster, sa, verb, resource, "-n", a), (verb, resource)
    assert not can_i(cluster, sa, "patch", "deployments.apps", "--subresource=scale", "-n", a)

    # retrain off: no Jobs, even in A.
    cluster.helm("upgrade", release, str(CHART), *install, "--set=rbac.actions.retrain=false")
    assert not can_i(cluster, sa, "create", "jobs.batch", "-n", a)
    assert not can_i(cluster, sa, "list", "jobs.batch", "-n", a)
    assert can_i(cluster, sa, "patch", "deployments.apps", "-n", a)  # the rest stays
