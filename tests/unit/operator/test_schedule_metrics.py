"""The gauges the "no recent run" alert compares (alerts/modelmonitor.rules.yaml)."""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.report import DriftSummary, Problem, Report
from modelmonitor.core.report_seal import REPORT_UNVERIFIED
from modelmonitor.core.verdict import decide

T0 = dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC)
LABELS = {"namespace": "ml", "monitor": "fraud"}


def _value(metrics: MetricsRecorder, name: str) -> float | None:
    return metrics.registry.get_sample_value(name, LABELS)


def _run(metrics: MetricsRecorder, started: dt.datetime) -> None:
    report = Report(started, 2.0, "inline", 10, DriftSummary("unavailable"))
    verdict = decide(report, {}, generation=1, now=report.finished)
    metrics.record_run("ml", "fraud", report, verdict, 0.0)


def test_ready_monitor_exports_interval_ready_time_and_last_run() -> None:
    metrics = MetricsRecorder(CollectorRegistry())
    metrics.record_schedule(
        "ml", "fraud", interval=60.0, ready_since=T0, last_run=T0 + dt.timedelta(minutes=5)
    )
    assert _value(metrics, "modelmonitor_monitor_interval_seconds") == 60.0
    assert _value(metrics, "modelmonitor_monitor_ready_timestamp_seconds") == T0.timestamp()
    assert _value(metrics, "modelmonitor_monitor_last_run_timestamp_seconds") == (
        T0.timestamp() + 300
    )


def test_a_run_sets_the_last_run_to_when_it_finished() -> None:
    metrics = MetricsRecorder(CollectorRegistry())
    _run(metrics, T0)
    assert _value(metrics, "modelmonitor_monitor_last_run_timestamp_seconds") == (
        T0.timestamp() + 2.0
    )


def test_stale_status_never_moves_the_last_run_back() -> None:
    """A reconcile may read status written before the run just recorded."""
    metrics = MetricsRecorder(CollectorRegistry())
    _run(metrics, T0)
    metrics.record_schedule("ml", "fraud", interval=60.0, ready_since=T0, last_run=T0)
    assert _value(metrics, "modelmonitor_monitor_last_run_timestamp_seconds") == (
        T0.timestamp() + 2.0
    )


def test_a_monitor_no_longer_ready_loses_interval_and_ready_time() -> None:
    """An Invalid monitor is not expected to run, so the alert must not call it late."""
    metrics = MetricsRecorder(CollectorRegistry())
    metrics.record_schedule("ml", "fraud", interval=60.0, ready_since=T0, last_run=T0)
    metrics.record_schedule("ml", "fraud", interval=None, ready_since=None, last_run=T0)
    assert _value(metrics, "modelmonitor_monitor_interval_seconds") is None
    assert _value(metrics, "modelmonitor_monitor_ready_timestamp_seconds") is None
    assert _value(metrics, "modelmonitor_monitor_last_run_timestamp_seconds") == T0.timestamp()


def test_forget_drops_the_schedule_series() -> None:
    metrics = MetricsRecorder(CollectorRegistry())
    metrics.record_schedule("ml", "fraud", interval=60.0, ready_since=T0, last_run=T0)
    metrics.forget("ml", "fraud")
    for name in ("interval_seconds", "ready_timestamp_seconds", "last_run_timestamp_seconds"):
        assert _value(metrics, f"modelmonitor_monitor_{name}") is None
    metrics.record_schedule("ml", "fraud", interval=None, ready_since=None, last_run=T0)
    assert _value(metrics, "modelmonitor_monitor_last_run_timestamp_seconds") == T0.timestamp()


def test_an_unverified_report_is_counted_and_forgotten_with_the_monitor() -> None:
    metrics = MetricsRecorder(CollectorRegistry())
    _run(metrics, T0)  # a run without the problem counts nothing
    assert not _value(metrics, "modelmonitor_reports_unverified_total")
    report = Report(
        T0,
        1.0,
        "job",
        0,
        DriftSummary("unavailable"),
        problems=(Problem(REPORT_UNVERIFIED, "the report ConfigMap does not match"),),
    )
    verdict = decide(report, {}, generation=1, now=report.finished)
    metrics.record_run("ml", "fraud", report, verdict, 0.0)
    assert _value(metrics, "modelmonitor_reports_unverified_total") == 1.0
    metrics.forget("ml", "fraud")
    assert _value(metrics, "modelmonitor_reports_unverified_total") is None
