"""One monitoring run: reference -> sources -> drift, data quality, model quality -> Report.

Glue only: every statistic lives in :mod:`modelmonitor.core.stats` and :mod:`modelmonitor.core.slo`,
every network call in :mod:`modelmonitor.sources`. The sources are the ones the spec
configures, asked in the registry's order (:data:`modelmonitor.sources.builtin.SOURCES`):
first those that give the current window, then the statistics on that window, then the
sources of SLIs only; problems keep that order (the first names the Degraded reason).
A run never raises for bad data or an unreachable source: it records a
:class:`~modelmonitor.core.report.Problem` and reports what it could measure;
InsufficientData is a verdict of its own, never a pass.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelmonitor.core.anomaly.outcome import AnomalyOutcome
from modelmonitor.core.dataset import CategoricalColumn, Column, Dataset, Feature
from modelmonitor.core.report import (
    DriftSummary,
    FeatureSummary,
    Problem,
    Report,
    SLOOutcome,
)
from modelmonitor.core.spec import MonitorSpec
from modelmonitor.core.spec.drift_options import drift_options
from modelmonitor.core.stats import analyze
from modelmonitor.core.stats.column_profile import as_categorical
from modelmonitor.core.stats.model_quality import classification_quality, regression_quality
from modelmonitor.core.stats.profile import ReferenceProfile
from modelmonitor.core.stats.quality import data_quality
from modelmonitor.core.stats.quality_window import window_quality
from modelmonitor.engine.performance import performance_of
from modelmonitor.sources.base import (
    HISTORY_FIELD,
    Clients,
    CurrentData,
    Gathered,
    Labelled,
    RunContext,
    Scored,
    Source,
    configured_sources,
    prediction_features,
)
from modelmonitor.sources.builtin import SOURCES
from modelmonitor.sources.reference import (
    ColumnPlan,
    LoadedReference,
    ReferenceLoadError,
)
from modelmonitor.sources.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InlineRunner:
    """Runs checks inside the operator process (and, in job mode, inside the Job's pod)."""

    clients: Clients
    mode: str = "inline"
    sources: Registry[Source] = SOURCES

    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report:
        started = self.clients.clock()
        t0 = time.perf_counter()
        problems: list[Problem] = []
        reference = await self._reference(namespace, name, spec, problems)
        ctx = RunContext(namespace, name, spec, status, started, reference, self.clients)
        sources = configured_sources(self.sources, spec)
        gathered = _Gathering(problems)  # shares the list: the statistics add theirs between
        for source in sources:
            if source.supplies_rows:
                gathered.add(await source.gather(ctx))
        current = gathered.current
        rows = current.window if current is not None else None
        drift = await self._drift(
            spec, reference, current, problems, any(s.supplies_rows for s in sources)
        )
        quality = await self._data_quality(spec, reference, rows)
        model_quality = _model_quality(spec, gathered.labelled)
        performance = await performance_of(
            spec.performance,
            reference,
            gathered.scored,
            spec.prediction.label_column if spec.prediction else None,
        )
        for source in sources:
            if not source.supplies_rows:
                gathered.add(await source.gather(ctx))
        details = gathered.details
        if gathered.histories:
            details[HISTORY_FIELD] = gathered.histories

        return Report(
            started=started,
            duration_seconds=time.perf_counter() - t0,
            mode="job" if self.mode == "job" else "inline",
            samples=rows.n_rows if rows is not None else 0,
            drift=drift,
            slos=tuple(_in_spec_order(spec, gathered.slos)),
            problems=tuple(problems),
            data_quality=quality,
            model_quality=model_quality,
            details=details,
            anomalies=tuple(_in_anomaly_order(spec, gathered.anomalies)),
            performance=performance,
        )

    async def _reference(
        self, namespace: str, name: str, spec: MonitorSpec, problems: list[Problem]
    ) -> LoadedReference | None:
        if spec.reference is None:
            return None  # an SLO-only monitor: nothing to load, and nothing is missing
        plan = ColumnPlan.from_spec(spec.features, prediction_features(spec))
        try:
            return await self.clients.references.load(namespace, name, spec.reference, plan)
        except ReferenceLoadError as exc:
            problems.append(Problem(exc.reason, str(exc)))
            return None

    # -- statistics -------------------------------------------------------------------------
    async def _drift(
        self,
        spec: MonitorSpec,
        reference: LoadedReference | None,
        window: CurrentData | None,
        problems: list[Problem],
        any_window_source: bool,
    ) -> DriftSummary:
        if not spec.drift.enabled:
            return DriftSummary("disabled")
        if window is not None and window.insufficient is not None:
            return DriftSummary("insufficient_data", message=window.insufficient)
        current = window.window if window is not None else None
        if reference is None or current is None:
            if not any_window_source:
                return DriftSummary("disabled", message="no current data source configured")
            return DriftSummary("unavailable")
        features = [f for f in reference.features if f.name in current]
        if not features:
            return DriftSummary(
                "insufficient_data",
                message="no monitored column in the current data (does the reference hold "
                "the prediction column?)",
            )
        if current.n_rows < spec.drift.min_samples:
            return DriftSummary(
                "insufficient_data",
                message=f"{current.n_rows} samples < minSamples {spec.drift.min_samples}",
            )
        options = drift_options(spec.drift, spec.features, features)
        try:
            report = await asyncio.to_thread(
                analyze,
                reference.profile,
                _align(current, features) if isinstance(current, Dataset) else current,
                features=features,
                method=spec.drift.method,
                methods=options.methods,
                threshold=spec.drift.threshold,
                thresholds=options.thresholds,
                correction=spec.drift.correction,
                drift_share=spec.drift.drift_share,
            )
        except ValueError as exc:
            problems.append(Problem("DriftFailed", str(exc)))
            return DriftSummary("unavailable")
        summaries = tuple(
            FeatureSummary(
                f.name,
                f.method,
                f.statistic,
                f.p_value_adjusted if f.p_value_adjusted is not None else f.p_value,
                f.threshold,
                f.drifted,
            )
            for f in report.features
            if f.status == "ok"
        )
        ds = report.dataset
        if ds.total_features == 0:
            return DriftSummary("insufficient_data", message="no feature had enough valid values")
        return DriftSummary(
            "ok",
            ds.drifted,
            ds.drifted_features,
            ds.total_features,
            ds.share,
            ds.drift_share,
            summaries,
        )

    async def _data_quality(
        self,
        spec: MonitorSpec,
        reference: LoadedReference | None,
        current: Dataset | ReferenceProfile | None,
    ) -> Mapping[str, Any] | None:
        if reference is None or current is None or current.n_rows == 0:
            return None
        features = [f for f in reference.features if f.name in current]
        if not features:
            return None
        try:
            if isinstance(current, Dataset):
                report = await asyncio.to_thread(
                    data_quality, current, reference.profile, features=features
                )
            else:  # a partitioned window's profile
                report = await asyncio.to_thread(
                    window_quality, current, reference.profile, features=features
                )
        except ValueError as exc:
            return {"error": str(exc)}
        return report.to_dict()


@dataclass
class _Gathering:
    """What the sources gave so far, merged in the order they were asked."""

    problems: list[Problem]
    current: CurrentData | None = None
    labelled: Labelled | None = None
    scored: Scored | None = None
    slos: list[SLOOutcome] = field(default_factory=list)
    histories: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    anomalies: list[AnomalyOutcome] = field(default_factory=list)

    def add(self, gathered: Gathered) -> None:
        if gathered.current is not None:
            self.current = gathered.current  # a later source's window replaces an earlier one's
        if gathered.labelled is not None:
            self.labelled = gathered.labelled
        if gathered.scored is not None:
            self.scored = gathered.scored
        self.slos.extend(gathered.slos)
        self.histories.update(gathered.histories)
        self.problems.extend(gathered.problems)
        self.details.update(gathered.details)
        self.anomalies.extend(gathered.anomalies)


def _model_quality(spec: MonitorSpec, labelled: Labelled | None) -> Mapping[str, Any] | None:
    if labelled is None:
        return None
    try:
        if spec.prediction is not None and spec.prediction.type == "numerical":
            quality = regression_quality(_numbers(labelled.labels), _numbers(labelled.predictions))
        else:
            quality = classification_quality(labelled.labels, labelled.predictions)
    except ValueError as exc:
        return {"error": str(exc)}
    return quality.to_dict()


def _in_spec_order(spec: MonitorSpec, outcomes: Sequence[SLOOutcome]) -> list[SLOOutcome]:
    order = {slo.name: i for i, slo in enumerate(spec.slos)}
    return sorted(outcomes, key=lambda o: order.get(o.name, len(order)))


def _in_anomaly_order(
    spec: MonitorSpec, outcomes: Sequence[AnomalyOutcome]
) -> list[AnomalyOutcome]:
    order = {a.name: i for i, a in enumerate(spec.anomalies)}
    return sorted(outcomes, key=lambda o: order.get(o.name, len(order)))


def _align(current: Dataset, features: Sequence[Feature]) -> Dataset:
    """Give each current column the reference's type (a numeric label as a category)."""
    columns: dict[str, Column] = {}
    for f in features:
        col = current[f.name]
        if f.type == "categorical":
            columns[f.name] = as_categorical(col)
        elif f.type == "numerical" and isinstance(col, CategoricalColumn):
            values = [_to_float(x) for x in col.labels()]
            columns[f.name] = np.asarray(values, dtype=np.float64)
        else:
            columns[f.name] = col
    return Dataset(columns)


def _to_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _numbers(column: Column) -> np.ndarray[Any, np.dtype[np.float64]]:
    if isinstance(column, CategoricalColumn):
        return np.asarray([_to_float(x) for x in column.labels()], dtype=np.float64)
    return column
