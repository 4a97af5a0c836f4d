"""SLO math: budgets, burn rates, multi-window alerts, latency, the bounded history.

Expected numbers are computed by hand in the comments. The alert windows and factors
are the Google SRE workbook's ("The Site Reliability Workbook", chapter 5 "Alerting on
SLOs", table 5-8: 2 % of a 30-day budget in 1 h -> 14.4; 5 % in 6 h -> 6; 10 % in 3 d
-> 1). Time is injected: every "now" below is a plain number.
"""

from __future__ import annotations

import json
import math

import pytest

from modelmonitor.core.slo.budget import (
    DAY,
    HOUR,
    MINUTE,
    NO_EVENTS,
    SRE_WORKBOOK_ALERTS,
    BurnRateAlert,
    EventCounts,
    budget_remaining,
    burn_rate,
    counts_from_values,
    error_budget,
    format_duration,
    history_retention,
    required_windows,
    scale_alerts,
    summarize_latency,
)
from modelmonitor.core.slo.evaluation import evaluate_error_ratio, evaluate_latency
from modelmonitor.core.slo.history import EventHistory
from modelmonitor.core.spec import SpecError, parse_spec

T0 = 1_750_000_000.0  # an arbitrary "now", seconds since the epoch
SLO_WINDOW = 30 * DAY


def windows_with(ratios: dict[float, float], total: float = 10_000.0) -> dict[float, EventCounts]:
    """Counts for every required window: ``ratios`` gives the bad ratio (default 0)."""
    out = {}
    for w in required_windows(SLO_WINDOW):
        out[w] = EventCounts.from_bad(ratios.get(w, 0.0) * total, total)
    return out


# -- budget and burn-rate arithmetic ----------------------------------------------------------


def test_error_budget_is_one_minus_objective() -> None:
    assert error_budget(99.9) == pytest.approx(0.001)
    assert error_budget(99.5) == pytest.approx(0.005)
    assert error_budget(99) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="objective"):
        error_budget(100)


def test_burn_rate_and_budget_remaining() -> None:
    # 99.9 %: budget 0.001; 1.44 % errors burn it 14.4 times as fast as allowed.
    assert burn_rate(0.0144, 99.9) == pytest.approx(14.4)
    # 99 %: budget 0.01; 0.25 % errors over the window leave 75 % of it.
    assert budget_remaining(0.0025, 99) == pytest.approx(0.75)
    # 2 % errors against a 1 % budget: overspent by 100 %.
    assert budget_remaining(0.02, 99) == pytest.approx(-1.0)


def test_workbook_factors_spend_the_documented_budget_shares() -> None:
    # Budget spent = burn rate * long window / SLO period (30 days).
    spent = {a.label: a.factor * a.long_seconds / (30 * DAY) for a in SRE_WORKBOOK_ALERTS}
    assert spent["1h/5m"] == pytest.approx(0.02)  # 14.4 * 1 h / 720 h
    assert spent["6h/30m"] == pytest.approx(0.05)  # 6 * 6 h / 720 h
    assert spent["1d/2h"] == pytest.approx(0.10)  # 3 * 24 h / 720 h
    assert spent["3d/6h"] == pytest.approx(0.10)  # 1 * 72 h / 720 h
    assert [(a.severity, a.factor) for a in SRE_WORKBOOK_ALERTS] == [
        ("page", 14.4),
        ("page", 6.0),
        ("ticket", 3.0),
        ("ticket", 1.0),
    ]


