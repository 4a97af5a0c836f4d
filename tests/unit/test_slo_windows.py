"""Burn-rate windows scaled to the SLO window (as Pyrra does), the math by hand.

The workbook's windows (1h/5m, 6h/30m, 1d/2h, 3d/6h) are for a 30-day SLO. For an SLO
over W they are multiplied by W / 30d, rounded to whole seconds, at least 1 minute; the
factors stay, so each alert still fires after the same share of the budget. The tables
below are the ones docs/slo.md shows.
"""

from __future__ import annotations

import pytest

from modelmonitor.core.slo.budget import (
    DAY,
    HOUR,
    MIN_SCALED_WINDOW,
    MINUTE,
    SRE_WORKBOOK_ALERTS,
    history_retention,
    scale_alerts,
    slo_alerts,
)
from modelmonitor.core.spec import parse_spec


def labels(window: float) -> list[str]:
    return [a.label for a in slo_alerts(window)]


def test_thirty_days_are_the_workbook() -> None:
    assert slo_alerts(30 * DAY) == SRE_WORKBOOK_ALERTS
    assert labels(30 * DAY) == ["1h/5m", "6h/30m", "1d/2h", "3d/6h"]


def test_twenty_eight_days() -> None:
    # x 28/30: 1h -> 56m, 5m -> 280 s, 6h -> 5h36m, 30m -> 28m, 1d -> 22h24m, 2h -> 1h52m,
    # 3d -> 67.2 h = 2d19h12m
    assert labels(28 * DAY) == ["56m/4m40s", "5h36m/28m", "22h24m/1h52m", "2d19h12m/5h36m"]


def test_seven_days() -> None:
    # x 7/30: 1h -> 14m, 5m -> 70 s, 6h -> 84 m, 30m -> 7m, 1d -> 5.6 h, 2h -> 28m,
    # 3d -> 16.8 h, 6h -> 84 m
    assert labels(7 * DAY) == ["14m/1m10s", "1h24m/7m", "5h36m/28m", "16h48m/1h24m"]


def test_factors_spend_the_same_budget_share_at_any_window() -> None:
    for window in (7 * DAY, 28 * DAY, 30 * DAY, 90 * DAY):
        spent = [a.factor * a.long_seconds / window for a in slo_alerts(window)]
        assert spent == pytest.approx([0.02, 0.05, 0.10, 0.10], rel=1e-3)
        assert [a.factor for a in slo_alerts(window)] == [14.4, 6.0, 3.0, 1.0]


def test_short_windows_stop_at_one_minute() -> None:
    # One day: x 1/30: 1h -> 2m, 5m -> 10 s (-> 1m), 6h -> 12m, 30m -> 1m,
    # 1d -> 48m, 2h -> 4m, 3d -> 2h24m, 6h -> 12m
    assert labels(DAY) == ["2m/1m", "12m/1m", "48m/4m", "2h24m/12m"]
    # One hour: every window would be under a minute but the ticket's 3d (6 m).
    alerts = slo_alerts(HOUR)
    assert all(w >= MIN_SCALED_WINDOW for a in alerts for w in (a.long_seconds, a.short_seconds))
    assert labels(HOUR) == ["1m/1m", "1m/1m", "2m/1m", "6m/1m"]


def test_an_explicit_window_scale_keeps_its_old_meaning() -> None:
    """burnRate.windowScale multiplies the 30-day windows, without the floor: specs
    (and the demo) that set it get the same windows as before."""
    assert slo_alerts(30.0, 1 / 720) == scale_alerts(1 / 720)
    assert slo_alerts(28 * DAY, 1.0) == SRE_WORKBOOK_ALERTS
    assert slo_alerts(30.0, 1 / 720)[0].long_seconds == pytest.approx(5.0)


def test_history_keeps_the_slo_window() -> None:
    assert history_retention(7 * DAY, slo_alerts(7 * DAY)) == 7 * DAY
    assert history_retention(HOUR, slo_alerts(HOUR)) == HOUR


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="SLO window"):
        slo_alerts(0)
    with pytest.raises(ValueError, match="window scale"):
        slo_alerts(DAY, 0)


def test_the_spec_default_scales_to_the_window() -> None:
    spec = parse_spec(
        {
            "target": {"name": "m"},
            "prometheus": {"url": "http://p:9090"},
            "slos": [
                {
                    "name": "avail",
                    "source": "prometheus",
                    "window": "7d",
                    "errorRatio": {"errors": "e[$window]", "total": "t[$window]"},
                }
            ],
        }
    )
    slo = spec.slos[0]
    assert slo.window_scale is None
    first = slo_alerts(slo.window_seconds, slo.window_scale)[0]
    assert (first.long_seconds, first.short_seconds) == (14 * MINUTE, 70.0)
