"""The ``probe`` source: send the probe set to the model's endpoint, read the answers.

What the current window is:

* with ``spec.data.probe.dataset`` (a golden set or a sample of current traffic), the
  rows the probe sent and the model's answers: input drift and prediction drift;
* with the default probe set (a sample of the reference), only the model's answers:
  prediction drift against the reference's prediction column, when it has one (the
  inputs are the reference's own, so they cannot drift).

When the probe set has the label column, the answers next to it give model quality.
Each request's latency and success are the SLIs of the SLOs with ``source: probe``;
their event history lives in status. The HTTP side is :mod:`modelmonitor.sources.probe`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np

from modelmonitor.core.dataset import Column, Dataset
from modelmonitor.core.outbound import redact_url
from modelmonitor.core.report import Problem, SLOOutcome
from modelmonitor.core.slo.budget import (
    EventCounts,
    history_retention,
    required_windows,
    slo_alerts,
    summarize_latency,
)
from modelmonitor.core.slo.evaluation import evaluate_error_ratio, evaluate_latency
from modelmonitor.core.slo.history import EventHistory
from modelmonitor.core.spec import MonitorSpec, SLOSpec
from modelmonitor.sources.base import (
    CurrentData,
    Gathered,
    Labelled,
    RunContext,
    Scored,
    input_names,
    prediction_features,
)
from modelmonitor.sources.endpoint import EndpointResolutionError, resolve_endpoint
from modelmonitor.sources.probe import config_from_spec, probe, sample_rows
from modelmonitor.sources.probe_result import (
    OPERATOR_BUSY,
    OUTBOUND_REFUSED,
    ProbeResult,
    unreachable_result,
)
from modelmonitor.sources.reference import ColumnPlan, LoadedReference, ReferenceLoadError


class ProbeSource:
    key = "probe"
    supplies_rows = True

    def configured(self, spec: MonitorSpec) -> bool:
        return spec.probe is not None or any(slo.source == self.key for slo in spec.slos)

    async def gather(self, ctx: RunContext) -> Gathered:
        problems: list[Problem] = []
        result: ProbeResult | None = None
        current: Dataset | None = None
        details: dict[str, Any] = {}
        probe_spec = ctx.spec.probe
        # Without spec.reference (an SLO-only monitor) the probe set is spec.data.probe.dataset
        # (the parser requires one); with it, nothing is probed when it failed to load.
        no_reference = ctx.spec.reference is None
        if probe_spec is not None and (ctx.reference is not None or no_reference):
            result, current = await _probe(ctx, ctx.reference, problems)
            details["probe"] = result.summary()
        outcomes: list[SLOOutcome] = []
        histories: dict[str, Any] = {}
        now = ctx.started.timestamp()
        for slo in ctx.slos(self.key):
            history = EventHistory.from_dict(ctx.stored_history(slo.name))
            outcome, history = _probe_slo(slo, result, history, now)
            outcomes.append(outcome)
            histories[slo.name] = history.to_dict()
        labelled = None
        if result is not None and result.labels is not None and result.n_answered > 0:
            labelled = Labelled(result.labels, result.predictions)
        scored = None
        if result is not None and result.probabilities is not None and result.n_answered > 0:
            scored = Scored(result.probabilities, result.labels)
        return Gathered(
            current=CurrentData(current) if result is not None else None,
            labelled=labelled,
            scored=scored,
            slos=tuple(outcomes),
            histories=histories,
            problems=tuple(problems),
            details=details,
        )


async def _probe(
    ctx: RunContext, reference: LoadedReference | None, problems: list[Problem]
) -> tuple[ProbeResult, Dataset | None]:
    spec = ctx.spec
    assert spec.probe is not None
    probe_spec = spec.probe
    prediction_type = spec.prediction.type if spec.prediction else "categorical"
    label = spec.prediction.label_column if spec.prediction else None
    inputs = input_names(spec, reference) if reference is not None else []
    if probe_spec.dataset is not None:
        try:
            loaded = await ctx.clients.references.load(
                ctx.namespace,
                f"{ctx.name}#probe",
                probe_spec.dataset,
                ColumnPlan(None, tuple(prediction_features(spec))),
            )
        except ReferenceLoadError as exc:
            problems.append(Problem("ProbeSetUnavailable", str(exc)))
            return unreachable_result(str(exc), prediction_type), None
        pool = loaded.rows
        if reference is None:  # no reference: the declared features, or the set's columns
            inputs = [f.name for f in spec.features] or input_names(spec, loaded)
    elif reference is not None:
        pool = reference.rows
    else:
        pool = None
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
            ctx.namespace,
            resolution=ctx.clients.resolution,
            lookup=ctx.clients.lookup,
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
        performance=spec.performance,
    )
    rows = sample_rows(pool, probe_spec.samples)
    result = await probe(
        config,
        rows,
        features=inputs,
        label_column=label,
        transport=ctx.clients.transport,
        outbound=ctx.clients.outbound.for_namespace(ctx.namespace),
    )
    if result.failure in (OUTBOUND_REFUSED, OPERATOR_BUSY):
        problems.append(Problem(result.failure, result.failure_message))
        return result, None
    if result.unreachable:
        shown = redact_url(resolved.url)
        problems.append(Problem("EndpointUnreachable", f"{shown}: {result.failure_message}"))
        return result, None
    answered = rows.take(result.rows)
    columns: dict[str, Column] = {}
    if probe_spec.dataset is not None:
        columns.update({n: answered[n] for n in inputs})
    prediction_name = spec.prediction.name if spec.prediction else "prediction"
    columns[prediction_name] = result.predictions
    return result, Dataset(columns)


def _probe_slo(
    slo: SLOSpec, result: ProbeResult | None, history: EventHistory, now: float
) -> tuple[SLOOutcome, EventHistory]:
    alerts = slo_alerts(slo.window_seconds, slo.window_scale)
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
