"""Result objects of the single-feature methods (scipy-shaped, frozen)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestResult:
    """A hypothesis test: the statistic and its p-value (drift when ``pvalue < alpha``)."""

    statistic: float
    pvalue: float

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class DistanceResult:
    """A distance between distributions; no p-value (drift when ``statistic >= threshold``)."""

    statistic: float


MethodResult = TestResult | DistanceResult
