"""The statistics engine: drift methods, reference profiles, correction, analysis.

Pure numpy/scipy (and Apache DataSketches for quantile sketches); no Kubernetes, no I/O
beyond saving/loading a profile file. The entry points:

* :func:`analyze` (:mod:`.drift`) - per-feature drift of a current window against a
  reference (raw :class:`~modelmonitor.core.dataset.Dataset` or :class:`ReferenceProfile`),
  returning a :class:`DriftReport`;
* :class:`ReferenceProfile` (:mod:`.profile`) - computed once, saved as JSON, mergeable;
* :mod:`.numerical`, :mod:`.categorical`, :mod:`.multivariate` - the single methods;
* :func:`adjust_pvalues` (:mod:`.correction`).
"""

from modelmonitor.core.stats.column_profile import CategoricalProfile, NumericalProfile
from modelmonitor.core.stats.correction import CORRECTIONS, adjust_pvalues
from modelmonitor.core.stats.drift import (
    AUTO_TEST_MAX_N,
    DatasetDrift,
    DriftReport,
    FeatureDrift,
    analyze,
    choose_method,
)
from modelmonitor.core.stats.errors import ApproximationWarning, DegenerateInputWarning
from modelmonitor.core.stats.methods import METHOD_NAMES, MethodSpec, get_method
from modelmonitor.core.stats.multivariate import MultivariateDrift, mmd, multivariate_drift
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.results import DistanceResult, TestResult

__all__ = [
    "AUTO_TEST_MAX_N",
    "CORRECTIONS",
    "METHOD_NAMES",
    "ApproximationWarning",
    "CategoricalProfile",
    "DatasetDrift",
    "DegenerateInputWarning",
    "DistanceResult",
    "DriftReport",
    "FeatureDrift",
    "MethodSpec",
    "MultivariateDrift",
    "NumericalProfile",
    "ReferenceProfile",
    "TestResult",
    "adjust_pvalues",
    "analyze",
    "choose_method",
    "get_method",
    "mmd",
    "multivariate_drift",
]
