"""A monitor's performance verdict for one run: the window's estimate (and realized
values, with a golden set's labels) held against ``spec.performance``'s thresholds.

Pure. A metric breaches when its interval's upper bound lies below its floor
(``minimum``, or the reference's value less ``maxDrop``): the drop is beyond the window's
own noise. Realized values, when the window has enough labels, are judged instead of the
estimate (they are the truth the estimate stands in for). Bad data (no probabilities,
too few rows, values that are not finite) is ``insufficient``, never a breach.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelmonitor.core.spec import PerformanceSpec
from modelmonitor.core.stats.performance.intervals import Estimate
from modelmonitor.core.stats.performance.report import MIN_LABELLED_ROWS, PerformanceReport

Status = Literal["ok", "degraded", "insufficient_data", "unavailable"]


@dataclass(frozen=True)
class MetricVerdict:
    name: str
    basis: Literal["estimated", "realized"]
    value: float
    lower: float | None
    upper: float | None
    floor: float | None  # the tighter of minimum and reference - maxDrop
    reference: float | None
    breached: bool

    def describe(self) -> str:
        bounds = "" if self.lower is None else f" [{self.lower:.3f}, {self.upper:.3f}]"
        floor = "" if self.floor is None else f" {'<' if self.breached else '>='} {self.floor:.3f}"
        return f"{self.basis} {self.name} {self.value:.3f}{bounds}{floor}"


@dataclass(frozen=True)
class PerformanceSummary:
    """What status, metrics and the verdict need from a run's performance."""

    status: Status
    message: str = ""
    rows: int = 0
    labelled_rows: int = 0
    metrics: tuple[MetricVerdict, ...] = ()
    estimated: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    realized: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    reference: Mapping[str, float | None] = field(default_factory=dict)
    concept_drift: bool = False
    concept_drift_metrics: tuple[str, ...] = ()
    calibration_warning: str | None = None

    @property
    def breached(self) -> tuple[MetricVerdict, ...]:
        return tuple(m for m in self.metrics if m.breached)

    def to_status(self) -> dict[str, Any]:
        """``status.performance``: every field is in the CRD's status schema."""
        out: dict[str, Any] = {
            "status": self.status,
            "rows": self.rows,
            "labelledRows": self.labelled_rows,
            "conceptDrift": self.concept_drift,
        }
        if self.metrics:
            out["basis"] = self.metrics[0].basis
        if self.message:
            out["message"] = self.message[:1024]
        if self.estimated:
            out["estimated"] = {m: dict(v) for m, v in self.estimated.items()}
        if self.realized:
            out["realized"] = {m: dict(v) for m, v in self.realized.items()}
        if self.reference:
            out["reference"] = {m: _rounded(v) for m, v in self.reference.items()}
        if self.breached:
            out["breached"] = [m.name for m in self.breached]
        if self.concept_drift_metrics:
            out["conceptDriftMetrics"] = list(self.concept_drift_metrics)
        if self.calibration_warning:
            out["calibrationWarning"] = self.calibration_warning[:512]
        return out


def _rounded(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 6)


def _interval(e: Estimate) -> dict[str, float | None]:
    return {"value": _rounded(e.value), "lower": _rounded(e.lower), "upper": _rounded(e.upper)}


def insufficient(message: str, rows: int = 0) -> PerformanceSummary:
    return PerformanceSummary("insufficient_data", message, rows=rows)


def floor_of(spec: PerformanceSpec, metric: str, reference: float | None) -> float | None:
    """The tighter of ``minimum[metric]`` and ``reference - maxDrop[metric]``."""
    floors = []
    if metric in spec.minimum:
        floors.append(spec.minimum[metric])
    if metric in spec.max_drop and reference is not None and math.isfinite(reference):
        floors.append(reference - spec.max_drop[metric])
    return max(floors) if floors else None


def summarize(report: PerformanceReport, spec: PerformanceSpec) -> PerformanceSummary:
    """Judge one window's :class:`PerformanceReport` against ``spec``."""
    wanted = spec.metrics
    estimated = {m: e for m, e in (report.estimated or {}).items() if m in wanted}
    realized = {m: e for m, e in (report.realized or {}).items() if m in wanted}
    use_realized = report.labelled_rows >= max(MIN_LABELLED_ROWS, spec.min_rows)
    judged = realized if use_realized and realized else estimated
    basis: Literal["estimated", "realized"] = (
        "realized" if judged is realized and realized else "estimated"
    )
    verdicts = []
    for m in wanted:
        e = judged.get(m)
        if e is None or e.value is None or not math.isfinite(e.value):
            continue
        ref = report.reference.get(m)
        floor = floor_of(spec, m, ref)
        upper = e.upper if e.upper is not None and math.isfinite(e.upper) else e.value
        verdicts.append(
            MetricVerdict(
                m,
                basis,
                e.value,
                e.lower,
                e.upper,
                floor,
                ref,
                floor is not None and upper < floor,
            )
        )
    if not verdicts:
        return insufficient("no metric could be estimated on this window", report.rows)
    breached = [v for v in verdicts if v.breached]
    shown = breached or [v for v in verdicts if v.floor is not None] or verdicts
    head = f"{len(breached)}/{sum(v.floor is not None for v in verdicts)} metrics below their floor"
    message = f"{head}: " + ", ".join(v.describe() for v in shown)
    if report.concept_drift:
        message += f"; concept drift on {', '.join(report.concept_drift_metrics)}"
    check = report.calibration
    return PerformanceSummary(
        "degraded" if breached else "ok",
        message,
        rows=report.rows,
        labelled_rows=report.labelled_rows,
        metrics=tuple(verdicts),
        estimated={m: _interval(e) for m, e in estimated.items()},
        realized={m: _interval(e) for m, e in realized.items()},
        reference={m: v for m, v in report.reference.items() if m in wanted},
        concept_drift=report.concept_drift,
        concept_drift_metrics=report.concept_drift_metrics,
        calibration_warning=None if check is None else check.warning,
    )
