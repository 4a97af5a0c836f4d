"""Which method and threshold judge each column: ``spec.drift`` and ``spec.features[]``.

``spec.drift.method`` and ``spec.drift.threshold`` apply to every column; a feature's own
``method`` or ``threshold`` overrides them for that feature (a feature with its own
method and no threshold of its own takes that method's defaults: the drift threshold
belongs to the drift method). A column the drift method does not fit and that the spec
does not declare - the prediction, or a feature inferred from the reference - is judged
by ``auto`` for its type with ``auto``'s defaults, as the offline CLI does; the report
names the method used. The parser refuses a declared feature the drift method does not
fit, so this fallback never overrides what a user wrote about a column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modelmonitor.core.dataset import Feature
from modelmonitor.core.spec.model import DriftSpec, FeatureSpec
from modelmonitor.core.stats.methods import AUTO, REGISTRY


@dataclass(frozen=True)
class DriftOptions:
    """The per-column arguments of :func:`modelmonitor.core.stats.analyze`."""

    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float | None] = field(default_factory=dict)


def drift_options(
    drift: DriftSpec, declared: Sequence[FeatureSpec], columns: Sequence[Feature]
) -> DriftOptions:
    """The method and threshold overrides for ``columns`` (the ones drift will judge)."""
    by_name = {f.name: f for f in declared}
    methods: dict[str, str] = {}
    thresholds: dict[str, float | None] = {}
    for column in columns:
        spec = by_name.get(column.name)
        if spec is not None and spec.method is not None and spec.method != drift.method:
            methods[column.name] = spec.method
        elif drift.method != AUTO and drift.method not in REGISTRY[column.type]:
            methods[column.name] = AUTO
            thresholds[column.name] = None
        if spec is not None and spec.threshold is not None:
            thresholds[column.name] = spec.threshold
    return DriftOptions(methods, thresholds)
