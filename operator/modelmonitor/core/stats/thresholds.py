"""What each method of a drift report was judged against, said once per method.

A report mixes tests (a p-value, after the multiple-testing correction, against a
significance level) and distances (a statistic against a threshold on the method's own
scale), and ``auto`` may raise a distance's threshold to its noise floor on small
windows. One "alpha" in a report header says nothing true about the distances; this
summary says, per method used, what decided drift. It also tells whether a requested
``threshold`` reached any feature, so a value that did nothing is never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelmonitor.core.stats.drift import DriftReport
from modelmonitor.core.stats.methods import AUTO


@dataclass(frozen=True)
class MethodThreshold:
    """The decision rule one method applied to its evaluated features."""

    method: str
    kind: str  # "test" | "distance"
    features: int
    low: float
    """The smallest threshold (alpha for tests) any of its features used."""
    high: float
    """The largest (a distance's threshold differs per feature only through the noise floor)."""

    def rule(self, correction: str) -> str:
        """The rule in words, e.g. ``ks: p-value (bonferroni-adjusted) < 0.05 (30 features)``."""
        value = f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"
        n = f"{self.features} feature{'s' if self.features != 1 else ''}"
        if self.kind == "test":
            adjusted = "" if correction == "none" else f" ({correction}-adjusted)"
            return f"{self.method}: p-value{adjusted} < {value} ({n})"
        return f"{self.method}: statistic >= {value} ({n})"

    def to_dict(self, correction: str) -> dict[str, Any]:
        return {
            "rule": self.rule(correction),
            "method": self.method,
            "kind": self.kind,
            "features": self.features,
            "threshold_min": self.low,
            "threshold_max": self.high,
        }


def method_thresholds(report: DriftReport) -> list[MethodThreshold]:
    """One entry per method used on an evaluated feature, in order of first use."""
    seen: dict[str, list[float]] = {}
    kinds: dict[str, str] = {}
    for f in report.features:
        if f.status != "ok":
            continue
        seen.setdefault(f.method, []).append(f.threshold)
        kinds[f.method] = f.kind
    return [
        MethodThreshold(m, kinds[m], len(values), min(values), max(values))
        for m, values in seen.items()
    ]


def unused_threshold_note(report: DriftReport, method: str, threshold: float | None) -> str | None:
    """A note when ``threshold`` did not reach every evaluated feature: under ``auto``
    the features judged by a test (their level is ``alpha``); with a named method the
    features it does not fit (judged by ``auto``'s defaults)."""
    if threshold is None:
        return None
    if method != AUTO:
        others = sorted({f.method for f in report.features if f.status == "ok"} - {method})
        if not others:
            return None
        n_other = sum(1 for f in report.features if f.status == "ok" and f.method != method)
        return (
            f"--threshold {threshold:g} applies to {method} only: the {n_other} feature(s) "
            f"it does not fit were judged by auto ({', '.join(others)}) at their defaults."
        )
    tests = sorted({f.method for f in report.features if f.status == "ok" and f.kind == "test"})
    if not tests:
        return None
    n_tests = sum(1 for f in report.features if f.status == "ok" and f.kind == "test")
    used = any(f.status == "ok" and f.kind == "distance" for f in report.features)
    scope = "applied to no feature" if not used else "applied to the distances only"
    return (
        f"--threshold {threshold:g} {scope}: under auto it sets the threshold of the "
        f"distances auto picks; the {n_tests} feature(s) auto judged by a test "
        f"({', '.join(tests)}) were judged at --alpha {report.alpha:g} "
        f"({report.correction} correction). Set --alpha for them, or name a method."
    )
