"""The Helm chart and the plain manifests against a real API server.

``helm lint`` and ``helm template`` check the chart itself; the rendered objects (both
scopes) and manifests/ then go to the API server with a server-side dry run, which runs
its validation, defaulting and admission (Pod Security included). ``helm install``
really creates the objects: the ReplicaSet controller turns the Deployment into a pod
(which stays Pending without a node), and ``kubectl auth can-i`` asks the API server's
RBAC what the operator's ServiceAccount may do. ``helm uninstall`` removes it all again.

The operator running with exactly what an install grants is tested in
test_installed_operator.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from functools import partial

import pytest
import yaml

from tests.cluster.kube import CommandError, KubeCluster, wait_for
from tests.e2e.chart_fixtures import (
    CHART,
    CRDS,
    MANIFESTS,
    Doc,
    can_i,
    helm_template,
    release_name,
    with_chart_crds,
)
from tests.unit.test_packaging import (
    ACTION_GRANTS,
    CLUSTER_ONLY_GRANTS,
    JOB_MODE_OPERATOR_GRANTS,
    JOB_RUN_GRANTS,
    LEASE_GRANTS,
    MONITORING_GRANTS,
    PAYLOAD_TOKEN_GRANTS,
    PROMETHEUS_AUTH_GRANTS,
    assert_restricted_pod,
    by_kind,
    env_of,
    grants,
)

RESTRICTED_WARNING = "would violate PodSecurity"


@pytest.fixture(scope="module")
def cluster(kube_cluster: KubeCluster) -> KubeCluster:
    return with_chart_crds(kube_cluster)


def _restricted(cluster: KubeCluster, namespace: str, mode: str) -> None:
    cluster.kubectl(
        "label", "namespace", namespace, f"pod-security.kubernetes.io/{mode}=restricted"
    )


def _dry_run(cluster: KubeCluster, docs: list[Doc] | str, *extra: str) -> str:
    """Server-side dry run of ``docs``; returns kubectl's stderr (warnings)."""
    text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", *extra, input=text)
    return proc.stderr


# -- chart: lint and render -----------------------------------------------------------------
def test_helm_lint_passes(cluster: KubeCluster) -> None:
    cluster.helm("lint", "--strict", str(CHART))
    cluster.helm(
        "lint",
        "--strict",
        str(CHART),
        "--set=scope=namespace",
        "--set=watchNamespaces={ml,ml-staging}",
        "--set=replicas=2",
        "--set=serviceMonitor.enabled=true",
    )


def test_chart_renders_a_restricted_pod_wired_to_the_settings(cluster: KubeCluster) -> None:
    docs = helm_template(cluster, "ops", "logFormat=text", "logLevel=DEBUG", "metrics.port=9100")
    (deployment,) = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert_restricted_pod(pod)
    env = env_of(pod["containers"][0])
    assert env["WATCH_NAMESPACES"] == "*"
    assert env["LOG_FORMAT"] == "text"
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["METRICS_PORT"] == "9100"
    assert env["LEASE_NAME"] == "mm-modelmonitor"
    assert env["LEASE_DURATION_SECONDS"] == "10"
    assert "STANDALONE" not in env
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    assert set(services) == {"mm-modelmonitor-metrics", "mm-modelmonitor-payload"}
    for name, service in services.items():
        assert service["spec"]["ports"][0]["targetPort"] == name.rsplit("-", 1)[1]
        selector = service["spec"]["selector"]
        assert selector.items() <= deployment["spec"]["selector"]["matchLabels"].items()
    assert env["PAYLOAD_PORT"] == "8082"
    assert not by_kind(docs, "ServiceMonitor")
    assert not by_kind(docs, "PodDisruptionBudget")
    assert not [d for d in docs if d["apiVersion"] == "kopf.dev/v1"]
    (lease_role,) = [
        r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader-election")
    ]
    assert lease_role["metadata"]["namespace"] == "ops"
    assert lease_role["rules"][0]["resourceNames"] == ["mm-modelmonitor"]


def test_chart_cluster_scope_grants_what_the_manifests_grant(cluster: KubeCluster) -> None:
    docs = helm_template(cluster, "ops")
    roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
    assert grants(roles["mm-modelmonitor"]) == MONITORING_GRANTS | CLUSTER_ONLY_GRANTS
    default_actions = {"rollback", "scale", "notify", "kserve"}
    assert grants(roles["mm-modelmonitor-actions"]) == set().union(
        *(ACTION_GRANTS[a] for a in default_actions)
    )
    # the only Role: the leader Lease's, in the release namespace, as in manifests/
    (lease_role,) = by_kind(docs, "Role")
    assert lease_role["metadata"]["name"] == "mm-modelmonitor-leader-election"
    assert grants(lease_role) == LEASE_GRANTS


