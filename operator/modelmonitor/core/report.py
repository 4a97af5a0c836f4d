"""The result of one monitoring run: what was gathered, what the statistics said.

A :class:`Report` is what a run produces (inline or in a Job), what the operator
summarises into ``status``, Events and metrics, and what ``modelmonitor job`` prints as
JSON for the operator to pick up. ``to_dict`` / ``from_dict`` round-trip it for that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from modelmonitor.core.anomaly.outcome import AnomalyOutcome

DriftStatus = Literal["ok", "insufficient_data", "disabled", "unavailable"]


class SLOOutcome(Protocol):
    """What the report needs of an SLO evaluation."""

    @property
    def name(self) -> str: ...

    @property
    def met(self) -> bool | None:
        """False = breached, None = no data (never a pass, never a failure)."""

    @property
    def message(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Problem:
    """Why (part of) a run could not produce a verdict; ``reason`` is a condition reason."""

    reason: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message}


@dataclass(frozen=True)
class FeatureSummary:
    """One feature's drift, as status and Events show it."""

    name: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool

    def describe(self) -> str:
        """``amount (psi 0.31 > 0.25)`` or ``age (ks p=0.0004 < 0.05)``."""
        if self.p_value is not None:
            op = "<" if self.drifted else ">="
            return f"{self.name} ({self.method} p={self.p_value:.2g} {op} {self.threshold:g})"
        stat = "n/a" if self.statistic is None else f"{self.statistic:.3g}"
        op = ">=" if self.drifted else "<"
        return f"{self.name} ({self.method} {stat} {op} {self.threshold:g})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "statistic": self.statistic,
            "pValue": self.p_value,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class DriftSummary:
    status: DriftStatus
    drifted: bool = False
    drifted_features: int = 0
    total_features: int = 0
    share: float = 0.0
    drift_share: float = 0.5
    features: tuple[FeatureSummary, ...] = ()
    message: str = ""

    @property
    def summary(self) -> str:
        """The DRIFT printer column: ``3/12``, or ``-`` without a verdict."""
        if self.status != "ok":
            return "-"
        return f"{self.drifted_features}/{self.total_features}"

    def top_drifted(self, limit: int) -> list[FeatureSummary]:
        drifted = [f for f in self.features if f.drifted]
        return sorted(drifted, key=_severity, reverse=True)[:limit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "drifted": self.drifted,
            "driftedFeatures": self.drifted_features,
            "totalFeatures": self.total_features,
            "share": self.share,
            "driftShare": self.drift_share,
            "features": [f.to_dict() for f in self.features],
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftSummary:
        return cls(
            status=d["status"],
            drifted=bool(d.get("drifted")),
            drifted_features=int(d.get("driftedFeatures", 0)),
            total_features=int(d.get("totalFeatures", 0)),
            share=float(d.get("share", 0.0)),
            drift_share=float(d.get("driftShare", 0.5)),
            features=tuple(
                FeatureSummary(
                    f["name"],
                    f["method"],
                    f.get("statistic"),
                    f.get("pValue"),
                    float(f["threshold"]),
                    bool(f["drifted"]),
                )
                for f in d.get("features") or []
            ),
            message=str(d.get("message", "")),
        )


def _severity(f: FeatureSummary) -> float:
    """Order drifted features: smallest p-value first, else largest statistic/threshold."""
    if f.p_value is not None:
        return 1.0 - f.p_value
    if f.statistic is None or f.threshold <= 0:
        return 0.0
    return f.statistic / f.threshold


@dataclass(frozen=True)
class StoredSLO:
    """An SLO outcome read back from JSON (job mode), satisfying :class:`SLOOutcome`."""

    name: str
    met: bool | None
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class Report:
    """One run's outcome."""

    started: dt.datetime
    duration_seconds: float
    mode: Literal["inline", "job"]
    samples: int
    drift: DriftSummary
    slos: tuple[SLOOutcome, ...] = ()
    problems: tuple[Problem, ...] = ()
    data_quality: Mapping[str, Any] | None = None
    model_quality: Mapping[str, Any] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    anomalies: tuple[AnomalyOutcome, ...] = ()  # spec.anomalies, in spec order
    # status.performance as PerformanceSummary.to_status() writes it; None: not configured
    performance: Mapping[str, Any] | None = None

    @property
    def finished(self) -> dt.datetime:
        return self.started + dt.timedelta(seconds=self.duration_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "durationSeconds": self.duration_seconds,
            "mode": self.mode,
            "samples": self.samples,
            "drift": self.drift.to_dict(),
            "slos": [
                s.to_dict() | {"name": s.name, "met": s.met, "message": s.message}
                for s in self.slos
            ],
            "problems": [p.to_dict() for p in self.problems],
            "dataQuality": self.data_quality,
            "modelQuality": self.model_quality,
            "details": dict(self.details),
            "anomalies": [a.to_dict() for a in self.anomalies],
            "performance": None if self.performance is None else dict(self.performance),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        return cls(
            started=dt.datetime.fromisoformat(d["started"]),
            duration_seconds=float(d["durationSeconds"]),
            mode=d["mode"],
            samples=int(d["samples"]),
            drift=DriftSummary.from_dict(d["drift"]),
            slos=tuple(
                StoredSLO(s["name"], s.get("met"), str(s.get("message", "")), s)
                for s in d.get("slos") or []
            ),
            problems=tuple(Problem(p["reason"], p["message"]) for p in d.get("problems") or []),
            data_quality=d.get("dataQuality"),
            model_quality=d.get("modelQuality"),
            details=d.get("details") or {},
            anomalies=tuple(AnomalyOutcome.from_dict(a) for a in d.get("anomalies") or []),
            performance=d.get("performance"),
        )


RUN_TIMED_OUT = "RunTimedOut"  # the Degraded reason of a run stopped at its deadline


def timed_out(
    started: dt.datetime, elapsed: float, mode: Literal["inline", "job"], limit: float
) -> Report:
    """The report of a run stopped at ``spec.schedule.runTimeout``: nothing measured.

    Its only problem makes the verdict Degraded, which the policy reads as no evidence:
    it neither counts towards a breach nor towards recovery, so it never acts.
    """
    return Report(
        started=started,
        duration_seconds=elapsed,
        mode=mode,
        samples=0,
        drift=DriftSummary("unavailable"),
        problems=(
            Problem(
                RUN_TIMED_OUT,
                f"the run did not finish within spec.schedule.runTimeout ({limit:g}s) and "
                "was stopped; nothing was measured",
            ),
        ),
    )


def timed_out_run(report: Report) -> bool:
    return any(p.reason == RUN_TIMED_OUT for p in report.problems)
