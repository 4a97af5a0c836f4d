"""Evaluate one SLO: compliance, budget remaining and multi-window burn-rate alerts.

:func:`evaluate_error_ratio` and :func:`evaluate_latency` turn event counts per window
(from the history or from Prometheus) into an :class:`SLOResult`: met, breached or no
data, with the reason and one line for people.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelmonitor.core.slo.budget import (
    SRE_WORKBOOK_ALERTS,
    BurnRateAlert,
    EventCounts,
    SLOKind,
    budget_remaining,
    burn_rate,
    format_duration,
    required_windows,
)


@dataclass(frozen=True)
class WindowBurn:
    """The bad-event ratio and burn rate over one window (None: no events there)."""

    window_seconds: float
    bad_ratio: float | None
    burn_rate: float | None
    total: float


@dataclass(frozen=True)
class AlertState:
    alert: BurnRateAlert
    long_burn: float | None
    short_burn: float | None

    @property
    def firing(self) -> bool:
        return (
            self.long_burn is not None
            and self.short_burn is not None
            and self.long_burn >= self.alert.factor
            and self.short_burn >= self.alert.factor
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.alert.severity,
            "longWindow": format_duration(self.alert.long_seconds),
            "shortWindow": format_duration(self.alert.short_seconds),
            "factor": self.alert.factor,
            "longBurnRate": _rounded(self.long_burn),
            "shortBurnRate": _rounded(self.short_burn),
            "firing": self.firing,
        }


@dataclass(frozen=True)
class SLOResult:
    """The verdict on one SLO.

    ``met`` is None when there is not enough data to say (InsufficientData): never a
    pass, never a failure. ``value`` is the measured percentile in ms (latency) or the
    good-event percentage over the SLO window (errorRatio). ``budget_remaining`` is a
    share of the error budget (1 = untouched, < 0 = overspent).
    """

    name: str
    kind: SLOKind
    value: float | None
    objective: float
    threshold: float | None
    met: bool | None
    reason: str
    message: str
    budget_remaining: float | None = None
    burn_rates: tuple[WindowBurn, ...] = ()
    alerts: tuple[AlertState, ...] = ()
    percentile: float | None = None

    @property
    def firing(self) -> tuple[AlertState, ...]:
        return tuple(a for a in self.alerts if a.firing)

    def burn_rate(self, window_seconds: float) -> float | None:
        for wb in self.burn_rates:
            if math.isclose(wb.window_seconds, window_seconds):
                return wb.burn_rate
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary for ``status.slos[]`` (camelCase keys)."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "value": _rounded(self.value),
            "objective": self.objective,
            "met": self.met,
            "reason": self.reason,
            "message": self.message,
            "budgetRemaining": _rounded(self.budget_remaining),
            "burnRates": {
                format_duration(wb.window_seconds): _rounded(wb.burn_rate) for wb in self.burn_rates
            },
            "firingAlerts": [a.to_dict() for a in self.firing],
        }
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.percentile is not None:
            out["percentile"] = self.percentile
        return out


def _rounded(value: float | None, digits: int = 6) -> float | str | None:
    if value is None:
        return None
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"  # JSON has no infinity
    return round(value, digits)


def _burns(
    windows: Mapping[float, EventCounts | None], objective: float, min_events: float
) -> dict[float, WindowBurn]:
    out = {}
    for seconds, counts in windows.items():
        usable = counts is not None and counts.total >= min_events and counts.total > 0
        ratio = counts.bad_ratio if usable and counts is not None else None
        out[seconds] = WindowBurn(
            window_seconds=seconds,
            bad_ratio=ratio,
            burn_rate=None if ratio is None else burn_rate(ratio, objective),
            total=counts.total if counts is not None else 0.0,
        )
    return out


def _lookup(burns: Mapping[float, WindowBurn], seconds: float) -> WindowBurn | None:
    for window, wb in burns.items():
        if math.isclose(window, seconds, rel_tol=1e-9):
            return wb
    return None


@dataclass(frozen=True)
class _BudgetVerdict:
    budget_remaining: float | None
    slo_window: WindowBurn | None
    states: tuple[AlertState, ...]
    burns: tuple[WindowBurn, ...]

    @property
    def paging(self) -> tuple[AlertState, ...]:
        return tuple(s for s in self.states if s.firing and s.alert.severity == "page")


def _budget_verdict(
    windows: Mapping[float, EventCounts | None],
    *,
    objective: float,
    slo_window_seconds: float,
    alerts: Sequence[BurnRateAlert],
    min_events: float,
) -> _BudgetVerdict:
    missing = [w for w in required_windows(slo_window_seconds, alerts) if _absent(windows, w)]
    if missing:
        raise ValueError(
            "window counts missing for " + ", ".join(format_duration(w) for w in missing)
        )
    burns = _burns(windows, objective, min_events)
    states = []
    for alert in alerts:
        long_wb = _lookup(burns, alert.long_seconds)
        short_wb = _lookup(burns, alert.short_seconds)
        states.append(
            AlertState(
                alert=alert,
                long_burn=long_wb.burn_rate if long_wb else None,
                short_burn=short_wb.burn_rate if short_wb else None,
            )
        )
    slo_wb = _lookup(burns, slo_window_seconds)
    remaining = None
    if slo_wb is not None and slo_wb.bad_ratio is not None:
        remaining = budget_remaining(slo_wb.bad_ratio, objective)
    ordered = tuple(sorted(burns.values(), key=lambda wb: wb.window_seconds))
    return _BudgetVerdict(remaining, slo_wb, tuple(states), ordered)


def _absent(windows: Mapping[float, EventCounts | None], seconds: float) -> bool:
    return not any(math.isclose(w, seconds, rel_tol=1e-9) for w in windows)


def _burn_text(state: AlertState) -> str:
    return (
        f"burn rate {state.long_burn:.1f}x over {format_duration(state.alert.long_seconds)} "
        f"and {state.short_burn:.1f}x over {format_duration(state.alert.short_seconds)} "
        f">= {state.alert.factor:g}x"
    )


def evaluate_error_ratio(
    name: str,
    *,
    objective: float,
    slo_window_seconds: float,
    windows: Mapping[float, EventCounts | None],
    alerts: Sequence[BurnRateAlert] = SRE_WORKBOOK_ALERTS,
    min_events: float = 1.0,
) -> SLOResult:
    """Evaluate an error-ratio (availability) SLO.

    ``windows`` maps each of :func:`required_windows` (seconds) to the events seen over
    that window ending now (None or zero events: no data for that window). Verdict:

    - breached (``met=False``) when a page alert fires or the budget over the SLO
      window is spent (``budget_remaining <= 0``); ticket alerts are reported only;
    - InsufficientData (``met=None``) when the SLO window has fewer than
      ``min_events`` events and no page alert fires;
    - met otherwise.
    """
    verdict = _budget_verdict(
        windows,
        objective=objective,
        slo_window_seconds=slo_window_seconds,
        alerts=alerts,
        min_events=min_events,
    )
    slo_wb = verdict.slo_window
    value = None
    if slo_wb is not None and slo_wb.bad_ratio is not None:
        value = 100.0 * (1.0 - slo_wb.bad_ratio)
    window_text = format_duration(slo_window_seconds)
    paging = verdict.paging
    met: bool | None
    if paging:
        met, reason = False, "BurnRateTooHigh"
        message = f"error budget burning fast: {_burn_text(paging[0])}"
        if value is not None:
            message += f"; {value:.3g}% good over {window_text} (objective {objective:g}%)"
    elif value is None:
        met, reason = None, "InsufficientData"
        message = f"no events over {window_text}: insufficient data"
    elif verdict.budget_remaining is not None and verdict.budget_remaining <= 0:
        met, reason = False, "BudgetExhausted"
        message = (
            f"error ratio SLO breached: {value:.4g}% good < {objective:g}% over {window_text}, "
            f"budget remaining {100 * verdict.budget_remaining:.0f}%"
        )
    else:
        met, reason = True, "ObjectiveMet"
        remaining = verdict.budget_remaining if verdict.budget_remaining is not None else 1.0
        message = (
            f"{value:.4g}% good >= {objective:g}% over {window_text}, "
            f"budget remaining {100 * remaining:.0f}%"
        )
    return SLOResult(
        name=name,
        kind="errorRatio",
        value=value,
        objective=objective,
        threshold=None,
        met=met,
        reason=reason,
        message=message,
        budget_remaining=verdict.budget_remaining,
        burn_rates=verdict.burns,
        alerts=verdict.states,
    )


def evaluate_latency(
    name: str,
    *,
    percentile: float,
    threshold_ms: float,
    value_ms: float | None,
    objective: float,
    slo_window_seconds: float,
    windows: Mapping[float, EventCounts | None] | None = None,
    value_window_seconds: float | None = None,
    alerts: Sequence[BurnRateAlert] = SRE_WORKBOOK_ALERTS,
    min_events: float = 1.0,
) -> SLOResult:
    """Evaluate a latency SLO: the measured percentile against ``threshold_ms``.

    ``value_ms`` is the percentile measured over ``value_window_seconds`` (the run's
    own requests when None). ``windows`` (optional: Prometheus can only provide them
    when the threshold is a histogram bucket boundary) hold the slow requests as bad
    events, which give the budget and burn rates against ``objective``.

    Breached when the percentile exceeds the threshold or a page alert fires;
    InsufficientData when there is no measured value and no page alert fires.
    """
    over = f"over {format_duration(value_window_seconds)}" if value_window_seconds else "this run"
    label = f"p{percentile:g} latency"
    verdict = None
    if windows is not None:
        verdict = _budget_verdict(
            windows,
            objective=objective,
            slo_window_seconds=slo_window_seconds,
            alerts=alerts,
            min_events=min_events,
        )
    paging = verdict.paging if verdict is not None else ()
    met: bool | None
    if value_ms is None or math.isnan(value_ms):
        value_ms = None
        measured = f"{label}: no requests {over}"
    else:
        measured = f"{label} {_ms(value_ms)} {'>' if value_ms > threshold_ms else '<='} "
        measured += f"{threshold_ms:g} ms {over}"
    if value_ms is not None and value_ms > threshold_ms:
        met, reason, message = False, "LatencyAboveThreshold", measured
        if paging:
            message += f"; {_burn_text(paging[0])}"
    elif paging:
        met, reason = False, "BurnRateTooHigh"
        message = f"slow requests burning the budget fast: {_burn_text(paging[0])}; {measured}"
    elif value_ms is None:
        met, reason, message = None, "InsufficientData", f"{measured}: insufficient data"
    else:
        met, reason, message = True, "ObjectiveMet", measured
    return SLOResult(
        name=name,
        kind="latency",
        value=value_ms,
        objective=objective,
        threshold=threshold_ms,
        met=met,
        reason=reason,
        message=message,
        budget_remaining=verdict.budget_remaining if verdict is not None else None,
        burn_rates=verdict.burns if verdict is not None else (),
        alerts=verdict.states if verdict is not None else (),
        percentile=percentile,
    )


def _ms(value: float) -> str:
    if math.isinf(value):
        return "+Inf ms"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.3g} ms"
