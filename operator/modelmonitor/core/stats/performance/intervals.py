"""Interval arithmetic shared by realized and estimated performance.

An :class:`Estimate` is a metric's value with the bounds of a two-sided interval at a
stated confidence. Three constructions are used, each where it is the standard one:

* :func:`wilson` for a proportion with a fixed denominator (accuracy; binary precision and
  recall given the predicted or the actual positives): Wilson's score interval, which stays
  inside [0, 1] and keeps its coverage near 0 and 1 where the Wald interval collapses;
* the first-order delta method for a smooth function of sums with a known covariance
  (F1, macro averages, ROC AUC), ``var f(X) = g' Cov(X) g``, computed where the sums are
  (:mod:`.confusion`, :mod:`.auc`) without forming ``Cov(X)``;
* :func:`normal` for a mean (MAE, MAPE) and, through its square root, RMSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Estimate:
    """A metric's value and its interval; ``std`` is the standard error it rests on."""

    value: float | None
    lower: float | None = None
    upper: float | None = None
    std: float | None = None

    def contains(self, x: float) -> bool:
        if self.lower is None or self.upper is None:
            return True
        return self.lower <= x <= self.upper

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "lower": self.lower, "upper": self.upper}


UNDEFINED = Estimate(None)


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence`` (0.95 -> 1.95996)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _clip(x: float, lo: float | None, hi: float | None) -> float:
    if lo is not None:
        x = max(lo, x)
    if hi is not None:
        x = min(hi, x)
    return x


def around(
    value: float, std: float, z: float, *, lo: float | None = 0.0, hi: float | None = 1.0
) -> Estimate:
    """``value +- z std``, clipped to [lo, hi] (None: unbounded on that side)."""
    if not (math.isfinite(value) and math.isfinite(std)):
        return UNDEFINED if not math.isfinite(value) else Estimate(value)
    return Estimate(value, _clip(value - z * std, lo, hi), _clip(value + z * std, lo, hi), std)


def wilson(successes: float, n: float, z: float) -> Estimate:
    """Wilson's score interval of the proportion ``successes / n``; undefined for n = 0."""
    if n <= 0:
        return UNDEFINED
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return Estimate(
        float(p),
        0.0 if successes <= 0 else max(0.0, centre - half),
        1.0 if successes >= n else min(1.0, centre + half),
        math.sqrt(max(p * (1 - p), 0.0) / n),
    )


def normal(values: npt.NDArray[np.float64], z: float) -> Estimate:
    """The mean of ``values`` with its normal (CLT) interval, unbounded above, >= 0 below
    when every value is."""
    n = values.size
    if n == 0:
        return UNDEFINED
    mean = float(values.mean())
    std = float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    lo = 0.0 if values.min() >= 0 else None
    return around(mean, std, z, lo=lo, hi=None)
