"""The anomaly gauges a run exports, and that they go when the series stops being judged."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry

from modelmonitor.adapters.metrics import MetricsRecorder
from modelmonitor.core.report import DriftSummary, Report
from modelmonitor.core.verdict import decide
from tests.unit.status_samples import anomaly_outcomes

T0 = dt.datetime(2026, 12, 7, 6, 0, tzinfo=dt.UTC)


def _record(metrics: MetricsRecorder, outcomes: tuple) -> None:
    report = Report(T0, 1.0, "inline", 0, DriftSummary("disabled"), anomalies=outcomes)
    metrics.record_run("ml", "fraud", report, decide(report, {}, generation=1, now=T0), 0.0)


def test_score_band_and_state_per_series() -> None:
    metrics = MetricsRecorder(CollectorRegistry())
    outcomes = anomaly_outcomes()
    _record(metrics, outcomes)
    get = metrics.registry.get_sample_value
    latency = {"namespace": "ml", "monitor": "fraud", "series": "latency"}
    assert get("modelmonitor_anomalous", latency) == 1.0
    assert get("modelmonitor_anomalous", latency | {"series": "traffic"}) == 0.0
    assert get("modelmonitor_anomaly_score", latency) == pytest.approx(outcomes[0].score)
    assert get("modelmonitor_anomaly_score", latency) > 1.0
    assert get("modelmonitor_anomaly_value", latency) == pytest.approx(outcomes[0].value)
    assert get("modelmonitor_anomaly_band", latency | {"bound": "upper"}) == pytest.approx(
        outcomes[0].upper
    )
    # warm-up and unavailable series export nothing (never a 0 that reads as "normal")
    for series in ("fresh", "errors"):
        assert get("modelmonitor_anomalous", latency | {"series": series}) is None
    _record(metrics, ())
    assert get("modelmonitor_anomalous", latency) is None
