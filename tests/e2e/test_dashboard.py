"""The Grafana dashboard's every PromQL expression is accepted by a real Prometheus,
and its panels find the operator's real metrics once it has run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.kube import KubeCluster
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import monitor, setup, wait_status
from tests.modelserver import ModelServer
from tests.prometheus import PrometheusServer, ScrapeTarget

DASHBOARD = Path(__file__).resolve().parents[2] / "charts/modelmonitor/dashboards/modelmonitor.json"
# What Grafana substitutes before sending a query.
GRAFANA_VARIABLES = {"$namespace": ".*", "$monitor": ".*", "$__rate_interval": "1m"}


def expressions() -> list[tuple[str, str]]:
    doc = json.loads(DASHBOARD.read_text())
    # Template variables use Grafana's label_values(), not PromQL: only panel targets.
    return [(p["title"], t["expr"]) for p in doc["panels"] for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def test_dashboard_has_the_panels_it_promises() -> None:
    titles = {title for title, _ in expressions()}
    for wanted in ("Feature drift scores", "SLO burn rates", "Error budget remaining", "Actions"):
        assert wanted in titles
    metrics = " ".join(expr for _, expr in expressions())
    for name in (
        "modelmonitor_feature_drift_score",
        "modelmonitor_dataset_drift_share",
        "modelmonitor_slo_burn_rate",
        "modelmonitor_slo_error_budget_remaining",
        "modelmonitor_actions_total",
    ):
        assert name in metrics


@pytest.mark.parametrize(("title", "expr"), expressions(), ids=[t for t, _ in expressions()])
def test_every_expression_is_valid_promql(
    prometheus: PrometheusServer, title: str, expr: str
) -> None:
    # The harness raises with Prometheus' own message on a 4xx/5xx answer.
    result: Any = prometheus.query(substitute(expr))
    assert isinstance(result, list), title


def test_panels_show_a_real_operator(
    operator_process: OperatorProcess,
    namespace: str,
    model_server: ModelServer,
    prometheus: PrometheusServer,
) -> None:
    """Prometheus scrapes the operator; after a run the drift and SLO panels have data."""
    port = operator_process.args[operator_process.args.index("--metrics-port") + 1]
    prometheus.add_target(ScrapeTarget(job="modelmonitor", address=f"127.0.0.1:{port}"))
    cluster = operator_process.cluster
    setup(cluster, namespace)
    slos = [{"name": "errors", "objective": 99, "errorRatio": {}}]
    cluster.apply(monitor("dash", model_server.url, "iris", slos=slos), "-n", namespace)
    wait_status(cluster, namespace, "dash", lambda s: "lastRun" in s, "a finished run")
    by_title = dict(expressions())
    for title in ("Dataset drift share", "Feature drift scores", "SLO burn rates"):
        expr = substitute(by_title[title]).replace('=~".*"', f'=~"{namespace}"', 1)
        assert prometheus.wait_for(expr, timeout=30), title


def test_chart_ships_the_dashboard(kube_cluster: KubeCluster) -> None:
    chart = DASHBOARD.parents[1]
    rendered = kube_cluster.helm(
        "template",
        "t",
        str(chart),
        "--kube-version",
        "1.37.2",
        "--show-only",
        "templates/grafana-dashboard.yaml",
    ).stdout
    cm = yaml.safe_load(rendered)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["modelmonitor.json"]) == json.loads(DASHBOARD.read_text())
