"""Estimated performance without labels (confidence-based performance estimation, CBPE).

If the calibrated probabilities are right for the current window, each row's class is a
draw from them, independent of the other rows. The expected confusion matrix follows
(:func:`.confusion.expected_confusion`), and from it accuracy, precision, recall and F1
as ratios of expected counts (NannyML's CBPE does the same); ROC AUC is the area under
the expected ROC curve (:func:`.auc.expected_auc`).

The interval is where the *realized* value of the window would fall with the stated
probability under these assumptions: the delta method on the exact covariance of the
counts under the row-wise draws (for accuracy: the variance of a Poisson-binomial,
``sum q_i (1 - q_i) / n^2``). NannyML reports a "sampling error" instead, the standard
deviation of the metric across reference chunks of the window's size; ours needs no
chunking of the reference, follows the current window's own scores (a window of confident
rows gets a narrower interval), and its coverage is measured in the unit tests. It does
not count the error of the calibration map itself, which is small next to it when the
reference is several times larger than the window.

Assumptions (docs/statistics.md): the scores' calibration learned on the reference holds
for the current window (covariate shift is fine: P(y | scores) unchanged), that is, no
concept drift; rows are independent.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from modelmonitor.core.stats.performance.auc import expected_auc
from modelmonitor.core.stats.performance.confusion import (
    count_metrics,
    expected_confusion,
    expected_vars,
)
from modelmonitor.core.stats.performance.intervals import Estimate, around

Array = npt.NDArray[np.float64]


def estimate_classification(
    calibrated: Array,
    scores: Array,
    p_idx: npt.NDArray[np.intp],
    pos: int | None,
    z: float,
) -> tuple[dict[str, Estimate], list[int]]:
    """Estimated accuracy, precision, recall, F1 and ROC AUC with intervals.

    ``calibrated``: the rows' calibrated class probabilities (n, k); ``scores``: the
    model's own scores (n, k), which rank the rows for ROC AUC; ``p_idx``: the predicted
    class of each row; ``pos``: the positive class (binary) or None (macro averages).
    Returns the estimates and the classes left out of the macro AUC (never expected to
    occur).
    """
    k = calibrated.shape[1]
    cm = expected_confusion(calibrated, p_idx, k)
    metrics = count_metrics(cm, pos)
    variances = expected_vars(calibrated, p_idx, cm, [g for _, g in metrics.values()])
    out = {
        m: around(value, math.sqrt(max(var, 0.0)), z)
        for (m, (value, _)), var in zip(metrics.items(), variances, strict=True)
    }
    out["roc_auc"], skipped = expected_auc(calibrated, scores, pos, z)
    return out, skipped