def test_chart_action_toggles(cluster: KubeCluster) -> None:
    off = [f"rbac.actions.{a}=false" for a in ACTION_GRANTS]
    people = ["mm-modelmonitor-admin", "mm-modelmonitor-edit", "mm-modelmonitor-view"]
    # for people (aggregated into admin/edit/view), bound to nobody
    # The payload-log token and Prometheus credential roles are no action's: they stay
    # until turned off themselves.
    docs = helm_template(cluster, "ops", *off)
    assert sorted(d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")) == sorted(
        [
            "mm-modelmonitor",
            "mm-modelmonitor-payload-tokens",
            "mm-modelmonitor-prometheus-auth",
            *people,
        ]
    )
    # monitoring, payload tokens, Prometheus credentials
    assert len(by_kind(docs, "ClusterRoleBinding")) == 3
    off += ["rbac.payloadLogTokens=false", "rbac.prometheusAuth=false"]
    docs = helm_template(cluster, "ops", *off)
    assert sorted(d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")) == sorted(
        ["mm-modelmonitor", *people]
    )
    assert len(by_kind(docs, "ClusterRoleBinding")) == 1
    for action, expected in ACTION_GRANTS.items():
        only = [s for s in off if not s.startswith(f"rbac.actions.{action}=")]
        docs = helm_template(cluster, "ops", *only, f"rbac.actions.{action}=true")
        roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
        assert grants(roles["mm-modelmonitor-actions"]) == expected, action


def test_chart_namespace_scope_has_roles_per_namespace_and_nothing_cluster_wide(
    cluster: KubeCluster,
) -> None:
    docs = helm_template(cluster, "ops", "scope=namespace", "watchNamespaces={ml,ml-staging}")
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", "KopfPeering"}
    for kind in ("Role", "RoleBinding"):
        namespaces = sorted(d["metadata"]["namespace"] for d in by_kind(docs, kind))
        # Roles: monitoring, actions, payload-log tokens, Prometheus credentials in each;
        # the leader Lease's in the release namespace
        expected = ["ml", "ml-staging"] * 4 + ["ops"]
        assert namespaces == sorted(expected), kind
    for role in by_kind(docs, "Role"):
        if role["metadata"]["name"].endswith("-payload-tokens"):
            assert grants(role) == PAYLOAD_TOKEN_GRANTS
        elif role["metadata"]["name"].endswith("-prometheus-auth"):
            assert grants(role) == PROMETHEUS_AUTH_GRANTS
        elif role["metadata"]["name"].endswith("-leader-election"):
            assert grants(role) == LEASE_GRANTS
            assert role["metadata"]["namespace"] == "ops"
        elif not role["metadata"]["name"].endswith("-actions"):
            assert grants(role) == MONITORING_GRANTS
    for binding in by_kind(docs, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == "ops"
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "ml,ml-staging"
    assert env["SCOPE"] == "namespace"


def _run_accounts(docs: list[Doc]) -> list[Doc]:
    """ServiceAccounts outside the release namespace ("ops"): those of job-mode runs."""
    return [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["namespace"] != "ops"]


def test_chart_job_mode_gives_runs_their_service_account(cluster: KubeCluster) -> None:
    off = helm_template(cluster, "ops", "scope=namespace", "watchNamespaces={ml,ml-staging}")
    assert len(by_kind(off, "ServiceAccount")) == 1  # the operator's only
    docs = helm_template(
        cluster, "ops", "scope=namespace", "watchNamespaces={ml,ml-staging}", "jobMode.enabled=true"
    )
    run_accounts = _run_accounts(docs)
    assert sorted(d["metadata"]["namespace"] for d in run_accounts) == ["ml", "ml-staging"]
    assert {d["metadata"]["name"] for d in run_accounts} == {"modelmonitor-job"}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in by_kind(docs, "Role")}
    for ns in ("ml", "ml-staging"):
        assert grants(roles[(ns, "mm-modelmonitor-job")]) == JOB_RUN_GRANTS
        # The operator's job-mode rule is a Role of its own, apart from monitoring and
        # from retrain (rbac.actions.retrain, off here): toggled independently.
        assert grants(roles[(ns, "mm-modelmonitor")]) == MONITORING_GRANTS
        assert grants(roles[(ns, "mm-modelmonitor-job-mode")]) == JOB_MODE_OPERATOR_GRANTS
        actions = grants(roles[(ns, "mm-modelmonitor-actions")])
        assert not {g for g in actions if g[1] == "jobs"}
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["JOB_SERVICE_ACCOUNT"] == "modelmonitor-job"

    # Runs that read a Secret themselves (object storage, Prometheus credentials): get,
    # never list, and only with jobMode.readSecrets.
    def run_grants(*values: str) -> set[tuple[str, str, str]]:
        docs = helm_template(
            cluster, "ops", "jobMode.enabled=true", "jobMode.namespaces={ml}", *values
        )
        (role,) = [
            d for d in by_kind(docs, "Role") if d["metadata"]["name"] == "mm-modelmonitor-job"
        ]
        return grants(role)

    assert run_grants() == JOB_RUN_GRANTS
    assert run_grants("jobMode.readSecrets=true") == JOB_RUN_GRANTS | {("", "secrets", "get")}
    # Cluster scope: only the namespaces listed, and Jobs nowhere else.
    docs = helm_template(cluster, "ops", "jobMode.enabled=true", "jobMode.namespaces={ml}")
    run_accounts = _run_accounts(docs)
    assert [d["metadata"]["namespace"] for d in run_accounts] == ["ml"]
    for role in by_kind(docs, "ClusterRole"):
        assert not {g for g in grants(role) if g[1] == "jobs"}, role["metadata"]["name"]
    job_roles = [d for d in by_kind(docs, "Role") if grants(d) == JOB_MODE_OPERATOR_GRANTS]
    assert [d["metadata"]["namespace"] for d in job_roles] == ["ml"]
    assert (
        env_of(by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])[
            "RETRAIN_SERVICE_ACCOUNTS"
        ]
        == "default"
    )
    docs = helm_template(cluster, "ops", "retrain.serviceAccounts={default,trainer}")
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["RETRAIN_SERVICE_ACCOUNTS"] == "default,trainer"


