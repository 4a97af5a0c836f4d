"""The shipped alert rules in a real Prometheus that scrapes a real operator.

charts/modelmonitor/files/alerts/modelmonitor.rules.yaml is loaded as is, except that
every ``for`` is 0s so the test need not wait minutes: a monitor whose model cannot be
reached turns Degraded, and ModelMonitorDegraded fires for it in Prometheus' own
/api/v1/alerts, with its labels and annotations filled in; the alerts for a down
operator and a late monitor stay quiet, since the operator is scraped and runs on time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, start_http_server

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.status import Phase
from tests.cluster.kube import wait_for
from tests.e2e.operator_fixtures import OperatorProcess
from tests.e2e.test_runs import monitor, setup, wait_status
from tests.prometheus import PrometheusServer, ScrapeTarget, free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "modelmonitor" / "files" / "alerts" / "modelmonitor.rules.yaml"


def _without_delay(path: Path) -> Path:
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _ours(prometheus: PrometheusServer, namespace: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prometheus.alerts()
        if a["labels"].get("namespace") in (namespace, None) and a["state"] == "firing"
    ]


def test_degraded_monitor_fires_its_alert(
    operator_process: OperatorProcess,
    namespace: str,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> None:
    port = operator_process.args[operator_process.args.index("--metrics-port") + 1]
    prometheus.add_target(ScrapeTarget(job="modelmonitor", address=f"127.0.0.1:{port}"))
    prometheus.set_rule_files([_without_delay(tmp_path / "modelmonitor.rules.yaml")])
    try:
        cluster = operator_process.cluster
        setup(cluster, namespace)
        doc = monitor("down", "http://127.0.0.1:9", "iris")
        doc["spec"]["data"]["probe"].update({"retries": 0, "timeoutSeconds": 1})
        cluster.apply(doc, "-n", namespace)
        wait_status(cluster, namespace, "down", lambda s: s.get("phase") == "Degraded", "Degraded")

        def fired() -> dict[str, Any] | None:
            for alert in _ours(prometheus, namespace):
                if alert["labels"]["alertname"] == "ModelMonitorDegraded":
                    return alert
            return None

        alert = wait_for(fired, timeout=30, interval=0.5, what="ModelMonitorDegraded firing")
        assert alert["labels"] == {
            "alertname": "ModelMonitorDegraded",
            "namespace": namespace,
            "monitor": "down",
            "severity": "warning",
        }
        assert alert["annotations"]["summary"] == f"ModelMonitor {namespace}/down cannot monitor"
        assert alert["annotations"]["runbook_url"].endswith("docs/alerts.md#modelmonitordegraded")
        # The operator is scraped and the monitor runs on schedule: nothing else fires.
        assert {a["labels"]["alertname"] for a in _ours(prometheus, namespace)} == {
            "ModelMonitorDegraded"
        }
        assert (
            prometheus.query(
                f'modelmonitor_monitor_interval_seconds{{namespace="{namespace}",monitor="down"}}'
            )[0]["value"][1]
            == "10"
        )
        assert prometheus.query(
            f'time() - modelmonitor_monitor_last_run_timestamp_seconds{{namespace="{namespace}"}}'
            " < 30"
        )
    finally:
        prometheus.set_rule_files([])


def test_late_monitor_fires_from_the_recorders_own_series(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    """No cluster: the operator's metrics recorder, served and scraped, with a monitor
    Ready for 5 minutes at a 10 s interval and never run: ModelMonitorNoRecentRun fires
    for it, not for one that ran just now, nor for one that is not Ready."""
    metrics = MetricsRecorder(CollectorRegistry())
    port = free_port()
    server, _ = start_http_server(port, "127.0.0.1", registry=metrics.registry)
    now = dt.datetime.now(dt.UTC)
    metrics.record_schedule(
        "alerts", "late", interval=10.0, ready_since=now - dt.timedelta(minutes=5), last_run=None
    )
    metrics.record_schedule(
        "alerts", "fresh", interval=10.0, ready_since=now - dt.timedelta(minutes=5), last_run=now
    )
    metrics.record_schedule(
        "alerts", "invalid", interval=None, ready_since=None, last_run=now - dt.timedelta(hours=1)
    )
    metrics.set_phase("alerts", "invalid", Phase.INVALID)
    prometheus.add_target(ScrapeTarget(job="recorder", address=f"127.0.0.1:{port}"))
    prometheus.set_rule_files([_without_delay(tmp_path / "modelmonitor.rules.yaml")])
    try:

        def late() -> set[str] | None:
            firing = {
                a["labels"]["monitor"]
                for a in _ours(prometheus, "alerts")
                if a["labels"]["alertname"] == "ModelMonitorNoRecentRun"
            }
            return firing or None

        assert wait_for(late, timeout=30, interval=0.5, what="ModelMonitorNoRecentRun") == {"late"}
    finally:
        prometheus.set_rule_files([])
        prometheus.set_targets([t for t in prometheus.targets if t.job != "recorder"])
        server.shutdown()
