"""The arithmetic of SLOs: durations, event counts, error budgets, burn-rate alert windows.

See the package docstring (:mod:`modelmonitor.core.slo`) for the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Severity = Literal["page", "ticket"]
SLOKind = Literal["latency", "errorRatio"]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


# -- durations ------------------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """A compact duration that both Prometheus and the spec parser read: ``5m``, ``1h30m``.

    Whole days are written as ``d``; sub-second parts as ``ms`` (``417ms``, ``5s``).
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)


# -- events and budgets ---------------------------------------------------------------------


@dataclass(frozen=True)
class EventCounts:
    """Good and total events (counts, or rates: only their ratio matters)."""

    good: float
    total: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.good) and math.isfinite(self.total)):
            raise ValueError(f"event counts must be finite, got {self.good}/{self.total}")
        if self.total < 0 or self.good < 0 or self.good > self.total * (1 + 1e-9) + 1e-9:
            raise ValueError(f"need 0 <= good <= total, got {self.good}/{self.total}")

    @classmethod
    def from_bad(cls, bad: float, total: float) -> EventCounts:
        """From a count of bad events; ``bad`` is clamped into ``[0, total]``."""
        bad = min(max(bad, 0.0), total)
        return cls(good=total - bad, total=total)

    @property
    def bad(self) -> float:
        return max(self.total - self.good, 0.0)

    @property
    def bad_ratio(self) -> float | None:
        """Share of bad events; None when there were no events."""
        return self.bad / self.total if self.total > 0 else None

    def __add__(self, other: EventCounts) -> EventCounts:
        return EventCounts(good=self.good + other.good, total=self.total + other.total)


NO_EVENTS = EventCounts(good=0.0, total=0.0)


def counts_from_values(errors: float | None, total: float | None) -> EventCounts | None:
    """Event counts from two query results (e.g. error and total rates from Prometheus).

    The no-data policy: no ``total`` (an empty result or NaN) is no data, never a pass
    or a failure. An empty ``errors`` result while ``total`` has data means no errors
    (counters of failures often appear only after the first failure). Errors above
    the total (the two queries see slightly different scrapes) are clamped.
    """
    if total is None or math.isnan(total) or math.isinf(total) or total < 0:
        return None
    if errors is None or math.isnan(errors):
        errors = 0.0
    if math.isinf(errors):
        errors = total
    return EventCounts.from_bad(errors, total)


def error_budget(objective: float) -> float:
    """Allowed share of bad events: ``1 - objective/100`` (objective in percent)."""
    if not 0.0 < objective < 100.0:
        raise ValueError(f"objective must be a percentage in (0, 100), got {objective}")
    return 1.0 - objective / 100.0


def burn_rate(bad_ratio: float, objective: float) -> float:
    """How fast the budget burns: 1 spends it exactly over the SLO window."""
    return bad_ratio / error_budget(objective)


def budget_remaining(bad_ratio: float, objective: float) -> float:
    """Share of the error budget left over the SLO window (negative when overspent)."""
    return 1.0 - burn_rate(bad_ratio, objective)


# -- burn-rate alerts -----------------------------------------------------------------------


@dataclass(frozen=True)
class BurnRateAlert:
    """A multi-window burn-rate alert: fires when both windows burn at >= ``factor``."""

    severity: Severity
    long_seconds: float
    short_seconds: float
    factor: float

    @property
    def label(self) -> str:
        return f"{format_duration(self.long_seconds)}/{format_duration(self.short_seconds)}"


# The SRE workbook's recommended multiwindow, multi-burn-rate alerts for a 30-day SLO
# ("Alerting on SLOs", table 5-8): page at 2 % of the budget in 1 h (14.4) or 5 % in
# 6 h (6); ticket at 10 % in 3 d (1) - plus the common 1 d / 2 h at 3 ticket rule.
# Short windows are 1/12 of the long ones.
SRE_WORKBOOK_ALERTS: tuple[BurnRateAlert, ...] = (
    BurnRateAlert("page", 1 * HOUR, 5 * MINUTE, 14.4),
    BurnRateAlert("page", 6 * HOUR, 30 * MINUTE, 6.0),
    BurnRateAlert("ticket", 1 * DAY, 2 * HOUR, 3.0),
    BurnRateAlert("ticket", 3 * DAY, 6 * HOUR, 1.0),
)


