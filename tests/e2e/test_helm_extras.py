"""The chart's optional parts for a platform already running: the PrometheusRule, the
aggregated view/edit/admin ClusterRoles, extra volumes, pod labels and annotations, a
TLS scrape in the ServiceMonitor, and the DaskJob rights of ephemeral Dask clusters.
Rendered with ``helm template`` for the real API server's version; test_helm.py has the
rest of the chart.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.cluster.kube import CommandError, KubeCluster
from tests.e2e.chart_fixtures import MANIFESTS, helm_template, with_chart_crds
from tests.unit.test_alert_rules import PROMTOOL
from tests.unit.test_alert_rules import RULES as RULE_FILE
from tests.unit.test_packaging import (
    JOB_MODE_OPERATOR_GRANTS,
    JOB_RUN_GRANTS,
    assert_restricted_pod,
    by_kind,
    grants,
    load_docs,
)


@pytest.fixture(scope="module")
def cluster(kube_cluster: KubeCluster) -> KubeCluster:
    return with_chart_crds(kube_cluster)


def test_chart_prometheus_rule_renders_the_rule_file(cluster: KubeCluster, tmp_path: Path) -> None:
    """Off by default; on, the same alerts as the plain rule file, tuned by the values,
    and still accepted by promtool."""
    assert not by_kind(helm_template(cluster, "ops"), "PrometheusRule")
    docs = helm_template(
        cluster,
        "ops",
        "prometheusRule.enabled=true",
        "prometheusRule.labels.release=prom",
        "prometheusRule.ruleLabels.team=ml",
        "prometheusRule.runbookBaseURL=https://wiki.example/alerts",
        "prometheusRule.alerts.ModelMonitorDrifted.for=1h",
        "prometheusRule.alerts.ModelMonitorDrifted.severity=info",
        "prometheusRule.alerts.ModelMonitorOperatorDown.enabled=false",
        "prometheusRule.extraRules[0].alert=Custom",
        "prometheusRule.extraRules[0].expr=vector(1)",
    )
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "ops"
    assert rule["metadata"]["labels"]["release"] == "prom"
    source = yaml.safe_load(RULE_FILE.read_text())["groups"][0]["rules"]
    (group, extra) = rule["spec"]["groups"]
    by_name = {r["alert"]: r for r in group["rules"]}
    assert set(by_name) == {r["alert"] for r in source} - {"ModelMonitorOperatorDown"}
    assert extra["rules"] == [{"alert": "Custom", "expr": "vector(1)"}]
    for original in source:
        rendered = by_name.get(original["alert"])
        if rendered is None:
            continue
        assert rendered["expr"] == original["expr"]
        assert rendered["labels"]["team"] == "ml"
        url = rendered["annotations"]["runbook_url"]
        assert url == f"https://wiki.example/alerts#{original['alert'].lower()}"
        if original["alert"] != "ModelMonitorDrifted":
            assert rendered["for"] == original["for"]
            assert rendered["labels"]["severity"] == original["labels"]["severity"]
    assert by_name["ModelMonitorDrifted"]["for"] == "1h"
    assert by_name["ModelMonitorDrifted"]["labels"]["severity"] == "info"
    rendered_file = tmp_path / "rendered.rules.yaml"
    rendered_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(rendered_file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    with pytest.raises(CommandError, match="ModelMonitorDrifted"):
        helm_template(cluster, "ops", "prometheusRule.alerts.ModelMonitorDrift.for=1h")


def test_chart_user_roles_match_the_manifests(cluster: KubeCluster) -> None:
    """Aggregated view/edit/admin ClusterRoles: as in manifests/user-roles.yaml; a value
    turns them off; scope namespace ships none (it ships nothing cluster-wide)."""
    shipped = {d["metadata"]["name"]: d for d in load_docs(MANIFESTS / "user-roles.yaml")}
    docs = helm_template(cluster, "ops")
    roles = {d["metadata"]["name"]: d for d in by_kind(docs, "ClusterRole")}
    for builtin in ("view", "edit", "admin"):
        role = roles[f"mm-modelmonitor-{builtin}"]
        label = f"rbac.authorization.k8s.io/aggregate-to-{builtin}"
        assert role["metadata"]["labels"][label] == "true"
        assert grants(role) == grants(shipped[f"modelmonitor-{builtin}"]), builtin
    off = helm_template(cluster, "ops", "rbac.aggregateToDefaultRoles=false")
    assert {d["metadata"]["name"] for d in by_kind(off, "ClusterRole")} == set(roles) - {
        f"mm-modelmonitor-{builtin}" for builtin in ("view", "edit", "admin")
    }


def test_chart_pod_extras_and_tls_scrape(cluster: KubeCluster) -> None:
    volume = {"name": "ca", "configMap": {"name": "corp-ca"}}
    mount = {"name": "ca", "mountPath": "/etc/corp-ca", "readOnly": True}
    docs = helm_template(
        cluster,
        "ops",
        "extraVolumes[0].name=ca",
        "extraVolumes[0].configMap.name=corp-ca",
        "extraVolumeMounts[0].name=ca",
        "extraVolumeMounts[0].mountPath=/etc/corp-ca",
        "extraVolumeMounts[0].readOnly=true",
        "podLabels.team=ml",
        "podAnnotations.example\\.com/owner=ml-platform",
        "serviceMonitor.enabled=true",
        "serviceMonitor.scheme=https",
        "serviceMonitor.tlsConfig.serverName=modelmonitor.ops.svc",
        "serviceMonitor.tlsConfig.ca.configMap.name=corp-ca",
        "serviceMonitor.tlsConfig.ca.configMap.key=ca.crt",
    )
    (deployment,) = by_kind(docs, "Deployment")
    template = deployment["spec"]["template"]
    pod = template["spec"]
    assert pod["volumes"][-1] == volume
    assert pod["volumes"][0]["name"] == "tmp"
    assert pod["containers"][0]["volumeMounts"][-1] == mount
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["metadata"]["annotations"] == {"example.com/owner": "ml-platform"}
    assert_restricted_pod(pod)
    (monitor,) = by_kind(docs, "ServiceMonitor")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"] == {
        "serverName": "modelmonitor.ops.svc",
        "ca": {"configMap": {"name": "corp-ca", "key": "ca.crt"}},
    }
    plain = by_kind(helm_template(cluster, "ops", "serviceMonitor.enabled=true"), "ServiceMonitor")
    assert plain[0]["spec"]["endpoints"][0]["scheme"] == "http"
    assert "tlsConfig" not in plain[0]["spec"]["endpoints"][0]


def test_chart_shard_is_named_by_its_lease(cluster: KubeCluster) -> None:
    """shard.labelSelector reaches SHARD_LABEL_SELECTOR, and the shard is named by
    leaderElection.leaseName (its finalizer and annotations carry that name), with or
    without leader election."""
    for election in ("true", "false"):
        docs = helm_template(
            cluster,
            "ops",
            "shard.labelSelector=modelmonitor.io/shard=a",
            "leaderElection.leaseName=mm-a",
            f"leaderElection.enabled={election}",
        )
        (deployment,) = by_kind(docs, "Deployment")
        env = {
            e["name"]: e.get("value")
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["SHARD_LABEL_SELECTOR"] == "modelmonitor.io/shard=a"
        assert env["LEASE_NAME"] == "mm-a"
        assert ("STANDALONE" in env) == (election == "false")
    docs = helm_template(cluster, "ops")
    (deployment,) = by_kind(docs, "Deployment")
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SHARD_LABEL_SELECTOR" not in names  # every monitor by default


DASKJOB_GRANTS = {
    ("kubernetes.dask.org", "daskjobs", v) for v in ("create", "get", "list", "delete")
}


def test_chart_grants_daskjobs_only_when_asked_and_only_where_runs_are(
    cluster: KubeCluster,
) -> None:
    """rbac.daskJobs (spec.schedule.dask.cluster): off by default, like retrain; on, the
    operator may create DaskJobs in the job-mode namespaces and nowhere else."""
    base = ("jobMode.enabled=true", "jobMode.namespaces={ml}")
    for docs in (helm_template(cluster, "ops", *base), helm_template(cluster, "ops")):
        for role in [*by_kind(docs, "Role"), *by_kind(docs, "ClusterRole")]:
            assert not {g for g in grants(role) if g[0] == "kubernetes.dask.org"}
    docs = helm_template(cluster, "ops", *base, "rbac.daskJobs=true")
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in by_kind(docs, "Role")}
    assert grants(roles[("ml", "mm-modelmonitor-job-mode")]) == (
        JOB_MODE_OPERATOR_GRANTS | DASKJOB_GRANTS
    )
    elsewhere = [
        d
        for d in [*by_kind(docs, "Role"), *by_kind(docs, "ClusterRole")]
        if d["metadata"]["name"] != "mm-modelmonitor-job-mode"
    ]
    for role in elsewhere:
        assert not {g for g in grants(role) if g[0] == "kubernetes.dask.org"}, role["metadata"]
    # the run pods' own account gets nothing of it: only the operator creates DaskJobs
    assert grants(roles[("ml", "mm-modelmonitor-job")]) == JOB_RUN_GRANTS