def test_chart_namespace_scope_defaults_to_the_release_namespace(cluster: KubeCluster) -> None:
    docs = helm_template(cluster, "ops", "scope=namespace")
    assert {d["metadata"]["namespace"] for d in by_kind(docs, "Role")} == {"ops"}
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "ops"


def test_chart_cluster_scope_with_patterns(cluster: KubeCluster) -> None:
    docs = helm_template(cluster, "ops", "watchNamespaces={ml-prod,ml-*}")
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["WATCH_NAMESPACES"] == "ml-prod,ml-*"
    assert not [d for d in docs if d["apiVersion"] == "kopf.dev/v1"]
    assert by_kind(docs, "ClusterRole")


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("scope=galaxy",), "at '/scope': value must be one of 'cluster', 'namespace'"),
        (("logFormat=xml",), "at '/logFormat'"),
        (("replica=2",), "additional properties 'replica' not allowed"),
        (("rbac.actions.rolback=true",), "additional properties 'rolback' not allowed"),
        (("scope=namespace", "watchNamespaces={ml-*}"), "is a pattern"),
        (("scope=namespace", "watchNamespaces={*}"), "needs scope: cluster"),
        (("serviceMonitor.enabled=true", "metrics.service.enabled=false"), "needs metrics"),
        (("jobMode.enabled=true",), "list jobMode.namespaces"),
        (("retrain.serviceAccounts={}",), "at '/retrain/serviceAccounts/0'"),
        (("retrain.serviceAccount={x}",), "additional properties 'serviceAccount' not allowed"),
        (("outbound.allowCIDRs={metadata}",), "at '/outbound/allowCIDRs/0'"),
        (("outbound.maxResponseBytes.probe=0",), "at '/outbound/maxResponseBytes/probe'"),
        (("outbound.networkPolicy.egress={}",), "additional properties 'egress' not allowed"),
    ],
)
def test_chart_refuses_inconsistent_values(
    cluster: KubeCluster, sets: tuple[str, ...], message: str
) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        helm_template(cluster, "ops", *sets)


