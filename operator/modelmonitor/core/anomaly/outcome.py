"""What a run concludes about one ``spec.anomalies[]`` series, for status and the verdict.

A series is in one of five states at the end of a run:

``Anomalous``
    its last anomaly is still open (outside the band for ``for``, and not yet back
    inside for ``for``);
``Normal``
    its latest point has a band and no anomaly is open (it may be outside the band for
    less than ``for``: ``pendingSeconds`` says how long);
``WarmingUp``
    it has values but none with a baseline yet (too few earlier seasons);
``NoData``
    no value in the lookback, or none recent enough to judge (missing data is never an
    anomaly);
``Unavailable``
    Prometheus could not be asked (the verdict keeps what it said before).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from modelmonitor.core.anomaly.seasonal import SeasonalResult

AnomalyState = Literal["Anomalous", "Normal", "WarmingUp", "NoData", "Unavailable"]
ANOMALY_STATES: tuple[AnomalyState, ...] = (
    "Anomalous",
    "Normal",
    "WarmingUp",
    "NoData",
    "Unavailable",
)


def iso(seconds: float) -> str:
    """Epoch seconds as RFC 3339 UTC with second precision."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class AnomalyOutcome:
    """One series' state after a run, with the band and the value it was judged on."""

    name: str
    state: AnomalyState
    message: str
    value: float | None = None
    lower: float | None = None
    upper: float | None = None
    median: float | None = None
    time: float | None = None  # the latest judged point (epoch seconds)
    since: float | None = None  # start of the open anomaly
    peak: float | None = None  # the open anomaly's value furthest outside
    points: int = 0
    warmup_points: int = 0
    pending_seconds: float = 0.0

    @property
    def score(self) -> float | None:
        """``(value - median) / half-width``: beyond +-1 is outside the band."""
        value, lower, upper, median = self.value, self.lower, self.upper, self.median
        if value is None or lower is None or upper is None or median is None:
            return None
        half = (upper - lower) / 2.0
        return (value - median) / half if half > 0 else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state, "message": self.message}
        for key, value in (
            ("value", self.value),
            ("lower", self.lower),
            ("upper", self.upper),
            ("median", self.median),
            ("peak", self.peak),
        ):
            if value is not None:
                out[key] = round(value, 6)
        if self.time is not None:
            out["time"] = iso(self.time)
        if self.since is not None:
            out["since"] = iso(self.since)
        out["points"] = self.points
        out["warmupPoints"] = self.warmup_points
        if self.pending_seconds:
            out["pendingSeconds"] = round(self.pending_seconds, 3)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnomalyOutcome:
        def num(key: str) -> float | None:
            value = d.get(key)
            return float(value) if isinstance(value, int | float) else None

        def when(key: str) -> float | None:
            value = d.get(key)
            if not isinstance(value, str):
                return None
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

        state = str(d.get("state"))
        return cls(
            name=str(d["name"]),
            state=state if state in ANOMALY_STATES else "NoData",
            message=str(d.get("message", "")),
            value=num("value"),
            lower=num("lower"),
            upper=num("upper"),
            median=num("median"),
            time=when("time"),
            since=when("since"),
            peak=num("peak"),
            points=int(d.get("points", 0)),
            warmup_points=int(d.get("warmupPoints", 0)),
            pending_seconds=float(d.get("pendingSeconds", 0.0)),
        )


def summarize(
    name: str, result: SeasonalResult, *, now: float, stale_after: float, for_seconds: float
) -> AnomalyOutcome:
    """The state of series ``name`` at ``now`` from its detection ``result``.

    A latest value older than ``stale_after`` seconds is NoData: the series stopped, and
    a stopped series is never judged anomalous (nor normal).
    """
    points, warmup = result.points, result.warmup_points
    counts = {"points": points, "warmup_points": warmup}
    if points == 0:
        return AnomalyOutcome(name, "NoData", f"{name}: no data in the lookback", **counts)
    i = result.last_judged()
    if i is None:
        return AnomalyOutcome(
            name,
            "WarmingUp",
            f"{name}: warming up ({points} points, none with enough earlier seasons in its "
            f"slot yet)",
            **counts,
        )
    t = float(result.times[i])
    if now - t > stale_after:
        return AnomalyOutcome(name, "NoData", f"{name}: no value since {iso(t)}", time=t, **counts)
    value = float(result.values[i])
    lower, upper = float(result.lower[i]), float(result.upper[i])
    band = {
        "value": value,
        "lower": _finite(lower),
        "upper": _finite(upper),
        "median": _finite(float(result.median[i])),
        "time": t,
    }
    last = result.anomalies[-1] if result.anomalies else None
    if last is not None and last.open:
        where = "outside" if value < lower or value > upper else "back inside"
        return AnomalyOutcome(
            name,
            "Anomalous",
            f"{name}: {_g(value)} {where} band [{_g(lower)}, {_g(upper)}] since "
            f"{iso(last.start)} (peak {_g(last.peak)})",
            since=last.start,
            peak=_finite(last.peak),
            **band,  # type: ignore[arg-type]
            **counts,
        )
    pending = result.pending_seconds()
    if result.outside[i]:
        text = (
            f"{name}: {_g(value)} outside band [{_g(lower)}, {_g(upper)}] for {pending:g}s "
            f"(not yet for {for_seconds:g}s)"
        )
    else:
        text = f"{name}: {_g(value)} within band [{_g(lower)}, {_g(upper)}]"
    return AnomalyOutcome(
        name,
        "Normal",
        text,
        pending_seconds=pending,
        **band,  # type: ignore[arg-type]
        **counts,
    )
