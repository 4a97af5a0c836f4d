"""A run's model performance: the reference's calibration (fitted once per reference,
kept with the cached reference) applied to the window's class probabilities.

Glue only: the statistics are :mod:`modelmonitor.core.stats.performance`. Bad data (no
probabilities, too few rows, a reference without the columns) is reported in
``status.performance`` as insufficient data and never raises.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelmonitor.core.codecs.inference import label_text
from modelmonitor.core.dataset import CategoricalColumn, Column
from modelmonitor.core.spec import PerformanceSpec
from modelmonitor.core.stats.performance import ClassificationReference
from modelmonitor.core.stats.performance.monitor import insufficient, summarize
from modelmonitor.sources.base import Scored
from modelmonitor.sources.reference import LoadedReference


def _texts(column: Column) -> list[str | None]:
    values = column.labels() if isinstance(column, CategoricalColumn) else column.tolist()
    return [label_text(v) for v in values]


def _class_order(labels: list[str]) -> list[str]:
    """The model's class order: numeric labels by value, text labels sorted as text."""
    unique = sorted(set(labels))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def _fit(reference: LoadedReference, spec: PerformanceSpec) -> ClassificationReference | str:
    """The fitted reference, or why it cannot be fitted."""
    rows = reference.rows
    if rows is None:
        return "the reference is a saved profile: calibration needs its rows"
    missing = [c for c in (spec.target, *spec.probabilities) if c not in rows]
    if missing:
        return f"the reference lacks column(s) {', '.join(missing)}"
    labels = _texts(rows[spec.target])
    if any(isinstance(rows[c], CategoricalColumn) for c in spec.probabilities):
        return "the reference's probability columns are not numeric"
    proba = np.column_stack([np.asarray(rows[c], dtype=np.float64) for c in spec.probabilities])
    y = np.asarray([math.nan if v is None else v for v in labels], dtype=object)
    present = [v for v in labels if v is not None]
    try:
        return ClassificationReference.fit(
            y,
            proba[:, 0] if proba.shape[1] == 1 else proba,
            labels=_class_order(present),
            confidence=spec.confidence,
        )
    except ValueError as exc:
        return f"cannot calibrate on the reference: {exc}"


def fitted(reference: LoadedReference, spec: PerformanceSpec) -> ClassificationReference | str:
    """:func:`_fit`, once per reference and settings (kept in ``reference.derived``)."""
    key = ("performance", spec.target, spec.probabilities, spec.confidence)
    if key not in reference.derived:
        reference.derived[key] = _fit(reference, spec)
    found: ClassificationReference | str = reference.derived[key]
    return found


def evaluate(
    spec: PerformanceSpec,
    reference: LoadedReference | None,
    scored: Scored | None,
    label_column: str | None,
) -> Mapping[str, Any]:
    """``status.performance`` of one run (with late labels, their counters in ``labels``)."""
    out = _evaluate(spec, reference, scored, label_column)
    if scored is not None and scored.label_feed is not None:
        return {**out, "labels": dict(scored.label_feed)}
    return out


def _evaluate(
    spec: PerformanceSpec,
    reference: LoadedReference | None,
    scored: Scored | None,
    label_column: str | None,
) -> Mapping[str, Any]:
    if reference is None:
        return insufficient("the reference could not be loaded").to_status()
    fit = fitted(reference, spec)
    if isinstance(fit, str):
        return insufficient(fit).to_status()
    if scored is not None and scored.label_feed is not None and scored.probabilities.size == 0:
        return insufficient(
            "no served prediction with class probabilities waits for labels yet (the "
            "payload log's responses carry them)"
        ).to_status()
    if scored is None:
        return insufficient(
            "the model returned no class probabilities (set spec.performance.probabilityOutput "
            "for a v2 server that returns only the predicted class)"
        ).to_status()
    proba = np.asarray(scored.probabilities, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != fit.columns:
        return insufficient(
            f"the model returned {proba.shape[-1]} probability column(s), the reference has "
            f"{fit.columns}"
        ).to_status()
    finite = int(np.count_nonzero(np.isfinite(proba).all(axis=1)))
    if finite < spec.min_rows:
        return insufficient(
            f"{finite} row(s) with finite probabilities < minRows {spec.min_rows}",
            rows=finite,
        ).to_status()
    current_y = None
    if scored.labels is not None and (scored.label_feed is not None or label_column == spec.target):
        texts = _texts(scored.labels)
        current_y = np.asarray([math.nan if v is None else v for v in texts], dtype=object)
    try:
        report = fit.evaluate(proba[:, 0] if fit.columns == 1 else proba, current_y=current_y)
    except ValueError as exc:
        return insufficient(f"cannot estimate on this window: {exc}", rows=finite).to_status()
    return summarize(report, spec).to_status()


async def performance_of(
    spec: PerformanceSpec | None,
    reference: LoadedReference | None,
    scored: Scored | None,
    label_column: str | None,
) -> Mapping[str, Any] | None:
    if spec is None:
        return None
    return await asyncio.to_thread(evaluate, spec, reference, scored, label_column)