def scale_alerts(
    scale: float, alerts: Sequence[BurnRateAlert] = SRE_WORKBOOK_ALERTS
) -> tuple[BurnRateAlert, ...]:
    """The same alerts with every window multiplied by ``scale`` (factors unchanged).

    ``scale=1/720`` turns 1 h into 5 s, for tests that cannot wait an hour.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"window scale must be > 0, got {scale}")
    return tuple(
        BurnRateAlert(a.severity, a.long_seconds * scale, a.short_seconds * scale, a.factor)
        for a in alerts
    )


# The period the workbook's windows are made for, and the shortest window a scaled alert
# asks about: a rate over less than a minute holds one or two scrapes of a typical
# Prometheus (15-30 s), and a probe SLO sees one run a minute by default.
WORKBOOK_PERIOD = 30 * DAY
MIN_SCALED_WINDOW = 1 * MINUTE


def slo_alerts(
    slo_window_seconds: float, window_scale: float | None = None
) -> tuple[BurnRateAlert, ...]:
    """The burn-rate alerts of an SLO over ``slo_window_seconds``.

    By default (``window_scale`` None) the workbook's windows are scaled to the SLO
    window, as Pyrra does: every window times ``slo_window / 30d``, rounded to whole
    seconds and at least :data:`MIN_SCALED_WINDOW`; the factors stay, so each alert
    still fires after the same share of the budget (14.4 x 1 h / 30 d = 2 %). A 7-day
    SLO pages on 14m/1m10s and 1h24m/7m. An explicit ``window_scale``
    (``burnRate.windowScale``) multiplies the 30-day windows instead, with no floor:
    what it always meant, and how tests and demos get windows of seconds.
    """
    if window_scale is not None:
        return scale_alerts(window_scale)
    if not (math.isfinite(slo_window_seconds) and slo_window_seconds > 0):
        raise ValueError(f"SLO window must be > 0, got {slo_window_seconds}")
    ratio = slo_window_seconds / WORKBOOK_PERIOD

    def scaled(seconds: float) -> float:
        return max(float(round(seconds * ratio)), MIN_SCALED_WINDOW)

    return tuple(
        BurnRateAlert(a.severity, scaled(a.long_seconds), scaled(a.short_seconds), a.factor)
        for a in SRE_WORKBOOK_ALERTS
    )


def alert_windows(alerts: Iterable[BurnRateAlert]) -> tuple[float, ...]:
    """The distinct windows the alerts need, shortest first."""
    return tuple(sorted({w for a in alerts for w in (a.long_seconds, a.short_seconds)}))


def required_windows(
    slo_window_seconds: float, alerts: Sequence[BurnRateAlert] = SRE_WORKBOOK_ALERTS
) -> tuple[float, ...]:
    """Every window an evaluation asks about: the alerts' windows and the SLO window."""
    return tuple(sorted({*alert_windows(alerts), slo_window_seconds}))


def history_retention(
    slo_window_seconds: float, alerts: Sequence[BurnRateAlert] = SRE_WORKBOOK_ALERTS
) -> float:
    """How long an :class:`EventHistory` must keep events: the longest window asked."""
    return max(required_windows(slo_window_seconds, alerts))


# -- latency --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySummary:
    """One batch of latency measurements against a threshold.

    ``value_ms`` is the nearest-rank percentile (the smallest measured latency with at
    least ``percentile`` % of requests at or below it), so ``value_ms <= threshold``
    exactly when at least ``percentile`` % of requests were fast enough. Failed
    requests count as infinitely slow; ``value_ms`` is None without any request.
    """

    value_ms: float | None
    counts: EventCounts


def summarize_latency(
    samples_ms: Sequence[float] | np.ndarray[Any, Any],
    *,
    percentile: float,
    threshold_ms: float,
    failed: int = 0,
) -> LatencySummary:
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if failed < 0:
        raise ValueError("failed must be >= 0")
    values = np.asarray(samples_ms, dtype=float)
    values = values[~np.isnan(values)]
    n = values.size + failed
    if n == 0:
        return LatencySummary(value_ms=None, counts=NO_EVENTS)
    good = int(np.count_nonzero(values <= threshold_ms))
    rank = math.ceil(percentile / 100.0 * n)  # 1-based nearest rank
    # Past the measured values, the percentile falls among the failed requests.
    value = math.inf if rank > values.size else float(np.partition(values, rank - 1)[rank - 1])
    return LatencySummary(value_ms=value, counts=EventCounts(good=float(good), total=float(n)))
