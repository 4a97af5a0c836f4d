"""One monitoring run: gather -> drift, data quality, model quality, SLOs -> Report.

Glue only: every statistic lives in :mod:`modelmonitor.core.stats` and :mod:`modelmonitor.core.slo`,
every network call in :mod:`modelmonitor.sources`. A run never raises for bad data or
an unreachable source: it records a :class:`~modelmonitor.core.report.Problem` and reports
what it could measure; InsufficientData is a verdict of its own, never a pass.

What the current window is:

* with ``spec.data.probe.dataset`` (a golden set or a sample of current traffic), the
  rows the probe sent and the model's answers: input drift and prediction drift;
* with the default probe set (a sample of the reference), only the model's answers:
  prediction drift against the reference's prediction column, when it has one (the
  inputs are the reference's own, so they cannot drift).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelmonitor.core.dataset import CategoricalColumn, Column, Dataset, Feature
from modelmonitor.core.report import (
    DriftSummary,
    FeatureSummary,
    Problem,
    Report,
    SLOOutcome,
    StoredSLO,
)
from modelmonitor.core.slo.budget import (
    EventCounts,
    history_retention,
    required_windows,
    scale_alerts,
    summarize_latency,
)
from modelmonitor.core.slo.evaluation import evaluate_error_ratio, evaluate_latency
from modelmonitor.core.slo.history import EventHistory
from modelmonitor.core.spec import MonitorSpec, PredictionSpec, SLOSpec
from modelmonitor.core.stats import analyze
from modelmonitor.core.stats.column_profile import as_categorical
from modelmonitor.core.stats.model_quality import classification_quality, regression_quality
from modelmonitor.core.stats.quality import data_quality
from modelmonitor.sources.endpoint import (
    EndpointLookup,
    EndpointResolutionError,
    Resolution,
    resolve_endpoint,
)
from modelmonitor.sources.payload.store import PayloadStore
from modelmonitor.sources.probe import (
    ProbeResult,
    Transport,
    config_from_spec,
    probe,
    sample_rows,
    unreachable_result,
)
from modelmonitor.sources.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusUnavailable,
    evaluate_prometheus_slo,
)
from modelmonitor.sources.reference import (
    ColumnPlan,
    LoadedReference,
    ReferenceCache,
    ReferenceLoadError,
)

log = logging.getLogger(__name__)

HISTORY_FIELD = "sloHistory"


@dataclass
class InlineRunner:
    """Runs checks inside the operator process."""

    references: ReferenceCache
    lookup: EndpointLookup
    resolution: Resolution = "dns"
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    transport: Transport | None = None  # tests only; production opens an HTTP session
    mode: str = "inline"
    prometheus_min_window_seconds: float = 60.0
    payloads: PayloadStore | None = None  # the collector's windows (inline mode only)

    async def run(
        self, namespace: str, name: str, spec: MonitorSpec, status: Mapping[str, Any]
    ) -> Report:
        started = self.clock()
        t0 = time.perf_counter()
        problems: list[Problem] = []
        details: dict[str, Any] = {}

        reference = await self._reference(namespace, name, spec, problems)
        result: ProbeResult | None = None
        current: Dataset | None = None
        if spec.probe is not None and reference is not None:
            result, current = await self._probe(namespace, name, spec, reference, problems)
            details["probe"] = result.summary()

        insufficient: str | None = None
        if spec.payload_log is not None and reference is not None:
            current, insufficient = self._payload_window(namespace, name, spec, reference)
            if current is not None:
                details["payloadLog"] = {"rows": current.n_rows}

        drift = await self._drift(spec, reference, current, problems, insufficient)
        quality = await self._data_quality(spec, reference, current)
        model_quality = self._model_quality(spec, result)
        slos, histories = self._slos(spec, status, result, started)
        prom_slos, prom_histories = await self._prometheus_slos(spec, status, started, problems)
        slos = _in_spec_order(spec, [*slos, *prom_slos])
        histories.update(prom_histories)
        if histories:
            details[HISTORY_FIELD] = histories

        return Report(
            started=started,
            duration_seconds=time.perf_counter() - t0,
            mode="job" if self.mode == "job" else "inline",
            samples=current.n_rows if current is not None else 0,
            drift=drift,
            slos=tuple(slos),
            problems=tuple(problems),
            data_quality=quality,
            model_quality=model_quality,
            details=details,
        )

    # -- gathering ----------------------------------------------------------------------------
    async def _reference(
        self, namespace: str, name: str, spec: MonitorSpec, problems: list[Problem]
    ) -> LoadedReference | None:
        try:
            return await self.references.load(
                namespace, name, spec.reference, ColumnPlan.from_spec(spec.features, _extras(spec))
            )
        except ReferenceLoadError as exc:
            problems.append(Problem(exc.reason, str(exc)))
            return None

    async def _probe(
        self,
        namespace: str,
        name: str,
        spec: MonitorSpec,
        reference: LoadedReference,
        problems: list[Problem],
    ) -> tuple[ProbeResult, Dataset | None]:
        assert spec.probe is not None
        probe_spec = spec.probe
        prediction_type = spec.prediction.type if spec.prediction else "categorical"
        label = spec.prediction.label_column if spec.prediction else None
        inputs = _input_names(spec, reference)
        if probe_spec.dataset is not None:
            try:
                loaded = await self.references.load(
                    namespace,
                    f"{name}#probe",
                    probe_spec.dataset,
                    ColumnPlan(None, tuple(_extras(spec))),
                )
            except ReferenceLoadError as exc:
                problems.append(Problem("ProbeSetUnavailable", str(exc)))
                return unreachable_result(str(exc), prediction_type), None
            pool = loaded.rows
        else:
            pool = reference.rows
        if pool is None or pool.n_rows == 0:
            message = "no rows to probe with: a saved profile has none; set spec.data.probe.dataset"
            problems.append(Problem("ProbeSetUnavailable", message))
            return unreachable_result(message, prediction_type), None
        missing = [n for n in inputs if n not in pool]
        if missing:
            message = f"the probe set lacks input column(s) {', '.join(missing)}"
            problems.append(Problem("ProbeSetUnavailable", message))
            return unreachable_result(message, prediction_type), None
        if label is not None and label not in pool:
            label = None
        endpoint = spec.target.endpoint
        assert endpoint is not None  # the spec requires it with a probe
        try:
            resolved = await asyncio.to_thread(
                resolve_endpoint,
                endpoint,
                namespace,
                resolution=self.resolution,
                lookup=self.lookup,
            )
        except EndpointResolutionError as exc:
            problems.append(Problem("EndpointUnreachable", str(exc)))
            return unreachable_result(str(exc), prediction_type), None
        config = config_from_spec(
            endpoint,
            probe_spec,
            base_url=resolved.url,
            default_model=spec.target.name,
            prediction=spec.prediction,
        )
        rows = sample_rows(pool, probe_spec.samples)
        result = await probe(
            config, rows, features=inputs, label_column=label, transport=self.transport
        )
        if result.unreachable:
            problems.append(
                Problem("EndpointUnreachable", f"{resolved.url}: {result.failure_message}")
            )
            return result, None
        answered = rows.take(result.rows)
        columns: dict[str, Column] = {}
        if probe_spec.dataset is not None:
            columns.update({n: answered[n] for n in inputs})
        prediction_name = spec.prediction.name if spec.prediction else "prediction"
        columns[prediction_name] = result.predictions
        return result, Dataset(columns)

    # -- statistics -------------------------------------------------------------------------
    def _payload_window(
        self, namespace: str, name: str, spec: MonitorSpec, reference: LoadedReference
    ) -> tuple[Dataset | None, str | None]:
        """Production inputs and outputs from the payload log: the drift window."""
        window = self.payloads.window(namespace, name) if self.payloads is not None else None
        if window is None:
            return (
                None,
                "no payload-log window for this monitor (the collector runs in the operator)",
            )
        now = self.clock().timestamp()
        inputs = [f for f in reference.features if f.name in set(_input_names(spec, reference))]
        prediction = spec.prediction or PredictionSpec()
        snapshot = window.snapshot(now, inputs, prediction.name, prediction.type)
        if snapshot is None:
            return None, window.status(now).message
        return snapshot, None

    async def _drift(
        self,
        spec: MonitorSpec,
        reference: LoadedReference | None,
        current: Dataset | None,
        problems: list[Problem],
        insufficient: str | None = None,
    ) -> DriftSummary:
        if not spec.drift.enabled:
            return DriftSummary("disabled")
        if insufficient is not None:
            return DriftSummary("insufficient_data", message=insufficient)
        if reference is None or current is None:
            if spec.probe is None and spec.payload_log is None:
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
        methods = {f.name: f.method for f in spec.features if f.method and f.method != "auto"}
        try:
            report = await asyncio.to_thread(
                analyze,
                reference.profile,
                _align(current, features),
                features=features,
                method=spec.drift.method,
                methods=methods or None,
                threshold=spec.drift.threshold,
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
        self, spec: MonitorSpec, reference: LoadedReference | None, current: Dataset | None
    ) -> Mapping[str, Any] | None:
        if reference is None or current is None or current.n_rows == 0:
            return None
        features = [f for f in reference.features if f.name in current]
        if not features:
            return None
        try:
            report = await asyncio.to_thread(
                data_quality, current, reference.profile, features=features
            )
        except ValueError as exc:
            return {"error": str(exc)}
        return report.to_dict()

    def _model_quality(
        self, spec: MonitorSpec, result: ProbeResult | None
    ) -> Mapping[str, Any] | None:
        if result is None or result.labels is None or result.n_answered == 0:
            return None
        try:
            if spec.prediction is not None and spec.prediction.type == "numerical":
                quality = regression_quality(_numbers(result.labels), _numbers(result.predictions))
            else:
                quality = classification_quality(result.labels, result.predictions)
        except ValueError as exc:
            return {"error": str(exc)}
        return quality.to_dict()

    # -- SLOs -----------------------------------------------------------------------------
    async def _prometheus_slos(
        self,
        spec: MonitorSpec,
        status: Mapping[str, Any],
        started: dt.datetime,
        problems: list[Problem],
    ) -> tuple[list[SLOOutcome], dict[str, Any]]:
        slos = [s for s in spec.slos if s.source == "prometheus"]
        if not slos or spec.prometheus is None:
            return [], {}
        stored = status.get(HISTORY_FIELD) or {}
        now = started.timestamp()
        async with PrometheusClient(
            spec.prometheus.url, timeout_seconds=spec.prometheus.timeout_seconds
        ) as client:
            results = await asyncio.gather(
                *(
                    _prometheus_slo(
                        client, slo, stored.get(slo.name), now, self.prometheus_min_window_seconds
                    )
                    for slo in slos
                )
            )
        outcomes: list[SLOOutcome] = []
        histories: dict[str, Any] = {}
        seen: set[str] = set()
        for slo, (outcome, history, problem) in zip(slos, results, strict=True):
            outcomes.append(outcome)
            if history is not None:
                histories[slo.name] = history
            if problem is not None and problem.reason not in seen:
                seen.add(problem.reason)
                problems.append(problem)
        return outcomes, histories

    def _slos(
        self,
        spec: MonitorSpec,
        status: Mapping[str, Any],
        result: ProbeResult | None,
        started: dt.datetime,
    ) -> tuple[list[SLOOutcome], dict[str, Any]]:
        outcomes: list[SLOOutcome] = []
        histories: dict[str, Any] = {}
        stored = status.get(HISTORY_FIELD) or {}
        now = started.timestamp()
        for slo in spec.slos:
            if slo.source != "probe":
                continue  # Prometheus SLOs: see PrometheusSLOs
            history = EventHistory.from_dict(stored.get(slo.name))
            outcome, history = _probe_slo(slo, result, history, now)
            outcomes.append(outcome)
            histories[slo.name] = history.to_dict()
        return outcomes, histories


async def _prometheus_slo(
    client: PrometheusClient,
    slo: SLOSpec,
    stored: Any,
    now: float,
    min_window: float,
) -> tuple[SLOOutcome, Any, Problem | None]:
    history = EventHistory.from_dict(stored) if stored else None
    try:
        result, updated = await evaluate_prometheus_slo(
            client, slo, now=now, history=history, min_window_seconds=min_window
        )
    except PrometheusUnavailable as exc:
        message = f"no data: Prometheus unavailable ({exc})"
        return (
            StoredSLO(slo.name, None, message),
            stored,
            Problem("PrometheusUnavailable", str(exc)),
        )
    except PrometheusError as exc:
        message = f"no data: query failed ({exc})"
        return (
            StoredSLO(slo.name, None, message),
            stored,
            Problem("PrometheusQueryFailed", str(exc)),
        )
    return result, (updated.to_dict() if updated is not None else None), None


def _probe_slo(
    slo: SLOSpec, result: ProbeResult | None, history: EventHistory, now: float
) -> tuple[SLOOutcome, EventHistory]:
    alerts = scale_alerts(slo.window_scale)
    windows = required_windows(slo.window_seconds, alerts)
    retention = history_retention(slo.window_seconds, alerts)
    failed = 0 if result is None else int(np.count_nonzero(~result.request_ok))
    if slo.latency is not None:
        lat = slo.latency
        summary = summarize_latency(
            result.ok_latencies_ms if result is not None else np.zeros(0),
            percentile=lat.percentile,
            threshold_ms=lat.threshold_ms,
            failed=failed,
        )
        if summary.counts.total > 0:
            history = history.add(now, summary.counts, retention_seconds=retention)
        value = summary.value_ms
        outcome = evaluate_latency(
            slo.name,
            percentile=lat.percentile,
            threshold_ms=lat.threshold_ms,
            value_ms=None
            if value is None or (math.isinf(value) and summary.counts.good == 0)
            else value,
            objective=slo.objective,
            slo_window_seconds=slo.window_seconds,
            windows=history.window_counts(now, windows),
            alerts=alerts,
        )
        return outcome, history
    total = 0 if result is None else result.n_requests
    if total > 0:
        counts = EventCounts(good=float(total - failed), total=float(total))
        history = history.add(now, counts, retention_seconds=retention)
    outcome = evaluate_error_ratio(
        slo.name,
        objective=slo.objective,
        slo_window_seconds=slo.window_seconds,
        windows=history.window_counts(now, windows),
        alerts=alerts,
    )
    return outcome, history


def _in_spec_order(spec: MonitorSpec, outcomes: Sequence[SLOOutcome]) -> list[SLOOutcome]:
    order = {slo.name: i for i, slo in enumerate(spec.slos)}
    return sorted(outcomes, key=lambda o: order.get(o.name, len(order)))


def _extras(spec: MonitorSpec) -> list[Feature]:
    """The prediction and label columns, kept in the reference when it has them."""
    prediction = spec.prediction
    if prediction is None:
        return [Feature("prediction", "categorical")]
    extras = [Feature(prediction.name, prediction.type)]
    if prediction.label_column:
        extras.append(Feature(prediction.label_column, prediction.type))
    return extras


def _input_names(spec: MonitorSpec, reference: LoadedReference) -> list[str]:
    """The model's inputs: the reference's features but the prediction and label columns."""
    skip = set()
    if spec.prediction is not None:
        skip.add(spec.prediction.name)
        if spec.prediction.label_column:
            skip.add(spec.prediction.label_column)
    else:
        skip.add("prediction")
    return [f.name for f in reference.features if f.name not in skip]


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
