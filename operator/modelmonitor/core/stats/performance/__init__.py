"""Model performance: realized with intervals, estimated without labels (CBPE), and
concept drift when the two disagree. Pure numpy/scipy; docs/statistics.md has the methods.

* :func:`classification_performance`, :func:`regression_performance` (:mod:`.report`):
  the entry points, returning a :class:`PerformanceReport`;
* :mod:`.realized` (Wilson, delta method, DeLong), :mod:`.cbpe` (expected confusion
  matrix), :mod:`.auc`, :mod:`.calibration` (isotonic map, ECE check),
  :mod:`.intervals`, :mod:`.confusion`.
"""

from modelmonitor.core.stats.performance.calibration import CalibrationCheck, Calibrator
from modelmonitor.core.stats.performance.intervals import Estimate
from modelmonitor.core.stats.performance.report import (
    ClassificationReference,
    PerformanceReport,
    classification_performance,
    disagreeing,
    labelled_classification_performance,
    regression_performance,
)

__all__ = [
    "CalibrationCheck",
    "Calibrator",
    "ClassificationReference",
    "Estimate",
    "PerformanceReport",
    "classification_performance",
    "disagreeing",
    "labelled_classification_performance",
    "regression_performance",
]