def test_scaled_windows_keep_factors() -> None:
    scaled = scale_alerts(1 / 720)
    assert scaled[0].long_seconds == pytest.approx(5.0)  # 1 h / 720
    assert scaled[0].short_seconds == pytest.approx(5 * MINUTE / 720)  # 0.4166 s
    assert format_duration(scaled[0].short_seconds) == "417ms"
    assert [a.factor for a in scaled] == [a.factor for a in SRE_WORKBOOK_ALERTS]
    with pytest.raises(ValueError, match="scale"):
        scale_alerts(0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(300, "5m"), (3600, "1h"), (5400, "1h30m"), (86400, "1d"), (3 * DAY, "3d"), (0.5, "500ms")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_required_windows() -> None:
    assert required_windows(28 * DAY) == (
        5 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        6 * HOUR,
        DAY,
        3 * DAY,
        28 * DAY,
    )


def test_history_retention_covers_the_longest_window() -> None:
    assert history_retention(28 * DAY) == 28 * DAY
    assert history_retention(HOUR) == 3 * DAY  # the 3d/6h ticket alert looks further back
    assert history_retention(HOUR, scale_alerts(1 / 720)) == HOUR


def test_counts_from_values_no_data_policy() -> None:
    assert counts_from_values(1.0, None) is None  # no total: no data
    assert counts_from_values(1.0, math.nan) is None  # 0/0 in PromQL: no data
    assert counts_from_values(None, 100.0) == EventCounts(good=100.0, total=100.0)  # no errors
    assert counts_from_values(5.0, 100.0) == EventCounts(good=95.0, total=100.0)
    assert counts_from_values(120.0, 100.0) == EventCounts(good=0.0, total=100.0)  # clamped


def test_event_counts_validate() -> None:
    with pytest.raises(ValueError, match="good <= total"):
        EventCounts(good=5, total=4)
    assert EventCounts(3, 4).bad_ratio == pytest.approx(0.25)
    assert NO_EVENTS.bad_ratio is None


# -- multi-window alerts ----------------------------------------------------------------------


def test_page_fires_when_both_windows_burn_at_14_4() -> None:
    # Objective 99.9 % (budget 0.001). 1.5 % errors over 1 h and 5 m: burn rate 15.
    result = evaluate_error_ratio(
        "avail",
        objective=99.9,
        slo_window_seconds=SLO_WINDOW,
        windows=windows_with({HOUR: 0.015, 5 * MINUTE: 0.015}),
    )
    assert result.met is False
    assert result.reason == "BurnRateTooHigh"
    assert [a.alert.label for a in result.firing] == ["1h/5m"]
    assert result.burn_rate(HOUR) == pytest.approx(15.0)
    assert "15.0x over 1h" in result.message
    assert "14.4x" in result.message


def test_no_alert_when_only_the_long_window_burns() -> None:
    # The incident is over: 1 h still at burn 20 (2 %), the last 5 m are clean (burn 0).
    result = evaluate_error_ratio(
        "avail",
        objective=99.9,
        slo_window_seconds=SLO_WINDOW,
        windows=windows_with({HOUR: 0.02, 5 * MINUTE: 0.0}),
    )
    assert result.firing == ()
    assert result.met is True


def test_no_alert_when_only_the_short_window_burns() -> None:
    # A 5-minute spike (burn 50) that has not yet moved the hour past 14.4 (burn 10).
    result = evaluate_error_ratio(
        "avail",
        objective=99.9,
        slo_window_seconds=SLO_WINDOW,
        windows=windows_with({HOUR: 0.01, 5 * MINUTE: 0.05}),
    )
    assert result.firing == ()
    assert result.met is True


def test_six_hour_page_at_factor_6() -> None:
    # 99 % (budget 0.01); 7 % errors over 6 h and 30 m: burn 7 >= 6; 1 h at 7 < 14.4.
    ratios = {6 * HOUR: 0.07, 30 * MINUTE: 0.07, HOUR: 0.07, 5 * MINUTE: 0.07}
    result = evaluate_error_ratio(
        "avail", objective=99, slo_window_seconds=SLO_WINDOW, windows=windows_with(ratios)
    )
    assert [a.alert.label for a in result.firing] == ["6h/30m"]
    assert result.met is False


def test_ticket_alert_is_reported_but_does_not_breach() -> None:
    # 99 %: 1.5 % errors over 3 d and 6 h: burn 1.5 >= 1 -> ticket; over 30 d 0.5 % ->
    # budget remaining 50 %.
    ratios = {3 * DAY: 0.015, 6 * HOUR: 0.015, SLO_WINDOW: 0.005}
    result = evaluate_error_ratio(
        "avail", objective=99, slo_window_seconds=SLO_WINDOW, windows=windows_with(ratios)
    )
    assert [(a.alert.severity, a.alert.label) for a in result.firing] == [("ticket", "3d/6h")]
    assert result.met is True
    assert result.budget_remaining == pytest.approx(0.5)
    assert result.value == pytest.approx(99.5)
    assert result.to_dict()["firingAlerts"][0]["severity"] == "ticket"


def test_budget_exhausted_breaches_without_fast_burn() -> None:
    # 99.5 %: 0.6 % errors over 30 d -> 120 % of the budget spent, remaining -20 %.
    result = evaluate_error_ratio(
        "avail",
        objective=99.5,
        slo_window_seconds=SLO_WINDOW,
        windows=windows_with({SLO_WINDOW: 0.006}),
    )
    assert result.met is False
    assert result.reason == "BudgetExhausted"
    assert result.budget_remaining == pytest.approx(-0.2)
    assert "budget remaining -20%" in result.message


def test_no_events_is_insufficient_data_not_a_pass() -> None:
    windows: dict[float, EventCounts | None] = dict.fromkeys(required_windows(SLO_WINDOW))
    result = evaluate_error_ratio(
        "avail", objective=99, slo_window_seconds=SLO_WINDOW, windows=windows
    )
    assert result.met is None
    assert result.reason == "InsufficientData"
    assert result.budget_remaining is None
    assert result.to_dict()["burnRates"]["1h"] is None


def test_missing_window_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="missing for 30d"):
        evaluate_error_ratio(
            "avail",
            objective=99,
            slo_window_seconds=SLO_WINDOW,
            windows={w: NO_EVENTS for w in required_windows(SLO_WINDOW) if w != SLO_WINDOW},
        )


