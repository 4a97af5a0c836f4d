"""Multiple-testing correction across features.

Applied only to the features whose method is a test (has a p-value); distances are
decided by their thresholds. ``k`` is the number of such features that were evaluated.

* ``bonferroni``: ``p_adj = min(1, k p)``; controls the family-wise error rate.
* ``fdr``: Benjamini-Hochberg adjusted p-values (step-up; equals
  ``scipy.stats.false_discovery_control(p, method="bh")``); controls the false
  discovery rate under independence or positive dependence.
* ``none``: the raw p-values.

A feature drifts when its adjusted p-value is below ``alpha``.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from modelmonitor.core.dataset import FloatArray

Correction: TypeAlias = Literal["bonferroni", "fdr", "none"]
CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "fdr", "none")


def validate_correction(correction: str) -> Correction:
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; valid: {', '.join(CORRECTIONS)}")
    return correction


def adjust_pvalues(pvalues: npt.ArrayLike, correction: str = "bonferroni") -> FloatArray:
    """Adjusted p-values for a family of tests (see the module docstring)."""
    method = validate_correction(correction)
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if np.any((p < 0) | (p > 1)) or np.any(np.isnan(p)):
        raise ValueError("p-values must lie in [0, 1]")
    k = p.shape[0]
    if k == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(p * k, 1.0)
    order = np.argsort(p)
    scaled = p[order] * k / np.arange(1, k + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.minimum(stepped, 1.0)
    return out