def test_chart_optional_objects(cluster: KubeCluster) -> None:
    docs = helm_template(
        cluster,
        "ops",
        "replicas=2",
        "serviceMonitor.enabled=true",
        "serviceMonitor.labels.release=prom",
        "leaderElection.enabled=false",
        "image.digest=sha256:" + "0" * 64,
    )
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    (deployment,) = by_kind(docs, "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert not [d for d in docs if d["apiVersion"] == "kopf.dev/v1"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert env_of(container)["STANDALONE"] == "true"
    # no Lease is taken, but the name stays: it names a shard (shard.labelSelector)
    assert env_of(container)["LEASE_NAME"] == "mm-modelmonitor"
    assert not [r for r in by_kind(docs, "Role") if "leader-election" in r["metadata"]["name"]]
    assert container["image"].endswith("@sha256:" + "0" * 64)
    assert env_of(container)["JOB_IMAGE"] == container["image"]
    assert deployment["spec"]["replicas"] == 2


def test_chart_outbound_fence_settings(cluster: KubeCluster) -> None:
    """The fence's defaults refuse loopback and link-local; the values reach the env."""
    docs = helm_template(cluster, "ops")
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["OUTBOUND_ALLOW_CIDRS"] == ""
    assert env["OUTBOUND_MAX_REDIRECTS"] == "3"
    assert env["OUTBOUND_MAX_PROBE_BYTES"] == str(1 << 20)
    assert env["OUTBOUND_MAX_PROMETHEUS_BYTES"] == str(8 << 20)
    assert env["OUTBOUND_MAX_REFERENCE_BYTES"] == str(64 << 20)
    assert env["OUTBOUND_MAX_WEBHOOK_BYTES"] == str(64 << 10)
    assert env["OUTBOUND_BUFFER_BYTES"] == str(256 << 20)
    assert not by_kind(docs, "NetworkPolicy")  # off by default
    docs = helm_template(
        cluster,
        "ops",
        "outbound.allowCIDRs={127.0.0.0/8,10.1.0.0/16}",
        "outbound.maxRedirects=0",
        "outbound.maxResponseBytes.probe=65536",
        "outbound.bufferBytes=1073741824",
    )
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["OUTBOUND_ALLOW_CIDRS"] == "127.0.0.0/8,10.1.0.0/16"
    assert env["OUTBOUND_MAX_REDIRECTS"] == "0"
    assert env["OUTBOUND_MAX_PROBE_BYTES"] == "65536"
    assert env["OUTBOUND_BUFFER_BYTES"] == "1073741824"  # not 1.073741824e+09


def test_chart_egress_network_policy(cluster: KubeCluster, namespace: str) -> None:
    """Enabled, it selects the operator's pod and allows DNS, the API server and the
    admin's extra rules only; the API server accepts it."""
    extra = "outbound.networkPolicy.extraEgress[0]"
    docs = helm_template(
        cluster,
        namespace,
        "outbound.networkPolicy.enabled=true",
        "outbound.networkPolicy.apiServerCIDRs={10.0.0.1/32}",
        f"{extra}.to[0].namespaceSelector.matchLabels.team=ml",
        f"{extra}.ports[0].port=8080",
        release=release_name("np"),
    )
    (deployment,) = by_kind(docs, "Deployment")
    (policy,) = by_kind(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert spec["policyTypes"] == ["Egress"]
    dns, api, more = spec["egress"]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert "to" not in dns
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert {p["port"] for p in api["ports"]} == {443, 6443}
    assert more == {
        "to": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
        "ports": [{"port": 8080}],
    }
    _dry_run(cluster, [policy])
    # Without the API server's CIDRs: its ports anywhere but the link-local range.
    docs = helm_template(cluster, "ops", "outbound.networkPolicy.enabled=true")
    (policy,) = by_kind(docs, "NetworkPolicy")
    (block,) = policy["spec"]["egress"][1]["to"]
    assert block == {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}


def test_chart_payload_tokens_role_and_ingress_policy(cluster: KubeCluster) -> None:
    docs = helm_template(
        cluster,
        "pl",
        "payloadLog.networkPolicy.enabled=true",
        "payloadLog.networkPolicy.namespaceSelector.matchLabels.team=ml",
        "payloadLog.networkPolicy.podSelector.matchLabels.component=predictor",
    )
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    assert grants(roles["mm-modelmonitor-payload-tokens"]) == PAYLOAD_TOKEN_GRANTS
    assert grants(roles["mm-modelmonitor-prometheus-auth"]) == PROMETHEUS_AUTH_GRANTS
    no_prometheus_auth = helm_template(cluster, "pl", "rbac.prometheusAuth=false")
    assert not [d for d in no_prometheus_auth if d["metadata"]["name"].endswith("-prometheus-auth")]
    (deployment,) = by_kind(docs, "Deployment")
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    assert env["PAYLOAD_URL"].startswith("http://mm-modelmonitor-payload.pl.")
    assert env["PAYLOAD_URL"].endswith(".svc:8082")
    assert env["PAYLOAD_MAX_BYTES"] == "268435456"
    (policy,) = by_kind(docs, "NetworkPolicy")
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == (deployment["spec"]["selector"]["matchLabels"])
    )
    collector, others = policy["spec"]["ingress"]
    assert collector["ports"] == [{"port": "payload", "protocol": "TCP"}]
    (source,) = collector["from"]
    assert source["namespaceSelector"] == {"matchLabels": {"team": "ml"}}
    assert source["podSelector"] == {"matchLabels": {"component": "predictor"}}
    assert {p["port"] for p in others["ports"]} == {"metrics", "health"}
    off = helm_template(cluster, "pl", "rbac.payloadLogTokens=false")
    assert not by_kind(off, "NetworkPolicy")
    assert not [d for d in off if d["metadata"]["name"].endswith("-payload-tokens")]


# -- server-side dry runs ---------------------------------------------------------------------
def test_chart_cluster_scope_passes_server_dry_run(cluster: KubeCluster, namespace: str) -> None:
    _restricted(cluster, namespace, "warn")
    docs = helm_template(cluster, namespace, release=release_name("dry"))
    warnings = _dry_run(cluster, docs)
    assert RESTRICTED_WARNING not in warnings


def test_chart_namespace_scope_passes_server_dry_run(cluster: KubeCluster, namespace: str) -> None:
    _restricted(cluster, namespace, "warn")
    docs = helm_template(
        cluster,
        namespace,
        "scope=namespace",
        f"watchNamespaces={{{namespace}}}",
        "replicas=2",
        "rbac.actions.retrain=true",
        "jobMode.enabled=true",
        release=release_name("dry"),
    )
    assert by_kind(docs, "PodDisruptionBudget")
    warnings = _dry_run(cluster, docs)
    assert RESTRICTED_WARNING not in warnings


def test_manifests_cluster_install_passes_server_dry_run(
    cluster: KubeCluster, namespace: str
) -> None:
    # The same text, placed in an existing namespace (a dry run creates none).
    _restricted(cluster, namespace, "warn")
    docs = [
        d
        for d in yaml.safe_load_all(
            (MANIFESTS / "install.yaml").read_text().replace("modelmonitor-system", namespace)
        )
        if d and d["kind"] != "Namespace"
    ]
    warnings = _dry_run(cluster, docs)
    assert RESTRICTED_WARNING not in warnings
    # And the Namespace object itself, and the CRDs as manifests/ ships them.
    _dry_run(cluster, (MANIFESTS / "install.yaml").read_text().split("\n---\n", 1)[0])
    cluster.kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS / "crds"))


