"""SLIs, error budgets and multi-window multi-burn-rate evaluation.

Pure: no I/O and no clock of its own. Every function that needs "now" takes it as a
parameter (seconds since the epoch), so tests and the runner control time.

The model, in the terms of the Google SRE workbook ("Alerting on SLOs"):

- An SLI is a ratio of good events to all events (:class:`EventCounts`). For a latency
  SLO an event is good when the request finished within ``thresholdMs``; a failed
  request is a bad event.
- The error budget of an objective is ``1 - objective / 100`` (99.9 % -> 0.001).
- The burn rate over a window is ``bad ratio / budget``: 1 spends the budget exactly
  over the SLO window, 14.4 spends 2 % of a 30-day budget in one hour.
- Budget remaining over the SLO window is ``1 - bad ratio / budget`` (negative once
  the budget is overspent).
- An alert has a long and a short window and a factor; it fires only when the burn
  rate over *both* windows is at least the factor (the short window makes the alert
  reset quickly once the problem is fixed). The workbook's defaults are
  :data:`SRE_WORKBOOK_ALERTS`; :func:`scale_alerts` shrinks them for short tests.

For probe-sourced SLOs the operator has only its own measurements, one batch per
run; :class:`EventHistory` keeps them in a bounded, mergeable set of time buckets that
fits in the monitor's status.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


# -- history of event counts ----------------------------------------------------------------

HISTORY_VERSION = 1


@dataclass(frozen=True)
class Bucket:
    """Events recorded between ``first`` and ``last`` (epoch seconds) in one bucket."""

    counts: EventCounts
    first: float
    last: float

    def __add__(self, other: Bucket) -> Bucket:
        return Bucket(
            counts=self.counts + other.counts,
            first=min(self.first, other.first),
            last=max(self.last, other.last),
        )

    def share_in(self, lo: float, hi: float) -> float:
        """Share of this bucket's events inside ``(lo, hi]``, assuming them spread evenly
        between ``first`` and ``last``."""
        if self.last <= self.first:  # one point in time
            return 1.0 if lo < self.first <= hi else 0.0
        overlap = min(self.last, hi) - max(self.first, lo)
        return min(max(overlap / (self.last - self.first), 0.0), 1.0)


@dataclass(frozen=True)
class EventHistory:
    """Event counts over time in aligned, power-of-two time buckets (bounded, mergeable).

    A bucket at ``level`` k sits on the grid cell ``[index * w, (index + 1) * w)`` with
    ``w = base_seconds * 2**k``, measured from the epoch, so any two cells either nest or
    are disjoint. New counts go into level 0; as buckets age they fold into their
    parents, so a bucket's width stays between about 1/(2r) and 1/r of its age
    (r = ``resolution``): recent data keeps fine detail for the short burn-rate windows,
    old data is coarse but still counts for the SLO window. The history holds about
    ``r`` buckets per doubling of its span (28 days at a 10 s base: ~ 18 doublings);
    ``max_buckets`` is a hard cap (the oldest go first). Histories with the same base
    merge exactly (counts add), e.g. those written by two operator replicas.

    Each bucket also remembers when its first and last events were recorded. A window
    query counts a bucket that straddles the window's start pro rata over that span, so
    its error is bounded by the events of that one bucket, and is nil while the history
    is younger than the window.
    """

    base_seconds: float = 10.0
    resolution: int = 4
    max_buckets: int = 160
    buckets: Mapping[tuple[int, int], Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.base_seconds > 0 and math.isfinite(self.base_seconds)):
            raise ValueError("base_seconds must be > 0")
        if self.resolution < 1 or self.max_buckets < 1:
            raise ValueError("resolution and max_buckets must be >= 1")

    # geometry
    def _width(self, level: int) -> float:
        return self.base_seconds * (1 << level)

    def _span(self, key: tuple[int, int]) -> tuple[float, float]:
        level, index = key
        width = self._width(level)
        return index * width, (index + 1) * width

    def __len__(self) -> int:
        return len(self.buckets)

    def add(
        self, now: float, counts: EventCounts, *, retention_seconds: float | None = None
    ) -> EventHistory:
        """A new history with ``counts`` recorded at ``now``, compacted and pruned."""
        key = (0, math.floor(now / self.base_seconds))
        merged = dict(self.buckets)
        bucket = Bucket(counts=counts, first=now, last=now)
        merged[key] = merged[key] + bucket if key in merged else bucket
        return self._replace(merged).compact(now, retention_seconds=retention_seconds)

    def merge(
        self, other: EventHistory, now: float, *, retention_seconds: float | None = None
    ) -> EventHistory:
        """Both histories' counts together (the same event must not be in both)."""
        if other.base_seconds != self.base_seconds:
            raise ValueError(
                f"cannot merge histories with base {self.base_seconds}s and {other.base_seconds}s"
            )
        merged = dict(self.buckets)
        for key, bucket in other.buckets.items():
            merged[key] = merged[key] + bucket if key in merged else bucket
        return self._replace(merged).compact(now, retention_seconds=retention_seconds)

    def compact(self, now: float, *, retention_seconds: float | None = None) -> EventHistory:
        """Fold aged buckets into their parents, drop expired ones, apply the cap."""
        buckets: dict[tuple[int, int], Bucket] = {}
        for key, bucket in self.buckets.items():
            target = self._aged_key(key, now)
            buckets[target] = buckets[target] + bucket if target in buckets else bucket
        # A bucket nested in a coarser one (after a merge) folds into the coarsest.
        top = max((k[0] for k in buckets), default=0)
        for key in sorted(buckets, key=lambda k: k[0]):
            level, index = key
            for up in range(level + 1, top + 1):
                ancestor = (up, index >> (up - level))
                if ancestor in buckets:
                    buckets[ancestor] = buckets[ancestor] + buckets.pop(key)
                    break
        if retention_seconds is not None:
            horizon = now - retention_seconds
            buckets = {k: b for k, b in buckets.items() if b.last > horizon}
        if len(buckets) > self.max_buckets:
            newest = sorted(buckets, key=lambda k: buckets[k].last)[-self.max_buckets :]
            buckets = {k: buckets[k] for k in newest}
        return self._replace(buckets)

    def _aged_key(self, key: tuple[int, int], now: float) -> tuple[int, int]:
        level, index = key
        while level < 62:
            parent = (level + 1, index >> 1)
            start, end = self._span(parent)
            if now - end < self.resolution * (end - start):
                break
            level, index = parent
        return level, index

    def counts(self, now: float, window_seconds: float) -> EventCounts:
        """Events recorded in ``(now - window, now]``."""
        lo = now - window_seconds
        good = total = 0.0
        for bucket in self.buckets.values():
            share = bucket.share_in(lo, now)
            good += bucket.counts.good * share
            total += bucket.counts.total * share
        return EventCounts(good=min(good, total), total=total)

    def window_counts(self, now: float, windows: Iterable[float]) -> dict[float, EventCounts]:
        return {w: self.counts(now, w) for w in windows}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for status (a few KiB at most).

        Each bucket is ``[level, index, good, total, first, last]``, ``first`` and
        ``last`` as offsets in seconds from the start of the bucket's grid cell.
        """
        rows = []
        for key, b in sorted(self.buckets.items(), key=lambda kv: kv[1].last):
            start = self._span(key)[0]
            rows.append(
                [
                    key[0],
                    key[1],
                    _compact_number(b.counts.good),
                    _compact_number(b.counts.total),
                    _compact_number(round(b.first - start, 3)),
                    _compact_number(round(b.last - start, 3)),
                ]
            )
        return {
            "version": HISTORY_VERSION,
            "baseSeconds": _compact_number(self.base_seconds),
            "resolution": self.resolution,
            "buckets": rows,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, base_seconds: float = 10.0, max_buckets: int = 160
    ) -> EventHistory:
        """Read :meth:`to_dict`'s output; an absent, foreign or broken one starts empty.

        A history of another ``base_seconds`` is re-bucketed onto this base's grid
        (each old bucket moves whole to the level-0 cell of its last event).
        """
        empty = cls(base_seconds=base_seconds, max_buckets=max_buckets)
        if not data or data.get("version") != HISTORY_VERSION:
            return empty
        try:
            stored_base = float(data["baseSeconds"])
            resolution = int(data.get("resolution", empty.resolution))
            grid = cls(base_seconds=stored_base)
            buckets: dict[tuple[int, int], Bucket] = {}
            for level, index, good, total, first, last in data["buckets"]:
                key = (int(level), int(index))
                if not 0 <= key[0] <= 62:
                    return empty
                start = grid._span(key)[0]
                bucket = Bucket(
                    EventCounts(float(good), float(total)),
                    first=start + float(first),
                    last=start + float(last),
                )
                if stored_base != base_seconds:
                    key = (0, math.floor(bucket.last / base_seconds))
                buckets[key] = buckets[key] + bucket if key in buckets else bucket
            return cls(
                base_seconds=base_seconds,
                resolution=max(resolution, 1),
                max_buckets=max_buckets,
                buckets=buckets,
            )
        except (KeyError, TypeError, ValueError):
            return empty

    def _replace(self, buckets: Mapping[tuple[int, int], Bucket]) -> EventHistory:
        return EventHistory(
            base_seconds=self.base_seconds,
            resolution=self.resolution,
            max_buckets=self.max_buckets,
            buckets=buckets,
        )


def _compact_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 6)


# -- evaluation -----------------------------------------------------------------------------


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


def summary_line(results: Sequence[SLOResult]) -> str:
    """``kubectl get mm``'s SLO column: ``2/2``, or the breached names, or ``-``."""
    if not results:
        return "-"
    breached = [r.name for r in results if r.met is False]
    if breached:
        return "breached: " + ",".join(breached)
    known = [r for r in results if r.met is not None]
    text = f"{len(known)}/{len(results)}"
    return text if len(known) == len(results) else f"{text} ({len(results) - len(known)} no data)"