def test_scaled_alerts_evaluate_the_same_way() -> None:
    alerts = scale_alerts(1 / 720)  # 1 h -> 5 s, 5 m -> 417 ms
    windows = {w: EventCounts.from_bad(20, 100) for w in required_windows(HOUR, alerts)}
    result = evaluate_error_ratio(
        "avail", objective=99, slo_window_seconds=HOUR, windows=windows, alerts=alerts
    )
    # 20 % errors against a 1 % budget: burn 20 on every window; both pages fire.
    assert [a.alert.label for a in result.firing][:2] == ["5s/417ms", "30s/2s500ms"]
    assert result.to_dict()["burnRates"]["5s"] == pytest.approx(20.0)


def test_result_to_dict_is_json() -> None:
    result = evaluate_error_ratio(
        "avail",
        objective=99.9,
        slo_window_seconds=SLO_WINDOW,
        windows=windows_with({HOUR: 0.015, 5 * MINUTE: 0.015}),
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["name"] == "avail"
    assert data["kind"] == "errorRatio"
    assert data["met"] is False
    assert data["firingAlerts"][0] == {
        "severity": "page",
        "longWindow": "1h",
        "shortWindow": "5m",
        "factor": 14.4,
        "longBurnRate": pytest.approx(15.0),
        "shortBurnRate": pytest.approx(15.0),
        "firing": True,
    }


# -- latency ----------------------------------------------------------------------------------


def test_summarize_latency_nearest_rank() -> None:
    samples = [float(v) for v in range(1, 101)]  # 1 .. 100 ms
    summary = summarize_latency(samples, percentile=95, threshold_ms=90)
    assert summary.value_ms == 95.0  # rank ceil(0.95 * 100) = 95
    assert summary.counts == EventCounts(good=90, total=100)  # 91..100 ms are slow
    # p95 <= threshold exactly when >= 95 % of requests are fast enough.
    assert summarize_latency(samples, percentile=95, threshold_ms=95).counts.bad_ratio == 0.05


def test_failed_requests_are_slow_events() -> None:
    samples = [10.0] * 95
    summary = summarize_latency(samples, percentile=95, threshold_ms=50, failed=5)
    assert summary.value_ms == 10.0  # rank 95 of 100 is still a measured request
    assert summary.counts == EventCounts(good=95, total=100)
    assert summarize_latency(samples, percentile=96, threshold_ms=50, failed=5).value_ms == math.inf
    assert summarize_latency([], percentile=95, threshold_ms=50).value_ms is None


def test_latency_breach_message_names_value_threshold_and_window() -> None:
    result = evaluate_latency(
        "p95",
        percentile=95,
        threshold_ms=250,
        value_ms=412.3,
        objective=99,
        slo_window_seconds=SLO_WINDOW,
        value_window_seconds=5 * MINUTE,
    )
    assert result.met is False
    assert result.reason == "LatencyAboveThreshold"
    assert result.message == "p95 latency 412 ms > 250 ms over 5m"
    assert result.to_dict()["threshold"] == 250


def test_latency_met_and_insufficient() -> None:
    ok = evaluate_latency(
        "p95",
        percentile=95,
        threshold_ms=250,
        value_ms=120,
        objective=99,
        slo_window_seconds=SLO_WINDOW,
    )
    assert ok.met is True
    assert ok.message == "p95 latency 120 ms <= 250 ms this run"
    none = evaluate_latency(
        "p95",
        percentile=95,
        threshold_ms=250,
        value_ms=None,
        objective=99,
        slo_window_seconds=SLO_WINDOW,
    )
    assert none.met is None
    assert none.reason == "InsufficientData"


def test_latency_budget_from_slow_requests() -> None:
    # Objective 99 % fast; 20 % slow over 1 h and 5 m: burn 20 >= 14.4 -> page, even
    # though p95 is (just) under the threshold.
    result = evaluate_latency(
        "p95",
        percentile=95,
        threshold_ms=250,
        value_ms=240,
        objective=99,
        slo_window_seconds=SLO_WINDOW,
        windows=windows_with({HOUR: 0.2, 5 * MINUTE: 0.2, SLO_WINDOW: 0.001}),
    )
    assert result.met is False
    assert result.reason == "BurnRateTooHigh"
    assert result.budget_remaining == pytest.approx(0.9)  # 0.1 % slow of a 1 % budget


# -- history ----------------------------------------------------------------------------------


def test_history_windows_from_runs() -> None:
    h = EventHistory(base_seconds=10)
    # One run a minute for 10 minutes: 100 requests each, the last 3 runs with 10 errors.
    for i in range(10):
        bad = 10 if i >= 7 else 0
        h = h.add(T0 + i * MINUTE, EventCounts.from_bad(bad, 100))
    now = T0 + 9 * MINUTE
    assert h.counts(now, HOUR) == EventCounts(good=970, total=1000)
    # The last 2.5 minutes hold the runs at 7, 8, 9 minutes (all at 10 % errors).
    recent = h.counts(now, 150)
    assert recent.total == pytest.approx(300)
    assert recent.bad_ratio == pytest.approx(0.1)
    assert h.counts(now + DAY, HOUR) == NO_EVENTS


def test_history_stays_bounded_and_accurate_over_weeks() -> None:
    # Four weeks of runs every 5 minutes, 1 % errors throughout, then 20 % in the last hour.
    h = EventHistory(base_seconds=10)
    step = 5 * MINUTE
    n = int(28 * DAY / step)
    for i in range(n):
        now = T0 + i * step
        bad = 20 if i >= n - 12 else 1
        h = h.add(now, EventCounts.from_bad(bad, 100), retention_seconds=28 * DAY)
    assert len(h) <= 64  # ~ 4 buckets per doubling of the span
    assert len(json.dumps(h.to_dict())) < 3000  # fits in status
    # The whole history is inside 28 d: exact.
    assert h.counts(now, 28 * DAY) == EventCounts(good=n * 100 - 12 * 20 - (n - 12), total=n * 100)
    # Last hour: the 12 runs at 20 % errors.
    assert h.counts(now, HOUR).bad_ratio == pytest.approx(0.2)
    # Last 6 h: 12 runs at 20 % and 60 at 1 % -> 300 / 7200; prorated, within 5 %.
    assert h.counts(now, 6 * HOUR).bad_ratio == pytest.approx(300 / 7200, rel=0.05)


def test_history_younger_than_the_window_is_exact() -> None:
    h = EventHistory(base_seconds=10)
    for i in range(100):
        h = h.add(T0 + i * 600.0, EventCounts.from_bad(i % 2, 10))
    now = T0 + 99 * 600.0
    assert h.counts(now, 2 * DAY) == EventCounts(good=950, total=1000)


def test_history_round_trips_through_json() -> None:
    h = EventHistory(base_seconds=10)
    for i in range(50):
        h = h.add(T0 + i * 37.0, EventCounts.from_bad(i % 3, 10))
    back = EventHistory.from_dict(json.loads(json.dumps(h.to_dict())), base_seconds=10)
    assert back.buckets == h.buckets
    now = T0 + 49 * 37.0
    assert back.counts(now, HOUR) == h.counts(now, HOUR)


def test_history_from_broken_or_foreign_dict_starts_empty() -> None:
    assert len(EventHistory.from_dict(None)) == 0
    assert len(EventHistory.from_dict({"version": 99, "buckets": [[0, 1, 1, 1]]})) == 0
    assert len(EventHistory.from_dict({"version": 1, "baseSeconds": 10, "buckets": "x"})) == 0


def test_history_merge_adds_counts() -> None:
    a = EventHistory(base_seconds=10).add(T0, EventCounts(9, 10))
    b = EventHistory(base_seconds=10).add(T0 + 30, EventCounts(5, 10))
    merged = a.merge(b, T0 + 60)
    assert merged.counts(T0 + 60, HOUR) == EventCounts(14, 20)
    # An old, already compacted history merges with a fresh one onto one grid.
    old = EventHistory(base_seconds=10).add(T0, EventCounts(1, 1)).compact(T0 + DAY)
    both = old.merge(EventHistory(base_seconds=10).add(T0 + 5, EventCounts(1, 2)), T0 + DAY)
    assert both.counts(T0 + DAY, 2 * DAY) == EventCounts(2, 3)
    with pytest.raises(ValueError, match="base"):
        a.merge(EventHistory(base_seconds=5), T0)


def test_history_cap_drops_the_oldest() -> None:
    h = EventHistory(base_seconds=1, max_buckets=5)
    for i in range(20):
        h = h.add(T0 + i * 1000.0, EventCounts(1, 1))
    assert len(h) <= 5
    # The newest run is always kept.
    assert h.counts(T0 + 19_000, 1).total == 1


def test_custom_alert_table() -> None:
    alerts = (BurnRateAlert("page", 10, 1, 2.0),)
    windows = {1.0: EventCounts(90, 100), 10.0: EventCounts(95, 100), 60.0: EventCounts(99, 100)}
    result = evaluate_error_ratio(
        "x", objective=99, slo_window_seconds=60, windows=windows, alerts=alerts
    )
    # Burn 5 over 10 s and 10 over 1 s, both >= 2; over 60 s the budget is exactly spent.
    assert result.met is False
    assert result.budget_remaining == pytest.approx(0.0)


# -- the spec fields the SLO engine reads -----------------------------------------------------


def _slo_spec(**slo: object) -> dict[str, object]:
    return {
        "target": {"name": "m"},
        "reference": {"configMapRef": {"name": "r", "key": "k"}},
        "prometheus": {"url": "http://p:9090"},
        "slos": [{"name": "s", "source": "prometheus", **slo}],
    }


def test_spec_template_and_window_scale() -> None:
    spec = parse_spec(
        _slo_spec(
            template={"name": "mlserver", "model": "iris", "labels": {"namespace": "ml"}},
            errorRatio={},
            burnRate={"windowScale": 1 / 720},
        )
    )
    slo = spec.slos[0]
    assert slo.template is not None
    assert (slo.template.name, slo.template.model) == ("mlserver", "iris")
    assert dict(slo.template.labels) == {"namespace": "ml"}
    assert slo.window_scale is not None
    assert scale_alerts(slo.window_scale)[0].long_seconds == pytest.approx(5.0)
    assert (
        parse_spec(_slo_spec(errorRatio={"errors": "e", "total": "t"})).slos[0].window_scale is None
    )


@pytest.mark.parametrize(
    ("slo", "field"),
    [
        ({"template": {"name": "kserve"}, "errorRatio": {}}, "spec.slos[0].template.name"),
        ({"template": {"name": "triton"}, "errorRatio": {}}, "spec.slos[0].template.name"),
        (
            {"template": {"name": "mlserver"}, "latency": {"thresholdMs": 5, "query": "q"}},
            "spec.slos[0].template",
        ),
        (
            {"template": {"name": "mlserver", "labels": {"a-b": "x"}}, "errorRatio": {}},
            "spec.slos[0].template.labels",
        ),
        (
            {"errorRatio": {"errors": "e", "total": "t"}, "burnRate": {"windowScale": 0}},
            "spec.slos[0].burnRate.windowScale",
        ),
    ],
)
def test_spec_template_refusals(slo: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(_slo_spec(**slo))
    assert field in [path for path, _ in info.value.problems], info.value