def test_manifests_namespaced_install_passes_server_dry_run(
    cluster: KubeCluster, namespace: str
) -> None:
    _restricted(cluster, namespace, "warn")
    text = (MANIFESTS / "install-namespaced.yaml").read_text()
    warnings = _dry_run(cluster, text, "-n", namespace)
    assert RESTRICTED_WARNING not in warnings
    _dry_run(cluster, (MANIFESTS / "job-mode.yaml").read_text(), "-n", namespace)


# -- real installs ----------------------------------------------------------------------------
@pytest.fixture
def other_namespace(cluster: KubeCluster) -> Iterator[str]:
    name = f"t-other-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def _gone(cluster: KubeCluster, *ref: str) -> bool:
    out = cluster.kubectl("get", *ref, "--ignore-not-found", "-o", "name").stdout
    return not out.strip()


def _pod_created(cluster: KubeCluster, namespace: str, selector: str) -> Doc | None:
    pods = cluster.get("pods", "-n", namespace, "-l", selector)["items"]
    return pods[0] if pods else None


def test_manifests_namespaced_install_really_applies_with_least_privilege(
    cluster: KubeCluster, namespace: str, other_namespace: str
) -> None:
    _restricted(cluster, namespace, "enforce")
    text = (MANIFESTS / "install-namespaced.yaml").read_text()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)
    # The ReplicaSet controller could create the pod: it passes "restricted" admission.
    pod = wait_for(
        lambda: _pod_created(cluster, namespace, "app.kubernetes.io/name=modelmonitor"),
        timeout=60,
        what="operator pod created",
    )
    assert pod["spec"]["serviceAccountName"] == "modelmonitor"
    sa = f"system:serviceaccount:{namespace}:modelmonitor"
    here = ("-n", namespace)
    assert can_i(cluster, sa, "watch", "modelmonitors.modelmonitor.io", *here)
    assert can_i(
        cluster, sa, "patch", "modelmonitors.modelmonitor.io", "--subresource=status", *here
    )
    assert can_i(cluster, sa, "update", "leases.coordination.k8s.io/modelmonitor", *here)
    assert not can_i(cluster, sa, "update", "leases.coordination.k8s.io/other", *here)
    assert can_i(cluster, sa, "create", "events", *here)
    assert can_i(cluster, sa, "get", "secrets", *here)  # the actions role: notify
    assert not can_i(cluster, sa, "list", "secrets", *here)
    assert not can_i(cluster, sa, "delete", "deployments.apps", *here)
    assert not can_i(cluster, sa, "list", "modelmonitors.modelmonitor.io", "-n", other_namespace)
    assert not can_i(cluster, sa, "list", "namespaces")
    cluster.kubectl("delete", "-n", namespace, "-f", "-", "--wait=true", input=text)


def test_helm_install_and_uninstall(
    cluster: KubeCluster, namespace: str, other_namespace: str
) -> None:
    _restricted(cluster, namespace, "enforce")
    release = release_name("mm")
    fullname = f"{release}-modelmonitor"
    cluster.helm(
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--set=rbac.actions.notify=false",
        "--set=rbac.payloadLogTokens=false",  # no other Secret rights either
        "--set=rbac.prometheusAuth=false",
        "--set=replicas=2",
    )
    status = cluster.helm("status", release, "-n", namespace, "-o", "json").stdout
    assert '"status":"deployed"' in status.replace(" ", "")

    deployment = cluster.get("deployment", fullname, "-n", namespace)
    assert deployment["spec"]["replicas"] == 2
    cluster.get("serviceaccount", fullname, "-n", namespace)
    cluster.get("service", f"{fullname}-metrics", "-n", namespace)
    cluster.get("poddisruptionbudget", fullname, "-n", namespace)
    cluster.get("clusterrole", fullname)
    cluster.get("clusterrolebinding", f"{fullname}-actions")
    cluster.get("role", f"{fullname}-leader-election", "-n", namespace)
    selector = f"app.kubernetes.io/instance={release}"
    wait_for(
        lambda: _pod_created(cluster, namespace, selector),
        timeout=60,
        what="operator pod created",
    )

    sa = f"system:serviceaccount:{namespace}:{fullname}"
    assert can_i(cluster, sa, "list", "modelmonitors.modelmonitor.io", "-A")
    assert can_i(cluster, sa, "watch", "namespaces")
    assert can_i(cluster, sa, "watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert can_i(cluster, sa, "update", f"leases.coordination.k8s.io/{fullname}", "-n", namespace)
    assert not can_i(cluster, sa, "update", "leases.coordination.k8s.io", "-n", other_namespace)
    assert can_i(cluster, sa, "patch", "deployments.apps", "-n", other_namespace)
    assert not can_i(cluster, sa, "get", "secrets", "-n", other_namespace)  # notify off
    assert not can_i(cluster, sa, "create", "jobs.batch", "-n", other_namespace)  # retrain off
    assert not can_i(cluster, sa, "delete", "deployments.apps", "-n", other_namespace)

    cluster.helm("uninstall", release, "-n", namespace, "--wait", "--timeout=60s")
    for ref in (
        ("deployment", fullname, "-n", namespace),
        ("serviceaccount", fullname, "-n", namespace),
        ("clusterrole", fullname),
        ("clusterrole", f"{fullname}-actions"),
        ("clusterrolebinding", fullname),
        ("role", f"{fullname}-leader-election", "-n", namespace),
    ):
        wait_for(partial(_gone, cluster, *ref), timeout=30, what=f"{' '.join(ref[:2])} removed")
    # CRDs stay (Helm never deletes crds/), so existing ModelMonitors survive an uninstall.
    for crd in CRDS:
        cluster.get("crd", crd)
